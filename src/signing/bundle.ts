/**
 * The sigstore bundle format, as cosign v3 `sign` writes it (cmd/cosign/cli/sign/sign.go
 * signDigestBundle, pkg/oci/remote/write.go WriteAttestationNewBundleFormat):
 *
 * - an in-toto Statement v1 about the manifest digest, predicateType
 *   https://sigstore.dev/cosign/sign/v1, empty predicate, the rule's annotations as the subject's
 *   annotations (no docker-reference: the bundle format has none);
 * - signed as a DSSE envelope (payloadType application/vnd.in-toto+json; the key signs
 *   sha256(PAE(type, statement)));
 * - in a bundle v0.3 (protobuf JSON), verification material = the public key (hint: base64
 *   sha256 of the DER key) or the key's certificate, plus a dsse Rekor entry when the rule logs;
 * - stored as an OCI 1.1 artifact: one layer (the bundle), empty config, `subject` = the signed
 *   manifest, pushed by digest; found through the referrers API or the referrers fallback tag
 *   `sha256-<hex>` (an image index signet maintains where the registry has no API).
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { OCI_INDEX, OCI_MANIFEST } from '../registry/media-types.js';
import type { ReferrersIndex } from '../registry/schemas.js';
import { sha256Digest } from '../util/digest.js';

export const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const INTOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const INTOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const EMPTY_CONFIG = Buffer.from('{}');

/** cosign's referrer manifest annotations. */
export const BUNDLE_CONTENT_ANNOTATION = 'dev.sigstore.bundle.content';
export const BUNDLE_PREDICATE_ANNOTATION = 'dev.sigstore.bundle.predicateType';
export const CREATED_ANNOTATION = 'org.opencontainers.image.created';
/** signet's own: which statement and key a referrer holds, so dedup needs no blob download. */
export const STATEMENT_ANNOTATION = 'dev.signet.bundle.statement';
export const KEY_ANNOTATION = 'dev.signet.bundle.key';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The statement cosign v3 signs for `cosign sign` (annotations = `-a` values). */
export function signStatement(digest: string, annotations?: Readonly<Record<string, string>>): Buffer {
  const [alg, hex] = digest.split(':');
  const subject: Record<string, unknown> = { digest: { [alg!]: hex } };
  if (annotations && Object.keys(annotations).length) subject['annotations'] = sortKeys(annotations);
  return Buffer.from(JSON.stringify({ _type: INTOTO_STATEMENT_V1, subject: [subject], predicateType: COSIGN_SIGN_PREDICATE, predicate: {} }));
}

/** DSSE pre-authentication encoding: "DSSEv1 <len(type)> <type> <len(body)> <body>". */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType);
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

/** The envelope as Rekor's dsse type receives it (secure-systems-lab dsse.Envelope field order). */
export function envelopeJson(payload: Buffer, signature: Buffer): string {
  return JSON.stringify({
    payloadType: INTOTO_PAYLOAD_TYPE,
    payload: payload.toString('base64'),
    signatures: [{ keyid: '', sig: signature.toString('base64') }],
  });
}

/** sha256 of the DER SubjectPublicKeyInfo, "sha256:<hex>" (what KEY_ANNOTATION holds). */
export function keyId(publicKeyPem: string): string {
  return `sha256:${spkiSha256(publicKeyPem).toString('hex')}`;
}

/**
 * sha256 of a public key's DER SubjectPublicKeyInfo, remembered per PEM: every bundle names its
 * key twice (the key id annotation, the public key hint), and parsing the PEM for that was 5 % of
 * a worker's CPU with the default formats (BENCHMARKS.md round 5). A handful of keys: bounded.
 */
const spkiDigests = new Map<string, Buffer>();
function spkiSha256(publicKeyPem: string): Buffer {
  let d = spkiDigests.get(publicKeyPem);
  if (!d) {
    d = createHash('sha256')
      .update(createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' }))
      .digest();
    if (spkiDigests.size >= 256) spkiDigests.clear();
    spkiDigests.set(publicKeyPem, d);
  }
  return d;
}

export function buildBundle(opts: {
  statement: Buffer;
  signature: Buffer;
  publicKeyPem: string;
  certificatePem?: string | undefined;
  tlogEntries?: Record<string, unknown>[];
  /** RFC 3161 responses over the DSSE signature (timestampVerificationData). */
  timestamps?: Buffer[];
}): Buffer {
  const verificationMaterial: Record<string, unknown> = opts.certificatePem
    ? { certificate: { rawBytes: new X509Certificate(opts.certificatePem).raw.toString('base64') } }
    : {
        publicKey: { hint: spkiSha256(opts.publicKeyPem).toString('base64') },
      };
  if (opts.tlogEntries?.length) verificationMaterial['tlogEntries'] = opts.tlogEntries;
  if (opts.timestamps?.length) {
    verificationMaterial['timestampVerificationData'] = { rfc3161Timestamps: opts.timestamps.map((t) => ({ signedTimestamp: t.toString('base64') })) };
  }
  return Buffer.from(
    JSON.stringify({
      mediaType: BUNDLE_V03,
      verificationMaterial,
      dsseEnvelope: {
        payload: opts.statement.toString('base64'),
        payloadType: INTOTO_PAYLOAD_TYPE,
        signatures: [{ sig: opts.signature.toString('base64') }],
      },
    }),
  );
}

/** The referrer manifest (cosign's WriteReferrer layout; keys in Go struct order). */
export function referrerManifest(bundle: Buffer, subject: Descriptor, annotations: Readonly<Record<string, string>>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_EMPTY, size: EMPTY_CONFIG.length, digest: sha256Digest(EMPTY_CONFIG) },
      layers: [{ mediaType: BUNDLE_V03, size: bundle.length, digest: sha256Digest(bundle) }],
      annotations: sortKeys(annotations),
      subject: { mediaType: subject.mediaType, size: subject.size, digest: subject.digest },
      artifactType: BUNDLE_V03,
    }),
  );
}

export function referrerAnnotations(statement: Buffer, publicKeyPem: string, now: Date = new Date()): Record<string, string> {
  return {
    [BUNDLE_CONTENT_ANNOTATION]: 'dsse-envelope',
    [BUNDLE_PREDICATE_ANNOTATION]: COSIGN_SIGN_PREDICATE,
    [CREATED_ANNOTATION]: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    [STATEMENT_ANNOTATION]: sha256Digest(statement),
    [KEY_ANNOTATION]: keyId(publicKeyPem),
  };
}

/** The referrers fallback tag for a digest: sha256:<hex> -> sha256-<hex> (distribution-spec "Referrers Tag Schema"). */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}

/**
 * Add descriptors to a fallback-tag index (`existing`: the tag's manifest, checked as a referrers
 * index) or a new one, skipping digests already listed. Whatever else the index holds is kept.
 */
export function appendToIndex(
  existing: ReferrersIndex | undefined,
  add: readonly (Descriptor & { artifactType: string; annotations: Record<string, string> })[],
): {
  body: Buffer;
  changed: boolean;
} {
  const doc: Record<string, unknown> & { manifests: Record<string, unknown>[] } = existing
    ? { ...existing, manifests: [...existing.manifests] }
    : { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
  const have = new Set(doc.manifests.map((m) => m['digest']));
  let changed = !existing;
  for (const d of add) {
    if (have.has(d.digest)) continue;
    doc.manifests.push({ mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: sortKeys(d.annotations), artifactType: d.artifactType });
    have.add(d.digest);
    changed = true;
  }
  doc['mediaType'] ??= OCI_INDEX;
  return { body: Buffer.from(JSON.stringify(doc)), changed };
}

function sortKeys(o: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]!;
  return out;
}
