/**
 * The `file` key provider: a private key in a local PEM file.
 *
 * Accepted formats: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`,
 * encrypted PKCS#8 `ENCRYPTED PRIVATE KEY` (and legacy OpenSSL `Proc-Type: 4,ENCRYPTED` PEMs) with
 * `password`, and cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` / `ENCRYPTED COSIGN PRIVATE KEY` with
 * `password` (falls back to env `COSIGN_PASSWORD`, like cosign; the empty string is a valid password).
 *
 * Accepted keys: ECDSA P-256 and RSA PKCS#1 v1.5 with a 2048-bit modulus (the target; 3072 and 4096
 * are accepted too, since cosign's verifiers take them). Refused: Ed25519 (cannot go into Rekor
 * hashedrekord and cosign signs it as Ed25519ph), other curves, RSA-PSS keys, RSA below 2048 bits.
 *
 * `sign` receives sha256(payload):
 * - RSA: EMSA-PKCS1-v1_5 with the SHA-256 DigestInfo, via `privateEncrypt(RSA_PKCS1_PADDING)`;
 *   with `rsaPadding: 'pss'`, RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32): `crypto.sign` with
 *   RSA_PKCS1_PSS_PADDING over the payload when the caller passes it, else pss.ts over the digest.
 * - ECDSA: Node cannot sign a precomputed digest (`crypto.sign` always hashes), so see
 *   `createP256DigestSigner` in ecdsa.ts (RFC 6979 nonce, OpenSSL point multiplication).
 */
import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  privateEncrypt,
  sign as cryptoSign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { SignetError } from '../errors.js';
import { assertSha256Digest } from './digest-arg.js';
import { decryptCosignKeyAsync, isCosignEncryptedKey } from './cosign-key.js';
import { createP256DigestSigner } from './ecdsa.js';
import { PSS_SALT_LENGTH, signPssDigest } from './pss.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type KeyProvider, type SignOptions } from './types.js';
import { defineKeyProvider } from './define.js';

export const fileKeySchema = z
  .object({
    name: z.string().min(1),
    provider: z.literal('file'),
    path: z.string().min(1),
    password: z.string().optional(), // for cosign's encrypted keys and encrypted PKCS#8 PEMs
  })
  .strict();
export type FileKeyConfig = z.infer<typeof fileKeySchema>;

/** ASN.1 DigestInfo prefix for SHA-256 (RFC 8017 section 9.2, note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

const RSA_SIZES = [2048, 3072, 4096];

export interface FileKeyProvider extends KeyProvider {
  /**
   * The signature scheme. For RSA this is 'rsa-2048' (PKCS#1 v1.5, SHA-256) even for 3072- and
   * 4096-bit keys, which `KeyAlgorithm` has no names for; `keyBits` gives the real size.
   */
  readonly algorithm: KeyAlgorithm;
  /** RSA modulus length, or 256 for P-256. */
  readonly keyBits: number;
}

function describeKey(key: KeyObject): string {
  const t = key.asymmetricKeyType ?? 'unknown';
  const d = key.asymmetricKeyDetails;
  if (t === 'rsa' || t === 'rsa-pss') return `${t === 'rsa' ? 'RSA' : 'RSA-PSS'}-${d?.modulusLength ?? '?'}`;
  if (t === 'ec') {
    const curve = d?.namedCurve ?? 'unknown curve';
    const nist: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };
    return nist[curve] ? `EC ${nist[curve]} (${curve})` : `EC ${curve}`;
  }
  if (t === 'ed25519') return 'Ed25519';
  if (t === 'ed448') return 'Ed448';
  return t;
}

const errCode = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;

async function loadPrivateKey(cfg: FileKeyConfig, file: string, text: string): Promise<KeyObject> {
  const prefix = `key "${cfg.name}" (${file})`;
  if (isCosignEncryptedKey(text)) {
    const password = cfg.password ?? process.env.COSIGN_PASSWORD;
    if (password === undefined) {
      throw new SignetError('KEY_PASSWORD', `${prefix}: cosign encrypted key needs a password (set keys[].password or COSIGN_PASSWORD)`);
    }
    try {
      return await decryptCosignKeyAsync(text, password);
    } catch (err) {
      if (err instanceof SignetError) {
        throw new SignetError(err.code, `${prefix}: ${err.message}`, { cause: err });
      }
      throw new SignetError('KEY_INVALID', `${prefix}: cannot decrypt cosign key`, { cause: err });
    }
  }
  if (!text.includes('-----BEGIN ')) {
    throw new SignetError('KEY_INVALID', `${prefix}: not a PEM file`);
  }
  const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text) || /Proc-Type:\s*4,ENCRYPTED/.test(text);
  if (encrypted && cfg.password === undefined) {
    throw new SignetError('KEY_PASSWORD', `${prefix}: encrypted private key needs keys[].password`);
  }
  try {
    return createPrivateKey(encrypted ? { key: text, format: 'pem', passphrase: cfg.password } : { key: text, format: 'pem' });
  } catch (err) {
    if (encrypted) {
      // A wrong password usually gives "bad decrypt", but can also surface as a decoding error.
      throw new SignetError('KEY_PASSWORD', `${prefix}: wrong password for encrypted private key (or corrupt file)`, {
        cause: err,
      });
    }
    throw new SignetError('KEY_INVALID', `${prefix}: no usable private key in PEM (${errCode(err) ?? 'parse error'})`, {
      cause: err,
    });
  }
}

function checkSupported(name: string, key: KeyObject): { algorithm: KeyAlgorithm; keyBits: number } {
  const what = describeKey(key);
  const refuse = (why: string): never => {
    throw new SignetError('KEY_UNSUPPORTED', `key "${name}" is ${what}: ${why}`);
  };
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (!RSA_SIZES.includes(bits)) refuse('RSA keys must have a 2048-bit modulus (3072 and 4096 are also accepted)');
      return { algorithm: 'rsa-2048', keyBits: bits };
    }
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') refuse('only the P-256 curve is supported');
      return { algorithm: 'ecdsa-p256', keyBits: 256 };
    case 'rsa-pss':
      return refuse('RSA-PSS keys are not supported (cosign verifies RSA signatures as PKCS#1 v1.5); use a plain RSA key');
    case 'ed25519':
      return refuse('Ed25519 is not supported (Rekor hashedrekord rejects pure Ed25519); use ECDSA P-256 or RSA-2048');
    default:
      return refuse('only ECDSA P-256 and RSA-2048 keys are supported');
  }
}

function makeSigner(key: KeyObject, algorithm: KeyAlgorithm): (digest: Buffer) => Buffer {
  if (algorithm === 'ecdsa-p256') return createP256DigestSigner(key);
  return (digest) => privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
}

/**
 * Mode bits a private key file must not have: any access by others. Group bits are allowed: a
 * Kubernetes secret volume mounted with `fsGroup` (as the Helm chart does) gets group read added
 * by the kubelet (0400 becomes 0440), and the group is then the pod's own.
 */
const OTHERS = 0o007;

/** Reads a private key file, refusing one that others may read or write (checked on the open file). */
async function readKeyFile(name: string, file: string): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(file, 'r');
    const { mode } = await handle.stat();
    if (process.platform !== 'win32' && (mode & OTHERS) !== 0) {
      const octal = (mode & 0o777).toString(8).padStart(4, '0');
      throw new SignetError(
        'KEY_FILE_PERMISSIONS',
        `key "${name}": private key file ${file} is accessible to other users (mode ${octal}); run "chmod 600 ${file}" (in Kubernetes, mount the secret with defaultMode: 0400)`,
      );
    }
    return await handle.readFile('utf8');
  } catch (err) {
    if (err instanceof SignetError) throw err;
    const code = errCode(err);
    const why = code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(err)})`;
    throw new SignetError('KEY_INVALID', `key "${name}": ${why}: ${file}`, { cause: err });
  } finally {
    await handle?.close();
  }
}

export async function createFileKeyProvider(cfg: FileKeyConfig, ctx: { baseDir: string }): Promise<FileKeyProvider> {
  const file = path.resolve(ctx.baseDir, cfg.path);
  const text = await readKeyFile(cfg.name, file);

  const privateKey = await loadPrivateKey(cfg, file, text);
  if (privateKey.type !== 'private') {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}" (${file}): not a private key`);
  }
  const { algorithm, keyBits } = checkSupported(cfg.name, privateKey);
  const publicKey = createPublicKey(privateKey);
  const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const signDigest = makeSigner(privateKey, algorithm);

  // Self-test: a signature over sha256(x) must verify as a signature over x.
  const probe = Buffer.from(`signet self-test for key ${cfg.name}`);
  const probeSig = signDigest(createHash('sha256').update(probe).digest());
  if (!verify('sha256', probe, publicKey, probeSig)) {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}" (${file}): self-test signature did not verify`);
  }

  return {
    name: cfg.name,
    algorithm,
    keyBits,
    async publicKeyPem() {
      return spkiPem;
    },
    async paddings() {
      return BOTH_PADDINGS;
    },
    async sign(digest: Buffer, payload?: Buffer, opts?: SignOptions) {
      assertSha256Digest(cfg.name, digest);
      const pss = algorithm === 'rsa-2048' && opts?.rsaPadding === 'pss';
      try {
        // With the message at hand, let OpenSSL hash and sign it (constant-time ECDSA); the
        // digest-only path (RFC 6979 in ecdsa.ts) is for callers that have no payload.
        if (payload && createHash('sha256').update(payload).digest().equals(digest)) {
          return pss
            ? cryptoSign('sha256', payload, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH })
            : cryptoSign('sha256', payload, { key: privateKey, dsaEncoding: 'der' });
        }
        return pss ? signPssDigest(privateKey, digest) : signDigest(digest);
      } catch (err) {
        if (err instanceof SignetError) throw err;
        throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": signing failed`, { cause: err });
      }
    },
  };
}

/**
 * Generate an unencrypted P-256 key for first-run use: PKCS#8 PEM at `keyPath` (mode 0600, never
 * overwriting an existing file) and SPKI PEM at `<keyPath without .key>.pub`. Creates the folder.
 */
export async function generateP256KeyFile(keyPath: string): Promise<{ privatePath: string; publicPath: string }> {
  const publicPath = keyPath.endsWith('.key') ? `${keyPath.slice(0, -'.key'.length)}.pub` : `${keyPath}.pub`;
  const { privateKey, publicKey } = await new Promise<{ privateKey: string; publicKey: string }>((resolve, reject) =>
    generateKeyPair(
      'ec',
      {
        namedCurve: 'P-256',
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        publicKeyEncoding: { type: 'spki', format: 'pem' },
      },
      (err, pub, priv) => (err ? reject(err) : resolve({ privateKey: priv, publicKey: pub })),
    ),
  );
  await mkdir(path.dirname(path.resolve(keyPath)), { recursive: true, mode: 0o700 });
  try {
    await writeFile(keyPath, privateKey, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if (errCode(err) === 'EEXIST') {
      throw new SignetError('KEY_INVALID', `refusing to overwrite existing key file ${keyPath}`, { cause: err });
    }
    throw new SignetError('KEY_INVALID', `cannot write key file ${keyPath} (${errCode(err) ?? String(err)})`, {
      cause: err,
    });
  }
  await writeFile(publicPath, publicKey, { mode: 0o644 });
  return { privatePath: keyPath, publicPath };
}

export const fileProvider = defineKeyProvider({
  id: 'file',
  schema: fileKeySchema,
  create: createFileKeyProvider,
});
