/**
 * cosign's encrypted private key format (`cosign generate-key-pair` / `import-key-pair`).
 *
 * PEM type `ENCRYPTED SIGSTORE PRIVATE KEY` (legacy: `ENCRYPTED COSIGN PRIVATE KEY`), whose body is
 * the base64 of a JSON document (go-securesystemslib `encrypted`):
 *
 *   {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<b64>"},
 *    "cipher":{"name":"nacl/secretbox","nonce":"<b64, 24 bytes>"},
 *    "ciphertext":"<b64 secretbox(PKCS#8 DER)>"}
 *
 * The key is scrypt(password, salt, N, r, p) -> 32 bytes; cosign only accepts the parameter sets
 * N = 32768 / 65536 / 131072 with r = 8, p = 1. The password may be empty.
 */
import { createPrivateKey, randomBytes, scrypt, scryptSync, type KeyObject, type ScryptOptions } from 'node:crypto';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { SignetError } from '../errors.js';

export const SIGSTORE_PRIVATE_KEY_PEM_TYPE = 'ENCRYPTED SIGSTORE PRIVATE KEY';
export const COSIGN_PRIVATE_KEY_PEM_TYPE = 'ENCRYPTED COSIGN PRIVATE KEY';

/** The scrypt work factors cosign accepts (go-securesystemslib `CheckParams`), r = 8 and p = 1 always. */
export const COSIGN_SCRYPT_N = [32768, 65536, 131072] as const;
/** cosign's default for new keys. */
export const COSIGN_DEFAULT_SCRYPT_N = 65536;

const SCRYPT_R = 8;
const SCRYPT_P = 1;
const KEY_LEN = 32;
const SALT_LEN = 32;

const envelopeSchema = z.object({
  kdf: z.object({
    name: z.string(),
    params: z.object({ N: z.number(), r: z.number(), p: z.number() }),
    salt: z.string(),
  }),
  cipher: z.object({ name: z.string(), nonce: z.string() }),
  ciphertext: z.string(),
});

interface ParsedEnvelope {
  N: number;
  salt: Buffer;
  nonce: Buffer;
  ciphertext: Buffer;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n?-----END \1-----/;

/** The type and body of the first PEM block, as Go's `pem.Decode` would find it. */
function firstPemBlock(pem: string): { type: string; body: string } | undefined {
  const m = PEM_RE.exec(pem);
  if (!m) return undefined;
  return { type: m[1]!, body: m[2]! };
}

/** True when the first PEM block is cosign's encrypted private key (either PEM type). */
export function isCosignEncryptedKey(pem: string): boolean {
  const block = firstPemBlock(pem);
  return block !== undefined && (block.type === SIGSTORE_PRIVATE_KEY_PEM_TYPE || block.type === COSIGN_PRIVATE_KEY_PEM_TYPE);
}

function invalid(msg: string, cause?: unknown): SignetError {
  return new SignetError('KEY_INVALID', `cosign key: ${msg}`, cause === undefined ? {} : { cause });
}

function parseEnvelope(pem: string): ParsedEnvelope {
  const block = firstPemBlock(pem);
  if (!block) throw invalid('no PEM block found');
  if (block.type !== SIGSTORE_PRIVATE_KEY_PEM_TYPE && block.type !== COSIGN_PRIVATE_KEY_PEM_TYPE) {
    throw invalid(`PEM type is "${block.type}", expected "${SIGSTORE_PRIVATE_KEY_PEM_TYPE}"`);
  }
  const b64 = block.body.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw invalid('PEM body is not base64 (PEM headers are not supported)');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(b64, 'base64').toString('utf8'));
  } catch (err) {
    throw invalid('PEM body is not base64-encoded JSON', err);
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) throw invalid('unexpected JSON structure in the PEM body');
  const env = parsed.data;
  if (env.kdf.name !== 'scrypt') throw invalid(`unknown kdf "${env.kdf.name}"`);
  if (env.cipher.name !== 'nacl/secretbox') throw invalid(`unknown cipher "${env.cipher.name}"`);
  const { N, r, p } = env.kdf.params;
  checkParams(N, r, p);
  const salt = Buffer.from(env.kdf.salt, 'base64');
  const nonce = Buffer.from(env.cipher.nonce, 'base64');
  const ciphertext = Buffer.from(env.ciphertext, 'base64');
  if (salt.length === 0) throw invalid('empty scrypt salt');
  if (nonce.length !== nacl.secretbox.nonceLength) throw invalid(`nonce is ${nonce.length} bytes, expected 24`);
  if (ciphertext.length <= nacl.secretbox.overheadLength) throw invalid('ciphertext too short');
  return { N, salt, nonce, ciphertext };
}

function checkParams(N: number, r: number, p: number): void {
  if (!(COSIGN_SCRYPT_N as readonly number[]).includes(N) || r !== SCRYPT_R || p !== SCRYPT_P) {
    throw invalid(`unsupported scrypt parameters N=${N} r=${r} p=${p} (cosign accepts N=32768, 65536 or 131072 with r=8, p=1)`);
  }
}

function scryptOptions(N: number): ScryptOptions {
  // Node's default maxmem (32 MiB) is too small; scrypt needs about 128*N*r bytes.
  return { N, r: SCRYPT_R, p: SCRYPT_P, maxmem: 256 * N * SCRYPT_R };
}

function openBox(env: ParsedEnvelope, derivedKey: Buffer): KeyObject {
  const plain = nacl.secretbox.open(env.ciphertext, env.nonce, derivedKey);
  derivedKey.fill(0);
  if (!plain) {
    throw new SignetError('KEY_PASSWORD', 'wrong password for cosign key (secretbox authentication failed)');
  }
  const der = Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw invalid('decrypted content is not a PKCS#8 private key', err);
  } finally {
    der.fill(0);
  }
}

/**
 * Decrypt a cosign key synchronously. Blocks the thread for the scrypt time (about 0.1 s for the
 * default N = 65536); prefer `decryptCosignKeyAsync` outside of start-up code.
 */
export function decryptCosignKey(pem: string, password: string): KeyObject {
  const env = parseEnvelope(pem);
  const key = scryptSync(Buffer.from(password, 'utf8'), env.salt, KEY_LEN, scryptOptions(env.N));
  return openBox(env, key);
}

/** Decrypt a cosign key; scrypt runs on the libuv thread pool. */
export async function decryptCosignKeyAsync(pem: string, password: string): Promise<KeyObject> {
  const env = parseEnvelope(pem);
  const key = await new Promise<Buffer>((resolve, reject) => {
    scrypt(Buffer.from(password, 'utf8'), env.salt, KEY_LEN, scryptOptions(env.N), (err, derived) => (err ? reject(err) : resolve(derived)));
  });
  return openBox(env, key);
}

/** Base64 with 64-character lines, as Go's `pem.Encode` writes it. */
function pemEncode(type: string, der: Buffer): string {
  const b64 = der.toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

/**
 * Encrypt a private key as cosign does (`ENCRYPTED SIGSTORE PRIVATE KEY`, scrypt N = 65536 unless
 * given, r = 8, p = 1, 32-byte salt, nacl/secretbox). The result is accepted by `cosign sign --key`.
 * Only RSA, ECDSA and Ed25519 keys are loadable by cosign; other key types are refused.
 */
export function encryptCosignKey(key: KeyObject, password: string, opts: { N?: number } = {}): string {
  const N = opts.N ?? COSIGN_DEFAULT_SCRYPT_N;
  checkParams(N, SCRYPT_R, SCRYPT_P);
  if (key.type !== 'private') throw new SignetError('KEY_INVALID', 'encryptCosignKey needs a private key');
  if (!['rsa', 'ec', 'ed25519'].includes(key.asymmetricKeyType ?? '')) {
    throw new SignetError('KEY_UNSUPPORTED', `cosign cannot load a ${key.asymmetricKeyType ?? 'unknown'} key`);
  }
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const salt = randomBytes(SALT_LEN);
  const nonce = randomBytes(nacl.secretbox.nonceLength);
  const derived = scryptSync(Buffer.from(password, 'utf8'), salt, KEY_LEN, scryptOptions(N));
  const ciphertext = nacl.secretbox(der, nonce, derived);
  derived.fill(0);
  der.fill(0);
  // Same field order and encoding as Go's json.Marshal of go-securesystemslib's struct.
  const json = JSON.stringify({
    kdf: { name: 'scrypt', params: { N, r: SCRYPT_R, p: SCRYPT_P }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  });
  return pemEncode(SIGSTORE_PRIVATE_KEY_PEM_TYPE, Buffer.from(json, 'utf8'));
}
