/**
 * RSASSA-PSS (SHA-256, salt 32) for the Notary Project: the digest-level helpers (pss.ts) checked
 * against OpenSSL, the file provider (PEM and cosign.key RSA keys) and checkPaddings.
 */
import { constants, createHash, createPublicKey, generateKeyPairSync, sign as cryptoSign, verify, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignetError } from '../../../src/errors.js';
import { encryptCosignKey } from '../../../src/kms/cosign-key.js';
import { createFileKeyProvider } from '../../../src/kms/file.js';
import { checkPaddings, type PaddedKey } from '../../../src/kms/paddings.js';
import { SigningKey } from '../../../src/kms/signing-key.js';
import { emsaPssEncode, signPssDigest, verifyPssDigest } from '../../../src/kms/pss.js';
import type { RsaPadding } from '../../../src/kms/types.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();
const pssVerify = (pub: KeyObject, payload: Buffer, sig: Buffer, saltLength = 32) =>
  verify('sha256', payload, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, sig);
const pkcs1Verify = (pub: KeyObject, payload: Buffer, sig: Buffer) => verify('sha256', payload, { key: pub, padding: constants.RSA_PKCS1_PADDING }, sig);

describe('pss.ts: PSS over a digest, checked against OpenSSL', () => {
  for (const bits of [2048, 3072, 4096]) {
    it(`RSA-${bits}: our signature verifies in OpenSSL with salt 32 (not with salt 20); OpenSSL's verifies with ours`, () => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
      const payload = Buffer.from(`payload ${bits}`);
      const ours = signPssDigest(privateKey, sha256(payload));
      expect(ours.length).toBe(Math.ceil(bits / 8));
      expect(pssVerify(publicKey, payload, ours)).toBe(true);
      expect(pssVerify(publicKey, payload, ours, 20)).toBe(false);
      expect(pkcs1Verify(publicKey, payload, ours)).toBe(false);
      expect(verifyPssDigest(publicKey, sha256(payload), ours)).toBe(true);

      const theirs = cryptoSign('sha256', payload, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
      expect(verifyPssDigest(publicKey, sha256(payload), theirs)).toBe(true);
      expect(verifyPssDigest(publicKey, sha256(Buffer.from('other')), theirs)).toBe(false);
      // other salt lengths and PKCS#1 v1.5 are refused: the check pins the salt to 32
      const maxSalt = cryptoSign('sha256', payload, {
        key: privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
      });
      expect(verifyPssDigest(publicKey, sha256(payload), maxSalt)).toBe(false);
      const salt20 = cryptoSign('sha256', payload, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 });
      expect(verifyPssDigest(publicKey, sha256(payload), salt20)).toBe(false);
      expect(verifyPssDigest(publicKey, sha256(payload), cryptoSign('sha256', payload, privateKey))).toBe(false);
      expect(verifyPssDigest(publicKey, sha256(payload), ours.subarray(1))).toBe(false);
    });
  }

  it('the encoding is deterministic for a given salt and randomised by default', () => {
    const d = sha256(Buffer.from('x'));
    const salt = Buffer.alloc(32, 7);
    expect(emsaPssEncode(d, 2048, salt).equals(emsaPssEncode(d, 2048, salt))).toBe(true);
    expect(emsaPssEncode(d, 2048).equals(emsaPssEncode(d, 2048))).toBe(false);
    expect(emsaPssEncode(d, 2048, salt).at(-1)).toBe(0xbc);
  });
});

describe('file provider: rsaPadding pss', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'signet-pss-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function provider(file: string, pem: string, password?: string) {
    await writeFile(path.join(dir, file), pem, { mode: 0o600 });
    return createFileKeyProvider({ name: file, provider: 'file', path: file, ...(password === undefined ? {} : { password }) }, { baseDir: dir });
  }

  const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const cases: [string, () => Promise<Awaited<ReturnType<typeof createFileKeyProvider>>>][] = [
    ['a PKCS#8 PEM', () => provider('rsa.pem', rsaKey.export({ type: 'pkcs8', format: 'pem' }) as string)],
    ['a PKCS#1 PEM', () => provider('rsa1.pem', rsaKey.export({ type: 'pkcs1', format: 'pem' }) as string)],
    ['a cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY)', () => provider('cosign.key', encryptCosignKey(rsaKey, 'pw', { N: 32768 }), 'pw')],
  ];
  for (const [what, make] of cases) {
    it(`RSA from ${what}: PSS with salt 32 (payload and digest-only paths), PKCS#1 v1.5 by default`, async () => {
      const p = await make();
      const pub = createPublicKey(await p.publicKeyPem());
      expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
      const payload = Buffer.from(`notation payload via ${what}`);
      const digest = sha256(payload);

      const withPayload = await p.sign(digest, payload, { rsaPadding: 'pss' });
      const digestOnly = await p.sign(digest, undefined, { rsaPadding: 'pss' });
      for (const sig of [withPayload, digestOnly]) {
        expect(pssVerify(pub, payload, sig)).toBe(true);
        expect(pkcs1Verify(pub, payload, sig)).toBe(false);
      }
      // PSS is randomised: two signatures differ
      expect(withPayload.equals(await p.sign(digest, payload, { rsaPadding: 'pss' }))).toBe(false);

      // default and explicit pkcs1v15: unchanged, deterministic PKCS#1 v1.5
      const plain = await p.sign(digest, payload);
      expect(pkcs1Verify(pub, payload, plain)).toBe(true);
      expect(pssVerify(pub, payload, plain)).toBe(false);
      expect((await p.sign(digest, undefined, { rsaPadding: 'pkcs1v15' })).equals(plain)).toBe(true);
      expect((await p.sign(digest)).equals(plain)).toBe(true);
    });
  }

  it('through SigningKey (what the Notation format calls): PSS and PKCS#1 v1.5 of one payload, each verified, remembered apart', async () => {
    const p = await provider('sk.pem', rsaKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const key = new SigningKey(p, await p.publicKeyPem());
    const payload = Buffer.from('{"targetArtifact":{"digest":"sha256:00"}}');
    const pss = await key.sign(payload, { rsaPadding: 'pss' });
    const plain = await key.sign(payload);
    expect(pssVerify(key.publicKey, payload, pss)).toBe(true);
    expect(pkcs1Verify(key.publicKey, payload, plain)).toBe(true);
    expect((await key.sign(payload, { rsaPadding: 'pss' })).equals(pss)).toBe(true); // memo: the same PSS signature
    await checkPaddings([key], ['pkcs1v15', 'pss']);
  });

  it('ECDSA ignores rsaPadding', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const p = await provider('ec.pem', ec.export({ type: 'pkcs8', format: 'pem' }) as string);
    const payload = Buffer.from('ec payload');
    for (const sig of [await p.sign(sha256(payload), payload, { rsaPadding: 'pss' }), await p.sign(sha256(payload), undefined, { rsaPadding: 'pss' })]) {
      expect(verify('sha256', payload, await p.publicKeyPem(), sig)).toBe(true);
    }
    expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
  });
});

describe('checkPaddings', () => {
  const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const ecPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const key = (name: string, paddings?: readonly RsaPadding[], pem = rsaPem): PaddedKey =>
    paddings ? { name, publicKeyPem: async () => pem, paddings: async () => paddings } : { name, publicKeyPem: async () => pem };

  it('passes keys that can, refuses the first that cannot with KEY_INVALID naming it', async () => {
    await checkPaddings([key('a', ['pkcs1v15', 'pss']), key('b', ['pss'])], 'pss');
    await checkPaddings([key('a', ['pkcs1v15', 'pss']), key('c')], ['pkcs1v15']);
    await checkPaddings([], ['pss', 'pkcs1v15']);

    const err = await checkPaddings([key('a', ['pkcs1v15', 'pss']), key('gcp-pkcs1', ['pkcs1v15'])], 'pss').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignetError);
    expect((err as SignetError).code).toBe('KEY_INVALID');
    expect((err as SignetError).message).toMatch(/key "gcp-pkcs1" cannot sign RSASSA-PSS/);

    const pssOnly = await checkPaddings([key('gcp-pss', ['pss'])], ['pkcs1v15', 'pss']).catch((e: unknown) => e);
    expect((pssOnly as SignetError).code).toBe('KEY_INVALID');
    expect((pssOnly as SignetError).message).toMatch(/key "gcp-pss" cannot sign RSA PKCS#1 v1\.5 .*cosign signatures need PKCS#1 v1\.5/);
  });

  it('a provider without paddings(): an RSA key signs PKCS#1 v1.5 only, an ECDSA key passes for both', async () => {
    const legacy = await checkPaddings([key('no-capability')], 'pss').catch((e: unknown) => e);
    expect((legacy as SignetError).code).toBe('KEY_INVALID');
    expect((legacy as SignetError).message).toMatch(/key "no-capability" cannot sign RSASSA-PSS .*it signs RSA PKCS#1 v1.5/);
    await checkPaddings([key('ec-no-capability', undefined, ecPem)], ['pss', 'pkcs1v15']);
  });

  it('takes SigningKeys (name + backend + publicKey)', async () => {
    const rsaBackend = { name: 'inner', publicKeyPem: async () => rsaPem, sign: async () => Buffer.alloc(0) };
    const err = await checkPaddings([new SigningKey(rsaBackend, rsaPem)], 'pss').catch((e: unknown) => e);
    expect((err as SignetError).message).toMatch(/key "inner" cannot sign RSASSA-PSS/);
    await checkPaddings([new SigningKey({ ...rsaBackend, paddings: async () => ['pkcs1v15', 'pss'] as const }, rsaPem)], 'pss');
    await checkPaddings([new SigningKey({ ...rsaBackend, publicKeyPem: async () => ecPem }, ecPem)], 'pss');
  });
});
