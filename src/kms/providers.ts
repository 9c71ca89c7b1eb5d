/**
 * The one explicit map of key providers. Each provider lives in its own file with its own zod
 * schema (see define.ts); to add one, import its definition and append it to `keyProviders`.
 * A key is configured either with `provider:` and that provider's fields, or with `ref:`, a
 * cosign-style key reference (awskms://, gcpkms://, azurekms://, hashivault://, pkcs11:) that the
 * provider owning the scheme turns into its fields; other fields given next to `ref` are kept.
 */
import { z } from 'zod';
import { fileProvider } from './file.js';
import { vaultProvider } from './vault.js';
import { pkcs11Provider } from './pkcs11.js';
import { gcpKmsProvider } from './gcpkms.js';
import { azureKvProvider } from './azurekv.js';
import { awsKmsProvider } from './awskms.js';
import { alibabaKmsProvider } from './alibabakms.js';
import type { KeyProviderContext } from './define.js';
import type { KeyProvider } from './types.js';
import { loadKeyCertificate } from '../signing/certificate.js';
import { SigningKey, type SignObserver } from './signing-key.js';

export type { KeyProviderContext } from './define.js';

export const keyProviders = [fileProvider, vaultProvider, gcpKmsProvider, azureKvProvider, awsKmsProvider, alibabaKmsProvider, pkcs11Provider] as const;

type Definition = (typeof keyProviders)[number];
const schemas = keyProviders.map((p) => p.schema) as unknown as [Definition['schema'], ...Definition['schema'][]];

const providerConfigSchema = z.discriminatedUnion('provider', schemas);

/** `{ name, ref, ...extra }` -> `{ name, provider, ...fields from ref, ...extra }`. */
function resolveRef(value: unknown, ctx: z.core.$RefinementCtx): unknown {
  if (value === null || typeof value !== 'object' || !('ref' in value)) return value;
  const { ref, ...rest } = value as { ref: unknown } & Record<string, unknown>;
  if (typeof ref !== 'string' || ref.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'ref must be a key reference such as awskms:///alias/signing', path: ['ref'] });
    return value;
  }
  if ('provider' in rest) {
    ctx.addIssue({ code: 'custom', message: 'give either ref or provider, not both', path: ['ref'] });
    return value;
  }
  for (const p of keyProviders as readonly { id: string; parseRef?: (r: string) => Record<string, unknown> | undefined }[]) {
    if (!p.parseRef) continue;
    let fields: Record<string, unknown> | undefined;
    try {
      fields = p.parseRef(ref);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `invalid ${p.id} reference: ${(err as Error).message}`, path: ['ref'] });
      return value;
    }
    if (fields) return { ...fields, ...rest, provider: p.id };
  }
  const schemes = (keyProviders as readonly { id: string; parseRef?: unknown }[]).filter((p) => p.parseRef).map((p) => p.id);
  ctx.addIssue({
    code: 'custom',
    message: `unknown key reference scheme in "${ref.slice(0, 100)}"${schemes.length ? ` (providers with references: ${schemes.join(', ')})` : ''}`,
    path: ['ref'],
  });
  return value;
}

/**
 * Fields any key may carry whatever its provider: a bring-your-own-PKI certificate for the key and
 * its chain (PEM text or a file relative to the config), checked at startup (src/signing/certificate.ts)
 * and written into the dev.sigstore.cosign/certificate and /chain annotations.
 */
const commonKeyFieldsSchema = z.object({ certificate: z.string().min(1).optional(), chain: z.string().min(1).optional() }).strict();
export type KeyCommonFields = z.infer<typeof commonKeyFieldsSchema>;
const COMMON_KEY_FIELDS = ['certificate', 'chain'];

/** Parse the common fields and hand the rest to the provider's own (strict) schema; issues keep their paths. */
function withCommonFields(value: unknown, ctx: z.core.$RefinementCtx): (KeyConfig & KeyCommonFields) | typeof z.NEVER {
  const common: Record<string, unknown> = {};
  let rest = value;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const r: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) (COMMON_KEY_FIELDS.includes(k) ? common : r)[k] = v;
    rest = r;
  }
  const c = commonKeyFieldsSchema.safeParse(common);
  const p = providerConfigSchema.safeParse(rest);
  for (const issue of [...(c.success ? [] : c.error.issues), ...(p.success ? [] : p.error.issues)]) {
    ctx.addIssue(issue as unknown as Parameters<typeof ctx.addIssue>[0]);
  }
  if (!c.success || !p.success) return z.NEVER;
  return { ...p.data, ...c.data };
}

export const keyConfigSchema = z.preprocess(resolveRef, z.unknown().transform(withCommonFields));
export type KeyConfig = z.infer<typeof providerConfigSchema>;

const byId = new Map<string, Definition>(keyProviders.map((p) => [p.id, p]));

export async function createKeyProvider(cfg: KeyConfig, ctx: KeyProviderContext): Promise<KeyProvider> {
  const def = byId.get(cfg.provider);
  if (!def) throw new Error(`no key provider "${cfg.provider}"`);
  return (def.create as (c: KeyConfig, x: KeyProviderContext) => Promise<KeyProvider>)(cfg, ctx);
}

/**
 * Build every configured key once, as values carrying their public key and certificate (read and
 * checked here: a key whose backend cannot give its public key, or whose certificate does not
 * certify it, fails at startup, not on the first push). Errors for all keys are collected and
 * thrown together.
 */
export async function createSigningKeys(
  keys: readonly KeyConfig[],
  ctx: KeyProviderContext,
  opts: { observe?: SignObserver } = {},
): Promise<Map<string, SigningKey>> {
  const out = new Map<string, SigningKey>();
  const problems: Error[] = [];
  await Promise.all(
    keys.map(async (k) => {
      try {
        const p = await createKeyProvider(k, ctx);
        try {
          const pem = await p.publicKeyPem();
          const certificate = loadKeyCertificate(k as KeyCommonFields & { name: string }, pem, ctx.baseDir);
          out.set(k.name, new SigningKey(p, pem, { certificate, observe: opts.observe }));
        } catch (err) {
          await p.close?.();
          throw err;
        }
      } catch (err) {
        problems.push(err as Error);
      }
    }),
  );
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) throw new AggregateError(problems, problems.map((p) => p.message).join('; '));
  // in config order, whatever order the backends answered in
  return new Map(keys.filter((k) => out.has(k.name)).map((k) => [k.name, out.get(k.name)!]));
}
