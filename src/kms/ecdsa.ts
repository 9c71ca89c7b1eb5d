/**
 * ECDSA helpers shared by the key providers.
 *
 * - `rawEcdsaToDer` / `derEcdsaToRaw`: sigstore verifiers (Go's `ecdsa.VerifyASN1`) want ASN.1 DER
 *   signatures, while some back-ends (Azure Key Vault ES256, PKCS#11 `CKM_ECDSA`) return the raw
 *   IEEE P1363 form r||s. These convert between the two.
 * - `createP256DigestSigner`: ECDSA P-256 over a digest that was computed elsewhere. Node 20 has no
 *   API for this: `crypto.sign(alg, data, ecKey)` always hashes `data` (with `alg = null` it hashes
 *   with SHA-256, so `sign(null, sha256(payload))` yields a signature over sha256(sha256(payload)),
 *   which verifiers reject), and WebCrypto hashes too. So the signature equation is done here:
 *   the nonce is derived per RFC 6979 (deterministic, HMAC-SHA-256), the point multiplication k·G is
 *   done by OpenSSL (through `ECDH.setPrivateKey`, which computes the public point of k), and the
 *   scalar arithmetic mod n is done with BigInt, with the nonce inversion blinded by a random factor.
 */
import { createECDH, createHmac, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { SignetError } from '../errors.js';

/** Order of the P-256 base point. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

// ---------------------------------------------------------------------------------------------
// DER <-> raw

/** Encode a DER length (short or long form). */
function derLength(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  for (let l = len; l > 0; l = Math.floor(l / 256)) bytes.unshift(l & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** A non-negative big-endian integer as a minimal DER INTEGER (0x00 prefix when the high bit is set). */
function derInteger(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  let body = unsigned.subarray(i);
  if (body[0]! & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
  return Buffer.concat([Buffer.from([0x02]), derLength(body.length), body]);
}

/**
 * Convert a raw ECDSA signature r||s (IEEE P1363; 64 bytes for P-256, 96 for P-384, 132 for P-521)
 * into the ASN.1 DER form `SEQUENCE { INTEGER r, INTEGER s }` with minimal integer encoding.
 */
export function rawEcdsaToDer(raw: Buffer): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) {
    throw new SignetError('KEY_SIGN_FAILED', `raw ECDSA signature has odd or zero length ${raw.length}`);
  }
  const half = raw.length / 2;
  const r = raw.subarray(0, half);
  const s = raw.subarray(half);
  if (r.every((b) => b === 0) || s.every((b) => b === 0)) {
    throw new SignetError('KEY_SIGN_FAILED', 'raw ECDSA signature has a zero r or s');
  }
  const body = Buffer.concat([derInteger(r), derInteger(s)]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

/** Minimal DER reader over a buffer; throws on anything malformed. */
class DerReader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  private fail(what: string): never {
    throw new SignetError('KEY_SIGN_FAILED', `malformed DER ECDSA signature: ${what}`);
  }

  readTlv(tag: number): Buffer {
    if (this.pos >= this.buf.length) this.fail('truncated');
    if (this.buf[this.pos] !== tag) this.fail(`expected tag 0x${tag.toString(16)}`);
    this.pos++;
    if (this.pos >= this.buf.length) this.fail('truncated length');
    let len = this.buf[this.pos++]!;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 2) this.fail('unsupported length encoding');
      if (this.pos + n > this.buf.length) this.fail('truncated length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + this.buf[this.pos++]!;
      if (len < 0x80 || (n === 2 && len < 0x100)) this.fail('non-minimal length');
    }
    if (this.pos + len > this.buf.length) this.fail('truncated value');
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }

  get done(): boolean {
    return this.pos === this.buf.length;
  }
}

/**
 * Convert an ASN.1 DER ECDSA signature into raw r||s, each left-padded to `size` bytes
 * (32 for P-256). Strict: rejects trailing bytes, negative or non-minimally encoded integers.
 */
export function derEcdsaToRaw(der: Buffer, size = 32): Buffer {
  const outer = new DerReader(der);
  const seq = new DerReader(outer.readTlv(0x30));
  if (!outer.done) throw new SignetError('KEY_SIGN_FAILED', 'malformed DER ECDSA signature: trailing bytes');
  const parts = [seq.readTlv(0x02), seq.readTlv(0x02)];
  if (!seq.done) throw new SignetError('KEY_SIGN_FAILED', 'malformed DER ECDSA signature: trailing bytes in sequence');
  const out = Buffer.alloc(size * 2);
  parts.forEach((int, i) => {
    if (int.length === 0) throw new SignetError('KEY_SIGN_FAILED', 'malformed DER ECDSA signature: empty integer');
    if (int[0]! & 0x80) throw new SignetError('KEY_SIGN_FAILED', 'malformed DER ECDSA signature: negative integer');
    if (int.length > 1 && int[0] === 0 && !(int[1]! & 0x80)) {
      throw new SignetError('KEY_SIGN_FAILED', 'malformed DER ECDSA signature: non-minimal integer');
    }
    const v = int[0] === 0 ? int.subarray(1) : int;
    if (v.length > size) {
      throw new SignetError('KEY_SIGN_FAILED', `DER ECDSA signature integer is ${v.length} bytes, more than ${size}`);
    }
    v.copy(out, i * size + (size - v.length));
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// ECDSA P-256 over a precomputed digest

function toBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex'));
}

function toBytes(x: bigint, len: number): Buffer {
  const hex = x.toString(16).padStart(len * 2, '0');
  if (hex.length > len * 2) throw new Error('integer too large');
  return Buffer.from(hex, 'hex');
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/** a^-1 mod p for prime p (Fermat). */
function invPrime(a: bigint, p: bigint): bigint {
  let result = 1n;
  let base = mod(a, p);
  let e = p - 2n;
  while (e > 0n) {
    if (e & 1n) result = (result * base) % p;
    base = (base * base) % p;
    e >>= 1n;
  }
  return result;
}

/** A uniformly random scalar in [1, n-1]. */
function randomScalar(n: bigint): bigint {
  for (;;) {
    const k = toBigInt(randomBytes(32));
    if (k > 0n && k < n) return k;
  }
}

/** x-coordinate of k·G on P-256, computed by OpenSSL. */
function baseMulX(k: bigint): bigint {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(toBytes(k, 32));
  const pt = ecdh.getPublicKey(null, 'uncompressed');
  return toBigInt(pt.subarray(1, 33));
}

function hmac(key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * Sign a 32-byte digest with a P-256 private scalar. Returns raw r||s (64 bytes).
 * Nonce per RFC 6979 section 3.2 with HMAC-SHA-256 (`extraEntropy`, if given, is the optional
 * additional data k' of section 3.6). Exported for tests (RFC 6979 vectors) and stand-ins.
 */
export function signP256DigestRaw(d: bigint, digest: Buffer, extraEntropy?: Buffer): Buffer {
  const n = P256_N;
  if (digest.length !== 32) throw new SignetError('KEY_SIGN_FAILED', `digest must be 32 bytes, got ${digest.length}`);
  if (d <= 0n || d >= n) throw new SignetError('KEY_INVALID', 'P-256 private scalar out of range');
  // qlen = hlen = 256, so bits2int(h) is h itself.
  const z = toBigInt(digest);
  const x = toBytes(d, 32);
  const h1 = toBytes(mod(z, n), 32);
  const extra = extraEntropy ?? Buffer.alloc(0);

  let K: Buffer = Buffer.alloc(32, 0x00);
  let V: Buffer = Buffer.alloc(32, 0x01);
  K = hmac(K, V, Buffer.from([0x00]), x, h1, extra);
  V = hmac(K, V);
  K = hmac(K, V, Buffer.from([0x01]), x, h1, extra);
  V = hmac(K, V);

  for (;;) {
    V = hmac(K, V);
    const k = toBigInt(V);
    if (k >= 1n && k < n) {
      const r = mod(baseMulX(k), n);
      if (r !== 0n) {
        // s = k^-1 (z + r d) mod n; the inversion is blinded: k^-1 = b (k b)^-1.
        const b = randomScalar(n);
        const kInv = (b * invPrime((k * b) % n, n)) % n;
        const s = (kInv * mod(z + r * d, n)) % n;
        if (s !== 0n) return Buffer.concat([toBytes(r, 32), toBytes(s, 32)]);
      }
    }
    K = hmac(K, V, Buffer.from([0x00]));
    V = hmac(K, V);
  }
}

/**
 * A function that signs a SHA-256 digest with a P-256 private key, returning ASN.1 DER.
 * The output verifies with `crypto.verify('sha256', payload, publicKey, sig)` when the digest is
 * sha256(payload). Signatures are deterministic (RFC 6979): the same key and digest give the same
 * bytes, so re-signing an image yields an identical signature layer.
 */
export function createP256DigestSigner(key: KeyObject): (digest: Buffer) => Buffer {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new SignetError('KEY_UNSUPPORTED', 'not a P-256 private key');
  }
  const jwk = key.export({ format: 'jwk' });
  if (!jwk.d || !jwk.x || !jwk.y) throw new SignetError('KEY_INVALID', 'P-256 key export lacks d/x/y');
  const d = toBigInt(Buffer.from(jwk.d, 'base64url'));
  // Sanity check: d·G must be the key's public point.
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(toBytes(d, 32));
  const expected = createPublicKey(key).export({ format: 'jwk' });
  const pt = ecdh.getPublicKey(null, 'uncompressed');
  if (pt.subarray(1, 33).toString('base64url') !== expected.x || pt.subarray(33).toString('base64url') !== expected.y) {
    throw new SignetError('KEY_INVALID', 'P-256 private scalar does not match the public key');
  }
  return (digest: Buffer) => rawEcdsaToDer(signP256DigestRaw(d, digest));
}
