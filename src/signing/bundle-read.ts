/**
 * Reading sigstore bundles (v0.1-v0.3) that an OCI referrer holds, whoever wrote them (signet,
 * `cosign sign` 3.x, anyone who can push), and deciding whether one is a valid signature of an
 * image digest by a configured key. Pure: no registry access, no configuration; the caller fetches
 * the blob and hands over the key, the Rekor keys and a timestamp verifier.
 *
 * What `cosign sign --key` 3.1 writes (sigstore/cosign v3.1.1, cmd/cosign/cli/sign/sign.go
 * signDigestBundle; the default since v3.0, `--new-bundle-format`):
 * - an in-toto Statement v1 (protojson of in_toto_attestation v1 Statement): one subject, whose
 *   digest is `{"sha256": "<hex>"}` and whose `annotations` is the protobuf Struct of the `-a k=v`
 *   flags (`structpb.NewStruct(annotations)`: `{}` without `-a`, string values with it),
 *   predicateType `https://sigstore.dev/cosign/sign/v1` (pkg/types/predicate.go
 *   CosignSignPredicateType), predicate `{}`, no subject name;
 * - signed as DSSE, payloadType `application/vnd.in-toto+json` (signcommon/common.go
 *   NewAttestationBundle), by sigstore-go sign.Bundle (pkg/cosign/bundle/sign.go SignData): one
 *   signature over PAE, with the key's default hash (sigstore LoadDefaultVerifier: P-256 SHA-256,
 *   P-384 SHA-384, P-521 SHA-512, RSA PKCS#1 v1.5 SHA-256, Ed25519 pure);
 * - in a v0.3 bundle (protojson): verificationMaterial.publicKey.hint for `--key`, or
 *   `certificate` (the leaf only) for `--certificate`; a Rekor v1 signing config adds a `dsse`
 *   v0.0.1 tlogEntry with inclusionPromise and inclusionProof (sigstore-go pkg/sign/transparency.go
 *   getRekorV1TLE); a TSA adds timestampVerificationData.rfc3161Timestamps over the signature;
 * - pushed as an OCI 1.1 referrer (pkg/oci/remote/write.go WriteAttestationNewBundleFormat), found
 *   through the referrers API or the `sha256-<hex>` fallback index.
 * signet writes the same statement (bundle.ts signStatement; it omits `annotations` when there are
 * none, cosign writes `{}`): the claim is compared by meaning, never by bytes.
 *
 * How it is judged, following what cosign 3 (pkg/cosign/verifiers.go IntotoSubjectClaimVerifier,
 * correctAnnotations) and sigstore-go (pkg/verify/tlog.go VerifyTlogEntry, pkg/tlog/entry.go
 * VerifySET, VerifyInclusion) decide, so that signet's verdict is the one verifiers reach:
 * - the signature verifies with the configured key, or with the bundle's leaf certificate, whose
 *   key must be the configured key and which must be the configured certificate when there is one;
 * - DSSE: the statement has a subject whose digest names the image (`sha256` string-equal, as
 *   cosign compares), predicateType cosign sign, and every wanted annotation string-equal;
 *   messageSignature (a signature over the manifest bytes, e.g. `cosign sign-blob`-style): the
 *   message digest is the image digest and the caller supplies the manifest to verify against
 *   (node:crypto cannot verify an ECDSA signature over a digest without its message);
 * - tlog (with Rekor keys, or required): entries of unknown logs are skipped; one whose SET does
 *   not verify is skipped (sigstore-go skips it too); one of a trusted log with a valid SET must
 *   match this bundle (a dsse/hashedrekord v0.0.1 body naming this signature, payload and verifier:
 *   transparency/entries.ts checks) and its inclusion proof, when present, must verify against its
 *   signed checkpoint: otherwise the bundle is refused, as sigstore-go refuses it. At least one
 *   entry must count when required. An entry without a SET (Rekor v2) never counts here.
 * - RFC 3161 timestamps go through the caller's verifier (it knows the TSA chain); with a
 *   certificate, every verified time (SET integrated time, TSA time) must fall in its validity.
 *
 * Signature checks run on libuv's thread pool (crypto.verify with a callback), as
 * carry.ts layerSignedBy does; the SET check reuses rekor.ts verifySET (one ECDSA verify per
 * entry, at most MAX_TLOG_ENTRIES).
 */
import { createHash, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { checkDsseBody, checkHashedRekordBody } from '../transparency/entries.js';
import { logIdOf, verifySET, type RekorLogEntry } from '../transparency/rekor.js';
import { COSIGN_SIGN_PREDICATE, INTOTO_PAYLOAD_TYPE, pae } from './bundle.js';
import {
  bundleJsonSchema,
  bundleVersion,
  camelKeys,
  MAX_BUNDLE_BYTES,
  statementSchema,
  type BundleVersion,
  type HashAlgorithm,
  type TlogEntryJson,
} from './bundle-schemas.js';

export { MAX_BUNDLE_BYTES } from './bundle-schemas.js';

export const INTOTO_STATEMENT_TYPES = ['https://in-toto.io/Statement/v1', 'https://in-toto.io/Statement/v0.1'] as const;

export interface BundleTlogEntry {
  logIndex: number;
  /** the log's key id: sha256 of its DER public key (Rekor v1) */
  logId: Buffer;
  kind: string;
  version: string;
  integratedTime: number;
  canonicalizedBody: Buffer;
  /** the SET */
  signedEntryTimestamp?: Buffer;
  inclusionProof?: { logIndex: number; rootHash: Buffer; treeSize: number; hashes: Buffer[]; checkpoint: string };
}

export type BundleContent =
  | { kind: 'dsse'; payloadType: string; payload: Buffer; signatures: { sig: Buffer; keyid?: string }[] }
  | { kind: 'messageSignature'; digestAlgorithm: HashAlgorithm; digest: Buffer | undefined; signature: Buffer };

export type BundleVerifier =
  | { kind: 'publicKey'; hint?: string }
  /** leaf first (v0.3 `certificate`: the leaf only; v0.1/v0.2 `x509CertificateChain`: leaf, then issuers) */
  | { kind: 'certificate'; certificates: X509Certificate[] };

export interface SigstoreBundle {
  mediaType: string;
  version: BundleVersion;
  content: BundleContent;
  verifier: BundleVerifier;
  tlogEntries: BundleTlogEntry[];
  /** DER RFC 3161 TimeStampResponse / SignedData bytes, as the bundle holds them */
  rfc3161Timestamps: Buffer[];
}

/**
 * The sigstore bundle in a referrer's blob, or undefined when the bytes are not one (not JSON,
 * an unknown media type, fields missing, of the wrong type or beyond their bounds, both or neither
 * of the content kinds, an unparseable certificate, or what sigstore-go's bundle validation
 * refuses: a v0.1 tlog entry without SET, a v0.2+ one without inclusion proof, a v0.3 chain).
 */
export function parseSigstoreBundle(bytes: Buffer): SigstoreBundle | undefined {
  if (bytes.length > MAX_BUNDLE_BYTES) return undefined;
  let doc: unknown;
  try {
    doc = camelKeys(JSON.parse(bytes.toString('utf8')));
  } catch {
    return undefined;
  }
  const r = bundleJsonSchema.safeParse(doc);
  if (!r.success) return undefined;
  const b = r.data;
  const version = bundleVersion(b.mediaType);
  if (!version) return undefined;

  const vm = b.verificationMaterial;
  const kinds = [vm.publicKey, vm.x509CertificateChain, vm.certificate].filter((x) => x !== undefined).length;
  if (kinds !== 1) return undefined;
  let verifier: BundleVerifier;
  if (vm.publicKey) {
    verifier = vm.publicKey.hint === undefined ? { kind: 'publicKey' } : { kind: 'publicKey', hint: vm.publicKey.hint };
  } else {
    if (vm.x509CertificateChain && version === '0.3') return undefined;
    const raw = vm.certificate ? [vm.certificate.rawBytes] : vm.x509CertificateChain!.certificates.map((c) => c.rawBytes);
    try {
      verifier = { kind: 'certificate', certificates: raw.map((der) => new X509Certificate(der)) };
    } catch {
      return undefined;
    }
  }

  let content: BundleContent;
  if (b.dsseEnvelope && !b.messageSignature) {
    const e = b.dsseEnvelope;
    content = {
      kind: 'dsse',
      payloadType: e.payloadType,
      payload: e.payload,
      signatures: e.signatures.map((s) => (s.keyid === undefined ? { sig: s.sig } : { sig: s.sig, keyid: s.keyid })),
    };
  } else if (b.messageSignature && !b.dsseEnvelope) {
    const m = b.messageSignature;
    content = {
      kind: 'messageSignature',
      digestAlgorithm: m.messageDigest?.algorithm ?? 'HASH_ALGORITHM_UNSPECIFIED',
      digest: m.messageDigest?.digest,
      signature: m.signature,
    };
  } else {
    return undefined;
  }

  const tlogEntries: BundleTlogEntry[] = [];
  for (const e of vm.tlogEntries) {
    if (version === '0.1' ? !e.inclusionPromise : !e.inclusionProof) return undefined;
    tlogEntries.push(tlogEntry(e));
  }
  return {
    mediaType: b.mediaType,
    version,
    content,
    verifier,
    tlogEntries,
    rfc3161Timestamps: (vm.timestampVerificationData?.rfc3161Timestamps ?? []).map((t) => t.signedTimestamp),
  };
}

function tlogEntry(e: TlogEntryJson): BundleTlogEntry {
  const out: BundleTlogEntry = {
    logIndex: e.logIndex,
    logId: e.logId.keyId,
    kind: e.kindVersion.kind,
    version: e.kindVersion.version,
    integratedTime: e.integratedTime,
    canonicalizedBody: e.canonicalizedBody,
  };
  if (e.inclusionPromise) out.signedEntryTimestamp = e.inclusionPromise.signedEntryTimestamp;
  if (e.inclusionProof) {
    const p = e.inclusionProof;
    out.inclusionProof = { logIndex: p.logIndex, rootHash: p.rootHash, treeSize: p.treeSize, hashes: p.hashes, checkpoint: p.checkpoint.envelope };
  }
  return out;
}

export interface StatementSubject {
  /** `alg:hex` per digest the subject names, e.g. ["sha256:ab12..."] */
  digests: string[];
  /** the subject's annotations (cosign: the `-a k=v` values); {} when absent */
  annotations: Record<string, unknown>;
}

export type ImageClaim =
  { kind: 'statement'; statementType: string; predicateType: string; subjects: StatementSubject[] } | { kind: 'messageDigest'; digest: string };

/**
 * What the bundle claims about which image: the in-toto statement's subjects and predicate type
 * (DSSE), or the message digest (messageSignature). Undefined when the DSSE payload is not an
 * in-toto statement, or the message digest is absent or of an unknown algorithm. Unverified: a
 * claim means nothing until checkBundle has checked the signature over it.
 */
export function imageClaim(bundle: SigstoreBundle): ImageClaim | undefined {
  const c = bundle.content;
  if (c.kind === 'messageSignature') {
    const alg = DIGEST_NAMES[c.digestAlgorithm];
    return alg && c.digest ? { kind: 'messageDigest', digest: `${alg}:${c.digest.toString('hex')}` } : undefined;
  }
  if (c.payloadType !== INTOTO_PAYLOAD_TYPE) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(c.payload.toString('utf8'));
  } catch {
    return undefined;
  }
  const r = statementSchema.safeParse(doc);
  if (!r.success || !(INTOTO_STATEMENT_TYPES as readonly string[]).includes(r.data._type)) return undefined;
  return {
    kind: 'statement',
    statementType: r.data._type,
    predicateType: r.data.predicateType,
    subjects: r.data.subject.map((s) => ({ digests: Object.entries(s.digest).map(([alg, hex]) => `${alg}:${hex}`), annotations: s.annotations ?? {} })),
  };
}

const DIGEST_NAMES: Partial<Record<HashAlgorithm, string>> = { SHA2_256: 'sha256', SHA2_384: 'sha384', SHA2_512: 'sha512' };

export interface WantedClaim {
  /** the image (manifest) digest, `sha256:<hex>` */
  digest: string;
  /** annotations the statement's subject must carry, string-equal (cosign verify `-a k=v`) */
  annotations?: Readonly<Record<string, string>>;
  /** the manifest bytes: needed only to verify a messageSignature bundle (signed over them) */
  manifest?: Buffer;
  /** the statement's predicateType (default cosign's sign predicate; an attestation names its own, e.g. the SLSA VSA) */
  predicateType?: string;
}

export interface BundleSigner {
  publicKey: KeyObject;
  /** PEM of the key's configured leaf certificate; a bundle carrying a certificate must carry this one */
  certificatePem?: string;
  /**
   * PEM of the configured issuers. Not needed for the decision (the leaf must be the configured
   * leaf, which signet checked against its chain at startup); accepted so callers can pass the
   * configured key as it is.
   */
  chainPem?: string;
}

export interface CheckOptions {
  /** Rekor public keys (ECDSA) whose entries count; a tlog entry is required when any is given, unless requireTlog is false. */
  rekorKeys?: readonly KeyObject[];
  /** require a tlog entry with a SET by one of rekorKeys (default: whether rekorKeys is non-empty) */
  requireTlog?: boolean;
  /** verifies an RFC 3161 timestamp over the signature bytes; returns its time, throws when it does not verify */
  verifyTimestamp?: (signature: Buffer, signedTimestamp: Buffer) => Date;
  /** require at least one timestamp verified by verifyTimestamp */
  requireTimestamp?: boolean;
}

export type CheckResult = { ok: true; tlogEntries: number; timestamps: number } | { ok: false; why: string };

/**
 * Is `bundle` a valid signature of `want.digest` (with `want.annotations`) by `signer`? `why` is
 * short and specific (it goes into `signet verify` output); it never quotes bundle content beyond
 * digests and predicate types.
 */
export async function checkBundle(bundle: SigstoreBundle, want: WantedClaim, signer: BundleSigner, opts: CheckOptions = {}): Promise<CheckResult> {
  const no = (why: string): CheckResult => ({ ok: false, why });

  // 1. who signed: the key, or a leaf certificate for it
  let verifierPem: string;
  let leaf: X509Certificate | undefined;
  const keyDer = spki(signer.publicKey);
  if (bundle.verifier.kind === 'certificate') {
    leaf = bundle.verifier.certificates[0]!;
    if (!spki(leaf.publicKey).equals(keyDer)) return no('certificate is for another key');
    if (signer.certificatePem !== undefined) {
      let configured: X509Certificate;
      try {
        configured = new X509Certificate(signer.certificatePem);
      } catch {
        return no('configured certificate is not a PEM certificate');
      }
      if (!configured.raw.equals(leaf.raw)) return no('certificate is not the configured certificate');
    }
    verifierPem = leaf.toString();
  } else {
    verifierPem = signer.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  }
  const hash = hashFor(signer.publicKey);
  if (hash === false) return no(`unsupported key type ${signer.publicKey.asymmetricKeyType ?? 'unknown'}`);

  // 2. what is claimed, and the signature over it
  const c = bundle.content;
  let signature: Buffer;
  let bodyCheck: (e: RekorLogEntry) => void;
  let entryKind: 'dsse' | 'hashedrekord';
  if (c.kind === 'dsse') {
    if (c.signatures.length !== 1) return no(`DSSE envelope has ${c.signatures.length} signatures, a bundle holds one`);
    if (c.payloadType !== INTOTO_PAYLOAD_TYPE) return no(`payload type ${short(c.payloadType)} is not in-toto`);
    const claim = imageClaim(bundle);
    if (!claim || claim.kind !== 'statement') return no('payload is not an in-toto statement');
    const predicateType = want.predicateType ?? COSIGN_SIGN_PREDICATE;
    if (claim.predicateType !== predicateType) return no(`predicate type ${short(claim.predicateType)} is not ${predicateType}`);
    const subject = claim.subjects.find((s) => s.digests.includes(want.digest));
    if (!subject) return no(`statement does not name ${want.digest}`);
    for (const [k, v] of Object.entries(want.annotations ?? {})) {
      const have = subject.annotations[k];
      if (have === undefined) return no(`annotation ${short(k)} missing`);
      if (have !== v) return no(`annotation ${short(k)} differs`);
    }
    signature = c.signatures[0]!.sig;
    if (!(await verifyAsync(hash, pae(c.payloadType, c.payload), signer.publicKey, signature))) return no('signature does not verify with the key');
    bodyCheck = (e) => checkDsseBody(e, c.payload, signature, verifierPem);
    entryKind = 'dsse';
  } else {
    const claim = imageClaim(bundle);
    if (!claim || claim.kind !== 'messageDigest') return no('message digest missing or of an unknown algorithm');
    if (claim.digest !== want.digest) return no(`message digest is not ${want.digest}`);
    if (want.annotations && Object.keys(want.annotations).length) return no('a message signature carries no annotations');
    if (!want.manifest) return no('message signature: the manifest is needed to verify it');
    const [alg] = want.digest.split(':');
    if (alg !== 'sha256' || createHash('sha256').update(want.manifest).digest('hex') !== c.digest!.toString('hex'))
      return no('manifest does not match the message digest');
    signature = c.signature;
    if (!(await verifyAsync(hash, want.manifest, signer.publicKey, signature))) return no('signature does not verify with the key');
    bodyCheck = (e) => checkHashedRekordBody(e, c.digest!.toString('hex'), signature, verifierPem);
    entryKind = 'hashedrekord';
  }

  // 3. transparency log
  const rekorKeys = opts.rekorKeys ?? [];
  const requireTlog = opts.requireTlog ?? rekorKeys.length > 0;
  const times: Date[] = [];
  let tlogEntries = 0;
  if (requireTlog && rekorKeys.length === 0) return no('a tlog entry is required but no Rekor key is configured');
  if (rekorKeys.length) {
    const logs = new Map(rekorKeys.map((k) => [logIdOf(k), k]));
    const seen = new Set<string>();
    for (const [i, e] of bundle.tlogEntries.entries()) {
      const logId = e.logId.toString('hex');
      const dup = `${logId}/${e.logIndex}`;
      if (seen.has(dup)) return no(`tlog entry ${i} is a duplicate`);
      seen.add(dup);
      const key = logs.get(logId);
      if (!key || !e.signedEntryTimestamp) continue; // another log, or no SET (Rekor v2): does not count
      const entry: RekorLogEntry = {
        uuid: `#${i}`,
        body: e.canonicalizedBody.toString('base64'),
        integratedTime: e.integratedTime,
        logIndex: e.logIndex,
        logID: logId,
        signedEntryTimestamp: e.signedEntryTimestamp.toString('base64'),
        existing: false,
      };
      if (!verifySET(entry, key)) continue; // sigstore-go skips entries whose SET it cannot verify
      if (e.kind !== entryKind || e.version !== '0.0.1') return no(`tlog entry ${i} is ${short(e.kind)} ${short(e.version)}, not ${entryKind} 0.0.1`);
      try {
        bodyCheck(entry);
      } catch (err) {
        return no(`tlog entry ${i} does not match the bundle: ${entryMismatch(err)}`);
      }
      if (e.inclusionProof) {
        const why = await checkInclusion(e.canonicalizedBody, e.inclusionProof, key);
        if (why) return no(`tlog entry ${i}: ${why}`);
      }
      tlogEntries++;
      times.push(new Date(e.integratedTime * 1000));
    }
    if (requireTlog && tlogEntries === 0) {
      return no(bundle.tlogEntries.length ? 'no tlog entry with a SET by a configured Rekor key' : 'no tlog entry');
    }
  }

  // 4. timestamps
  let timestamps = 0;
  if (opts.verifyTimestamp) {
    for (const ts of bundle.rfc3161Timestamps) {
      try {
        times.push(opts.verifyTimestamp(signature, ts));
        timestamps++;
      } catch {
        // a timestamp that does not verify does not count
      }
    }
  }
  if (opts.requireTimestamp && timestamps === 0) {
    return no(
      !opts.verifyTimestamp
        ? 'a timestamp is required but no timestamp verifier is configured'
        : bundle.rfc3161Timestamps.length
          ? 'no timestamp verifies'
          : 'no timestamp',
    );
  }

  // 5. a certificate must have been valid when the signature was observed
  if (leaf) {
    const from = new Date(leaf.validFrom);
    const to = new Date(leaf.validTo);
    if (times.some((t) => t < from || t > to)) return no('signed outside the certificate validity');
  }
  return { ok: true, tlogEntries, timestamps };
}

/** The hash sigstore's default verifier uses with this key (LoadDefaultVerifier), null for Ed25519, false when unsupported. */
function hashFor(key: KeyObject): string | null | false {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'sha256';
    case 'ed25519':
      return null;
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return curve === 'prime256v1' ? 'sha256' : curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : false;
    }
    default:
      return false;
  }
}

/** crypto.verify on the thread pool. ECDSA: DER, or IEEE P1363 r||s (sigstore's ECDSA verifier accepts both). */
async function verifyAsync(hash: string | null, data: Buffer, key: KeyObject, sig: Buffer): Promise<boolean> {
  const once = (dsaEncoding: 'der' | 'ieee-p1363') =>
    new Promise<boolean>((resolve) => {
      try {
        cryptoVerify(hash, data, { key, dsaEncoding }, sig, (err, ok) => resolve(!err && ok));
      } catch {
        resolve(false);
      }
    });
  if (await once('der')) return true;
  return key.asymmetricKeyType === 'ec' && sig[0] !== 0x30 ? once('ieee-p1363') : false;
}

function spki(k: KeyObject): Buffer {
  return k.export({ type: 'spki', format: 'der' });
}

/** The reason an entries.ts body check gave, without its "rekor entry X does not match what signet logged" preamble. */
function entryMismatch(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return short(m.replace(/^rekor entry \S+(?: does not match what signet logged)?: /, ''));
}

/** Text from the bundle in a `why`: bounded, printable. */
function short(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 80 ? `${t.slice(0, 77)}...` : t;
}

// ---- inclusion proofs (RFC 6962 / RFC 9162 2.1.3.2) and Rekor v1 checkpoints -------------------

const leafHash = (body: Buffer) =>
  createHash('sha256')
    .update(Buffer.concat([Buffer.from([0]), body]))
    .digest();
const nodeHash = (l: Buffer, r: Buffer) =>
  createHash('sha256')
    .update(Buffer.concat([Buffer.from([1]), l, r]))
    .digest();

/** The root an audit path leads to, or undefined when the path cannot belong to a tree of this size. */
export function rootFromInclusionProof(index: number, treeSize: number, leaf: Buffer, hashes: readonly Buffer[]): Buffer | undefined {
  let fn = BigInt(index);
  let sn = BigInt(treeSize) - 1n;
  if (fn > sn) return undefined;
  let r = leaf;
  for (const p of hashes) {
    if (sn === 0n) return undefined;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : undefined;
}

/**
 * What sigstore-go checks of a Rekor v1 inclusion proof (pkg/tlog/entry.go VerifyInclusion:
 * rekor pkg/verify VerifyInclusion + VerifyCheckpointSignature): the path leads from the entry's
 * leaf to rootHash, the checkpoint (a signed note) is signed by the log's key and names that root.
 * Returns a reason, or undefined when it holds.
 */
async function checkInclusion(body: Buffer, p: NonNullable<BundleTlogEntry['inclusionProof']>, key: KeyObject): Promise<string | undefined> {
  const root = rootFromInclusionProof(p.logIndex, p.treeSize, leafHash(body), p.hashes);
  if (!root || !root.equals(p.rootHash)) return 'inclusion proof does not lead to its root hash';
  const note = parseSignedNote(p.checkpoint);
  if (!note) return 'checkpoint is not a signed note';
  const lines = note.text.split('\n');
  let noteRoot: Buffer | undefined;
  try {
    noteRoot = lines.length >= 4 && /^\d+$/.test(lines[1]!) ? Buffer.from(lines[2]!, 'base64') : undefined;
  } catch {
    noteRoot = undefined;
  }
  if (!noteRoot || !noteRoot.equals(p.rootHash)) return 'checkpoint does not name the root hash';
  const hint = createHash('sha256').update(spki(key)).digest().subarray(0, 4);
  for (const s of note.signatures) {
    if (!s.subarray(0, 4).equals(hint)) return 'checkpoint is signed by another key';
    if (!(await verifyAsync('sha256', Buffer.from(note.text), key, s.subarray(4)))) return 'checkpoint signature does not verify';
  }
  return undefined;
}

/** A signed note (rekor pkg/util/signed_note.go UnmarshalText): text up to the last blank line, then "— name base64(hint||sig)" lines. */
function parseSignedNote(s: string): { text: string; signatures: Buffer[] } | undefined {
  const split = s.lastIndexOf('\n\n');
  if (split < 0) return undefined;
  const text = s.slice(0, split + 1);
  const rest = s.slice(split + 2);
  if (!rest.endsWith('\n')) return undefined;
  const signatures: Buffer[] = [];
  for (const line of rest.slice(0, -1).split('\n')) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(line);
    if (!m) return undefined;
    const sig = Buffer.from(m[2]!, 'base64');
    if (sig.length < 5) return undefined;
    signatures.push(sig);
  }
  return signatures.length ? { text, signatures } : undefined;
}
