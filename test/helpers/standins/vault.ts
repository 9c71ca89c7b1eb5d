/**
 * A local stand-in for HashiCorp Vault's transit secrets engine (node:http on 127.0.0.1), signing
 * with real keys generated per test. It speaks the parts of the HTTP API signet uses:
 *
 *   GET  /v1/<mount>/keys/<name>          key metadata + PEM public keys per version
 *   POST /v1/<mount>/sign/<name>[/<hash>] input (base64), prehashed, hash_algorithm, key_version,
 *                                         signature_algorithm (pss default | pkcs1v15),
 *                                         salt_length (auto default | hash | integer),
 *                                         marshaling_algorithm (asn1 default | jws)
 *   POST /v1/auth/<approle>/login         role_id + secret_id -> client_token with a TTL
 *   POST /v1/auth/token/renew-self        extends the caller's token (up to its max TTL)
 *
 * Behaviour follows Vault: `X-Vault-Token` must be a known, unexpired token (403
 * `permission denied` otherwise), a required namespace must come as `X-Vault-Namespace`, errors are
 * `{"errors":[...]}`, a missing key is 404 on read and 400 `encryption key not found` on sign,
 * PSS (Vault's RSA default) uses the maximum salt length unless salt_length says otherwise
 * (`hash` = 32 for sha2-256, or a number of bytes); `ignoreSaltLength` plays a Vault from before
 * the parameter existed (it is then ignored and the salt is the maximum). Faults (429/5xx/delays) are injectable,
 * and every call is counted and recorded.
 */
import { constants, createHash, createPublicKey, generateKeyPairSync, privateEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { signP256DigestRaw, rawEcdsaToDer } from '../../../src/kms/ecdsa.js';

export type VaultKeyType = 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'ecdsa-p256' | 'ecdsa-p384' | 'ed25519' | 'aes256-gcm96';

export interface StandinKey {
  type: VaultKeyType;
  /** Private keys per version (index 0 = version 1); undefined for symmetric keys. */
  versions: (KeyObject | undefined)[];
  minEncryptionVersion: number;
  minAvailableVersion: number;
}

export interface VaultFault {
  /** Which calls it hits (default: any). */
  on?: 'sign' | 'keys' | 'login' | 'renew' | 'any';
  /** HTTP status to answer with (omit with delayMs alone to just delay a normal answer). */
  status?: number;
  body?: unknown;
  retryAfter?: string;
  /** Wait this long before answering. */
  delayMs?: number;
  /** How many matching calls it hits (default 1). */
  times?: number;
}

export interface VaultCall {
  kind: 'sign' | 'keys' | 'login' | 'renew' | 'other';
  method: string;
  path: string;
  token?: string;
  namespace?: string;
  body?: any;
  status: number;
}

export interface StartVaultOptions {
  /** Static tokens that are always valid. */
  tokens?: string[];
  /** AppRole credentials: login issues tokens with this TTL (seconds, default 3600). */
  approle?: { roleId: string; secretId: string; ttlSeconds?: number; maxTtlSeconds?: number; renewable?: boolean; mount?: string };
  /** Require this X-Vault-Namespace on every call. */
  namespace?: string;
  /** Serve HTTPS with this certificate. */
  tls?: { certFile: string; keyFile: string };
}

export interface RunningVault {
  url: string;
  port: number;
  keys: Map<string, StandinKey>;
  calls: VaultCall[];
  /** Number of calls of a kind (default: sign). */
  count(kind?: VaultCall['kind']): number;
  /** Create a transit key (version 1) at `mount` (default transit); returns it. */
  addKey(name: string, type: VaultKeyType, mount?: string): StandinKey;
  /** Add a version; returns the new version number. */
  rotate(name: string, mount?: string): number;
  /** SPKI PEM of a version (default: latest). */
  publicKeyPem(name: string, version?: number, mount?: string): string;
  inject(fault: VaultFault): void;
  /** Sign RSA with PSS whatever signature_algorithm says (a misbehaving server). */
  forcePss: boolean;
  /** Ignore `salt_length` (a Vault that predates it): PSS always with the maximum salt. */
  ignoreSaltLength: boolean;
  /** Tokens issued by AppRole logins, in order. */
  issued: string[];
  revoke(token: string): void;
  close(): Promise<void>;
}

const DIGEST_INFO: Record<string, Buffer> = {
  'sha2-256': Buffer.from('3031300d060960864801650304020105000420', 'hex'),
};
const HASH_NODE: Record<string, string> = { 'sha2-256': 'sha256', 'sha2-384': 'sha384', 'sha2-512': 'sha512' };

function generate(type: VaultKeyType): KeyObject | undefined {
  switch (type) {
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return generateKeyPairSync('rsa', { modulusLength: Number(type.slice(4)) }).privateKey;
    case 'ecdsa-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ecdsa-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'ed25519':
      return generateKeyPairSync('ed25519').privateKey;
    default:
      return undefined;
  }
}

function mgf1(seed: Buffer, len: number): Buffer {
  const out: Buffer[] = [];
  for (let c = 0, total = 0; total < len; c++) {
    const C = Buffer.alloc(4);
    C.writeUInt32BE(c);
    const h = createHash('sha256')
      .update(Buffer.concat([seed, C]))
      .digest();
    out.push(h);
    total += h.length;
  }
  return Buffer.concat(out).subarray(0, len);
}

/** The largest PSS salt for SHA-256 and this key (Vault's `auto`). */
function maxSalt(priv: KeyObject): number {
  return Math.ceil((priv.asymmetricKeyDetails!.modulusLength! - 1) / 8) - 32 - 2;
}

/** RFC 8017 EMSA-PSS with SHA-256 / MGF1-SHA-256 and a salt of `sLen` bytes. */
function rsaPss(priv: KeyObject, digest: Buffer, sLen: number): Buffer {
  const bits = priv.asymmetricKeyDetails!.modulusLength!;
  const emBits = bits - 1;
  const emLen = Math.ceil(emBits / 8);
  const salt = randomBytes(sLen);
  const H = createHash('sha256')
    .update(Buffer.concat([Buffer.alloc(8), digest, salt]))
    .digest();
  const DB = Buffer.concat([Buffer.alloc(emLen - sLen - 34), Buffer.from([1]), salt]);
  const mask = mgf1(H, emLen - 33);
  for (let i = 0; i < DB.length; i++) DB[i]! ^= mask[i]!;
  DB[0]! &= 0xff >> (8 * emLen - emBits);
  const EM = Buffer.concat([DB, H, Buffer.from([0xbc])]);
  return privateEncrypt({ key: priv, padding: constants.RSA_NO_PADDING }, Buffer.concat([Buffer.alloc(Math.ceil(bits / 8) - EM.length), EM]));
}

function curveName(type: VaultKeyType): string {
  return type === 'ecdsa-p256' ? 'P-256' : type === 'ecdsa-p384' ? 'P-384' : type;
}

export async function startVault(opts: StartVaultOptions = {}): Promise<RunningVault> {
  const keys = new Map<string, StandinKey>();
  const calls: VaultCall[] = [];
  const faults: (VaultFault & { left: number })[] = [];
  const issued: string[] = [];
  const tokens = new Map<string, { expiresAt: number; maxAt: number }>();
  for (const t of opts.tokens ?? []) tokens.set(t, { expiresAt: Infinity, maxAt: Infinity });
  const approleMount = opts.approle?.mount ?? 'approle';

  const keyId = (mount: string, name: string) => `${mount}/${name}`;

  function tokenOk(t: string | undefined): boolean {
    if (!t) return false;
    const s = tokens.get(t);
    return !!s && Date.now() < s.expiresAt;
  }

  function send(res: ServerResponse, call: VaultCall, status: number, body: unknown, headers: Record<string, string> = {}): void {
    call.status = status;
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(text);
  }

  function keyRead(k: StandinKey, name: string) {
    const versions: Record<string, unknown> = {};
    k.versions.forEach((priv, i) => {
      const v = i + 1;
      if (v < k.minAvailableVersion) return;
      if (!priv) {
        versions[String(v)] = 1_700_000_000 + v;
        return;
      }
      const pub = createPublicKey(priv);
      versions[String(v)] = {
        creation_time: new Date(1_700_000_000_000 + v * 1000).toISOString(),
        name: curveName(k.type),
        public_key:
          k.type === 'ed25519'
            ? (pub.export({ format: 'der', type: 'spki' }) as Buffer).subarray(12).toString('base64')
            : (pub.export({ type: 'spki', format: 'pem' }) as string),
      };
    });
    const signing = k.type !== 'aes256-gcm96';
    return {
      request_id: randomBytes(8).toString('hex'),
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data: {
        allow_plaintext_backup: false,
        auto_rotate_period: 0,
        deletion_allowed: false,
        derived: false,
        exportable: false,
        imported_key: false,
        keys: versions,
        latest_version: k.versions.length,
        min_available_version: k.minAvailableVersion,
        min_decryption_version: 1,
        min_encryption_version: k.minEncryptionVersion,
        name,
        supports_decryption: !signing,
        supports_derivation: !signing,
        supports_encryption: !signing,
        supports_signing: signing,
        type: k.type,
      },
      wrap_info: null,
      warnings: null,
      auth: null,
    };
  }

  function sign(k: StandinKey, body: any, forcePss: boolean): { status: number; body: unknown } {
    if (!k.versions[0]) return { status: 400, body: { errors: [`key type ${k.type} does not support signing`] } };
    const latest = k.versions.length;
    const ver = body.key_version ? Number(body.key_version) : latest;
    if (ver < k.minEncryptionVersion) {
      return { status: 400, body: { errors: ['requested version for signing is less than the minimum encryption key version'] } };
    }
    if (ver > latest) return { status: 400, body: { errors: ['requested version for signing is higher than the latest key version'] } };
    const priv = k.versions[ver - 1]!;
    const hashAlg = String(body.hash_algorithm ?? 'sha2-256');
    if (!HASH_NODE[hashAlg]) return { status: 400, body: { errors: [`invalid hash algorithm "${hashAlg}"`] } };
    let input = Buffer.from(String(body.input ?? ''), 'base64');
    if (!body.prehashed) input = createHash(HASH_NODE[hashAlg]!).update(input).digest();
    let sig: Buffer;
    if (k.type.startsWith('rsa')) {
      const alg = forcePss ? 'pss' : String(body.signature_algorithm || 'pss');
      if (alg === 'pkcs1v15') {
        const di = DIGEST_INFO[hashAlg];
        if (!di) return { status: 400, body: { errors: ['stand-in: only sha2-256'] } };
        sig = privateEncrypt({ key: priv, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([di, input]));
      } else if (alg === 'pss') {
        const want = vault.ignoreSaltLength ? 'auto' : String(body.salt_length ?? 'auto');
        const sLen = want === 'auto' ? maxSalt(priv) : want === 'hash' ? input.length : /^\d+$/.test(want) ? Number(want) : NaN;
        if (!(sLen >= 0 && sLen <= maxSalt(priv))) return { status: 400, body: { errors: [`salt length is invalid: ${want}`] } };
        sig = rsaPss(priv, input, sLen);
      } else {
        return { status: 400, body: { errors: [`unsupported rsa signature algorithm ${alg}`] } };
      }
    } else if (k.type === 'ecdsa-p256') {
      if (input.length !== 32) return { status: 400, body: { errors: ['stand-in: P-256 input must be 32 bytes'] } };
      const d = BigInt('0x' + Buffer.from(priv.export({ format: 'jwk' }).d!, 'base64url').toString('hex'));
      const raw = signP256DigestRaw(d, input, randomBytes(32));
      const marshaling = String(body.marshaling_algorithm || 'asn1');
      if (marshaling === 'jws') {
        return { status: 200, body: signed(ver, raw.toString('base64url')) };
      }
      if (marshaling !== 'asn1') return { status: 400, body: { errors: [`invalid marshaling type "${marshaling}"`] } };
      sig = rawEcdsaToDer(raw);
    } else {
      return { status: 400, body: { errors: [`stand-in cannot sign with ${k.type}`] } };
    }
    return { status: 200, body: signed(ver, sig.toString('base64')) };
  }

  const signed = (ver: number, b64: string) => ({
    request_id: randomBytes(8).toString('hex'),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data: { key_version: ver, signature: `vault:v${ver}:${b64}` },
    wrap_info: null,
    warnings: null,
    auth: null,
  });

  function issue(): { client_token: string; lease_duration: number; renewable: boolean; accessor: string; policies: string[] } {
    const ar = opts.approle!;
    const ttl = ar.ttlSeconds ?? 3600;
    const token = `hvs.${randomBytes(12).toString('base64url')}`;
    const now = Date.now();
    tokens.set(token, { expiresAt: now + ttl * 1000, maxAt: now + (ar.maxTtlSeconds ?? ttl * 10) * 1000 });
    issued.push(token);
    return {
      client_token: token,
      accessor: randomBytes(8).toString('hex'),
      policies: ['default', 'signer'],
      lease_duration: ttl,
      renewable: ar.renewable ?? true,
    };
  }

  const vault: RunningVault = {
    url: '',
    port: 0,
    keys,
    calls,
    issued,
    forcePss: false,
    ignoreSaltLength: false,
    count: (kind = 'sign') => calls.filter((c) => c.kind === kind).length,
    addKey(name, type, mount = 'transit') {
      const k: StandinKey = { type, versions: [generate(type)], minEncryptionVersion: 0, minAvailableVersion: 0 };
      keys.set(keyId(mount, name), k);
      return k;
    },
    rotate(name, mount = 'transit') {
      const k = keys.get(keyId(mount, name))!;
      k.versions.push(generate(k.type));
      return k.versions.length;
    },
    publicKeyPem(name, version, mount = 'transit') {
      const k = keys.get(keyId(mount, name))!;
      return createPublicKey(k.versions[(version ?? k.versions.length) - 1]!).export({ type: 'spki', format: 'pem' }) as string;
    },
    inject(fault) {
      faults.push({ ...fault, left: fault.times ?? 1 });
    },
    revoke(token) {
      tokens.delete(token);
    },
    close: async () => undefined,
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: any;
    try {
      body = raw ? JSON.parse(raw) : {};
    } catch {
      body = undefined;
    }
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const p = url.pathname;
    const method = req.method ?? 'GET';
    const token = req.headers['x-vault-token'] as string | undefined;
    const namespace = req.headers['x-vault-namespace'] as string | undefined;
    const signM = /^\/v1\/(.+)\/sign\/([^/]+)(?:\/([^/]+))?$/.exec(p);
    const keysM = /^\/v1\/(.+)\/keys\/([^/]+)$/.exec(p);
    const kind: VaultCall['kind'] =
      p === `/v1/auth/${approleMount}/login`
        ? 'login'
        : p === '/v1/auth/token/renew-self'
          ? 'renew'
          : signM && method === 'POST'
            ? 'sign'
            : keysM && method === 'GET'
              ? 'keys'
              : 'other';
    const call: VaultCall = { kind, method, path: p, ...(token ? { token } : {}), ...(namespace ? { namespace } : {}), body, status: 0 };
    calls.push(call);

    const fault = faults.find((f) => f.left > 0 && (f.on === undefined || f.on === 'any' || f.on === kind));
    if (fault) {
      fault.left--;
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.status !== undefined) {
        send(
          res,
          call,
          fault.status,
          fault.body ?? { errors: fault.status === 429 ? ['rate limit quota exceeded'] : ['stand-in injected failure'] },
          fault.retryAfter ? { 'retry-after': fault.retryAfter } : {},
        );
        return;
      }
    }
    if (body === undefined) return send(res, call, 400, { errors: ['failed to parse JSON input'] });
    if (opts.namespace !== undefined && namespace !== opts.namespace) return send(res, call, 403, { errors: ['permission denied'] });

    if (kind === 'login') {
      const ar = opts.approle;
      if (!ar) return send(res, call, 404, { errors: ['no handler for route'] });
      if (body.role_id !== ar.roleId || body.secret_id !== ar.secretId) return send(res, call, 400, { errors: ['invalid role or secret ID'] });
      return send(res, call, 200, {
        request_id: randomBytes(8).toString('hex'),
        lease_id: '',
        renewable: false,
        lease_duration: 0,
        data: null,
        wrap_info: null,
        warnings: null,
        auth: issue(),
      });
    }
    if (!tokenOk(token)) return send(res, call, 403, { errors: ['permission denied'] });
    if (kind === 'renew') {
      const s = tokens.get(token!)!;
      const ttl = opts.approle?.ttlSeconds ?? 3600;
      s.expiresAt = Math.min(Date.now() + ttl * 1000, s.maxAt);
      const left = Math.max(0, Math.floor((s.expiresAt - Date.now()) / 1000));
      return send(res, call, 200, { auth: { client_token: token, lease_duration: left, renewable: true, policies: ['default', 'signer'] } });
    }
    if (kind === 'keys') {
      const k = keys.get(keyId(keysM![1]!, decodeURIComponent(keysM![2]!)));
      if (!k) return send(res, call, 404, { errors: [] });
      return send(res, call, 200, keyRead(k, decodeURIComponent(keysM![2]!)));
    }
    if (kind === 'sign') {
      const k = keys.get(keyId(signM![1]!, decodeURIComponent(signM![2]!)));
      if (!k) return send(res, call, 400, { errors: ['encryption key not found'] });
      if (signM![3]) body.hash_algorithm = signM![3];
      const r = sign(k, body, vault.forcePss);
      return send(res, call, r.status, r.body);
    }
    return send(res, call, 404, { errors: [] });
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [`stand-in error: ${(err as Error).message}`] }));
    });
  };
  const server: Server = opts.tls
    ? createHttpsServer({ cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile) }, listener)
    : createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  vault.port = port;
  vault.url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  vault.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return vault;
}
