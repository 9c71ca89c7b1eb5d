/**
 * A Vault transit key's metadata (type, pinned version, public key) read and checked, and the
 * local check of each signature Vault returns against that public key.
 */
import { constants, createHash, createPublicKey, publicDecrypt, verify, type KeyObject } from 'node:crypto';
import { checkShape } from '../../edge/upstream-json.js';
import { SignetError } from '../../errors.js';
import { upstreamText } from '../../log.js';
import { derEcdsaToRaw } from '../ecdsa.js';
import { verifyPssDigest } from '../pss.js';
import type { KeyAlgorithm } from '../types.js';
import { keyReadSchema, keyVersionSchema } from './http.js';

export const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export const SUPPORTED: Record<string, KeyAlgorithm> = { 'rsa-2048': 'rsa-2048', 'ecdsa-p256': 'ecdsa-p256' };

export interface KeyInfo {
  algorithm: KeyAlgorithm;
  version: number;
  publicKey: KeyObject;
  spkiPem: string;
}

export function readKeyInfo(cfgName: string, keyLabel: string, body: unknown, pinned: number | undefined): KeyInfo {
  const bad = (why: string) => new SignetError('KEY_INVALID', `key "${cfgName}": unexpected Vault answer for ${keyLabel}: ${why}`);
  const checked = checkShape(body, keyReadSchema);
  if (!checked.ok) throw bad(checked.why);
  const data = checked.value.data;
  const type = data.type;
  const algorithm = SUPPORTED[type];
  if (!algorithm) {
    const why =
      type === 'ed25519'
        ? 'Ed25519 is not supported (Rekor hashedrekord and cosign verification need ECDSA P-256 or RSA-2048)'
        : data.supports_signing === false || /^(aes|chacha|hmac)/.test(type)
          ? 'it is not a signing key'
          : 'only rsa-2048 and ecdsa-p256 transit keys are supported';
    throw new SignetError('KEY_UNSUPPORTED', `key "${cfgName}" is ${keyLabel} of type ${upstreamText(type, { max: 40 })}: ${why}`);
  }
  if (data.derived === true) {
    throw new SignetError('KEY_UNSUPPORTED', `key "${cfgName}" is ${keyLabel}, a derived key: derived keys cannot sign`);
  }
  const latest = data.latest_version;
  const version = pinned ?? latest;
  if (pinned !== undefined && pinned > latest) {
    throw new SignetError('KEY_NOT_FOUND', `key "${cfgName}": ${keyLabel} has no version ${pinned} (latest is ${latest})`);
  }
  const minEnc = data.min_encryption_version ?? 0;
  if (minEnc > 0 && version < minEnc) {
    throw new SignetError('KEY_DISABLED', `key "${cfgName}": version ${version} of ${keyLabel} is below its min_encryption_version ${minEnc} and cannot sign`);
  }
  const raw = data.keys[String(version)];
  if (raw === undefined) {
    throw new SignetError('KEY_NOT_FOUND', `key "${cfgName}": version ${version} of ${keyLabel} is not available (trimmed or archived)`);
  }
  const entry = checkShape(raw, keyVersionSchema);
  if (!entry.ok || !entry.value.public_key.includes('BEGIN PUBLIC KEY')) {
    throw bad(`version ${version} has no PEM public key (is this caller allowed to read it?)`);
  }
  const pem = entry.value.public_key;
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (err) {
    throw new SignetError('KEY_INVALID', `key "${cfgName}": public key of ${keyLabel} version ${version} does not parse`, { cause: err });
  }
  const d = publicKey.asymmetricKeyDetails;
  const ok =
    algorithm === 'rsa-2048'
      ? publicKey.asymmetricKeyType === 'rsa' && d?.modulusLength === 2048
      : publicKey.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1';
  if (!ok) {
    throw new SignetError('KEY_INVALID', `key "${cfgName}": public key of ${keyLabel} version ${version} does not match its type ${type}`);
  }
  return { algorithm, version, publicKey, spkiPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

/** True when `sig` is a valid signature over the message whose SHA-256 is `digest`. */
export function checkSignature(info: KeyInfo, digest: Buffer, sig: Buffer, payload?: Buffer, pss = false): boolean {
  try {
    if (pss) return verifyPssDigest(info.publicKey, digest, sig);
    if (payload && createHash('sha256').update(payload).digest().equals(digest)) {
      return verify('sha256', payload, info.publicKey, sig);
    }
    if (info.algorithm === 'rsa-2048') {
      const em = publicDecrypt({ key: info.publicKey, padding: constants.RSA_PKCS1_PADDING }, sig);
      return em.equals(Buffer.concat([SHA256_DIGEST_INFO, digest]));
    }
    derEcdsaToRaw(sig); // Node cannot verify ECDSA over a bare digest: check the DER shape only
    return true;
  } catch {
    return false;
  }
}
