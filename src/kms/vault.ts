/**
 * The `vault` key provider: HashiCorp Vault (or OpenBao) transit secrets engine over HTTP.
 *
 * - Key metadata and public key: `GET /v1/<mount>/keys/<key>` -> `data.type` (`rsa-2048` and
 *   `ecdsa-p256` accepted, everything else refused at startup) and
 *   `data.keys["<version>"].public_key` (PEM) of the pinned version, or of the latest version at
 *   startup. Signing always names that version (`key_version`), so every signature verifies with
 *   the public key signet exports even after someone rotates the key; rotate by restarting signet
 *   (or by pinning `keyVersion`).
 * - Signing: `POST /v1/<mount>/sign/<key>` with `input` = base64 digest, `prehashed: true`,
 *   `hash_algorithm: sha2-256`, and `signature_algorithm: pkcs1v15` for RSA (Vault's default is
 *   PSS, which `cosign verify --key` rejects) or `marshaling_algorithm: asn1` (DER) for ECDSA.
 *   With `rsaPadding: 'pss'` (Notation) RSA asks for `signature_algorithm: pss` with
 *   `salt_length: hash` (32 bytes for sha2-256; Vault's default `auto` is the maximum salt, which
 *   `notary.x509` verifiers reject). A Vault from before `salt_length` ignores it and signs with
 *   the maximum salt: the local check below (salt pinned to 32) refuses that answer.
 *   The answer `vault:v<N>:<base64>` is checked for the expected version and verified locally
 *   against the cached public key before it is returned (one HTTP call per signature).
 * - Auth: a token (`token`, else VAULT_TOKEN / BAO_TOKEN), or AppRole (`roleId` + `secretId`,
 *   `POST /v1/auth/<approleMount>/login`); an AppRole token is renewed (renew-self) or replaced by
 *   a new login once two thirds of its TTL have passed. `namespace` (or VAULT_NAMESPACE) sends
 *   `X-Vault-Namespace`.
 * - Reference: `hashivault://KEY` (and `openbao://KEY`), as sigstore parses it; the address comes
 *   from `address` or VAULT_ADDR / BAO_ADDR, the mount from `mount`, TRANSIT_SECRET_ENGINE_PATH
 *   or `transit`, like sigstore's hashivault client.
 *
 * Errors: 429 -> KEY_THROTTLED and 5xx/412/473, timeouts, connection errors -> KEY_UNAVAILABLE
 * (retryable, with Retry-After when Vault sends it); 403 -> KEY_DENIED; unknown key or version ->
 * KEY_NOT_FOUND; a version below `min_encryption_version` -> KEY_DISABLED. No retries here: the
 * queue's backoff is the one retry policy. Tokens and secret ids never appear in messages.
 *
 * Every request has an overall deadline (`timeoutSeconds`, headers and whole body). Answers are
 * read up to a cap (READ_LIMITS.json for the key read, READ_LIMITS.token for sign, login and
 * renewal): a larger one is KEY_SIGN_FAILED for sign, KEY_INVALID otherwise. Key read and sign
 * answers are checked against a schema (KEY_INVALID, KEY_SIGN_FAILED). Vault's error text is
 * redacted, and never echoes the token or AppRole ids signet sent, before it reaches a message.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { READ_LIMITS } from '../edge/read.js';
import { checkShape } from '../edge/upstream-json.js';
import { SignetError } from '../errors.js';
import { assertSha256Digest } from './digest-arg.js';
import { defineKeyProvider, type KeyProviderContext } from './define.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type KeyProvider, type SignOptions } from './types.js';
import { SIG_PATTERN, signSchema, errCode, VaultHttp, type VaultResponse } from './vault/http.js';
import { VaultAuth, type AuthConfig } from './vault/auth.js';
import { readKeyInfo, checkSignature, type KeyInfo } from './vault/key-info.js';
/** Transit key names as sigstore's `hashivault://` reference accepts them. */
const KEY_NAME = /^\w(?:[\w.-]*\w)?$/;
/** A mount path: one or more segments of letters, digits, `_`, `-`, `.` (no `..`). */
const MOUNT = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[\w.-]+(?:\/[\w.-]+)*$/;

export const vaultKeySchema = z
  .object({
    name: z.string().min(1),
    provider: z.literal('vault'),
    /** Vault address, e.g. https://vault.example.com:8200 (default: VAULT_ADDR, then BAO_ADDR). */
    address: z.string().min(1).optional(),
    /** Mount path of the transit engine (default: TRANSIT_SECRET_ENGINE_PATH, then `transit`). */
    mount: z.string().regex(MOUNT, 'mount must be a path such as transit or team/transit').optional(),
    /** Transit key name. */
    key: z.string().regex(KEY_NAME, 'key must be a transit key name (letters, digits, _, ., -)'),
    /** Sign with this key version (default: the latest version when signet starts). */
    keyVersion: z.number().int().min(1).optional(),
    /** Vault token (default: VAULT_TOKEN, then BAO_TOKEN). Use ${VAR}. */
    token: z.string().min(1).optional(),
    /** AppRole role_id and secret_id (both, instead of a token). Use ${VAR}. */
    roleId: z.string().min(1).optional(),
    secretId: z.string().min(1).optional(),
    /** Mount path of the AppRole auth method (default `approle`). */
    approleMount: z.string().regex(MOUNT, 'approleMount must be a path such as approle').optional(),
    /** Vault Enterprise / HCP namespace (default: VAULT_NAMESPACE). */
    namespace: z.string().min(1).optional(),
    /** PEM CA bundle for the Vault server's certificate (default: VAULT_CACERT). */
    caFile: z.string().min(1).optional(),
    /** Per-request timeout (default 10). */
    timeoutSeconds: z.number().positive().max(300).optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if ((v.roleId === undefined) !== (v.secretId === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'AppRole needs both roleId and secretId', path: [v.roleId ? 'secretId' : 'roleId'] });
    }
    if (v.token !== undefined && v.roleId !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'give either token or roleId/secretId, not both', path: ['token'] });
    }
  });
export type VaultKeyConfig = z.infer<typeof vaultKeySchema>;

export interface VaultKeyProvider extends KeyProvider {
  readonly algorithm: KeyAlgorithm;
  /** The transit key version every signature is made with. */
  readonly keyVersion: number;
  /** Close idle connections. */
  close(): Promise<void>;
}

const env = (...names: string[]): string | undefined => {
  for (const n of names) {
    const v = process.env[n];
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
};

// ---------------------------------------------------------------------------------------------
// reference

/** `hashivault://KEY` / `openbao://KEY` -> `{ key }`; other schemes -> undefined. */
export function parseVaultRef(ref: string): Record<string, unknown> | undefined {
  const m = /^(hashivault|openbao):\/\/(.*)$/.exec(ref);
  if (!m) return undefined;
  const key = m[2]!;
  if (!KEY_NAME.test(key)) {
    throw new Error(`expected ${m[1]}://KEY with a transit key name of letters, digits, _, . and - (got "${key.slice(0, 80)}")`);
  }
  return { key };
}

// ---------------------------------------------------------------------------------------------
// provider

function resolveAddress(cfg: VaultKeyConfig): string {
  const raw = cfg.address ?? env('VAULT_ADDR', 'BAO_ADDR');
  if (!raw) {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": no Vault address (set keys[].address or VAULT_ADDR)`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": Vault address is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": Vault address must be http:// or https://`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": Vault address must not carry credentials, a query or a fragment`);
  }
  return url.toString().replace(/\/+$/, '');
}

function resolveAuth(cfg: VaultKeyConfig): AuthConfig {
  if (cfg.roleId !== undefined && cfg.secretId !== undefined) {
    return { kind: 'approle', mount: cfg.approleMount ?? 'approle', roleId: cfg.roleId, secretId: cfg.secretId };
  }
  const token = cfg.token ?? env('VAULT_TOKEN', 'BAO_TOKEN');
  if (!token) {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": no Vault credentials (set keys[].token, VAULT_TOKEN, or roleId and secretId)`);
  }
  return { kind: 'token', token };
}

export async function createVaultKeyProvider(cfg: VaultKeyConfig, ctx: KeyProviderContext): Promise<VaultKeyProvider> {
  const address = resolveAddress(cfg);
  const mount = cfg.mount ?? env('TRANSIT_SECRET_ENGINE_PATH') ?? 'transit';
  if (!MOUNT.test(mount)) throw new SignetError('KEY_INVALID', `key "${cfg.name}": invalid transit mount path "${mount.slice(0, 80)}"`);
  const namespace = cfg.namespace ?? env('VAULT_NAMESPACE');
  const caPath = cfg.caFile ?? env('VAULT_CACERT');
  let ca: Buffer | undefined;
  if (caPath) {
    const file = path.resolve(ctx.baseDir, caPath);
    try {
      ca = await readFile(file);
    } catch (err) {
      throw new SignetError('KEY_INVALID', `key "${cfg.name}": cannot read caFile ${file} (${errCode(err) ?? 'error'})`, { cause: err });
    }
  }
  const authCfg = resolveAuth(cfg);
  const http = new VaultHttp(cfg.name, address, namespace, (cfg.timeoutSeconds ?? 10) * 1000, ca);
  const auth = new VaultAuth(http, authCfg);
  const keyLabel = `transit key "${cfg.key}" (mount ${mount}${namespace ? `, namespace ${namespace}` : ''})`;
  const keyPath = `/v1/${mount}/keys/${encodeURIComponent(cfg.key)}`;
  const signPath = `/v1/${mount}/sign/${encodeURIComponent(cfg.key)}`;

  /** One request with the current token; an AppRole token that Vault refuses is replaced once. */
  async function authed(
    method: 'GET' | 'POST',
    apiPath: string,
    what: string,
    body?: unknown,
    read?: Parameters<VaultHttp['call']>[5],
  ): Promise<VaultResponse> {
    const res = await http.call(method, apiPath, what, await auth.token(), body, read);
    if (res.status === 403 && auth.kind === 'approle' && !auth.fresh(5000)) {
      auth.invalidate(); // revoked or expired early: log in again, once
      return http.call(method, apiPath, what, await auth.token(), body, read);
    }
    return res;
  }

  let info: KeyInfo;
  try {
    const res = await authed('GET', keyPath, 'key read', undefined, { limit: READ_LIMITS.json, tooLarge: 'KEY_INVALID' });
    if (res.status !== 200) throw http.fail(res, 'key read', keyLabel);
    info = readKeyInfo(cfg.name, keyLabel, res.body, cfg.keyVersion);
  } catch (err) {
    await http.dispatcher.close().catch(() => undefined);
    throw err;
  }

  const signBody = (digest: Buffer, pss: boolean) => ({
    input: digest.toString('base64'),
    prehashed: true,
    hash_algorithm: 'sha2-256',
    key_version: info.version,
    ...(info.algorithm !== 'rsa-2048'
      ? { marshaling_algorithm: 'asn1' }
      : pss
        ? { signature_algorithm: 'pss', salt_length: 'hash' }
        : { signature_algorithm: 'pkcs1v15' }),
  });

  return {
    name: cfg.name,
    algorithm: info.algorithm,
    keyVersion: info.version,
    async publicKeyPem() {
      return info.spkiPem;
    },
    async paddings() {
      return BOTH_PADDINGS;
    },
    async sign(digest: Buffer, payload?: Buffer, opts?: SignOptions) {
      assertSha256Digest(cfg.name, digest);
      const pss = info.algorithm === 'rsa-2048' && opts?.rsaPadding === 'pss';
      const res = await authed('POST', signPath, 'sign', signBody(digest, pss), { limit: READ_LIMITS.token, tooLarge: 'KEY_SIGN_FAILED' });
      if (res.status !== 200) throw http.fail(res, 'sign', `${keyLabel} version ${info.version}`);
      const checked = checkShape(res.body, signSchema);
      const m = checked.ok ? SIG_PATTERN.exec(checked.value.data.signature) : null;
      if (!m) {
        throw new SignetError(
          'KEY_SIGN_FAILED',
          `key "${cfg.name}": Vault sign answer for ${keyLabel} has no vault:vN: signature${checked.ok ? '' : ` (${checked.why})`}`,
        );
      }
      if (Number(m[1]) !== info.version) {
        throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": Vault signed with version ${m[1]} of ${keyLabel}, expected version ${info.version}`);
      }
      const sig = Buffer.from(m[2]!, 'base64');
      if (!checkSignature(info, digest, sig, payload, pss)) {
        const expected =
          info.algorithm !== 'rsa-2048'
            ? 'expected ASN.1 DER ECDSA'
            : pss
              ? 'expected RSASSA-PSS with a 32-byte salt; a Vault older than the salt_length parameter signs with the maximum salt: upgrade Vault'
              : 'expected PKCS#1 v1.5, is the server ignoring signature_algorithm?';
        throw new SignetError(
          'KEY_SIGN_FAILED',
          `key "${cfg.name}": the signature from ${keyLabel} version ${info.version} does not verify with its public key (${expected})`,
        );
      }
      return sig;
    },
    async close() {
      if (http.dispatcher.closed || http.dispatcher.destroyed) return;
      await http.dispatcher.close();
    },
  };
}

export const vaultProvider = defineKeyProvider({
  id: 'vault',
  schema: vaultKeySchema,
  create: createVaultKeyProvider,
  parseRef: parseVaultRef,
});
