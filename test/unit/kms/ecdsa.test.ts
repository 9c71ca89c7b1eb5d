import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createP256DigestSigner, derEcdsaToRaw, rawEcdsaToDer, signP256DigestRaw } from '../../../src/kms/ecdsa.js';
import { SignetError } from '../../../src/errors.js';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

describe('rawEcdsaToDer / derEcdsaToRaw', () => {
  it('round-trips real P-256 signatures, including high-bit and short r/s', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const seen = { rHigh: false, sHigh: false, rShort: false, sShort: false, plain: false };
    for (let i = 0; i < 20_000 && !Object.values(seen).every(Boolean); i++) {
      const msg = Buffer.from(`message ${i}`);
      const der = sign('sha256', msg, { key: privateKey, dsaEncoding: 'der' });
      const raw = derEcdsaToRaw(der);
      expect(raw).toHaveLength(64);
      // The raw form is what Node calls ieee-p1363, and it verifies as such.
      expect(verify('sha256', msg, { key: publicKey, dsaEncoding: 'ieee-p1363' }, raw)).toBe(true);
      // Converting back gives OpenSSL's DER byte for byte (so the encoding is minimal).
      expect(rawEcdsaToDer(raw).equals(der)).toBe(true);

      const r0 = raw[0]!;
      const s0 = raw[32]!;
      if (r0 & 0x80) seen.rHigh = true;
      if (s0 & 0x80) seen.sHigh = true;
      if (r0 === 0) seen.rShort = true;
      if (s0 === 0) seen.sShort = true;
      if (!(r0 & 0x80) && !(s0 & 0x80) && r0 !== 0 && s0 !== 0) seen.plain = true;
      if (r0 & 0x80) expect(der.subarray(2, 5).toString('hex')).toBe('022100'); // 0x00 pad on r
    }
    expect(seen).toEqual({ rHigh: true, sHigh: true, rShort: true, sShort: true, plain: true });
  });

  it('round-trips P-384 (size 48) including the long-form length', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    for (let i = 0; i < 50; i++) {
      const der = sign('sha384', Buffer.from(`m${i}`), { key: privateKey, dsaEncoding: 'der' });
      const raw = derEcdsaToRaw(der, 48);
      expect(raw).toHaveLength(96);
      expect(rawEcdsaToDer(raw).equals(der)).toBe(true);
    }
    // P-521: 132-byte raw, DER body > 127 bytes needs the 0x81 length form.
    const { privateKey: k521 } = generateKeyPairSync('ec', { namedCurve: 'P-521' });
    const der = sign('sha512', Buffer.from('x'), { key: k521, dsaEncoding: 'der' });
    expect(rawEcdsaToDer(derEcdsaToRaw(der, 66)).equals(der)).toBe(true);
  });

  it('encodes hand-made edge cases minimally', () => {
    const r = Buffer.alloc(32);
    const s = Buffer.alloc(32);
    r[0] = 0x80; // high bit -> 0x00 prefix
    s[31] = 0x01; // leading zeros stripped
    expect(rawEcdsaToDer(Buffer.concat([r, s])).toString('hex')).toBe('3026' + '022100' + '80' + '00'.repeat(31) + '020101');
    expect(() => rawEcdsaToDer(Buffer.alloc(64))).toThrow(SignetError);
    expect(() => rawEcdsaToDer(Buffer.alloc(63, 1))).toThrow(SignetError);
  });

  it('rejects malformed DER', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = sign('sha256', Buffer.from('x'), { key: privateKey, dsaEncoding: 'der' });
    const bad = [
      Buffer.concat([der, Buffer.from([0])]), // trailing byte
      Buffer.from('3006020100020101', 'hex').subarray(0, 7), // truncated
      Buffer.from('3006020180020101', 'hex'), // negative integer
      Buffer.from('300702020001020101', 'hex'), // non-minimal integer
      Buffer.from('3006030101020101', 'hex'), // wrong tag
      Buffer.from('3026' + '0221' + '01'.repeat(33) + '020101', 'hex'), // r longer than 32 bytes
    ];
    for (const b of bad) {
      expect(() => derEcdsaToRaw(b)).toThrow(SignetError);
    }
  });
});

describe('ECDSA P-256 over a precomputed digest', () => {
  it('matches the RFC 6979 A.2.5 test vectors (P-256, SHA-256)', () => {
    const d = 0xc9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721n;
    expect(signP256DigestRaw(d, sha256('sample')).toString('hex')).toBe(
      'efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716' + 'f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8',
    );
    expect(signP256DigestRaw(d, sha256('test')).toString('hex')).toBe(
      'f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367' + '019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083',
    );
  });

  it('produces signatures that crypto.verify(sha256, payload) accepts', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signDigest = createP256DigestSigner(privateKey);
    for (let i = 0; i < 200; i++) {
      const payload = Buffer.from(`payload ${i}`);
      const sig = signDigest(sha256(payload));
      expect(verify('sha256', payload, publicKey, sig)).toBe(true);
      expect(verify('sha256', Buffer.from(`other ${i}`), publicKey, sig)).toBe(false);
    }
    // Deterministic (RFC 6979).
    expect(signDigest(sha256('a')).equals(signDigest(sha256('a')))).toBe(true);
  });

  it('documents the Node pitfall: crypto.sign(null, digest) hashes the digest again', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const payload = Buffer.from('payload');
    const wrong = sign(null, sha256(payload), privateKey);
    expect(verify('sha256', payload, publicKey, wrong)).toBe(false);
    expect(verify('sha256', sha256(payload), publicKey, wrong)).toBe(true);
  });

  it('refuses non-P-256 keys', () => {
    expect(() => createP256DigestSigner(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey)).toThrow(SignetError);
    expect(() => createP256DigestSigner(generateKeyPairSync('ed25519').privateKey)).toThrow(SignetError);
    expect(() => signP256DigestRaw(1n, Buffer.alloc(31))).toThrow(SignetError);
  });
});
