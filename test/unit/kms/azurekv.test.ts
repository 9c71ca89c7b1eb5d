/**
 * The azurekv provider with the REAL @azure/keyvault-keys client (and, in one block, the real
 * @azure/identity ClientSecretCredential) against local stand-ins: a Key Vault that insists on
 * the 401 challenge flow and signs with real keys (ES256 as raw r||s, like Azure), and an https
 * Microsoft Entra ID authority.
 */
import { constants, createHash, randomBytes, verify } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TokenCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_SECONDS } from '../../../src/edge/retry-after.js';
import { SignetError } from '../../../src/errors.js';
import { azureKvKeySchema, createAzureKvKeyProvider, parseAzureKmsRef, type AzureKvKeyProvider } from '../../../src/kms/azurekv.js';
import { keyConfigSchema } from '../../../src/kms/providers.js';
import { freePort } from '../../helpers/ports.js';
import { selfSignedCert } from '../../helpers/registry.js';
import {
  startAuthorityStandIn,
  startAzureKvStandIn,
  type AuthorityStandIn,
  type AzureKvStandIn,
  type AzureStandInKey,
} from '../../helpers/standins/azure-kv.js';
import { cosignVerifyBlob, makeTempDir } from './cosign-cli.js';

// Belt and braces: nothing here may fall back to the environment credential chain.
for (const v of ['AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT'])
  delete process.env[v];

const TOKEN = `test-token-${randomBytes(8).toString('hex')}`;
const scopesSeen: string[] = [];
const credential: TokenCredential = {
  async getToken(scopes) {
    scopesSeen.push(...(Array.isArray(scopes) ? scopes : [scopes]));
    return { token: TOKEN, expiresOnTimestamp: Date.now() + 3600_000 };
  },
};

let kv: AzureKvStandIn;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  kv = await startAzureKvStandIn();
  kv.tokens.add(TOKEN);
  ({ dir, cleanup } = await makeTempDir('signet-azurekv-'));
});
afterAll(async () => {
  await kv?.close();
  await cleanup?.();
});

let seq = 0;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

function config(keyName: string, extra: Record<string, unknown> = {}) {
  return azureKvKeySchema.parse({
    name: `az-${seq}`,
    provider: 'azurekv',
    vaultUrl: kv.vaultUrl,
    keyName,
    insecureEndpoint: true,
    skipChallengeResourceVerification: true,
    ...extra,
  });
}

function provider(keyName: string, extra: Record<string, unknown> = {}): Promise<AzureKvKeyProvider> {
  return createAzureKvKeyProvider(config(keyName, extra), { baseDir: dir }, { credential });
}

async function withKey(spec: Parameters<AzureKvStandIn['addKey']>[1], extra: Record<string, unknown> = {}) {
  const keyName = `key-${++seq}`;
  const key = kv.addKey(keyName, spec);
  return { keyName, key, p: await provider(keyName, { keyVersion: key.version, ...extra }) };
}

async function rejection(p: Promise<unknown>): Promise<SignetError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SignetError);
    return err as SignetError;
  }
  throw new Error('expected a rejection');
}

const callsFor = (keyName: string) => kv.calls.filter((c) => c.path.startsWith(`/keys/${keyName}`));
const pemOf = (k: AzureStandInKey) => k.publicKey!.export({ type: 'spki', format: 'pem' }) as string;

describe('azurekms references and schema', () => {
  it('parses cosign-style references', () => {
    expect(parseAzureKmsRef('azurekms://myvault.vault.azure.net/signing-key')).toEqual({ vaultUrl: 'https://myvault.vault.azure.net', keyName: 'signing-key' });
    expect(parseAzureKmsRef('azurekms://myvault.vault.azure.net/signing-key/0123456789abcdef0123456789abcdef')).toEqual({
      vaultUrl: 'https://myvault.vault.azure.net',
      keyName: 'signing-key',
      keyVersion: '0123456789abcdef0123456789abcdef',
    });
    // sigstore's pattern allows an empty version after a trailing slash
    expect(parseAzureKmsRef('azurekms://myvault.vault.azure.net/k/')).toEqual({ vaultUrl: 'https://myvault.vault.azure.net', keyName: 'k' });
    expect(parseAzureKmsRef('azurekms://hsm1.managedhsm.azure.net/k')).toEqual({ vaultUrl: 'https://hsm1.managedhsm.azure.net', keyName: 'k' });
    expect(parseAzureKmsRef('gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1')).toBeUndefined();
    expect(parseAzureKmsRef('awskms:///alias/x')).toBeUndefined();
  });

  it('refuses malformed references', () => {
    for (const bad of [
      'azurekms://',
      'azurekms://myvault.vault.azure.net',
      'azurekms://myvault.vault.azure.net/',
      'azurekms:///key',
      'azurekms://myvault.vault.azure.net/k/v/extra',
      'azurekms://myvault.vault.azure.net/k?api-version=1',
      'azurekms://myvault.vault.azure.net/bad_name',
      'azurekms://myvault.vault.azure.net/k/not-a-version!',
      'azurekms://user@myvault.vault.azure.net/k',
    ]) {
      expect(() => parseAzureKmsRef(bad), bad).toThrow();
    }
    expect(() => parseAzureKmsRef('azurekms://myvault/key')).toThrow(/myvault\.vault\.azure\.net/);
  });

  it('resolves keys[].ref through the provider list', () => {
    const cfg = keyConfigSchema.parse({ name: 'a', ref: 'azurekms://myvault.vault.azure.net/signing/abc123', clientId: 'c' });
    expect(cfg).toMatchObject({
      name: 'a',
      provider: 'azurekv',
      vaultUrl: 'https://myvault.vault.azure.net',
      keyName: 'signing',
      keyVersion: 'abc123',
      clientId: 'c',
    });
    const bad = keyConfigSchema.safeParse({ name: 'a', ref: 'azurekms://myvault/key' });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toMatch(/invalid azurekv reference/);
  });

  it('schema: strict, https unless insecureEndpoint, base URL only, secret needs tenant and client', () => {
    const ok = { name: 'a', provider: 'azurekv', vaultUrl: 'https://v.vault.azure.net', keyName: 'k' };
    expect(azureKvKeySchema.safeParse(ok).success).toBe(true);
    expect(azureKvKeySchema.safeParse({ ...ok, region: 'x' }).success).toBe(false);
    expect(azureKvKeySchema.safeParse({ ...ok, vaultUrl: 'http://v.vault.azure.net' }).success).toBe(false);
    expect(azureKvKeySchema.safeParse({ ...ok, vaultUrl: 'http://127.0.0.1:1', insecureEndpoint: true }).success).toBe(true);
    expect(azureKvKeySchema.safeParse({ ...ok, vaultUrl: 'https://v.vault.azure.net/keys/k' }).success).toBe(false);
    expect(azureKvKeySchema.safeParse({ ...ok, clientSecret: 's' }).success).toBe(false);
    expect(azureKvKeySchema.safeParse({ ...ok, clientSecret: 's', clientId: 'c', tenantId: 't' }).success).toBe(true);
    expect(azureKvKeySchema.safeParse({ ...ok, authorityHost: 'http://login.example' }).success).toBe(false);
    expect(azureKvKeySchema.safeParse({ ...ok, keyName: 'a_b' }).success).toBe(false);
  });
});

describe('azurekv signing', () => {
  it('RSA-2048: challenge once at startup, then exactly one request per signature (RS256, PKCS#1 v1.5)', async () => {
    const { keyName, key, p } = await withKey({ kty: 'RSA', bits: 2048 });
    expect(p.algorithm).toBe('rsa-2048');
    expect(p.keyId).toBe(`${kv.vaultUrl}/keys/${keyName}/${key.version}`);
    const pem = await p.publicKeyPem();
    expect(pem).toBe(pemOf(key));
    // startup: the unauthenticated challenge probe, then the authenticated GET
    expect(callsFor(keyName).map((c) => `${c.op}${c.challenge ? ':challenge' : ''}`)).toEqual(['getKey:challenge', 'getKey']);
    expect(scopesSeen).toContain('https://vault.azure.net/.default');

    for (let i = 1; i <= 3; i++) {
      const payload = randomBytes(64);
      const sig = await p.sign(sha256(payload), i === 3 ? payload : undefined);
      expect(sig).toHaveLength(256);
      expect(verify('sha256', payload, pem, sig)).toBe(true);
      expect(callsFor(keyName)).toHaveLength(2 + i); // no probe, no re-fetch of the key
    }
    expect(
      callsFor(keyName)
        .slice(2)
        .every((c) => c.op === 'sign' && !c.challenge && c.path === `/keys/${keyName}/${key.version}/sign`),
    ).toBe(true);
    await p.publicKeyPem();
    expect(kv.count('getKey', keyName)).toBe(1);
  });

  it('EC P-256: ES256 raw r||s becomes DER that node:crypto and cosign verify-blob accept', async () => {
    const { keyName, key, p } = await withKey({ kty: 'EC-HSM', crv: 'P-256' });
    expect(p.algorithm).toBe('ecdsa-p256');
    const pem = await p.publicKeyPem();
    expect(pem).toBe(pemOf(key));
    const payload = Buffer.from('{"critical":{"identity":{"docker-reference":"r/x"}}}');
    const sig = await p.sign(sha256(payload));
    expect(sig[0]).toBe(0x30);
    expect(verify('sha256', payload, pem, sig)).toBe(true);
    const res = await cosignVerifyBlob(dir, pem, payload, sig);
    expect(res.code, res.stderr).toBe(0);
    expect(kv.count('sign', keyName)).toBe(1);
  });

  it('without keyVersion the current version is pinned at startup; a later rotation does not change the signing key', async () => {
    const keyName = `key-${++seq}`;
    const v1 = kv.addKey(keyName, { kty: 'EC', crv: 'P-256' });
    const p = await provider(keyName);
    expect(p.keyId.endsWith(`/${v1.version}`)).toBe(true);
    kv.addKey(keyName, { kty: 'EC', crv: 'P-256' }); // rotation: v2 is now current
    const payload = Buffer.from('after rotation');
    const sig = await p.sign(sha256(payload));
    expect(verify('sha256', payload, await p.publicKeyPem(), sig)).toBe(true);
    expect(kv.calls.at(-1)?.path).toBe(`/keys/${keyName}/${v1.version}/sign`);
  });

  it('refuses unsupported keys at startup with KEY_UNSUPPORTED naming the key', async () => {
    const cases: [Parameters<AzureKvStandIn['addKey']>[1], RegExp][] = [
      [{ kty: 'EC', crv: 'P-384' }, /EC P-384: only the P-256 curve/],
      [{ kty: 'EC-HSM', crv: 'P-256K' }, /P-256K/],
      [{ kty: 'RSA', bits: 1024 }, /RSA 1024-bit: RSA keys must have 2048 bits/],
      [{ kty: 'oct-HSM' }, /oct-HSM: only RSA-2048/],
      [{ kty: 'RSA', bits: 2048, keyOps: ['verify', 'encrypt', 'decrypt'] }, /key_ops \(verify, encrypt, decrypt\) do not allow sign/],
    ];
    for (const [spec, why] of cases) {
      const keyName = `key-${++seq}`;
      kv.addKey(keyName, spec);
      const err = await rejection(provider(keyName));
      expect(err.code, JSON.stringify(spec)).toBe('KEY_UNSUPPORTED');
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(`key "az-${seq}"`);
      expect(err.message).toMatch(why);
      expect(kv.count('sign', keyName)).toBe(0);
    }
  });

  it('disabled, expired and not-yet-valid keys are KEY_DISABLED at startup', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const [spec, why] of [
      [{ kty: 'RSA', enabled: false }, /disabled/],
      [{ kty: 'EC', crv: 'P-256', exp: now - 60 }, /expired at/],
      [{ kty: 'EC', crv: 'P-256', nbf: now + 3600 }, /not valid before/],
    ] as const) {
      const keyName = `key-${++seq}`;
      kv.addKey(keyName, spec);
      const err = await rejection(provider(keyName));
      expect(err.code).toBe('KEY_DISABLED');
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(why);
    }
  });
});

describe('azurekv errors', () => {
  it('429 is KEY_THROTTLED with Retry-After; the SDK does not retry', async () => {
    const { keyName, p } = await withKey({ kty: 'EC', crv: 'P-256' });
    kv.fail('sign', { status: 429, code: 'Throttled', message: 'Request was not processed because too many requests were received.', retryAfter: 12 });
    const before = callsFor(keyName).length;
    const err = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(err.code).toBe('KEY_THROTTLED');
    expect(err.retryable).toBe(true);
    expect(err.retryAfterSeconds).toBe(12);
    expect(err.message).toContain(`key "az-${seq}"`);
    expect(callsFor(keyName).length - before).toBe(1);
    await p.sign(sha256(Buffer.from('x'))); // and then it works
  });

  it('an answer dripped a byte at a time hits the per-call deadline (timeoutSeconds)', async () => {
    const { p } = await withKey({ kty: 'EC', crv: 'P-256' }, { timeoutSeconds: 0.4 });
    kv.fail('sign', { status: 200, code: 'x', dripMs: 50 });
    const started = Date.now();
    const err = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect([err.code, err.retryable]).toEqual(['KEY_UNAVAILABLE', true]);
    expect(Date.now() - started).toBeLessThan(10_000); // bounded (it would drip for ever)
  }, 20_000);

  it('a huge Retry-After is capped at 10 minutes', async () => {
    const { p } = await withKey({ kty: 'EC', crv: 'P-256' });
    kv.fail('sign', { status: 429, code: 'Throttled', message: 'slow down', retryAfter: 99999999 });
    expect(await rejection(p.sign(sha256(Buffer.from('x'))))).toMatchObject({ code: 'KEY_THROTTLED', retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
  });

  it('5xx and timeouts are KEY_UNAVAILABLE (retryable) after exactly one request', async () => {
    const { keyName, p } = await withKey({ kty: 'EC', crv: 'P-256' }, { timeoutSeconds: 0.5 });
    for (const status of [500, 503]) {
      kv.fail('sign', { status, code: 'ServiceUnavailable' });
      const before = callsFor(keyName).length;
      const err = await rejection(p.sign(sha256(Buffer.from('x'))));
      expect(err.code, String(status)).toBe('KEY_UNAVAILABLE');
      expect(err.retryable).toBe(true);
      expect(callsFor(keyName).length - before).toBe(1);
    }
    kv.hang('sign');
    const t0 = Date.now();
    const err = await rejection(p.sign(sha256(Buffer.from('hang'))));
    expect(err.code).toBe('KEY_UNAVAILABLE');
    expect(err.retryable).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('an unreachable vault is KEY_UNAVAILABLE', async () => {
    const port = await freePort();
    const err = await rejection(createAzureKvKeyProvider(config('k', { vaultUrl: `http://127.0.0.1:${port}` }), { baseDir: dir }, { credential }));
    expect(err.code).toBe('KEY_UNAVAILABLE');
    expect(err.retryable).toBe(true);
  });

  it('denied, missing and disabled keys are non-retryable and say which key and why', async () => {
    const denied = `key-${++seq}`;
    kv.addKey(denied, { kty: 'EC', crv: 'P-256', denied: 'all' });
    let err = await rejection(provider(denied));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`/keys/${denied}`);
    expect(err.message).toMatch(/keys\/get and keys\/sign/);

    err = await rejection(provider(`key-${++seq}`));
    expect(err.code).toBe('KEY_NOT_FOUND');
    expect(err.retryable).toBe(false);
    const { key: other } = await withKey({ kty: 'EC', crv: 'P-256' });
    err = await rejection(provider(other.name, { keyVersion: '0'.repeat(32) }));
    expect(err.code).toBe('KEY_NOT_FOUND');

    // after startup: RBAC without keys/sign, then disabled
    const { key, p } = await withKey({ kty: 'RSA', bits: 2048 });
    key.denied = 'sign';
    err = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.message).toMatch(/ForbiddenByRbac/);
    delete key.denied;
    key.enabled = false;
    err = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(err.code).toBe('KEY_DISABLED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/KeyDisabled/);
  });

  it('a token the vault rejects is KEY_DENIED and the token is not in the message', async () => {
    const keyName = `key-${++seq}`;
    kv.addKey(keyName, { kty: 'EC', crv: 'P-256' });
    const leaky: TokenCredential = { getToken: async () => ({ token: 'Secret-Token-Value-123', expiresOnTimestamp: Date.now() + 3600_000 }) };
    const err = await rejection(createAzureKvKeyProvider(config(keyName), { baseDir: dir }, { credential: leaky }));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.retryable).toBe(false);
    expect(err.message).not.toContain('Secret-Token-Value-123');
    expect(JSON.stringify(err)).not.toContain('Secret-Token-Value-123');
  });
});

describe('azurekv with ClientSecretCredential against a stand-in authority (https, caFile)', () => {
  let authority: AuthorityStandIn;
  let tlsVault: AzureKvStandIn;
  const tenantId = '11111111-2222-3333-4444-555555555555';
  const secret = `s3cr3t-${randomBytes(6).toString('hex')}`;

  beforeAll(async () => {
    const { certFile, keyFile } = await selfSignedCert(dir, 'loopback', { cn: '127.0.0.1', san: 'IP:127.0.0.1' });
    const tls = { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
    await writeFile(path.join(dir, 'ca.pem'), tls.cert);
    const accept = new Set<string>();
    authority = await startAuthorityStandIn({ tls, tenantId, accept });
    authority.addClient('app-1', secret);
    // the vault accepts exactly what the authority issues
    tlsVault = await startAzureKvStandIn({ authority: authority.url, tenantId, tls, tokens: accept });
  });
  afterAll(async () => {
    await tlsVault?.close();
    await authority?.close();
  });

  const cfg = (keyName: string, extra: Record<string, unknown> = {}) =>
    azureKvKeySchema.parse({
      name: 'az-sp',
      provider: 'azurekv',
      vaultUrl: tlsVault.vaultUrl,
      keyName,
      tenantId,
      clientId: 'app-1',
      clientSecret: secret,
      authorityHost: authority.url,
      caFile: 'ca.pem',
      skipChallengeResourceVerification: true,
      ...extra,
    });

  it('gets a token with the client secret and signs over https', async () => {
    const key = tlsVault.addKey('sp-key', { kty: 'EC', crv: 'P-256' });
    const p = await createAzureKvKeyProvider(cfg('sp-key'), { baseDir: dir });
    const payload = Buffer.from('service principal');
    const sig = await p.sign(sha256(payload));
    expect(verify('sha256', payload, pemOf(key), sig)).toBe(true);
    expect(authority.tokenRequests).toEqual([{ clientId: 'app-1', scope: 'https://vault.azure.net/.default', ok: true }]);
    expect(tlsVault.count('sign', 'sp-key')).toBe(1);
  });

  it('a wrong client secret is KEY_DENIED, naming the Entra error but never the secret', async () => {
    tlsVault.addKey('sp-key2', { kty: 'EC', crv: 'P-256' });
    const err = await rejection(createAzureKvKeyProvider(cfg('sp-key2', { clientSecret: 'wrong-secret-value' }), { baseDir: dir }));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/invalid_client/);
    expect(err.message).not.toContain('wrong-secret-value');
    expect(err.message).not.toContain(secret);
  });

  it('without caFile the self-signed authority is not trusted (KEY_UNAVAILABLE or KEY_DENIED, never a hang)', async () => {
    tlsVault.addKey('sp-key3', { kty: 'EC', crv: 'P-256' });
    const c = cfg('sp-key3');
    delete (c as { caFile?: string }).caFile;
    const err = await rejection(createAzureKvKeyProvider({ ...c, timeoutSeconds: 5 }, { baseDir: dir }));
    expect(['KEY_UNAVAILABLE', 'KEY_DENIED']).toContain(err.code);
  });
});

describe('azurekv stand-in latency (real SDK, 127.0.0.1)', () => {
  it('sequential sign round trips', async () => {
    const rsa = await withKey({ kty: 'RSA', bits: 2048 });
    const ec = await withKey({ kty: 'EC', crv: 'P-256' });
    const d = sha256(Buffer.from('latency'));
    const out: string[] = [];
    for (const [label, p] of [
      ['RSA-2048', rsa.p],
      ['P-256', ec.p],
    ] as const) {
      for (let i = 0; i < 5; i++) await p.sign(d);
      const n = 40;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await p.sign(d);
      const ms = (performance.now() - t0) / n;
      out.push(`${label} ${ms.toFixed(2)} ms`);
      expect(ms).toBeLessThan(100);
    }
    console.log(`[azurekv] mean sign latency: ${out.join(', ')}`);
  });
});

describe('azurekv: RSASSA-PSS (Notation) through rsaPadding', () => {
  it('RSA-2048: pss asks Key Vault for PS256; the signature verifies with salt 32 (with or without the payload); default stays RS256', async () => {
    const { p } = await withKey({ kty: 'RSA', bits: 2048 });
    expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
    const pem = await p.publicKeyPem();
    const payload = randomBytes(64);
    for (const withPayload of [true, false]) {
      const sig = await p.sign(sha256(payload), withPayload ? payload : undefined, { rsaPadding: 'pss' });
      expect(sig).toHaveLength(256);
      expect(verify('sha256', payload, { key: pem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)).toBe(true);
      expect(verify('sha256', payload, pem, sig)).toBe(false);
    }
    const plain = await p.sign(sha256(payload), payload);
    expect(verify('sha256', payload, pem, plain)).toBe(true);
    expect(verify('sha256', payload, { key: pem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, plain)).toBe(false);
  });

  it('EC P-256 ignores rsaPadding (ES256)', async () => {
    const { p } = await withKey({ kty: 'EC', crv: 'P-256' });
    const payload = randomBytes(32);
    const sig = await p.sign(sha256(payload), undefined, { rsaPadding: 'pss' });
    expect(verify('sha256', payload, await p.publicKeyPem(), sig)).toBe(true);
  });
});

describe('azurekv: a PS256 answer that is not PSS with a 32-byte salt', () => {
  it('is refused with KEY_SIGN_FAILED naming the key (with or without the payload)', async () => {
    const { p } = await withKey({ kty: 'RSA', bits: 2048 });
    kv.ps256AsRs256 = true;
    try {
      const payload = randomBytes(64);
      for (const withPayload of [true, false]) {
        const err = await rejection(p.sign(sha256(payload), withPayload ? payload : undefined, { rsaPadding: 'pss' }));
        expect(err.code).toBe('KEY_SIGN_FAILED');
        expect(err.message).toContain(`"${p.name}"`);
        expect(err.message).toMatch(/PS256 signature .*does not verify .*salt 32/);
      }
    } finally {
      kv.ps256AsRs256 = false;
    }
  });
});
