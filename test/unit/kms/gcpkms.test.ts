/**
 * The gcpkms provider with the REAL @google-cloud/kms client against a local stand-in that speaks
 * both of the client's wire protocols (gRPC, the default; REST with `transport: rest`). The core
 * behaviour runs on both transports.
 */
import { constants, createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_SECONDS } from '../../../src/edge/retry-after.js';
import { SignetError } from '../../../src/errors.js';
import { crc32c } from '../../../src/kms/crc32c.js';
import { classifyGcpError, createGcpKmsKeyProvider, gcpKmsKeySchema, parseGcpKmsRef, type GcpKmsKeyProvider } from '../../../src/kms/gcpkms.js';
import { keyConfigSchema } from '../../../src/kms/providers.js';
import { startGcpKmsStandIn, type GcpAlgorithm, type GcpKmsStandIn, type ServiceAccount } from '../../helpers/standins/gcp-kms.js';
import { cosignVerifyBlob, makeTempDir } from './cosign-cli.js';

// Never let google-auth-library probe the GCE metadata server (169.254.169.254).
process.env.METADATA_SERVER_DETECTION = 'none';
delete process.env.GOOGLE_APPLICATION_CREDENTIALS;

let kms: GcpKmsStandIn;
let dir: string;
let cleanup: () => Promise<void>;
let account: ServiceAccount;
const open: GcpKmsKeyProvider[] = [];

beforeAll(async () => {
  kms = await startGcpKmsStandIn();
  ({ dir, cleanup } = await makeTempDir('signet-gcpkms-'));
  account = kms.addServiceAccount();
  await writeFile(path.join(dir, 'sa.json'), JSON.stringify(account.json), { mode: 0o600 });
});
afterAll(async () => {
  await Promise.all(open.map((p) => p.close()));
  await kms?.close();
  await cleanup?.();
});

let seq = 0;
const versionName = (alg: string) => `projects/test-project/locations/us-east1/keyRings/ring/cryptoKeys/${alg.toLowerCase()}-${++seq}/cryptoKeyVersions/1`;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

type Transport = 'grpc' | 'rest';

function config(transport: Transport, cryptoKeyVersion: string, extra: Record<string, unknown> = {}) {
  return gcpKmsKeySchema.parse({
    name: `gcp-${seq}`,
    provider: 'gcpkms',
    cryptoKeyVersion,
    keyFilename: 'sa.json',
    endpoint: transport === 'grpc' ? `${kms.grpcHost}:${kms.grpcPort}` : `${kms.restHost}:${kms.restPort}`,
    transport,
    insecureEndpoint: true,
    ...extra,
  });
}

async function provider(transport: Transport, cryptoKeyVersion: string, extra: Record<string, unknown> = {}): Promise<GcpKmsKeyProvider> {
  const p = await createGcpKmsKeyProvider(config(transport, cryptoKeyVersion, extra), { baseDir: dir });
  open.push(p);
  return p;
}

async function withKey(transport: Transport, alg: GcpAlgorithm, extra: Record<string, unknown> = {}) {
  const name = versionName(alg);
  const key = kms.addKey(name, alg);
  return { name, key, p: await provider(transport, name, extra) };
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

const callsFor = (name: string, method: string) => kms.calls.filter((c) => c.name === name && c.method === method);

describe('crc32c', () => {
  it('matches the standard check value and a bitwise reference', () => {
    expect(crc32c('123456789')).toBe(0xe3069283);
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
    const bitwise = (b: Uint8Array) => {
      let c = 0xffffffff;
      for (const x of b) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => crc32c(b) === bitwise(b)));
  });
});

describe('gcpkms references and schema', () => {
  const base = 'projects/my-proj/locations/global/keyRings/my-ring/cryptoKeys/my-key';

  it('parses cosign-style references with a pinned version', () => {
    expect(parseGcpKmsRef(`gcpkms://${base}/cryptoKeyVersions/3`)).toEqual({ cryptoKeyVersion: `${base}/cryptoKeyVersions/3` });
    // sigstore also accepts ".../versions/N"
    expect(parseGcpKmsRef(`gcpkms://${base}/versions/3`)).toEqual({ cryptoKeyVersion: `${base}/cryptoKeyVersions/3` });
    // legacy domain-scoped project ids contain a colon
    expect(parseGcpKmsRef('gcpkms://projects/example.com:proj/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1')).toEqual({
      cryptoKeyVersion: 'projects/example.com:proj/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1',
    });
    expect(parseGcpKmsRef('awskms:///alias/x')).toBeUndefined();
    expect(parseGcpKmsRef('azurekms://v.vault.azure.net/k')).toBeUndefined();
  });

  it('refuses a reference without a version, and malformed ones', () => {
    expect(() => parseGcpKmsRef(`gcpkms://${base}`)).toThrow(/no key version.*cryptoKeyVersions\/N/);
    for (const bad of [
      'gcpkms://',
      `gcpkms:///${base}/cryptoKeyVersions/1`,
      `gcpkms://${base}/cryptoKeyVersions/`,
      `gcpkms://${base}/cryptoKeyVersions/1/`,
      `gcpkms://${base}/cryptoKeyVersions/1/extra`,
      'gcpkms://projects//locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1',
      'gcpkms://projects/p/locations/l/keyRing/r/cryptoKeys/k/cryptoKeyVersions/1',
      'gcpkms://projects/p/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1',
      `gcpkms://${base}/cryptoKeyVersions/1?x=y`,
      `gcpkms://${base} /cryptoKeyVersions/1`,
    ]) {
      expect(() => parseGcpKmsRef(bad), bad).toThrow(/expected gcpkms:\/\/projects/);
    }
  });

  it('resolves keys[].ref through the provider list, keeping extra fields', () => {
    const cfg = keyConfigSchema.parse({ name: 'g', ref: `gcpkms://${base}/cryptoKeyVersions/2`, keyFilename: 'sa.json' });
    expect(cfg).toMatchObject({ name: 'g', provider: 'gcpkms', cryptoKeyVersion: `${base}/cryptoKeyVersions/2`, keyFilename: 'sa.json', transport: 'grpc' });
    const bad = keyConfigSchema.safeParse({ name: 'g', ref: `gcpkms://${base}` });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toMatch(/invalid gcpkms reference: names no key version/);
  });

  it('schema is strict and checks the version name and insecureEndpoint', () => {
    const ok = { name: 'g', provider: 'gcpkms', cryptoKeyVersion: `${base}/cryptoKeyVersions/1` };
    expect(gcpKmsKeySchema.safeParse(ok).success).toBe(true);
    expect(gcpKmsKeySchema.safeParse({ ...ok, region: 'x' }).success).toBe(false);
    expect(gcpKmsKeySchema.safeParse({ ...ok, cryptoKeyVersion: base }).success).toBe(false);
    expect(gcpKmsKeySchema.safeParse({ ...ok, endpoint: 'https://kms.example' }).success).toBe(false);
    expect(gcpKmsKeySchema.safeParse({ ...ok, insecureEndpoint: true }).success).toBe(false);
    expect(gcpKmsKeySchema.safeParse({ ...ok, endpoint: '127.0.0.1:1', insecureEndpoint: true }).success).toBe(true);
    expect(gcpKmsKeySchema.safeParse({ ...ok, transport: 'http' }).success).toBe(false);
  });
});

describe.each(['grpc', 'rest'] as const)('gcpkms over %s', (transport) => {
  it('RSA_SIGN_PKCS1_2048_SHA256: one GetPublicKey at startup, one AsymmetricSign per signature, verifies over the payload', async () => {
    const { name, key, p } = await withKey(transport, 'RSA_SIGN_PKCS1_2048_SHA256');
    expect(p.algorithm).toBe('rsa-2048');
    expect(p.kmsAlgorithm).toBe('RSA_SIGN_PKCS1_2048_SHA256');
    const pem = await p.publicKeyPem();
    expect(pem).toBe(createPublicKey(key.publicPem).export({ type: 'spki', format: 'pem' }));
    await p.publicKeyPem();
    expect(callsFor(name, 'GetPublicKey')).toHaveLength(1);

    for (let i = 0; i < 3; i++) {
      const payload = randomBytes(100 + i);
      const sig = await p.sign(sha256(payload));
      expect(sig).toHaveLength(256);
      expect(verify('sha256', payload, pem, sig)).toBe(true);
      expect(callsFor(name, 'AsymmetricSign')).toHaveLength(i + 1);
    }
    // with the payload given (the pipeline's call shape) it is still one call
    const payload = Buffer.from('{"critical":{}}');
    expect(verify('sha256', payload, pem, await p.sign(sha256(payload), payload))).toBe(true);
    expect(callsFor(name, 'AsymmetricSign')).toHaveLength(4);
    expect(callsFor(name, 'GetPublicKey')).toHaveLength(1);
    expect(kms.calls.filter((c) => c.name === name).every((c) => c.transport === transport)).toBe(true);
    if (transport === 'rest') {
      // the REST listener verified each self-signed JWT of the keyFilename service account
      expect(kms.calls.find((c) => c.name === name)?.authorization).toMatch(/^Bearer eyJ/);
    }
  });

  it('EC_SIGN_P256_SHA256: DER signatures that node:crypto and cosign verify-blob accept', async () => {
    const { name, p } = await withKey(transport, 'EC_SIGN_P256_SHA256');
    expect(p.algorithm).toBe('ecdsa-p256');
    const pem = await p.publicKeyPem();
    const payload = Buffer.from(`{"critical":{"identity":{"docker-reference":"r/x"}},"n":"${transport}"}`);
    const sig = await p.sign(sha256(payload));
    expect(sig[0]).toBe(0x30);
    expect(verify('sha256', payload, pem, sig)).toBe(true);
    expect(callsFor(name, 'AsymmetricSign')).toHaveLength(1);
    if (transport === 'grpc') {
      const res = await cosignVerifyBlob(dir, pem, payload, sig);
      expect(res.code, res.stderr).toBe(0);
    }
  });

  it('refuses other algorithms at startup with KEY_UNSUPPORTED naming the key', async () => {
    for (const alg of ['RSA_SIGN_PKCS1_4096_SHA512', 'EC_SIGN_P384_SHA384', 'EC_SIGN_ED25519', 'RSA_SIGN_RAW_PKCS1_2048'] as const) {
      const name = versionName(alg);
      kms.addKey(name, alg);
      const err = await rejection(provider(transport, name));
      expect(err.code, alg).toBe('KEY_UNSUPPORTED');
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(`key "gcp-${seq}"`);
      expect(err.message).toContain(alg);
      if (alg.includes('SHA512')) expect(err.message).toMatch(/SHA-256/);
      expect(callsFor(name, 'AsymmetricSign')).toHaveLength(0);
    }
  });

  it('throttling is KEY_THROTTLED, retryable, with the RetryInfo delay; the SDK does not retry', async () => {
    const { name, p } = await withKey(transport, 'EC_SIGN_P256_SHA256');
    kms.fail('AsymmetricSign', { code: 'RESOURCE_EXHAUSTED', message: 'Quota exceeded for quota metric cryptographic requests', retryDelaySeconds: 7 });
    const err = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(err.code).toBe('KEY_THROTTLED');
    expect(err.retryable).toBe(true);
    expect(err.retryAfterSeconds).toBe(7);
    expect(err.message).toContain(`key "gcp-${seq}"`);
    expect(callsFor(name, 'AsymmetricSign')).toHaveLength(1);
    // and the next call goes through
    await p.sign(sha256(Buffer.from('x')));
  });

  it('a huge RetryInfo delay is capped at 10 minutes', async () => {
    const { p } = await withKey(transport, 'EC_SIGN_P256_SHA256');
    kms.fail('AsymmetricSign', { code: 'RESOURCE_EXHAUSTED', message: 'Quota exceeded', retryDelaySeconds: 99999999 });
    expect(await rejection(p.sign(sha256(Buffer.from('x'))))).toMatchObject({ code: 'KEY_THROTTLED', retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
  });

  it('UNAVAILABLE / INTERNAL are KEY_UNAVAILABLE (retryable) after exactly one call; a hung call times out', async () => {
    const { name, p } = await withKey(transport, 'EC_SIGN_P256_SHA256', { timeoutSeconds: 0.5 });
    for (const code of ['UNAVAILABLE', 'INTERNAL', 'DEADLINE_EXCEEDED'] as const) {
      kms.fail('AsymmetricSign', { code });
      const before = callsFor(name, 'AsymmetricSign').length;
      const err = await rejection(p.sign(sha256(Buffer.from(code))));
      expect(err.code, code).toBe('KEY_UNAVAILABLE');
      expect(err.retryable).toBe(true);
      expect(callsFor(name, 'AsymmetricSign').length - before, `${code}: no SDK retry`).toBe(1);
    }
    kms.hang('AsymmetricSign');
    const t0 = Date.now();
    const err = await rejection(p.sign(sha256(Buffer.from('hang'))));
    expect(err.code).toBe('KEY_UNAVAILABLE');
    expect(err.retryable).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('denied, not found and disabled keys are non-retryable and say which key and why', async () => {
    const denied = versionName('denied');
    kms.addKey(denied, 'EC_SIGN_P256_SHA256', { denied: true });
    let err = await rejection(provider(transport, denied));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(denied);
    expect(err.message).toMatch(/cloudkms\.cryptoKeyVersions\.useToSign/);

    err = await rejection(provider(transport, versionName('missing')));
    expect(err.code).toBe('KEY_NOT_FOUND');
    expect(err.retryable).toBe(false);

    const disabled = versionName('disabled');
    kms.addKey(disabled, 'EC_SIGN_P256_SHA256', { state: 'DISABLED' });
    err = await rejection(provider(transport, disabled));
    expect(err.code).toBe('KEY_DISABLED');
    expect(err.message).toMatch(/current state is: DISABLED/);

    // disabled (or access revoked) after startup: the sign call says so
    const { name, key, p } = await withKey(transport, 'RSA_SIGN_PKCS1_2048_SHA256');
    key.state = 'DESTROYED';
    err = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(err.code).toBe('KEY_DISABLED');
    expect(err.retryable).toBe(false);
    key.state = 'ENABLED';
    key.denied = true;
    err = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.message).toContain(name);
  });

  it('checks the CRC32C integrity fields and the returned name', async () => {
    const { p } = await withKey(transport, 'EC_SIGN_P256_SHA256');
    const d = sha256(Buffer.from('x'));
    kms.tamper.signatureCrc32c = true;
    let err = await rejection(p.sign(d));
    delete kms.tamper.signatureCrc32c;
    expect(err.code).toBe('KEY_UNAVAILABLE');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/signatureCrc32c/);

    kms.tamper.verifiedDigestCrc32c = false;
    err = await rejection(p.sign(d));
    delete kms.tamper.verifiedDigestCrc32c;
    expect(err.code).toBe('KEY_UNAVAILABLE');
    expect(err.message).toMatch(/verifiedDigestCrc32c/);

    kms.tamper.name = 'projects/other/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/9';
    err = await rejection(p.sign(d));
    delete kms.tamper.name;
    expect(err.code).toBe('KEY_SIGN_FAILED');
    expect(err.message).toMatch(/different key version/);

    const name = versionName('pemcrc');
    kms.addKey(name, 'EC_SIGN_P256_SHA256');
    kms.tamper.pemCrc32c = true;
    err = await rejection(provider(transport, name));
    delete kms.tamper.pemCrc32c;
    expect(err.code).toBe('KEY_UNAVAILABLE');
    expect(err.message).toMatch(/pemCrc32c mismatch/);
    kms.tamper.omitCrc = true;
    err = await rejection(provider(transport, name));
    delete kms.tamper.omitCrc;
    expect(err.message).toMatch(/pemCrc32c missing/);

    await p.sign(d); // untampered again
  });
});

describe('gcpkms credentials', () => {
  it('REST: a service account the backend does not know is KEY_DENIED (UNAUTHENTICATED), and no token leaks', async () => {
    // A second account's key file: the stand-in only accepts JWTs signed by registered accounts.
    const { generateKeyPairSync } = await import('node:crypto');
    const stranger = {
      ...account.json,
      private_key_id: 'unknown',
      private_key: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
    await writeFile(path.join(dir, 'stranger.json'), JSON.stringify(stranger));
    const name = versionName('auth');
    kms.addKey(name, 'EC_SIGN_P256_SHA256');
    const err = await rejection(provider('rest', name, { keyFilename: 'stranger.json' }));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/credentials rejected/);
    const token = kms.calls.at(-1)?.authorization ?? '';
    expect(token).toMatch(/^Bearer /);
    expect(err.message).not.toContain(token.slice(7, 40));
    expect(err.message).not.toMatch(/eyJ|PRIVATE KEY/);
  });

  it('an unreadable keyFilename is KEY_INVALID before any call', async () => {
    const name = versionName('nofile');
    kms.addKey(name, 'EC_SIGN_P256_SHA256');
    const err = await rejection(provider('grpc', name, { keyFilename: 'nope.json' }));
    expect(err.code).toBe('KEY_INVALID');
    expect(err.message).toMatch(/nope\.json/);
    expect(kms.calls.filter((c) => c.name === name)).toHaveLength(0);
  });
});

describe('gcpkms stand-in latency (real SDK, 127.0.0.1)', () => {
  it.each(['grpc', 'rest'] as const)('%s: sequential sign round trips', async (transport) => {
    const rsa = await withKey(transport, 'RSA_SIGN_PKCS1_2048_SHA256');
    const ec = await withKey(transport, 'EC_SIGN_P256_SHA256');
    const d = sha256(Buffer.from('latency'));
    const out: string[] = [];
    for (const [label, p] of [
      ['RSA-2048', rsa.p],
      ['P-256', ec.p],
    ] as const) {
      for (let i = 0; i < 5; i++) await p.sign(d); // warm up
      const n = 40;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await p.sign(d);
      const ms = (performance.now() - t0) / n;
      out.push(`${label} ${ms.toFixed(2)} ms`);
      expect(ms).toBeLessThan(100);
    }
    console.log(`[gcpkms ${transport}] mean sign latency: ${out.join(', ')}`);
  });
});

describe('gcpkms: REST error bodies are schema-checked', () => {
  const cfg = { name: 'g', cryptoKeyVersion: 'projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1' };
  const restError = (message: string, status: number) => ({
    message,
    response: { status, headers: {} },
    config: { url: `https://kms.test/v1/${cfg.cryptoKeyVersion}:asymmetricSign` },
  });
  it('a body that is JSON but not an error object falls back to the HTTP status (it threw a TypeError before)', () => {
    for (const body of ['null', '42', '"x"', '{"error": 7}', '<html>']) {
      expect(classifyGcpError(restError(body, 503), cfg, 'AsymmetricSign'), body).toMatchObject({ code: 'KEY_UNAVAILABLE', retryable: true });
    }
  });
  it('a RetryInfo delay in the body is capped, odd detail entries are skipped', () => {
    const body = JSON.stringify({ error: { status: 'RESOURCE_EXHAUSTED', message: 'quota', details: [null, 5, { retryDelay: '99999999s' }] } });
    expect(classifyGcpError(restError(body, 429), cfg, 'AsymmetricSign')).toMatchObject({ code: 'KEY_THROTTLED', retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
  });
});

describe.each(['grpc', 'rest'] as const)("gcpkms over %s: the padding is the key version's", (transport) => {
  const pssVerify = (pem: string, payload: Buffer, sig: Buffer) =>
    verify('sha256', payload, { key: createPublicKey(pem), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);

  it('RSA_SIGN_PSS_2048_SHA256: accepted, reports pss only, signs PSS (salt 32) and refuses pkcs1v15 (the default) without a call', async () => {
    const { name, p } = await withKey(transport, 'RSA_SIGN_PSS_2048_SHA256');
    expect(p.kmsAlgorithm).toBe('RSA_SIGN_PSS_2048_SHA256');
    expect(await p.paddings!()).toEqual(['pss']);
    const pem = await p.publicKeyPem();
    const payload = randomBytes(40);
    for (const withPayload of [true, false]) {
      const sig = await p.sign(sha256(payload), withPayload ? payload : undefined, { rsaPadding: 'pss' });
      expect(sig).toHaveLength(256);
      expect(pssVerify(pem, payload, sig)).toBe(true);
      expect(verify('sha256', payload, pem, sig)).toBe(false);
    }
    expect(callsFor(name, 'AsymmetricSign')).toHaveLength(2);
    for (const opts of [undefined, { rsaPadding: 'pkcs1v15' as const }]) {
      const err = await rejection(p.sign(sha256(payload), payload, opts));
      expect(err.code).toBe('KEY_SIGN_FAILED');
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(`key "gcp-${seq}"`);
      expect(err.message).toMatch(/RSA_SIGN_PSS_2048_SHA256: it cannot sign PKCS#1 v1\.5 .*cosign formats need an RSA_SIGN_PKCS1_\*_SHA256 version/);
    }
    expect(callsFor(name, 'AsymmetricSign')).toHaveLength(2);
  });

  it('RSA_SIGN_PKCS1_2048_SHA256: reports pkcs1v15 only and refuses pss with KEY_SIGN_FAILED naming the key, without a call', async () => {
    const { name, p } = await withKey(transport, 'RSA_SIGN_PKCS1_2048_SHA256');
    expect(await p.paddings!()).toEqual(['pkcs1v15']);
    const payload = randomBytes(40);
    const err = await rejection(p.sign(sha256(payload), payload, { rsaPadding: 'pss' }));
    expect(err.code).toBe('KEY_SIGN_FAILED');
    expect(err.message).toContain(`key "gcp-${seq}"`);
    expect(err.message).toMatch(/RSA_SIGN_PKCS1_2048_SHA256: it cannot sign RSASSA-PSS .*Notation needs an RSA_SIGN_PSS_\*_SHA256 version/);
    expect(callsFor(name, 'AsymmetricSign')).toHaveLength(0);
    const sig = await p.sign(sha256(payload), payload);
    expect(verify('sha256', payload, await p.publicKeyPem(), sig)).toBe(true);
  });

  it('EC_SIGN_P256_SHA256 reports both and ignores rsaPadding', async () => {
    const { p } = await withKey(transport, 'EC_SIGN_P256_SHA256');
    expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
    const payload = randomBytes(40);
    const sig = await p.sign(sha256(payload), undefined, { rsaPadding: 'pss' });
    expect(verify('sha256', payload, await p.publicKeyPem(), sig)).toBe(true);
  });
});
