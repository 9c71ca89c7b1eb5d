/**
 * What a key provider module exports: its id (`keys[].provider`), its own zod schema, a factory,
 * and optionally a parser for cosign-style key references (`keys[].ref`, e.g. awskms:///alias/x).
 */
import type { z } from 'zod';
import type { KeyProvider } from './types.js';

export interface KeyProviderContext {
  /** Folder of the config file: relative paths resolve against it. */
  baseDir: string;
}

export interface KeyProviderDefinition<Id extends string, S extends z.ZodType<{ name: string; provider: Id }>> {
  id: Id;
  schema: S;
  create(cfg: z.infer<S>, ctx: KeyProviderContext): Promise<KeyProvider>;
  /**
   * Turn a reference URI into this provider's config fields (without `name`), or return
   * undefined when the URI is not this provider's scheme. Throw (any Error) when it is this
   * provider's scheme but malformed; the message is reported at the key's path.
   */
  parseRef?(ref: string): Record<string, unknown> | undefined;
}

export function defineKeyProvider<Id extends string, S extends z.ZodType<{ name: string; provider: Id }>>(
  def: KeyProviderDefinition<Id, S>,
): KeyProviderDefinition<Id, S> {
  return def;
}
