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
import { constants, createHash, createPublicKey, publicDecrypt, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { BodyTooLargeError, readCapped, READ_LIMITS } from '../edge/read.js';
import { retryAfterOption } from '../edge/retry-after.js';
import { checkShape } from '../edge/upstream-json.js';
import { SignetError, type ErrorCode } from '../errors.js';
import { upstreamText } from '../log.js';
import { assertSha256Digest } from './digest-arg.js';
import { defineKeyProvider, type KeyProviderContext } from './define.js';
import { derEcdsaToRaw } from './ecdsa.js';
import { verifyPssDigest } from './pss.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type KeyProvider, type SignOptions } from './types.js';

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

const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');
const SIG_PATTERN = /^vault:v(\d+):([A-Za-z0-9+/]+={0,2})$/;
const SUPPORTED: Record<string, KeyAlgorithm> = { 'rsa-2048': 'rsa-2048', 'ecdsa-p256': 'ecdsa-p256' };

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
// HTTP

interface VaultResponse {
  status: number;
  body: unknown;
  retryAfterSeconds?: number;
}

/** The transit key read: `GET /v1/<mount>/keys/<key>` (the parts signet uses). */
const keyReadSchema = z.object({
  data: z.object({
    type: z.string().min(1),
    latest_version: z.number().int().min(1),
    min_encryption_version: z.number().int().min(0).optional(),
    derived: z.boolean().optional(),
    supports_signing: z.boolean().optional(),
    // asymmetric keys: { "<version>": { public_key, ... } }; symmetric keys: { "<version>": <time> }
    keys: z.record(z.string(), z.unknown()),
  }),
});
const keyVersionSchema = z.object({ public_key: z.string() });

/** `POST /v1/<mount>/sign/<key>`: `data.signature` = `vault:v<N>:<base64>`. */
const signSchema = z.object({ data: z.object({ signature: z.string().regex(SIG_PATTERN, 'not a vault:vN: signature') }) });

/** Vault's `{"errors":[...]}` as one short, redacted line. */
function vaultErrors(body: unknown, secrets: readonly string[]): string {
  const errs = (body as { errors?: unknown } | null)?.errors;
  if (Array.isArray(errs) && errs.length > 0) return upstreamText(errs.slice(0, 10).map(String).join('; '), { secrets });
  return '';
}

const errCode = (err: unknown): string | undefined => {
  for (let e: unknown = err, i = 0; e && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
};

const TLS_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME|ERR_TLS|ERR_SSL/;

class VaultHttp {
  readonly dispatcher: Agent;
  /** Credentials sent lately (tokens, AppRole ids): masked should Vault (or a proxy) echo them. */
  private readonly sent: string[] = [];
  constructor(
    readonly keyName: string,
    readonly address: string,
    readonly namespace: string | undefined,
    readonly timeoutMs: number,
    ca: Buffer | undefined,
  ) {
    this.dispatcher = new Agent({
      keepAliveTimeout: 30_000,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect: { timeout: Math.min(timeoutMs, 10_000), ...(ca ? { ca } : {}) },
    });
  }

  /** Remember credentials this client sends, so that no error message can echo them. */
  secret(...values: string[]): void {
    for (const v of values) {
      if (this.sent.includes(v)) continue;
      this.sent.push(v);
      if (this.sent.length > 8) this.sent.shift();
    }
  }

  /**
   * One HTTP call under the overall deadline, its answer read up to `limit` bytes; network
   * failures become KEY_UNAVAILABLE, TLS failures KEY_INVALID, a larger answer `tooLarge`.
   */
  async call(
    method: 'GET' | 'POST',
    apiPath: string,
    what: string,
    token?: string,
    body?: unknown,
    read: { limit: number; tooLarge: ErrorCode } = { limit: READ_LIMITS.token, tooLarge: 'KEY_INVALID' },
  ): Promise<VaultResponse> {
    const headers: Record<string, string> = { 'x-vault-request': 'true' };
    if (token !== undefined) {
      this.secret(token);
      headers['x-vault-token'] = token;
    }
    if (this.namespace) headers['x-vault-namespace'] = this.namespace;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.address}${apiPath}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        dispatcher: this.dispatcher,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const code = errCode(err);
      if (code && TLS_ERRORS.test(code)) {
        throw new SignetError(
          'KEY_INVALID',
          `key "${this.keyName}": TLS verification of Vault at ${this.address} failed during ${what} (${code}); set caFile or VAULT_CACERT`,
          { cause: err },
        );
      }
      const timedOut = (err as Error)?.name === 'TimeoutError' || /TIMEOUT/.test(code ?? '');
      throw new SignetError(
        'KEY_UNAVAILABLE',
        `key "${this.keyName}": Vault at ${this.address} ${timedOut ? `did not answer within ${this.timeoutMs} ms` : `unreachable (${code ?? (err as Error)?.name ?? 'error'})`} during ${what}`,
        { cause: err },
      );
    }
    let text: string;
    try {
      text = (await readCapped(res.body, read.limit, res.headers['content-length'])).toString('utf8');
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        throw new SignetError(read.tooLarge, `key "${this.keyName}": Vault answer to ${what} is larger than ${read.limit} bytes (HTTP ${res.statusCode})`, {
          status: res.statusCode,
        });
      }
      const timedOut = (err as Error)?.name === 'TimeoutError' || (err as Error)?.name === 'AbortError';
      throw new SignetError(
        'KEY_UNAVAILABLE',
        `key "${this.keyName}": Vault response to ${what} ${timedOut ? `did not complete within ${this.timeoutMs} ms` : 'was cut off'}`,
        { cause: err },
      );
    }
    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    return { status: res.statusCode, body: parsed, ...retryAfterOption(res.headers['retry-after']) };
  }

  /** Vault's error text of an answer, redacted. */
  errors(body: unknown): string {
    return vaultErrors(body, this.sent);
  }

  /** Turn a non-2xx answer into a SignetError. `about` names the object (`transit key "k"`). */
  fail(res: VaultResponse, what: string, about: string): SignetError {
    const detail = this.errors(res.body);
    const suffix = detail ? `: ${detail}` : '';
    const opts = { status: res.status, ...(res.retryAfterSeconds !== undefined ? { retryAfterSeconds: res.retryAfterSeconds } : {}) };
    const prefix = `key "${this.keyName}": Vault ${what} for ${about} at ${this.address}`;
    const make = (code: ErrorCode, msg: string) => new SignetError(code, msg, opts);
    const s = res.status;
    if (s === 429) return make('KEY_THROTTLED', `${prefix} was throttled (HTTP 429)${suffix}`);
    if (s >= 500 || s === 412 || s === 473) {
      return make('KEY_UNAVAILABLE', `${prefix} failed with HTTP ${s}${suffix || (s === 503 ? ' (sealed or standby?)' : '')}`);
    }
    if (s === 401 || s === 403) {
      return make('KEY_DENIED', `${prefix} was denied (HTTP ${s})${suffix}; check the token's policy and namespace`);
    }
    if (s === 404) return make('KEY_NOT_FOUND', `${prefix}: not found (HTTP 404)${suffix}`);
    if (/not found/i.test(detail)) return make('KEY_NOT_FOUND', `${prefix}: not found (HTTP ${s})${suffix}`);
    if (/less than the minimum|min(imum)?_?encryption/i.test(detail)) {
      return make('KEY_DISABLED', `${prefix}: key version disabled (HTTP ${s})${suffix}; restart signet or raise keyVersion`);
    }
    if (/(greater|higher) than the latest|invalid key version|version.*does not exist/i.test(detail)) {
      return make('KEY_NOT_FOUND', `${prefix}: key version not found (HTTP ${s})${suffix}`);
    }
    return make('KEY_SIGN_FAILED', `${prefix} failed with HTTP ${s}${suffix}`);
  }
}

// ---------------------------------------------------------------------------------------------
// auth

type AuthConfig = { kind: 'token'; token: string } | { kind: 'approle'; mount: string; roleId: string; secretId: string };

interface TokenState {
  token: string;
  obtainedAt: number;
  /** Refresh after this time (2/3 of the TTL); Infinity for tokens without TTL. */
  refreshAt: number;
  /** Never use the token after this time. */
  expiresAt: number;
  renewable: boolean;
}

class VaultAuth {
  private state: TokenState | undefined;
  private pending: Promise<TokenState> | undefined;

  constructor(
    private readonly http: VaultHttp,
    readonly cfg: AuthConfig,
  ) {
    if (cfg.kind === 'token') {
      this.state = { token: cfg.token, obtainedAt: Date.now(), refreshAt: Infinity, expiresAt: Infinity, renewable: false };
    }
  }

  get kind(): AuthConfig['kind'] {
    return this.cfg.kind;
  }

  /** A usable token, logging in or renewing first when due (single flight). */
  async token(): Promise<string> {
    const now = Date.now();
    const s = this.state;
    if (s && now < s.refreshAt) return s.token;
    const usable = s && now < s.expiresAt - 1000 ? s : undefined;
    if (!this.pending) {
      this.pending = this.refresh(usable).finally(() => {
        this.pending = undefined;
      });
    }
    try {
      return (await this.pending).token;
    } catch (err) {
      // renewal and login failed (e.g. Vault briefly unreachable) but the token is still valid:
      // keep using it; the next call tries again
      if (usable && err instanceof SignetError && err.retryable) return usable.token;
      throw err;
    }
  }

  /** Forget the current AppRole token so the next call logs in again. */
  invalidate(): void {
    if (this.cfg.kind === 'approle') this.state = undefined;
  }

  /** The current token was obtained less than `ms` ago. */
  fresh(ms: number): boolean {
    return this.state !== undefined && Date.now() - this.state.obtainedAt < ms;
  }

  private async refresh(current: TokenState | undefined): Promise<TokenState> {
    if (this.cfg.kind === 'token') return this.state!;
    if (current?.renewable) {
      try {
        const renewed = await this.renewSelf(current.token);
        if (renewed) return (this.state = renewed);
      } catch {
        // fall through to a new login
      }
    }
    return (this.state = await this.login());
  }

  private fromAuth(auth: { client_token?: unknown; lease_duration?: unknown; renewable?: unknown } | undefined, what: string): TokenState {
    if (!auth || typeof auth.client_token !== 'string' || auth.client_token.length === 0) {
      throw new SignetError('KEY_UNAVAILABLE', `key "${this.http.keyName}": Vault ${what} answered without a client token`);
    }
    const now = Date.now();
    const ttl = typeof auth.lease_duration === 'number' && auth.lease_duration > 0 ? auth.lease_duration * 1000 : 0;
    return {
      token: auth.client_token,
      obtainedAt: now,
      refreshAt: ttl ? now + (ttl * 2) / 3 : Infinity,
      expiresAt: ttl ? now + ttl : Infinity,
      renewable: auth.renewable === true,
    };
  }

  private async login(): Promise<TokenState> {
    const cfg = this.cfg as Extract<AuthConfig, { kind: 'approle' }>;
    const apiPath = `/v1/auth/${cfg.mount}/login`;
    this.http.secret(cfg.roleId, cfg.secretId);
    const res = await this.http.call('POST', apiPath, 'AppRole login', undefined, { role_id: cfg.roleId, secret_id: cfg.secretId });
    if (res.status !== 200) {
      // a wrong role_id / secret_id comes back as 400 "invalid role or secret ID" (403 with a bad namespace)
      if (res.status >= 400 && res.status < 500 && res.status !== 429) {
        const detail = this.http.errors(res.body);
        throw new SignetError(
          'KEY_DENIED',
          `key "${this.http.keyName}": Vault AppRole login at ${this.http.address} (auth/${cfg.mount}) was refused (HTTP ${res.status})${detail ? `: ${detail}` : ''}`,
          { status: res.status },
        );
      }
      throw this.http.fail(res, 'AppRole login', `auth/${cfg.mount}`);
    }
    return this.fromAuth((res.body as { auth?: never } | undefined)?.auth, 'AppRole login');
  }

  /** renew-self; undefined when the renewal would leave too little TTL (max TTL reached). */
  private async renewSelf(token: string): Promise<TokenState | undefined> {
    const res = await this.http.call('POST', '/v1/auth/token/renew-self', 'token renewal', token, {});
    if (res.status !== 200) return undefined;
    const state = this.fromAuth({ ...(res.body as { auth?: object } | undefined)?.auth, client_token: token }, 'token renewal');
    if (state.expiresAt - state.obtainedAt < 10_000) return undefined;
    return state;
  }
}

// ---------------------------------------------------------------------------------------------
// key metadata

interface KeyInfo {
  algorithm: KeyAlgorithm;
  version: number;
  publicKey: KeyObject;
  spkiPem: string;
}

function readKeyInfo(cfgName: string, keyLabel: string, body: unknown, pinned: number | undefined): KeyInfo {
  const bad = (why: string) => new SignetError('KEY_INVALID', `key "${cfgName}": unexpected Vault answer for ${keyLabel}: ${why}`);
  const checked = checkShape(body, keyReadSchema);
  if (!checked.ok) throw bad(checked.why);
  const data = checked.value.data;
  const type = data.type;
  const algorithm = SUPPORTED[type];
  if (!algorithm) {
    const why =
      type === 'ed25519'
        ? 'Ed25519 is not supported (Rekor hashedrekord and cosign verification need ECDSA P-256 or RSA-2048)'
        : data.supports_signing === false || /^(aes|chacha|hmac)/.test(type)
          ? 'it is not a signing key'
          : 'only rsa-2048 and ecdsa-p256 transit keys are supported';
    throw new SignetError('KEY_UNSUPPORTED', `key "${cfgName}" is ${keyLabel} of type ${upstreamText(type, { max: 40 })}: ${why}`);
  }
  if (data.derived === true) {
    throw new SignetError('KEY_UNSUPPORTED', `key "${cfgName}" is ${keyLabel}, a derived key: derived keys cannot sign`);
  }
  const latest = data.latest_version;
  const version = pinned ?? latest;
  if (pinned !== undefined && pinned > latest) {
    throw new SignetError('KEY_NOT_FOUND', `key "${cfgName}": ${keyLabel} has no version ${pinned} (latest is ${latest})`);
  }
  const minEnc = data.min_encryption_version ?? 0;
  if (minEnc > 0 && version < minEnc) {
    throw new SignetError(
      'KEY_DISABLED',
      `key "${cfgName}": version ${version} of ${keyLabel} is below its min_encryption_version ${minEnc} and cannot sign`,
    );
  }
  const raw = data.keys[String(version)];
  if (raw === undefined) {
    throw new SignetError('KEY_NOT_FOUND', `key "${cfgName}": version ${version} of ${keyLabel} is not available (trimmed or archived)`);
  }
  const entry = checkShape(raw, keyVersionSchema);
  if (!entry.ok || !entry.value.public_key.includes('BEGIN PUBLIC KEY')) {
    throw bad(`version ${version} has no PEM public key (is this caller allowed to read it?)`);
  }
  const pem = entry.value.public_key;
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (err) {
    throw new SignetError('KEY_INVALID', `key "${cfgName}": public key of ${keyLabel} version ${version} does not parse`, { cause: err });
  }
  const d = publicKey.asymmetricKeyDetails;
  const ok =
    algorithm === 'rsa-2048'
      ? publicKey.asymmetricKeyType === 'rsa' && d?.modulusLength === 2048
      : publicKey.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1';
  if (!ok) {
    throw new SignetError('KEY_INVALID', `key "${cfgName}": public key of ${keyLabel} version ${version} does not match its type ${type}`);
  }
  return { algorithm, version, publicKey, spkiPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

/** True when `sig` is a valid signature over the message whose SHA-256 is `digest`. */
function checkSignature(info: KeyInfo, digest: Buffer, sig: Buffer, payload?: Buffer, pss = false): boolean {
  try {
    if (pss) return verifyPssDigest(info.publicKey, digest, sig);
    if (payload && createHash('sha256').update(payload).digest().equals(digest)) {
      return verify('sha256', payload, info.publicKey, sig);
    }
    if (info.algorithm === 'rsa-2048') {
      const em = publicDecrypt({ key: info.publicKey, padding: constants.RSA_PKCS1_PADDING }, sig);
      return em.equals(Buffer.concat([SHA256_DIGEST_INFO, digest]));
    }
    derEcdsaToRaw(sig); // Node cannot verify ECDSA over a bare digest: check the DER shape only
    return true;
  } catch {
    return false;
  }
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
  async function authed(method: 'GET' | 'POST', apiPath: string, what: string, body?: unknown, read?: Parameters<VaultHttp['call']>[5]): Promise<VaultResponse> {
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
        throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": Vault sign answer for ${keyLabel} has no vault:vN: signature${checked.ok ? '' : ` (${checked.why})`}`);
      }
      if (Number(m[1]) !== info.version) {
        throw new SignetError(
          'KEY_SIGN_FAILED',
          `key "${cfg.name}": Vault signed with version ${m[1]} of ${keyLabel}, expected version ${info.version}`,
        );
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
