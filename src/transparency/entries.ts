/**
 * The Rekor entries signet logs, the checks on what Rekor stored, and the two ways an entry is
 * attached to a signature:
 *
 * - hashedrekord v0.0.1 for a legacy signature (sha256 of the simple-signing payload, the
 *   signature, the key or certificate PEM), carried in the layer annotation
 *   `dev.sigstore.cosign/bundle` = {SignedEntryTimestamp, Payload{body, integratedTime, logIndex,
 *   logID}} (cosign pkg/cosign/bundle/rekor.go; containers/image rekor_set.go parses exactly these
 *   fields, nothing else);
 * - dsse v0.0.1 for a sigstore bundle's DSSE envelope, carried as a bundle `tlogEntries[]` item
 *   (protobuf-specs sigstore_rekor.proto TransparencyLogEntry, protobuf JSON: int64 as strings,
 *   bytes as base64).
 */
import { createHash } from 'node:crypto';
import { SignetError } from '../errors.js';
import type { RekorLogEntry } from './rekor.js';

export const COSIGN_BUNDLE_ANNOTATION = 'dev.sigstore.cosign/bundle';

/**
 * The proposed hashedrekord entry (cosign pkg/cosign/tlog.go rekorEntry). `verifierPem` is what
 * the signature carries: the leaf certificate PEM when it has a `dev.sigstore.cosign/certificate`
 * annotation, else the public key PEM (legacyEntryVerifier). cosign >= 3.0.3 compares the entry with
 * exactly that, `--key` or not: pkg/cosign/verify.go VerifyBundle -> comparePublicKey(bundleBody,
 * sig, co) -> keyBytes(sig, co), which since v3.0.3 returns
 * `cryptoutils.MarshalCertificateToPEM(cert)` whenever `sig.Cert()` is non-nil (after checking
 * `--key` equals the certificate's key), and compares its first PEM block's DER with the entry's
 * `spec.signature.publicKey.content` ("comparing public key PEMs, expected ..., got ..."). cosign
 * 2.x's keyBytes returned the `--key` PEM when a key was given and the certificate otherwise, so
 * cosign 2.5 accepts a certificate entry through the certificate (`--certificate-chain`), not
 * through `--key`. containers/image compares the entry only under `keyData` + `rekorPublicKeyData`
 * (with the re-marshalled key: signature/policy_eval_sigstore.go); its `pki` trust takes no Rekor
 * key and never reads the entry.
 */
export function proposedHashedRekord(payloadSha256Hex: string, signature: Buffer, verifierPem: string): unknown {
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: payloadSha256Hex } },
      signature: { content: signature.toString('base64'), publicKey: { content: Buffer.from(verifierPem).toString('base64') } },
    },
  };
}

/** The proposed dsse entry (rekor pkg/types/dsse/v0.0.1: the envelope as a JSON string, verifiers as base64 PEM). */
export function proposedDsse(envelopeJson: string, verifierPem: string): unknown {
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: { proposedContent: { envelope: envelopeJson, verifiers: [Buffer.from(verifierPem).toString('base64')] } },
  };
}

/**
 * Rekor canonicalises what it stores (sorted keys, re-marshalled PEM): check that the stored body
 * is about our hash, our signature and our key before we attach it, so a wrong or lying log
 * cannot make us publish an annotation verifiers will refuse.
 */
export function checkHashedRekordBody(entry: RekorLogEntry, payloadSha256Hex: string, signature: Buffer, verifierPem: string): void {
  const spec = decodeBody(entry, 'hashedrekord') as {
    data?: { hash?: { algorithm?: string; value?: string } };
    signature?: { content?: string; publicKey?: { content?: string } };
  };
  const bad = (why: string) => new SignetError('REKOR_REJECTED', `rekor entry ${entry.uuid} does not match what signet logged: ${why}`);
  if (spec.data?.hash?.algorithm !== 'sha256' || spec.data.hash.value !== payloadSha256Hex) throw bad('payload hash');
  if (spec.signature?.content !== signature.toString('base64')) throw bad('signature');
  if (!samePem(spec.signature.publicKey?.content, verifierPem)) throw bad('public key or certificate');
}

export function checkDsseBody(entry: RekorLogEntry, payload: Buffer, signature: Buffer, verifierPem: string): void {
  const spec = decodeBody(entry, 'dsse') as {
    payloadHash?: { algorithm?: string; value?: string };
    signatures?: { signature?: string; verifier?: string }[];
  };
  const bad = (why: string) => new SignetError('REKOR_REJECTED', `rekor entry ${entry.uuid} does not match what signet logged: ${why}`);
  if (spec.payloadHash?.algorithm !== 'sha256' || spec.payloadHash.value !== createHash('sha256').update(payload).digest('hex')) throw bad('payload hash');
  const ours = spec.signatures?.find((s) => s.signature === signature.toString('base64'));
  if (!ours) throw bad('signature');
  if (!samePem(ours.verifier, verifierPem)) throw bad('public key or certificate');
}

/**
 * Does this `dev.sigstore.cosign/bundle` annotation hold a hashedrekord (or older rekord) entry
 * naming `verifierPem` at `spec.signature.publicKey.content` (same first PEM block, as cosign's
 * comparePublicKey/bundleKey decide)? An annotation that cannot be parsed names nothing.
 */
export function hashedRekordNames(annotation: string | undefined, verifierPem: string): boolean {
  const b = parseCosignBundleAnnotation(annotation);
  if (!b) return false;
  try {
    const doc = JSON.parse(Buffer.from(b.body, 'base64').toString('utf8')) as { kind?: unknown; spec?: { signature?: { publicKey?: { content?: unknown } } } };
    const content = doc.spec?.signature?.publicKey?.content;
    return (doc.kind === 'hashedrekord' || doc.kind === 'rekord') && typeof content === 'string' && samePem(content, verifierPem);
  } catch {
    return false;
  }
}

/** The `dev.sigstore.cosign/bundle` annotation value, fields in cosign's (Go struct) order. */
export function cosignBundleAnnotation(e: RekorLogEntry): string {
  return JSON.stringify({
    SignedEntryTimestamp: e.signedEntryTimestamp,
    Payload: { body: e.body, integratedTime: e.integratedTime, logIndex: e.logIndex, logID: e.logID },
  });
}

export interface ParsedCosignBundle {
  signedEntryTimestamp: string;
  body: string;
  integratedTime: number;
  logIndex: number;
  logID: string;
}

export function parseCosignBundleAnnotation(v: string | undefined): ParsedCosignBundle | undefined {
  if (!v) return undefined;
  try {
    const j = JSON.parse(v) as { SignedEntryTimestamp?: unknown; Payload?: { body?: unknown; integratedTime?: unknown; logIndex?: unknown; logID?: unknown } };
    const p = j.Payload;
    if (typeof j.SignedEntryTimestamp !== 'string' || !p || typeof p.body !== 'string' || typeof p.logID !== 'string') return undefined;
    if (typeof p.integratedTime !== 'number' || typeof p.logIndex !== 'number') return undefined;
    return { signedEntryTimestamp: j.SignedEntryTimestamp, body: p.body, integratedTime: p.integratedTime, logIndex: p.logIndex, logID: p.logID };
  } catch {
    return undefined;
  }
}

/** A sigstore bundle v0.3 `tlogEntries[]` item (protobuf JSON). v0.2+ needs the inclusion proof. */
export function bundleTlogEntry(e: RekorLogEntry, kind: 'dsse' | 'hashedrekord'): Record<string, unknown> {
  const p = e.inclusionProof;
  if (!p) {
    throw new SignetError('REKOR_REJECTED', `rekor entry ${e.uuid} came without an inclusion proof, which a v0.3 bundle requires (Rekor too old?)`);
  }
  const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
  return {
    logIndex: String(e.logIndex),
    logId: { keyId: b64(e.logID) },
    kindVersion: { kind, version: '0.0.1' },
    integratedTime: String(e.integratedTime),
    inclusionPromise: { signedEntryTimestamp: e.signedEntryTimestamp },
    inclusionProof: {
      logIndex: String(p.logIndex),
      rootHash: b64(p.rootHash),
      treeSize: String(p.treeSize),
      hashes: p.hashes.map(b64),
      checkpoint: { envelope: p.checkpoint },
    },
    canonicalizedBody: e.body,
  };
}

function decodeBody(entry: RekorLogEntry, kind: string): Record<string, unknown> {
  let doc: { apiVersion?: unknown; kind?: unknown; spec?: unknown };
  try {
    doc = JSON.parse(Buffer.from(entry.body, 'base64').toString('utf8'));
  } catch {
    throw new SignetError('REKOR_REJECTED', `rekor entry ${entry.uuid}: body is not JSON`);
  }
  if (doc.kind !== kind || doc.apiVersion !== '0.0.1' || !doc.spec || typeof doc.spec !== 'object') {
    throw new SignetError('REKOR_REJECTED', `rekor entry ${entry.uuid}: expected ${kind} v0.0.1, got ${String(doc.kind)} ${String(doc.apiVersion)}`);
  }
  return doc.spec as Record<string, unknown>;
}

/** Same first PEM block (DER bytes), as cosign's comparePublicKey does; `b64` is base64 of PEM text. */
function samePem(b64: string | undefined, pem: string): boolean {
  if (typeof b64 !== 'string') return false;
  const a = pemDer(Buffer.from(b64, 'base64').toString('utf8'));
  const b = pemDer(pem);
  return !!a && !!b && a.equals(b);
}

export function pemDer(pem: string): Buffer | undefined {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  return m ? Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64') : undefined;
}
