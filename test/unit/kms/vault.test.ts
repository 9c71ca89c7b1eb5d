/**
 * The `vault` key provider against a local transit stand-in (real HTTP, real keys).
 */
import { constants, createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_RETRY_AFTER_SECONDS } from '../../../src/edge/retry-after.js';
import { SignetError } from '../../../src/errors.js';
import { keyConfigSchema } from '../../../src/kms/providers.js';
import { createVaultKeyProvider, parseVaultRef, vaultKeySchema, type VaultKeyConfig, type VaultKeyProvider } from '../../../src/kms/vault.js';
import { tempDir } from '../../helpers/cosign.js';
import { freePort } from '../../helpers/ports.js';
import { selfSignedCert } from '../../helpers/registry.js';
import { startVault, type RunningVault } from '../../helpers/standins/vault.js';

const TOKEN = 'hvs.test-root-token-0123456789';
const ROLE_ID = 'role-id-1111';
const SECRET_ID = 'secret-id-very-secret-2222';
const SECRETS = [TOKEN, SECRET_ID];

let vault: RunningVault;
let tmp: { dir: string; remove: () => void };
const open: VaultKeyProvider[] = [];
const messages: string[] = [];

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

beforeAll(async () => {
  tmp = tempDir('signet-vault-');
  vault = await startVault({ tokens: [TOKEN], approle: { roleId: ROLE_ID, secretId: SECRET_ID, ttlSeconds: 3600, renewable: true } });
  vault.addKey('rsa', 'rsa-2048');
  vault.addKey('ec', 'ecdsa-p256');
  vault.addKey('rsa4096', 'rsa-4096');
  vault.addKey('p384', 'ecdsa-p384');
  vault.addKey('ed', 'ed25519');
  vault.addKey('aes', 'aes256-gcm96');
  vault.addKey('other-mount-ec', 'ecdsa-p256', 'team/transit');
});

afterEach(() => {
  vi.useRealTimers();
});

afterAll(async () => {
  await Promise.all(open.map((p) => p.close()));
  await vault?.close();
  tmp?.remove();
  // no credential ever reached an error message
  for (const m of messages) for (const s of SECRETS) expect(m).not.toContain(s);
});

function cfg(extra: Partial<VaultKeyConfig> & { key: string }): VaultKeyConfig {
  return { name: `vault-${extra.key}`, provider: 'vault', address: vault.url, token: TOKEN, ...extra } as VaultKeyConfig;
}

async function provider(extra: Partial<VaultKeyConfig> & { key: string }): Promise<VaultKeyProvider> {
  const p = await createVaultKeyProvider(cfg(extra), { baseDir: tmp.dir });
  open.push(p);
  return p;
}

async function rejection(p: Promise<unknown>): Promise<SignetError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SignetError);
    messages.push((err as Error).message);
    return err as SignetError;
  }
  throw new Error('expected a rejection');
}

function payload(): { payload: Buffer; digest: Buffer } {
  const payload = Buffer.from(JSON.stringify({ critical: { image: { 'docker-manifest-digest': `sha256:${randomBytes(32).toString('hex')}` } } }));
  return { payload, digest: sha256(payload) };
}

describe('vault: signing', () => {
  it('RSA-2048: PKCS#1 v1.5 over the digest, verified by node:crypto over the payload; one sign call', async () => {
    const p = await provider({ key: 'rsa' });
    expect(p.algorithm).toBe('rsa-2048');
    expect(p.keyVersion).toBe(1);
    const before = vault.calls.length;
    const { payload: msg, digest } = payload();
    const sig = await p.sign(digest);
    expect(sig.length).toBe(256);
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
    const calls = vault.calls.slice(before);
    expect(calls.map((c) => c.kind)).toEqual(['sign']);
    expect(calls[0]!.path).toBe('/v1/transit/sign/rsa');
    expect(calls[0]!.body).toEqual({
      input: digest.toString('base64'),
      prehashed: true,
      hash_algorithm: 'sha2-256',
      key_version: 1,
      signature_algorithm: 'pkcs1v15',
    });
    expect(calls[0]!.token).toBe(TOKEN);
  });

  it('ECDSA P-256: DER (marshaling asn1), verified over the payload; with and without the payload', async () => {
    const p = await provider({ key: 'ec' });
    expect(p.algorithm).toBe('ecdsa-p256');
    const pub = createPublicKey(await p.publicKeyPem());
    for (const withPayload of [false, true]) {
      const { payload: msg, digest } = payload();
      const before = vault.count('sign');
      const sig = withPayload ? await p.sign(digest, msg) : await p.sign(digest);
      expect(vault.count('sign')).toBe(before + 1);
      expect(sig[0]).toBe(0x30);
      expect(verify('sha256', msg, pub, sig)).toBe(true);
    }
    const last = vault.calls.filter((c) => c.kind === 'sign').at(-1)!;
    expect(last.body.marshaling_algorithm).toBe('asn1');
    expect(last.body.signature_algorithm).toBeUndefined();
  });

  it('the public key is the stand-in key, SPKI PEM, read once; exactly one backend call per signature', async () => {
    const keysBefore = vault.count('keys');
    const p = await provider({ key: 'ec' });
    expect(vault.count('keys')).toBe(keysBefore + 1);
    const pem = await p.publicKeyPem();
    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(createPublicKey(pem).export({ format: 'jwk' })).toEqual(createPublicKey(vault.publicKeyPem('ec')).export({ format: 'jwk' }));
    const before = vault.calls.length;
    for (let i = 0; i < 5; i++) {
      await p.publicKeyPem();
      await p.sign(payload().digest);
    }
    expect(vault.calls.slice(before).map((c) => c.kind)).toEqual(Array(5).fill('sign'));
  });

  it('20 concurrent signatures all verify (20 calls)', async () => {
    const p = await provider({ key: 'rsa' });
    const pub = createPublicKey(await p.publicKeyPem());
    const before = vault.count('sign');
    const items = Array.from({ length: 20 }, () => payload());
    const sigs = await Promise.all(items.map((i) => p.sign(i.digest, i.payload)));
    sigs.forEach((s, i) => expect(verify('sha256', items[i]!.payload, pub, s)).toBe(true));
    expect(vault.count('sign')).toBe(before + 20);
  });

  it('a mount other than transit (mount field, and TRANSIT_SECRET_ENGINE_PATH)', async () => {
    const p = await provider({ key: 'other-mount-ec', mount: 'team/transit' });
    const { payload: msg, digest } = payload();
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), await p.sign(digest))).toBe(true);
    expect(vault.calls.at(-1)!.path).toBe('/v1/team/transit/sign/other-mount-ec');
    vi.stubEnv('TRANSIT_SECRET_ENGINE_PATH', 'team/transit');
    try {
      const q = await provider({ key: 'other-mount-ec' });
      expect(await q.publicKeyPem()).toBe(await p.publicKeyPem());
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('a server that answers PSS despite signature_algorithm=pkcs1v15 is caught (KEY_SIGN_FAILED, not retried)', async () => {
    const p = await provider({ key: 'rsa' });
    vault.forcePss = true;
    try {
      for (const withPayload of [false, true]) {
        const { payload: msg, digest } = payload();
        const err = await rejection(withPayload ? p.sign(digest, msg) : p.sign(digest));
        expect(err.code).toBe('KEY_SIGN_FAILED');
        expect(err.retryable).toBe(false);
        expect(err.message).toContain('vault-rsa');
        expect(err.message).toMatch(/PKCS#1 v1\.5/);
      }
    } finally {
      vault.forcePss = false;
    }
  });

  it('refuses a digest that is not 32 bytes', async () => {
    const p = await provider({ key: 'ec' });
    const err = await rejection(p.sign(Buffer.alloc(20)));
    expect(err.code).toBe('KEY_SIGN_FAILED');
  });

  it('measures the stand-in round trip (sequential signs)', async () => {
    const p = await provider({ key: 'ec' });
    const r = await provider({ key: 'rsa' });
    const n = 50;
    const time = async (k: VaultKeyProvider) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await k.sign(payload().digest);
      return (performance.now() - t0) / n;
    };
    const ec = await time(p);
    const rsa = await time(r);
    console.log(`vault stand-in sign latency: ECDSA P-256 ${ec.toFixed(2)} ms, RSA-2048 ${rsa.toFixed(2)} ms (mean of ${n}, sequential)`);
    expect(ec).toBeLessThan(100);
  });
});

describe('vault: key versions', () => {
  it('signs with the version read at startup even after a rotation; pinned keyVersion; versions that do not exist', async () => {
    vault.addKey('rot', 'ecdsa-p256');
    const before = await provider({ key: 'rot' });
    expect(before.keyVersion).toBe(1);
    expect(vault.rotate('rot')).toBe(2);
    const after = await provider({ key: 'rot' });
    expect(after.keyVersion).toBe(2);
    const pinned = await provider({ key: 'rot', keyVersion: 1 });
    expect(await pinned.publicKeyPem()).toBe(await before.publicKeyPem());
    expect(await after.publicKeyPem()).not.toBe(await before.publicKeyPem());
    for (const [p, v] of [
      [before, 1],
      [after, 2],
      [pinned, 1],
    ] as const) {
      const { payload: msg, digest } = payload();
      const sig = await p.sign(digest);
      expect(vault.calls.at(-1)!.body.key_version).toBe(v);
      expect(verify('sha256', msg, createPublicKey(vault.publicKeyPem('rot', v)), sig)).toBe(true);
    }
    const missing = await rejection(provider({ key: 'rot', keyVersion: 5 }));
    expect(missing.code).toBe('KEY_NOT_FOUND');
    expect(missing.message).toMatch(/no version 5 \(latest is 2\)/);
  });

  it('a version below min_encryption_version: KEY_DISABLED at startup, and at sign time when raised later', async () => {
    const k = vault.addKey('minenc', 'rsa-2048');
    vault.rotate('minenc');
    const early = await provider({ key: 'minenc', keyVersion: 1 });
    k.minEncryptionVersion = 2;
    const atStart = await rejection(provider({ key: 'minenc', keyVersion: 1 }));
    expect(atStart.code).toBe('KEY_DISABLED');
    expect(atStart.message).toContain('vault-minenc');
    const atSign = await rejection(early.sign(payload().digest));
    expect(atSign.code).toBe('KEY_DISABLED');
    expect(atSign.retryable).toBe(false);
    k.minAvailableVersion = 2; // version 1 trimmed
    k.minEncryptionVersion = 0;
    const trimmed = await rejection(provider({ key: 'minenc', keyVersion: 1 }));
    expect(trimmed.code).toBe('KEY_NOT_FOUND');
  });
});

describe('vault: refused at startup', () => {
  it.each([
    ['rsa4096', 'rsa-4096', /only rsa-2048 and ecdsa-p256/],
    ['p384', 'ecdsa-p384', /only rsa-2048 and ecdsa-p256/],
    ['ed', 'ed25519', /Ed25519 is not supported/],
    ['aes', 'aes256-gcm96', /not a signing key/],
  ])('%s (%s) -> KEY_UNSUPPORTED naming the key and its type', async (key, type, why) => {
    const signsBefore = vault.count('sign');
    const err = await rejection(provider({ key }));
    expect(err.code).toBe('KEY_UNSUPPORTED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`key "vault-${key}"`);
    expect(err.message).toContain(type);
    expect(err.message).toMatch(why);
    expect(vault.count('sign')).toBe(signsBefore);
  });

  it('a missing key -> KEY_NOT_FOUND; a key deleted after startup -> KEY_NOT_FOUND on sign', async () => {
    const err = await rejection(provider({ key: 'nope' }));
    expect(err.code).toBe('KEY_NOT_FOUND');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('transit key "nope"');
    vault.addKey('doomed', 'ecdsa-p256');
    const p = await provider({ key: 'doomed' });
    vault.keys.delete('transit/doomed');
    const gone = await rejection(p.sign(payload().digest));
    expect(gone.code).toBe('KEY_NOT_FOUND');
    expect(gone.message).toMatch(/encryption key not found/);
  });

  it('a bad token -> KEY_DENIED (not retried, token not in the message)', async () => {
    const err = await rejection(provider({ key: 'ec', token: 'hvs.wrong-token-xyz' }));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.retryable).toBe(false);
    expect(err.status).toBe(403);
    expect(err.message).toMatch(/permission denied/);
    expect(err.message).not.toContain('hvs.wrong-token-xyz');
  });

  it('no address, no credentials, unreadable caFile -> KEY_INVALID', async () => {
    vi.stubEnv('VAULT_ADDR', '');
    vi.stubEnv('BAO_ADDR', '');
    vi.stubEnv('VAULT_TOKEN', '');
    vi.stubEnv('BAO_TOKEN', '');
    try {
      const noAddr = await rejection(createVaultKeyProvider({ name: 'x', provider: 'vault', key: 'ec', token: TOKEN }, { baseDir: tmp.dir }));
      expect(noAddr.code).toBe('KEY_INVALID');
      expect(noAddr.message).toMatch(/VAULT_ADDR/);
      const noCreds = await rejection(createVaultKeyProvider({ name: 'x', provider: 'vault', key: 'ec', address: vault.url }, { baseDir: tmp.dir }));
      expect(noCreds.code).toBe('KEY_INVALID');
      expect(noCreds.message).toMatch(/VAULT_TOKEN/);
      const noCa = await rejection(provider({ key: 'ec', caFile: 'missing-ca.pem' }));
      expect(noCa.code).toBe('KEY_INVALID');
      const badUrl = await rejection(provider({ key: 'ec', address: 'ftp://127.0.0.1:1' }));
      expect(badUrl.code).toBe('KEY_INVALID');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('VAULT_ADDR and VAULT_TOKEN are used when the config has no address/token', async () => {
    vi.stubEnv('VAULT_ADDR', vault.url);
    vi.stubEnv('VAULT_TOKEN', TOKEN);
    try {
      const p = await createVaultKeyProvider({ name: 'env', provider: 'vault', key: 'ec' }, { baseDir: tmp.dir });
      open.push(p);
      expect(p.algorithm).toBe('ecdsa-p256');
      expect(vault.calls.at(-1)!.token).toBe(TOKEN);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('vault: error classification', () => {
  it('429 -> KEY_THROTTLED (retryable, Retry-After); 500/503 -> KEY_UNAVAILABLE (retryable); no internal retries', async () => {
    const p = await provider({ key: 'ec' });
    const before = vault.count('sign');
    vault.inject({ on: 'sign', status: 429, retryAfter: '7' });
    const t = await rejection(p.sign(payload().digest));
    expect(t.code).toBe('KEY_THROTTLED');
    expect(t.retryable).toBe(true);
    expect(t.retryAfterSeconds).toBe(7);
    expect(t.message).toContain('vault-ec');
    for (const status of [500, 503]) {
      vault.inject({ on: 'sign', status, body: { errors: status === 503 ? ['Vault is sealed'] : ['internal error'] } });
      const u = await rejection(p.sign(payload().digest));
      expect(u.code).toBe('KEY_UNAVAILABLE');
      expect(u.retryable).toBe(true);
      expect(u.status).toBe(status);
    }
    expect(vault.count('sign')).toBe(before + 3);
    // and it recovers
    await p.sign(payload().digest);
  });

  it('throttled or unavailable at startup is retryable too', async () => {
    vault.inject({ on: 'keys', status: 429 });
    expect((await rejection(provider({ key: 'ec' }))).code).toBe('KEY_THROTTLED');
    vault.inject({ on: 'keys', status: 502 });
    expect((await rejection(provider({ key: 'ec' }))).code).toBe('KEY_UNAVAILABLE');
  });

  it('a timeout and a refused connection -> KEY_UNAVAILABLE (retryable)', async () => {
    const p = await provider({ key: 'ec', timeoutSeconds: 0.3 });
    vault.inject({ on: 'sign', delayMs: 1500 });
    const t0 = Date.now();
    const slow = await rejection(p.sign(payload().digest));
    expect(Date.now() - t0).toBeLessThan(1400);
    expect(slow.code).toBe('KEY_UNAVAILABLE');
    expect(slow.retryable).toBe(true);
    expect(slow.message).toMatch(/did not answer within 300 ms/);
    const port = await freePort();
    const refused = await rejection(provider({ key: 'ec', address: `http://127.0.0.1:${port}` }));
    expect(refused.code).toBe('KEY_UNAVAILABLE');
    expect(refused.retryable).toBe(true);
    expect(refused.message).toMatch(/ECONNREFUSED/);
  });

  it('a token revoked after startup -> KEY_DENIED on sign', async () => {
    const extra = 'hvs.short-lived-token';
    const v2 = await startVault({ tokens: [extra] });
    try {
      v2.addKey('k', 'ecdsa-p256');
      const p = await createVaultKeyProvider({ name: 'rev', provider: 'vault', key: 'k', address: v2.url, token: extra }, { baseDir: tmp.dir });
      open.push(p);
      await p.sign(payload().digest);
      v2.revoke(extra);
      const err = await rejection(p.sign(payload().digest));
      expect(err.code).toBe('KEY_DENIED');
      expect(err.message).not.toContain(extra);
    } finally {
      await v2.close();
    }
  });
});

describe('vault: AppRole', () => {
  const approle = { token: undefined, roleId: ROLE_ID, secretId: SECRET_ID };

  it('logs in once, uses the issued token, renews it before it expires, logs in again past the max TTL', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const logins = vault.count('login');
    const p = await provider({ key: 'ec', ...approle });
    expect(vault.count('login')).toBe(logins + 1);
    const issued = vault.issued.at(-1)!;
    expect(vault.calls.at(-1)!.token).toBe(issued);
    await p.sign(payload().digest);
    expect(vault.count('login')).toBe(logins + 1);
    expect(vault.calls.at(-1)!.token).toBe(issued);
    // 50 of 60 minutes later: renew-self first (renewable token), then sign
    vi.setSystemTime(Date.now() + 50 * 60_000);
    const renews = vault.count('renew');
    const { payload: msg, digest } = payload();
    const sig = await p.sign(digest, msg);
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
    expect(vault.count('renew')).toBe(renews + 1);
    expect(vault.count('login')).toBe(logins + 1);
    // far beyond the token's max TTL (10 h in the stand-in): renewal cannot help, it logs in again
    vi.setSystemTime(Date.now() + 11 * 3600_000);
    await p.sign(payload().digest);
    expect(vault.count('login')).toBe(logins + 2);
    expect(vault.calls.at(-1)!.token).toBe(vault.issued.at(-1));
  });

  it('renewal and login failing while the token is still valid: the sign goes through with the current token', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const p = await provider({ key: 'ec', ...approle });
    const current = vault.issued.at(-1)!;
    vi.setSystemTime(Date.now() + 45 * 60_000);
    vault.inject({ on: 'renew', status: 503 });
    vault.inject({ on: 'login', status: 503 });
    const { payload: msg, digest } = payload();
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), await p.sign(digest))).toBe(true);
    expect(vault.calls.at(-1)!.token).toBe(current);
    expect(vault.calls.slice(-3).map((c) => [c.kind, c.status])).toEqual([
      ['renew', 503],
      ['login', 503],
      ['sign', 200],
    ]);
  });

  it('a non-renewable token is replaced by a new login before it expires', async () => {
    const v2 = await startVault({ approle: { roleId: ROLE_ID, secretId: SECRET_ID, ttlSeconds: 60, renewable: false } });
    try {
      v2.addKey('k', 'rsa-2048');
      vi.useFakeTimers({ toFake: ['Date'] });
      const p = await createVaultKeyProvider(
        { name: 'nr', provider: 'vault', key: 'k', address: v2.url, roleId: ROLE_ID, secretId: SECRET_ID },
        { baseDir: tmp.dir },
      );
      open.push(p);
      vi.setSystemTime(Date.now() + 45_000);
      await p.sign(payload().digest);
      expect(v2.count('login')).toBe(2);
      expect(v2.count('renew')).toBe(0);
      expect(v2.calls.at(-1)!.status).toBe(200);
    } finally {
      await v2.close();
    }
  });

  it('a revoked AppRole token is replaced by one new login; a wrong secret id -> KEY_DENIED', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const p = await provider({ key: 'rsa', ...approle });
    vi.setSystemTime(Date.now() + 10_000);
    vault.revoke(vault.issued.at(-1)!);
    const logins = vault.count('login');
    const { payload: msg, digest } = payload();
    const sig = await p.sign(digest, msg);
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
    expect(vault.count('login')).toBe(logins + 1);
    vi.useRealTimers();
    const err = await rejection(provider({ key: 'rsa', token: undefined, roleId: ROLE_ID, secretId: 'wrong-secret-id' }));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.message).toMatch(/AppRole login .* refused/);
    expect(err.message).toMatch(/invalid role or secret ID/);
    expect(err.message).not.toContain('wrong-secret-id');
  });
});

describe('vault: namespace and TLS', () => {
  it('sends X-Vault-Namespace (namespace field or VAULT_NAMESPACE); without it the stand-in denies', async () => {
    const v2 = await startVault({ tokens: [TOKEN], namespace: 'team-a' });
    try {
      v2.addKey('k', 'ecdsa-p256');
      const base = { name: 'ns', provider: 'vault' as const, key: 'k', address: v2.url, token: TOKEN };
      const denied = await rejection(createVaultKeyProvider(base, { baseDir: tmp.dir }));
      expect(denied.code).toBe('KEY_DENIED');
      const p = await createVaultKeyProvider({ ...base, namespace: 'team-a' }, { baseDir: tmp.dir });
      open.push(p);
      await p.sign(payload().digest);
      expect(v2.calls.at(-1)!.namespace).toBe('team-a');
      vi.stubEnv('VAULT_NAMESPACE', 'team-a');
      try {
        const q = await createVaultKeyProvider(base, { baseDir: tmp.dir });
        open.push(q);
      } finally {
        vi.unstubAllEnvs();
      }
    } finally {
      await v2.close();
    }
  });

  it('https with caFile (relative to the config folder); without the CA -> KEY_INVALID naming caFile', async () => {
    const cert = await selfSignedCert(tmp.dir, 'vault-tls', { cn: '127.0.0.1', san: 'IP:127.0.0.1,DNS:localhost' });
    const v2 = await startVault({ tokens: [TOKEN], tls: cert });
    try {
      v2.addKey('k', 'ecdsa-p256');
      const base = { name: 'tls', provider: 'vault' as const, key: 'k', address: v2.url, token: TOKEN };
      const err = await rejection(createVaultKeyProvider(base, { baseDir: tmp.dir }));
      expect(err.code).toBe('KEY_INVALID');
      expect(err.message).toMatch(/caFile/);
      const p = await createVaultKeyProvider({ ...base, caFile: path.basename(cert.certFile) }, { baseDir: tmp.dir });
      open.push(p);
      const { payload: msg, digest } = payload();
      expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), await p.sign(digest))).toBe(true);
    } finally {
      await v2.close();
    }
  });
});

describe('vault: config and references', () => {
  it('parses hashivault://KEY and openbao://KEY like sigstore; other schemes are not ours', () => {
    expect(parseVaultRef('hashivault://my-key')).toEqual({ key: 'my-key' });
    expect(parseVaultRef('hashivault://a.b_c-d')).toEqual({ key: 'a.b_c-d' });
    expect(parseVaultRef('hashivault://k')).toEqual({ key: 'k' });
    expect(parseVaultRef('openbao://signing')).toEqual({ key: 'signing' });
    expect(parseVaultRef('awskms:///alias/x')).toBeUndefined();
    expect(parseVaultRef('pkcs11:token=a;object=b')).toBeUndefined();
    for (const bad of ['hashivault://', 'hashivault://a/b', 'hashivault://-k', 'hashivault://k-', 'hashivault://k?v=1', 'hashivault://k y']) {
      expect(() => parseVaultRef(bad), bad).toThrow(/hashivault:\/\/KEY/);
    }
  });

  it('a ref in keys[] resolves to the vault provider, keeping fields given next to it', () => {
    const r = keyConfigSchema.safeParse({ name: 'v', ref: 'hashivault://signer', address: 'https://vault:8200', namespace: 'ns' });
    expect(r.success).toBe(true);
    expect(r.data).toEqual({ name: 'v', provider: 'vault', key: 'signer', address: 'https://vault:8200', namespace: 'ns' });
    const bad = keyConfigSchema.safeParse({ name: 'v', ref: 'hashivault://a/b' });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.message).toMatch(/invalid vault reference/);
  });

  it('schema: strict, AppRole needs both ids, token xor AppRole, positive keyVersion', () => {
    const base = { name: 'v', provider: 'vault', key: 'k' };
    expect(vaultKeySchema.safeParse(base).success).toBe(true);
    expect(vaultKeySchema.safeParse({ ...base, region: 'x' }).success).toBe(false);
    expect(vaultKeySchema.safeParse({ ...base, roleId: 'r' }).success).toBe(false);
    expect(vaultKeySchema.safeParse({ ...base, roleId: 'r', secretId: 's' }).success).toBe(true);
    expect(vaultKeySchema.safeParse({ ...base, roleId: 'r', secretId: 's', token: 't' }).success).toBe(false);
    expect(vaultKeySchema.safeParse({ ...base, keyVersion: 0 }).success).toBe(false);
    expect(vaultKeySchema.safeParse({ ...base, mount: '../sys' }).success).toBe(false);
    expect(vaultKeySchema.safeParse({ ...base, key: 'a/b' }).success).toBe(false);
  });
});

describe('vault: edge limits (Retry-After cap, capped reads, deadline, answer shapes, redaction)', () => {
  it('a huge Retry-After is capped at 10 minutes', async () => {
    const p = await provider({ key: 'ec' });
    vault.inject({ on: 'sign', status: 429, retryAfter: '99999999' });
    const t = await rejection(p.sign(payload().digest));
    expect([t.code, t.retryable, t.retryAfterSeconds]).toEqual(['KEY_THROTTLED', true, MAX_RETRY_AFTER_SECONDS]);
    vault.inject({ on: 'sign', status: 503, retryAfter: 'Fri, 31 Dec 9999 23:59:59 GMT' });
    expect((await rejection(p.sign(payload().digest))).retryAfterSeconds).toBe(MAX_RETRY_AFTER_SECONDS);
  });

  it('an error body echoing the token or the AppRole secret never reaches the message', async () => {
    const p = await provider({ key: 'ec' });
    vault.inject({
      on: 'sign',
      status: 403,
      body: { errors: [`permission denied for token ${TOKEN}`, `X-Vault-Token: ${TOKEN}`, `Authorization: Bearer ${TOKEN}`] },
    });
    const denied = await rejection(p.sign(payload().digest));
    expect(denied.code).toBe('KEY_DENIED');
    expect(denied.message).toContain('permission denied for token');
    for (const s of SECRETS) expect(denied.message).not.toContain(s);
    vault.inject({ on: 'login', status: 400, body: { errors: [`invalid role or secret ID: role_id=${ROLE_ID} secret ${SECRET_ID} (plain echo)`] } });
    const login = await rejection(provider({ key: 'ec', token: undefined, roleId: ROLE_ID, secretId: SECRET_ID }));
    expect(login.code).toBe('KEY_DENIED');
    expect(login.message).toContain('plain echo');
    for (const s of [...SECRETS, ROLE_ID]) expect(login.message).not.toContain(s);
  });

  it('answers of the wrong shape: key read -> KEY_INVALID, sign -> KEY_SIGN_FAILED, naming the field', async () => {
    vault.inject({ on: 'keys', status: 200, body: { data: { type: 'ecdsa-p256', latest_version: '1', keys: {} } } });
    const read = await rejection(provider({ key: 'ec' }));
    expect([read.code, read.retryable]).toEqual(['KEY_INVALID', false]);
    expect(read.message).toMatch(/latest_version/);
    vault.inject({ on: 'keys', status: 200, body: 42 });
    expect((await rejection(provider({ key: 'ec' }))).code).toBe('KEY_INVALID');
    const p = await provider({ key: 'ec' });
    vault.inject({ on: 'sign', status: 200, body: { data: { signature: 42 } } });
    const sign = await rejection(p.sign(payload().digest));
    expect([sign.code, sign.retryable]).toEqual(['KEY_SIGN_FAILED', false]);
    expect(sign.message).toMatch(/data\.signature/);
  });

  it('an answer over the cap is refused without being buffered (key read 4 MiB, sign 64 KiB)', async () => {
    vault.inject({
      on: 'keys',
      status: 200,
      body: { data: { type: 'ecdsa-p256', latest_version: 1, keys: { 1: { public_key: 'x'.repeat(5 * 1024 * 1024) } } } },
    });
    const read = await rejection(provider({ key: 'ec' }));
    expect([read.code, read.retryable]).toEqual(['KEY_INVALID', false]);
    expect(read.message).toMatch(/larger than 4194304 bytes/);
    const p = await provider({ key: 'ec' });
    vault.inject({ on: 'sign', status: 200, body: { data: { signature: `vault:v1:${'A'.repeat(100_000)}` } } });
    const sign = await rejection(p.sign(payload().digest));
    expect([sign.code, sign.retryable]).toEqual(['KEY_SIGN_FAILED', false]);
    expect(sign.message).toMatch(/larger than 65536 bytes/);
  });

  it('a body dripped a byte at a time hits the overall deadline', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const server = createServer((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const t = setInterval(() => res.write(' '), 50);
      timers.add(t);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const started = Date.now();
      const err = await rejection(provider({ key: 'ec', address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, timeoutSeconds: 0.4 }));
      expect([err.code, err.retryable]).toEqual(['KEY_UNAVAILABLE', true]);
      expect(err.message).toMatch(/did not complete within 400 ms/);
      expect(Date.now() - started).toBeLessThan(30_000); // bounded (it would drip forever)
    } finally {
      for (const t of timers) clearInterval(t);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('vault: RSASSA-PSS (Notation) through rsaPadding', () => {
  const pssVerify = (pem: string, msg: Buffer, sig: Buffer) =>
    verify('sha256', msg, { key: createPublicKey(pem), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);

  it('RSA-2048: pss sends signature_algorithm pss with salt_length hash; verifies with salt 32; default unchanged', async () => {
    for (const key of ['rsa']) {
      const p = await provider({ key });
      expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
      const pem = await p.publicKeyPem();
      for (const withPayload of [false, true]) {
        const { payload: msg, digest } = payload();
        const before = vault.calls.length;
        const sig = await p.sign(digest, withPayload ? msg : undefined, { rsaPadding: 'pss' });
        expect(pssVerify(pem, msg, sig)).toBe(true);
        expect(verify('sha256', msg, createPublicKey(pem), sig)).toBe(false);
        const calls = vault.calls.slice(before);
        expect(calls.map((c) => c.kind)).toEqual(['sign']);
        expect(calls[0]!.body).toMatchObject({ prehashed: true, hash_algorithm: 'sha2-256', signature_algorithm: 'pss', salt_length: 'hash' });
      }
      const { payload: msg, digest } = payload();
      const plain = await p.sign(digest, msg, { rsaPadding: 'pkcs1v15' });
      expect(verify('sha256', msg, createPublicKey(pem), plain)).toBe(true);
      expect(vault.calls.at(-1)!.body).toMatchObject({ signature_algorithm: 'pkcs1v15' });
      expect(vault.calls.at(-1)!.body.salt_length).toBeUndefined();
    }
  });

  it('a Vault that ignores salt_length (maximum salt) is caught: KEY_SIGN_FAILED naming the key, not retried', async () => {
    const p = await provider({ key: 'rsa' });
    vault.ignoreSaltLength = true;
    try {
      for (const withPayload of [false, true]) {
        const { payload: msg, digest } = payload();
        const err = await rejection(p.sign(digest, withPayload ? msg : undefined, { rsaPadding: 'pss' }));
        expect(err.code).toBe('KEY_SIGN_FAILED');
        expect(err.retryable).toBe(false);
        expect(err.message).toContain('vault-rsa');
        expect(err.message).toMatch(/32-byte salt.*salt_length/);
      }
    } finally {
      vault.ignoreSaltLength = false;
    }
  });

  it('ECDSA P-256 ignores rsaPadding (asn1, no signature_algorithm)', async () => {
    const p = await provider({ key: 'ec' });
    const { payload: msg, digest } = payload();
    const sig = await p.sign(digest, msg, { rsaPadding: 'pss' });
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
    expect(vault.calls.at(-1)!.body).toMatchObject({ marshaling_algorithm: 'asn1' });
    expect(vault.calls.at(-1)!.body.signature_algorithm).toBeUndefined();
  });
});
