/**
 * The one explicit map of key providers: `keys[].provider` -> { schema, create }.
 * Each provider lives in its own file with its own zod schema; add new ones here.
 */
import { z } from 'zod';
import { createFileKeyProvider, fileKeySchema } from './file.js';
import type { KeyProvider } from './types.js';

export interface KeyProviderContext {
  /** Folder of the config file: relative key paths resolve against it. */
  baseDir: string;
}

export const keyConfigSchema = z.discriminatedUnion('provider', [fileKeySchema]);
export type KeyConfig = z.infer<typeof keyConfigSchema>;

type Factory<C> = (cfg: C, ctx: KeyProviderContext) => Promise<KeyProvider>;

export const keyProviderFactories: { [P in KeyConfig['provider']]: Factory<Extract<KeyConfig, { provider: P }>> } = {
  file: createFileKeyProvider,
};

export async function createKeyProvider(cfg: KeyConfig, ctx: KeyProviderContext): Promise<KeyProvider> {
  const factory = keyProviderFactories[cfg.provider] as Factory<KeyConfig>;
  return factory(cfg, ctx);
}

/** Build every configured key once; errors for all keys are collected and thrown together. */
export async function createKeyProviders(
  keys: readonly KeyConfig[],
  ctx: KeyProviderContext,
): Promise<Map<string, KeyProvider>> {
  const out = new Map<string, KeyProvider>();
  const problems: Error[] = [];
  await Promise.all(
    keys.map(async (k) => {
      try {
        const p = await createKeyProvider(k, ctx);
        await p.publicKeyPem(); // fail at startup, not on the first push
        out.set(k.name, p);
      } catch (err) {
        problems.push(err as Error);
      }
    }),
  );
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) {
    throw new AggregateError(problems, problems.map((p) => p.message).join('; '));
  }
  return out;
}
