/**
 * The `azurekv` key provider: an RSA or EC P-256 key in Azure Key Vault (or Managed HSM), used
 * through `@azure/keyvault-keys` 4.10 and `@azure/identity` 4.13.1 (the last for Node 20).
 *
 * - Startup: KeyClient.getKey once (the named version, or the current one, which is then PINNED for
 *   this process so the exported public key always matches the signatures). The key must be
 *   enabled, inside its nbf/exp window, allow the `sign` operation (key_ops), and be RSA
 *   2048/3072/4096 or EC P-256; anything else is refused with KEY_UNSUPPORTED / KEY_DISABLED.
 *   The JWK becomes the SPKI PEM that `publicKeyPem()` returns.
 * - `sign(digest)`: exactly one `POST /keys/{name}/{version}/sign` (CryptographyClient.sign) with
 *   RS256 (PKCS#1 v1.5; Key Vault builds the DigestInfo) or ES256. ES256 comes back as raw r||s and
 *   is converted to ASN.1 DER (what cosign verifies). `rsaPadding: 'pss'` (Notation) asks for
 *   PS256 instead (RSASSA-PSS, SHA-256, MGF1-SHA-256, salt = hash length 32, RFC 7518 3.5), checked
 *   against the public key before it is returned. Otherwise PS256 is never used: cosign verifies RSA as
 *   PKCS#1 v1.5.
 *   The CryptographyClient shares the KeyClient's pipeline (the SDK's own `getCryptographyClient`
 *   does the same), so the Key Vault challenge handshake done at startup is reused and no signature
 *   pays an extra unauthenticated probe.
 * - The pipeline's retries are OFF (`retryOptions.maxRetries = 0`) and every call has a deadline:
 *   the queue's backoff is the one retry policy (429 Retry-After is passed on as retryAfterSeconds).
 * - Credentials: `tenantId` + `clientId` + `clientSecret` (ClientSecretCredential), else
 *   DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI, ...), with
 *   `clientId` alone selecting a user-assigned managed identity / workload identity client.
 */
import { createHash, createPublicKey, verify, type JsonWebKey as NodeJwk, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import type { TokenCredential } from '@azure/identity';
import type { CryptographyClientOptions, KeyClientOptions, KeyVaultKey } from '@azure/keyvault-keys';
import { z } from 'zod';
import { SignetError, type ErrorCode } from '../errors.js';
import { assertSha256Digest } from './digest-arg.js';
import { retryAfterOption } from '../edge/retry-after.js';
import { upstreamText } from '../log.js';
import { defineKeyProvider, type KeyProviderContext } from './define.js';
import { rawEcdsaToDer } from './ecdsa.js';
import { verifyPssDigest } from './pss.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type KeyProvider, type SignOptions } from './types.js';

const RSA_BITS = [2048, 3072, 4096];
/** Authorities MSAL knows (instance discovery works); any other authorityHost skips discovery. */
const KNOWN_AUTHORITIES = ['login.microsoftonline.com', 'login.microsoftonline.us', 'login.chinacloudapi.cn', 'login.partner.microsoftonline.cn'];

export const azureKvKeySchema = z
  .object({
    name: z.string().min(1),
    provider: z.literal('azurekv'),
    /** https://NAME.vault.azure.net (or https://NAME.managedhsm.azure.net, sovereign-cloud hosts). */
    vaultUrl: z.string().url(),
    keyName: z.string().regex(/^[0-9A-Za-z-]{1,127}$/, 'Key Vault key names are 1-127 letters, digits and dashes'),
    /** Pin a version (32 hex chars in Azure). Default: the current version at startup, pinned. */
    keyVersion: z
      .string()
      .regex(/^[0-9A-Za-z]{1,64}$/, 'must be a key version id')
      .optional(),
    tenantId: z.string().min(1).optional(),
    /** With clientSecret: a service principal. Alone: the user-assigned managed/workload identity to use. */
    clientId: z.string().min(1).optional(),
    /** Use `${ENV}` expansion; never put the secret in the file. */
    clientSecret: z.string().min(1).optional(),
    /** Microsoft Entra authority, e.g. https://login.microsoftonline.us (default: AZURE_AUTHORITY_HOST or public cloud). */
    authorityHost: z.string().url().optional(),
    /** Extra CA certificates (PEM) trusted for the vault and the authority, besides the system's. */
    caFile: z.string().min(1).optional(),
    /** TEST/DEV ONLY: allow an http:// vaultUrl (the bearer token then travels in clear text). */
    insecureEndpoint: z.boolean().optional(),
    /**
     * TEST/DEV ONLY: accept a challenge whose resource is not a parent domain of the vault host
     * (needed for a vault at 127.0.0.1). Keep off in production.
     */
    skipChallengeResourceVerification: z.boolean().optional(),
    /** Deadline per Key Vault call, seconds. */
    timeoutSeconds: z.number().positive().max(600).default(30),
  })
  .strict()
  .superRefine((c, ctx) => {
    let u: URL | undefined;
    try {
      u = new URL(c.vaultUrl);
    } catch {
      return; // reported by .url()
    }
    if (u.protocol === 'http:' && !c.insecureEndpoint) {
      ctx.addIssue({ code: 'custom', path: ['vaultUrl'], message: 'vaultUrl must be https (insecureEndpoint: true allows http, for tests only)' });
    } else if (u.protocol !== 'https:' && u.protocol !== 'http:') {
      ctx.addIssue({ code: 'custom', path: ['vaultUrl'], message: 'vaultUrl must be an https URL' });
    }
    if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username || u.password) {
      ctx.addIssue({ code: 'custom', path: ['vaultUrl'], message: 'vaultUrl is the vault base URL only, e.g. https://myvault.vault.azure.net' });
    }
    if (c.clientSecret !== undefined && (c.tenantId === undefined || c.clientId === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: 'clientSecret needs tenantId and clientId' });
    }
    if (c.authorityHost !== undefined && !c.authorityHost.startsWith('https://')) {
      ctx.addIssue({ code: 'custom', path: ['authorityHost'], message: 'authorityHost must be https' });
    }
  });
export type AzureKvKeyConfig = z.infer<typeof azureKvKeySchema>;

export interface AzureKvKeyProvider extends KeyProvider {
  readonly algorithm: KeyAlgorithm;
  readonly keyBits: number;
  /** The pinned key id, https://VAULT/keys/NAME/VERSION. */
  readonly keyId: string;
}

export interface AzureKvDeps {
  /** A TokenCredential to use instead of the configured/default chain (tests, embedding). */
  credential?: TokenCredential;
}

type Op = 'getKey' | 'sign';

/** The SDKs, loaded on first use so that importing this module (config validation) stays cheap. */
function loadIdentity(): Promise<typeof import('@azure/identity')> {
  return import('@azure/identity');
}
function loadKeys(): Promise<typeof import('@azure/keyvault-keys')> {
  return import('@azure/keyvault-keys');
}

/** The (capped) Retry-After of the SDK's response headers. */
function retryAfterOf(headers: unknown): { retryAfterSeconds?: number } {
  const h = headers as { get?: (n: string) => string | undefined } | undefined;
  return retryAfterOption(typeof h?.get === 'function' ? h.get('retry-after') : undefined);
}

interface AzureErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  statusCode?: unknown;
  details?: { error?: { code?: string; message?: string; innerError?: { code?: string } } };
  response?: { headers?: unknown };
  errorResponse?: { error?: string; errorDescription?: string };
}

/** Turn an SDK/identity/transport error into a classified SignetError. Never includes credentials. */
export function classifyAzureError(
  err: unknown,
  cfg: Pick<AzureKvKeyConfig, 'name' | 'vaultUrl' | 'keyName'> & { clientSecret?: string },
  op: Op,
): SignetError {
  if (err instanceof SignetError) return err;
  const e = (err ?? {}) as AzureErrorShape;
  const who = `key "${cfg.name}" (azurekv ${cfg.vaultUrl.replace(/\/$/, '')}/keys/${cfg.keyName})`;
  const name = typeof e.name === 'string' ? e.name : '';
  const make = (code: ErrorCode, why: string, detail?: string, extra: { retryAfterSeconds?: number; status?: number } = {}) =>
    new SignetError(code, `${who}: ${op} failed: ${why}${detail ? ` (${upstreamText(detail, { secrets: [cfg.clientSecret] })})` : ''}`, extra);

  // @azure/identity: the token request itself failed.
  if (name === 'AuthenticationError') {
    const status = typeof e.statusCode === 'number' ? e.statusCode : 0;
    const detail = [e.errorResponse?.error, e.errorResponse?.errorDescription?.split(/\r?\n| Trace ID/)[0]].filter(Boolean).join(': ');
    if (status === 429) return make('KEY_THROTTLED', 'Microsoft Entra ID throttled the token request', detail, { status });
    if (status >= 500 || status === 0) return make('KEY_UNAVAILABLE', `token request failed (HTTP ${status || 'error'})`, detail, status ? { status } : {});
    return make('KEY_DENIED', `Microsoft Entra ID refused the credentials (HTTP ${status})`, detail, { status });
  }
  // MSAL's own failures surface as AuthenticationRequiredError, e.g. "invalid_client: ... AADSTS7000215: ...".
  if (name === 'AuthenticationRequiredError') {
    const msg = String(e.message ?? '');
    const first = /^([a-z_]+):/.exec(msg)?.[1];
    const aadsts = /(AADSTS\d+: [^.]*\.)/.exec(msg)?.[1];
    const detail = [first, aadsts ?? msg.split(/\r?\n/)[0]].filter(Boolean).join(': ');
    if (first === 'temporarily_unavailable' || /network|ECONN|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|socket|certificate|self.signed/i.test(msg)) {
      return make('KEY_UNAVAILABLE', 'token request failed', detail);
    }
    return make('KEY_DENIED', 'Microsoft Entra ID refused the credentials', detail);
  }
  if (name === 'CredentialUnavailableError' || name === 'AggregateAuthenticationError') {
    return make(
      'KEY_DENIED',
      'no usable Azure credential (set tenantId/clientId/clientSecret, or run with a managed/workload identity, or AZURE_* environment variables)',
      String(e.message ?? '').split(/\r?\n/)[0],
    );
  }
  if (name === 'AbortError' || name === 'TimeoutError' || (/aborted|timed? ?out/i.test(String(e.message ?? '')) && typeof e.statusCode !== 'number')) {
    return make('KEY_UNAVAILABLE', 'no answer from Key Vault in time');
  }

  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const code = e.details?.error?.code ?? (typeof e.code === 'string' ? e.code : undefined);
  const inner = e.details?.error?.innerError?.code;
  const detail = [code, inner, e.details?.error?.message ?? (typeof e.message === 'string' ? e.message : '')].filter(Boolean).join(': ');
  if (status !== undefined) {
    if (status === 429) {
      return make('KEY_THROTTLED', 'throttled by Key Vault (HTTP 429)', detail, { status, ...retryAfterOf(e.response?.headers) });
    }
    if (status >= 500 || status === 408) {
      return make('KEY_UNAVAILABLE', `Key Vault unavailable (HTTP ${status})`, detail, { status, ...retryAfterOf(e.response?.headers) });
    }
    if (status === 401) return make('KEY_DENIED', 'Key Vault rejected the access token (HTTP 401); check the tenant and credentials', detail, { status });
    if (status === 403) {
      const message = e.details?.error?.message ?? String(e.message ?? '');
      if (inner === 'KeyDisabled' || /disabled/i.test(message)) return make('KEY_DISABLED', 'the key is disabled (HTTP 403)', detail, { status });
      return make(
        'KEY_DENIED',
        `access denied (HTTP 403); the principal needs keys/get and keys/sign (RBAC role "Key Vault Crypto User", or an access policy with Get + Sign)`,
        detail,
        { status },
      );
    }
    if (status === 404) return make('KEY_NOT_FOUND', 'no such key or version in the vault (HTTP 404)', detail, { status });
    if (status === 400) return make('KEY_INVALID', 'Key Vault rejected the request (HTTP 400)', detail, { status });
    return make('KEY_SIGN_FAILED', `unexpected HTTP ${status} from Key Vault`, detail, { status });
  }
  // RestError without a response: connection refused/reset, DNS, TLS.
  if (name === 'RestError' || (typeof e.code === 'string' && /^(REQUEST_SEND_ERROR|E[A-Z]+)$/.test(e.code))) {
    return make('KEY_UNAVAILABLE', `cannot reach Key Vault${typeof e.code === 'string' ? ` (${e.code})` : ''}`, String(e.message ?? ''));
  }
  if (/expired at|can't be used before/.test(String(e.message ?? ''))) return make('KEY_DISABLED', 'the key is outside its validity period', String(e.message));
  return make('KEY_UNAVAILABLE', 'unexpected client error', String(e.message ?? ''));
}

const bytes = (v: Uint8Array | undefined): string | undefined => (v ? Buffer.from(v).toString('base64url') : undefined);

function describeJwk(jwk: KeyVaultKey['key']): string {
  if (!jwk) return 'a key without material';
  const kty = jwk.kty ?? '?';
  if (kty.startsWith('RSA') && jwk.n) {
    const n = Buffer.from(jwk.n);
    return `${kty} ${(n[0] === 0 ? n.length - 1 : n.length) * 8}-bit`;
  }
  if (kty.startsWith('EC')) return `${kty} ${jwk.crv ?? '?'}`;
  return kty;
}

async function loadCa(cfg: AzureKvKeyConfig, ctx: KeyProviderContext, who: string): Promise<{ ca: string[] } | undefined> {
  if (!cfg.caFile) return undefined;
  const file = path.resolve(ctx.baseDir, cfg.caFile);
  try {
    const pem = await readFile(file, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw Object.assign(new Error('no PEM certificate'), { code: 'not PEM' });
    return { ca: [...rootCertificates, pem] };
  } catch (err) {
    throw new SignetError('KEY_INVALID', `${who}: cannot read caFile ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

async function makeCredential(cfg: AzureKvKeyConfig, tlsOptions: { ca: string[] } | undefined): Promise<TokenCredential> {
  const { ClientSecretCredential, DefaultAzureCredential } = await loadIdentity();
  const host = cfg.authorityHost ? new URL(cfg.authorityHost).hostname : undefined;
  const common = {
    ...(cfg.authorityHost ? { authorityHost: cfg.authorityHost } : {}),
    ...(host && !KNOWN_AUTHORITIES.includes(host) ? { disableInstanceDiscovery: true } : {}),
    ...(tlsOptions ? { tlsOptions } : {}),
  };
  if (cfg.clientSecret && cfg.tenantId && cfg.clientId) {
    return new ClientSecretCredential(cfg.tenantId, cfg.clientId, cfg.clientSecret, common);
  }
  return new DefaultAzureCredential({
    ...common,
    ...(cfg.tenantId ? { tenantId: cfg.tenantId } : {}),
    ...(cfg.clientId ? { managedIdentityClientId: cfg.clientId, workloadIdentityClientId: cfg.clientId } : {}),
  });
}

export async function createAzureKvKeyProvider(cfg: AzureKvKeyConfig, ctx: KeyProviderContext, deps: AzureKvDeps = {}): Promise<AzureKvKeyProvider> {
  const vaultUrl = cfg.vaultUrl.replace(/\/+$/, '');
  const who = `key "${cfg.name}" (azurekv ${vaultUrl}/keys/${cfg.keyName})`;
  const tlsOptions = await loadCa(cfg, ctx, who);
  const credential = deps.credential ?? (await makeCredential(cfg, tlsOptions));
  const { CryptographyClient, KeyClient } = await loadKeys();
  const timeoutMs = Math.round(cfg.timeoutSeconds * 1000);
  const clientOptions: KeyClientOptions = {
    retryOptions: { maxRetries: 0 },
    ...(cfg.insecureEndpoint ? { allowInsecureConnection: true } : {}),
    ...(cfg.skipChallengeResourceVerification ? { disableChallengeResourceVerification: true } : {}),
    ...(tlsOptions ? { tlsOptions } : {}),
  };
  const keyClient = new KeyClient(vaultUrl, credential, clientOptions);
  const opOptions = () => ({ abortSignal: AbortSignal.timeout(timeoutMs), requestOptions: { timeout: timeoutMs } });

  // ---- startup: the key (and its version) once
  let key: KeyVaultKey;
  try {
    key = await keyClient.getKey(cfg.keyName, { ...(cfg.keyVersion ? { version: cfg.keyVersion } : {}), ...opOptions() });
  } catch (err) {
    throw classifyAzureError(err, cfg, 'getKey');
  }
  const version = key.properties.version;
  if (!version || !key.id) throw new SignetError('KEY_INVALID', `${who}: Key Vault returned a key without a version id`);
  if (cfg.keyVersion && version !== cfg.keyVersion) {
    throw new SignetError('KEY_INVALID', `${who}: asked for version ${cfg.keyVersion}, Key Vault answered ${upstreamText(version)}`);
  }
  const whoV = `key "${cfg.name}" (azurekv ${vaultUrl}/keys/${cfg.keyName}/${version})`;
  if (key.properties.enabled === false) throw new SignetError('KEY_DISABLED', `${whoV}: the key is disabled in Key Vault`);
  const now = Date.now();
  if (key.properties.notBefore && key.properties.notBefore.getTime() > now) {
    throw new SignetError('KEY_DISABLED', `${whoV}: the key is not valid before ${key.properties.notBefore.toISOString()}`);
  }
  if (key.properties.expiresOn && key.properties.expiresOn.getTime() <= now) {
    throw new SignetError('KEY_DISABLED', `${whoV}: the key expired at ${key.properties.expiresOn.toISOString()}`);
  }

  const jwk = key.key;
  const what = describeJwk(jwk);
  const ops = key.keyOperations ?? jwk?.keyOps;
  if (!ops || !ops.includes('sign')) {
    throw new SignetError(
      'KEY_UNSUPPORTED',
      `${whoV} is ${what} whose key_ops (${ops?.join(', ') || 'none'}) do not allow sign; create it with --ops sign verify`,
    );
  }
  let publicKey: KeyObject;
  let algorithm: KeyAlgorithm;
  let keyBits: number;
  const kty = jwk?.kty ?? '';
  if (kty === 'RSA' || kty === 'RSA-HSM') {
    try {
      publicKey = createPublicKey({ key: { kty: 'RSA', n: bytes(jwk?.n), e: bytes(jwk?.e) } as NodeJwk, format: 'jwk' });
    } catch (err) {
      throw new SignetError('KEY_INVALID', `${whoV}: unusable RSA public key in the JWK`, { cause: err });
    }
    keyBits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (!RSA_BITS.includes(keyBits))
      throw new SignetError('KEY_UNSUPPORTED', `${whoV} is ${what}: RSA keys must have 2048 bits (3072 and 4096 are also accepted)`);
    algorithm = 'rsa-2048';
  } else if (kty === 'EC' || kty === 'EC-HSM') {
    if (jwk?.crv !== 'P-256')
      throw new SignetError('KEY_UNSUPPORTED', `${whoV} is ${what}: only the P-256 curve is supported (cosign verifies ES256 as ECDSA P-256 with SHA-256)`);
    try {
      publicKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: bytes(jwk.x), y: bytes(jwk.y) } as NodeJwk, format: 'jwk' });
    } catch (err) {
      throw new SignetError('KEY_INVALID', `${whoV}: unusable EC public key in the JWK`, { cause: err });
    }
    keyBits = 256;
    algorithm = 'ecdsa-p256';
  } else {
    throw new SignetError('KEY_UNSUPPORTED', `${whoV} is ${what}: only RSA-2048 (3072/4096) and EC P-256 keys can sign cosign signatures`);
  }
  const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const signAlg = algorithm === 'ecdsa-p256' ? 'ES256' : 'RS256';
  const expiresOn = key.properties.expiresOn?.getTime();

  // Share the KeyClient's pipeline (and its completed challenge), as KeyClient.getCryptographyClient
  // does; the property is undocumented, so fall back to the plain constructor if it ever disappears
  // (the only cost is one unauthenticated challenge probe before the first signature).
  const generatedClient = (keyClient as unknown as { client?: unknown }).client;
  const cryptoClient = new CryptographyClient(key, credential, {
    ...clientOptions,
    ...(generatedClient ? { generatedClient } : {}),
  } as CryptographyClientOptions);

  return {
    name: cfg.name,
    algorithm,
    keyBits,
    keyId: key.id,
    async publicKeyPem() {
      return spkiPem;
    },
    async paddings() {
      return BOTH_PADDINGS;
    },
    async sign(digest: Buffer, payload?: Buffer, opts?: SignOptions) {
      assertSha256Digest(cfg.name, digest);
      const pss = algorithm === 'rsa-2048' && opts?.rsaPadding === 'pss';
      const alg = pss ? 'PS256' : signAlg;
      if (expiresOn !== undefined && expiresOn <= Date.now()) {
        throw new SignetError('KEY_DISABLED', `${whoV}: the key expired at ${new Date(expiresOn).toISOString()}`);
      }
      let result: Uint8Array;
      try {
        ({ result } = await cryptoClient.sign(alg, digest, opOptions()));
      } catch (err) {
        throw classifyAzureError(err, cfg, 'sign');
      }
      let signature: Buffer = Buffer.from(result);
      if (algorithm === 'ecdsa-p256') {
        if (signature.length !== 64) throw new SignetError('KEY_SIGN_FAILED', `${whoV}: ES256 signature is ${signature.length} bytes, expected raw r||s of 64`);
        signature = rawEcdsaToDer(signature);
      } else if (signature.length !== keyBits / 8) {
        throw new SignetError('KEY_SIGN_FAILED', `${whoV}: ${alg} signature is ${signature.length} bytes, expected ${keyBits / 8}`);
      }
      if (pss) {
        if (!verifyPssDigest(publicKey, digest, signature)) {
          throw new SignetError(
            'KEY_SIGN_FAILED',
            `${whoV}: the PS256 signature from Key Vault does not verify with the key's public key (RSASSA-PSS, salt 32)`,
          );
        }
      } else if (payload && createHash('sha256').update(payload).digest().equals(digest) && !verify('sha256', payload, publicKey, signature)) {
        throw new SignetError('KEY_SIGN_FAILED', `${whoV}: the signature from Key Vault does not verify with the key's public key`);
      }
      return signature;
    },
  };
}

/**
 * `azurekms://VAULT_HOST/KEY[/VERSION]` as cosign/sigstore write it, e.g.
 * `azurekms://myvault.vault.azure.net/signing-key` (the vault URL is https://VAULT_HOST/).
 */
export function parseAzureKmsRef(ref: string): Record<string, unknown> | undefined {
  if (!ref.startsWith('azurekms://')) return undefined;
  const m = /^azurekms:\/\/([^/?#\s]+)\/([^/?#\s]+)(?:\/([^/?#\s]*))?$/.exec(ref);
  if (!m) throw new Error('expected azurekms://VAULT_NAME.vault.azure.net/KEY_NAME[/KEY_VERSION]');
  const [, host, keyName, keyVersion] = m;
  if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$/.test(host!) || !host!.includes('.')) {
    throw new Error(`vault "${host}" must be the vault's DNS name, e.g. ${host!.includes('.') ? 'myvault' : host}.vault.azure.net`);
  }
  if (!/^[0-9A-Za-z-]{1,127}$/.test(keyName!)) throw new Error(`key name "${keyName}" may only contain letters, digits and dashes`);
  if (keyVersion && !/^[0-9A-Za-z]{1,64}$/.test(keyVersion)) throw new Error(`key version "${keyVersion}" is not a version id`);
  return { vaultUrl: `https://${host}`, keyName, ...(keyVersion ? { keyVersion } : {}) };
}

export const azureKvProvider = defineKeyProvider({
  id: 'azurekv',
  schema: azureKvKeySchema,
  create: (cfg, ctx) => createAzureKvKeyProvider(cfg, ctx),
  parseRef: parseAzureKmsRef,
});
