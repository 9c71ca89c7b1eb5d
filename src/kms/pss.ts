/**
 * RSASSA-PSS over a precomputed SHA-256 digest, for the Notary Project `notary.x509` scheme
 * (PS256: SHA-256, MGF1-SHA-256, a 32-byte salt = the hash length, trailer 0xbc).
 *
 * Salt length: notation-core-go signs PS256 with rsa.PSSSaltLengthEqualsHash (golang-jwt
 * SigningMethodPS256.Options; go-cose for COSE, which also verifies with that exact length), and
 * the Notary Project signature specification names "RSASSA-PSS with SHA-256" with the salt the
 * size of the hash. So every backend signs with saltLength 32, never "max" or "auto".
 *
 * Why this is written out here (RFC 8017 section 9.1): node:crypto signs and verifies PSS only
 * over a message it hashes itself (`crypto.sign('sha256', message, ...)`); it has no way to sign
 * or verify a digest someone else computed. `KeyProvider.sign` may be called with the digest
 * alone, and KMS answers are checked against the digest, so the encoding (and its check) over a
 * given mHash is done here, with the raw RSA operation left to OpenSSL
 * (privateEncrypt / publicDecrypt with RSA_NO_PADDING).
 */
import { constants, createHash, privateEncrypt, publicDecrypt, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';

/** The salt length (bytes) every PSS signature of signet uses: the SHA-256 output size. */
export const PSS_SALT_LENGTH = 32;
const HLEN = 32;

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MGF1 with SHA-256 (RFC 8017 B.2.1). */
function mgf1(seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  let have = 0;
  for (let counter = 0; have < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const block = sha256(seed, c);
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

/** EMSA-PSS-ENCODE (RFC 8017 9.1.1) of a SHA-256 digest for a modulus of `modBits` bits. */
export function emsaPssEncode(mHash: Buffer, modBits: number, salt: Buffer = randomBytes(PSS_SALT_LENGTH)): Buffer {
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (mHash.length !== HLEN) throw new Error('PSS: the digest must be 32 bytes');
  if (emLen < HLEN + salt.length + 2) throw new Error('PSS: modulus too small');
  const h = sha256(Buffer.alloc(8), mHash, salt);
  const db = Buffer.alloc(emLen - HLEN - 1);
  db[db.length - salt.length - 1] = 0x01;
  salt.copy(db, db.length - salt.length);
  const mask = mgf1(h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * emLen - emBits);
  return Buffer.concat([db, h, Buffer.from([0xbc])]);
}

/** EMSA-PSS-VERIFY (RFC 8017 9.1.2) with the salt length fixed to 32. */
export function emsaPssVerify(mHash: Buffer, em: Buffer, modBits: number): boolean {
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (mHash.length !== HLEN || em.length !== emLen || emLen < HLEN + PSS_SALT_LENGTH + 2) return false;
  if (em[emLen - 1] !== 0xbc) return false;
  const masked = em.subarray(0, emLen - HLEN - 1);
  const h = em.subarray(emLen - HLEN - 1, emLen - 1);
  const topMask = 0xff >> (8 * emLen - emBits);
  if ((masked[0]! & ~topMask & 0xff) !== 0) return false;
  const db = mgf1(h, masked.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= masked[i]!;
  db[0]! &= topMask;
  const psLen = emLen - HLEN - PSS_SALT_LENGTH - 2;
  for (let i = 0; i < psLen; i++) if (db[i] !== 0) return false;
  if (db[psLen] !== 0x01) return false;
  const salt = db.subarray(db.length - PSS_SALT_LENGTH);
  return timingSafeEqual(sha256(Buffer.alloc(8), mHash, salt), h);
}

function modulusBits(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new Error('PSS: not an RSA key');
  return bits;
}

/** RSASSA-PSS-SIGN of a SHA-256 digest with a local RSA private key (salt 32). */
export function signPssDigest(privateKey: KeyObject, digest: Buffer): Buffer {
  const bits = modulusBits(privateKey);
  const em = emsaPssEncode(digest, bits);
  const k = Math.ceil(bits / 8);
  // RSA_NO_PADDING wants exactly k bytes: EM is one byte shorter when modBits - 1 is a multiple of 8
  const block = em.length === k ? em : Buffer.concat([Buffer.alloc(k - em.length), em]);
  return privateEncrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, block);
}

/**
 * RSASSA-PSS-VERIFY of `sig` over a SHA-256 digest (salt exactly 32): how KMS answers are checked
 * before they are used, since a backend that ignored the padding request would otherwise go unseen.
 */
export function verifyPssDigest(publicKey: KeyObject, digest: Buffer, sig: Buffer): boolean {
  const bits = modulusBits(publicKey);
  const k = Math.ceil(bits / 8);
  if (sig.length !== k) return false;
  let em: Buffer;
  try {
    em = publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, sig);
  } catch {
    return false;
  }
  const emLen = Math.ceil((bits - 1) / 8);
  if (em.length < emLen) em = Buffer.concat([Buffer.alloc(emLen - em.length), em]);
  if (em.length > emLen) {
    if (em.subarray(0, em.length - emLen).some((b) => b !== 0)) return false;
    em = em.subarray(em.length - emLen);
  }
  return emsaPssVerify(digest, em, bits);
}
