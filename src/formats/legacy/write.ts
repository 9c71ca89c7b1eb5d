/**
 * The legacy format's writer: cosign signatures in the `sha256-<hex>.sig` manifest of one digest.
 *
 * 1. Outside the lock (so KMS and Rekor round trips never hold it): read the .sig manifest and,
 *    per key, find a layer with the same payload that verifies with the key. Present and complete
 *    -> nothing to do. Present but missing what the rule now wants (a Rekor entry, the key's
 *    certificate, a Rekor entry naming the layer's certificate instead of the bare key) -> the
 *    present signature is logged / annotated ("upgraded"; no new signature).
 *    Absent -> sign, log to Rekor when the rule says so, and build the layer.
 *    When signet has no record of the digest (`expectNew`) and the rule logs nothing to Rekor,
 *    this read is skipped: the read under the lock merges whatever is there (a signature that
 *    was there after all costs one key call, and ours is dropped in its favour).
 * 2. Upload the payload blob (content-addressed: no lock needed) unless the .sig read in step 1
 *    already references it.
 * 3. Under the per-digest lock (the pipeline's signing lock, or `lock` when called on its own):
 *    read the .sig manifest, merge (another writer may have added an equivalent layer meanwhile:
 *    then ours is dropped and reported as present) and PUT the manifest by tag. Its config is the
 *    constant shared by every .sig (legacy-sig.ts SIGNATURE_CONFIG), uploaded once per
 *    repository (RegistryClient.putManifestWith).
 *    Each read is sorted by carry.ts first: layers claiming our payload that no configured key
 *    verifies are dropped (a bounded number verified, off the event loop), and the result must
 *    fit cosign's limits or the job fails with SIGNATURE_LIMIT_EXCEEDED (even when our signature
 *    is already there: a .sig cosign refuses is not "present"). A .sig that lost layers that way
 *    is written back even when nothing of ours is missing. With `verifyWrite`, read it back to confirm
 *    (bounded retries). A new signature thus costs 4 registry requests after the resolve
 *    (POST+PUT payload, GET .sig, PUT .sig; the payload in one POST where the registry takes
 *    it), 5 with `verifyWrite`, and the config's POST+PUT once per repository.
 */
import { SignetError } from '../../errors.js';
import type { SigningKey } from '../../kms/signing-key.js';
import type { RegistryClient } from '../../registry/client.js';
import { OCI_MANIFEST, COSIGN_SIMPLE_SIGNING } from '../../registry/media-types.js';
import { signatureTag } from '../../registry/reference.js';
import {
  checkHashedRekordBody,
  COSIGN_BUNDLE_ANNOTATION,
  cosignBundleAnnotation,
  hashedRekordNames,
  parseCosignBundleAnnotation,
  proposedHashedRekord,
} from '../../transparency/entries.js';
import { sha256Digest } from '../../util/digest.js';
import { CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, legacyEntryVerifier } from '../../signing/certificate.js';
import type { Exclusion } from '../../signing/lock.js';
import {
  checkPayloadSize,
  checkSignatureLimits,
  countDropped,
  triageLayers,
  type Carried,
  type SignatureLimitMetrics,
  type Triage,
} from '../../signing/carry.js';
import { parseSignatureManifest, SIGNATURE_ANNOTATION, type SignatureLayer } from '../../signing/legacy-sig.js';
import { simpleSigningPayload } from '../../signing/payload.js';
import type { SigningPlan } from '../../signing/plan.js';
import type { Signer } from '../../signing/signer.js';
import type { TlogStatus } from '../../signing/tlog.js';
import type { SignResult, Subject, WriteContext } from '../types.js';
import { presentTimestamp, timestampAnnotation, TIMESTAMP_ANNOTATION } from './timestamp.js';

export interface SignRequest {
  signer: Signer;
  payload: Buffer;
}

export interface AttachOptions {
  /** signet has no record of this digest: skip the read before signing (unless the rule logs to Rekor or stamps). */
  expectNew?: boolean | undefined;
  /** Read the manifest back after the PUT and redo the merge when another writer replaced it (registries[].verifyWrites). */
  verifyWrite?: boolean | undefined;
  /**
   * The other configured keys: a layer claiming the payload signet signs is carried forward when
   * it verifies with one of the signing keys or one of these (carry.ts).
   */
  verifiers?: readonly SigningKey[] | undefined;
  metrics?: SignatureLimitMetrics | undefined;
}

/** The legacy format's `write`: the plan's payload for this manifest, signed by each of the plan's signers. */
export function writeLegacy(ctx: WriteContext, plan: SigningPlan, subject: Subject): Promise<SignResult[]> {
  if (plan.identity === undefined) throw new SignetError('INTERNAL', 'a legacy signature needs an identity');
  const payload = simpleSigningPayload(plan.identity, subject.digest, plan.annotations);
  return attachLegacySignatures(
    ctx.client,
    ctx.repository,
    subject.digest,
    ctx.signers.map((signer) => ({ signer, payload })),
    ctx.lock,
    {
      expectNew: ctx.expectNew,
      verifyWrite: ctx.verifyWrite,
      verifiers: ctx.keys,
      metrics: ctx.metrics,
    },
  );
}

const MAX_ATTEMPTS = 3;
interface Plan {
  req: SignRequest;
  result: SignResult;
  /** The layer this key's signature should be in the manifest as (absent: nothing to write). */
  layer?: SignatureLayer;
  /** Annotation keys a matching layer must carry for this plan to be done. */
  requiredKeys: string[];
  /** Does this layer carry what the plan needs (the required keys, and a Rekor entry naming what the layer carries)? */
  fits: (l: SignatureLayer) => boolean;
  /** The signature (base64) the read-back must find. */
  expect?: string;
}

export async function attachLegacySignatures(
  client: RegistryClient,
  repository: string,
  digest: string,
  requests: readonly SignRequest[],
  lock: Exclusion,
  opts: AttachOptions = {},
): Promise<SignResult[]> {
  const tag = signatureTag(digest);
  const where = `${client.host}/${repository}:${tag}`;
  for (const r of requests) checkPayloadSize(where, r.payload, opts.metrics);
  const payloads = new Map(requests.map((r) => [sha256Digest(r.payload), r.payload]));
  const signing = [...new Set(requests.map((r) => r.signer.key))];
  const others = (opts.verifiers ?? []).filter((k) => !signing.includes(k));
  const triage = async (m: { document: unknown } | undefined): Promise<Triage> =>
    m ? triageLayers(parseSignatureManifest(m.document, where), payloads, signing, others) : { carried: [], invalid: 0, unchecked: 0 };

  // A Rekor entry is public and permanent, and a timestamp costs a TSA call: never made for a
  // signature that may be there already.
  const witnessed = requests.some((r) => r.signer.witnesses.tlog || r.signer.witnesses.timestamp);
  const preRead = !opts.expectNew || witnessed;
  const before = preRead ? await triage(await client.getManifest(repository, tag, OCI_MANIFEST)) : undefined;
  const plans = await Promise.all(requests.map((req) => plan(req, before?.carried ?? [])));
  const work = plans.filter((p) => p.layer);
  if (work.length === 0 && before && !dropsAny(before)) {
    // present: but only a .sig a verifier reads counts
    checkSignatureLimits(
      where,
      before.carried.map((c) => c.layer),
      opts.metrics,
    );
    return plans.map((p) => p.result);
  }

  // Payload blobs are content-addressed, so they go up before the lock is taken. A payload a
  // verified layer of the .sig already references is in the repository (keys sharing one
  // payload, upgrades).
  const uploaded = new Set((before?.carried ?? []).map((c) => c.layer.digest));
  const uploadPayloads = async (knownAbsent: boolean): Promise<void> => {
    for (const p of work) {
      if (uploaded.has(p.layer!.digest)) continue;
      await client.uploadBlob(repository, p.req.payload, { fresh: knownAbsent });
      uploaded.add(p.layer!.digest);
    }
  };
  await uploadPayloads(true);

  return lock.withLock(`${client.host}/${repository}@${digest}`, async () => {
    for (let attempt = 1; ; attempt++) {
      const existing = await triage(await client.getManifest(repository, tag, OCI_MANIFEST));
      const { next, dirty } = merge(existing.carried, work);
      const built = checkSignatureLimits(where, next, opts.metrics);
      if (!dirty && !dropsAny(existing)) return plans.map((p) => p.result);

      for (const c of existing.carried) uploaded.add(c.layer.digest);
      // uploads anything only when the layers changed oddly under us (e.g. the read before signing was stale)
      await uploadPayloads(false);
      countDropped(existing, opts.metrics);
      await client.putManifestWith(repository, tag, built.manifest, OCI_MANIFEST, built.config);
      if (!opts.verifyWrite) return plans.map((p) => p.result);

      // Read back: a writer outside signet's lock (cosign, another tool) may have replaced the
      // manifest right after our PUT.
      const check = await client.getManifest(repository, tag, OCI_MANIFEST);
      const stored = check ? parseSignatureManifest(check.document, where) : [];
      const kept = work.every((p) => stored.some((l) => l.digest === p.layer!.digest && l.annotations[SIGNATURE_ANNOTATION] === p.expect && p.fits(l)));
      if (kept) return plans.map((p) => p.result);
      if (attempt >= MAX_ATTEMPTS) {
        throw new SignetError('SIGNATURE_READBACK_FAILED', `${repository}:${tag} changed under us ${MAX_ATTEMPTS} times (another writer outside signet?)`);
      }
    }
  });
}

const dropsAny = (t: Triage): boolean => t.invalid + t.unchecked > 0;

/** Decide, without the lock, what this key needs written (and sign / witness what is missing). */
async function plan(req: SignRequest, carried: readonly Carried[]): Promise<Plan> {
  const { signer } = req;
  const key = signer.key;
  const { tlog, timestamp } = signer.witnesses;
  const payloadDigest = sha256Digest(req.payload);
  const payloadHex = payloadDigest.slice('sha256:'.length);
  const cert = key.certificate;
  const wanted = [SIGNATURE_ANNOTATION];
  if (cert) wanted.push(CERTIFICATE_ANNOTATION, ...(cert.chain ? [CHAIN_ANNOTATION] : []));
  if (tlog) wanted.push(COSIGN_BUNDLE_ANNOTATION);
  if (timestamp) wanted.push(TIMESTAMP_ANNOTATION);
  // A Rekor entry counts only when it names what the layer carries (its certificate, else the key).
  const entryFits = (a: Readonly<Record<string, string>>) => hashedRekordNames(a[COSIGN_BUNDLE_ANNOTATION], legacyEntryVerifier(a, key.publicKeyPem));
  const fitsKeys = (keys: readonly string[]) => (l: SignatureLayer) =>
    keys.every((k) => l.annotations[k] !== undefined) && (!keys.includes(COSIGN_BUNDLE_ANNOTATION) || entryFits(l.annotations));

  const mine = carried.filter((c) => c.signers.includes(key)).map((c) => c.layer);
  const complete = mine.find(fitsKeys(wanted));
  const present = complete ?? mine[0];
  const result: SignResult = { key: key.name, outcome: present ? 'present' : 'signed', payloadDigest, format: 'legacy' };
  if (complete) {
    if (tlog) result.tlog = presentTlog(complete);
    if (timestamp) result.timestamp = presentTimestamp(complete.annotations);
    return { req, result, requiredKeys: [], fits: fitsKeys([]) };
  }

  const signature = present ? Buffer.from(present.annotations[SIGNATURE_ANNOTATION]!, 'base64') : await signer.sign(req.payload);
  const extra: Record<string, string> = {};
  if (cert) {
    extra[CERTIFICATE_ANNOTATION] = cert.certificate;
    if (cert.chain) extra[CHAIN_ANNOTATION] = cert.chain;
  }
  const base: Record<string, string> = present ? present.annotations : { [SIGNATURE_ANNOTATION]: signature.toString('base64') };
  const carries = { ...base, ...extra };
  const hasEntry = Boolean(present && entryFits(carries));
  const hasStamp = Boolean(present && base[TIMESTAMP_ANNOTATION] !== undefined);
  if (tlog && hasEntry) result.tlog = presentTlog(present!);
  if (timestamp && hasStamp) result.timestamp = presentTimestamp(base);
  // The entry names what the signature carries: the leaf certificate when the layer has one
  // (a present entry naming the bare key is replaced), else the key. cosign >= 3.0.3 compares
  // it with the certificate; see proposedHashedRekord for who compares what.
  const pem = legacyEntryVerifier(carries, key.publicKeyPem);
  const w = await signer.witness(
    signature,
    () => ({ proposed: proposedHashedRekord(payloadHex, signature, pem), check: (e) => checkHashedRekordBody(e, payloadHex, signature, pem) }),
    { tlog: hasEntry, timestamp: hasStamp },
  );
  if (w.tlog) {
    result.tlog = w.tlog.status;
    if (w.tlog.entry) extra[COSIGN_BUNDLE_ANNOTATION] = cosignBundleAnnotation(w.tlog.entry);
  }
  if (w.timestamp) {
    result.timestamp = w.timestamp.status;
    if (w.timestamp.response) extra[TIMESTAMP_ANNOTATION] = timestampAnnotation(w.timestamp.response);
  }

  const changed = Object.keys(extra).filter((k) => base[k] !== extra[k]);
  if (present && changed.length === 0) return { req, result, requiredKeys: [], fits: fitsKeys([]) }; // e.g. Rekor down and not required
  if (present) result.upgraded = changed.sort();
  const annotations = sortKeys({ ...base, ...extra });
  const requiredKeys = Object.keys(annotations).filter((k) => wanted.includes(k));
  return {
    req,
    result,
    layer: { mediaType: COSIGN_SIMPLE_SIGNING, size: req.payload.length, digest: payloadDigest, annotations },
    requiredKeys,
    fits: fitsKeys(requiredKeys),
  };
}

/**
 * Fold the plans into the current layers. A layer with the same payload that verifies with the
 * key and already carries everything a plan wants makes the plan moot (another writer won);
 * one that lacks something gets it (our signature's annotations replace its own when the
 * signatures differ, so a bundle always describes the signature next to it).
 */
function merge(carried: readonly Carried[], work: Plan[]): { next: SignatureLayer[]; dirty: boolean } {
  const next = carried.map((c) => ({ ...c.layer, annotations: { ...c.layer.annotations } }));
  const signers = carried.map((c) => c.signers);
  let dirty = false;
  for (const p of work) {
    const want = p.layer!;
    const ours = want.annotations[SIGNATURE_ANNOTATION];
    let idx = -1;
    let fallback = -1;
    for (const [i, l] of next.entries()) {
      if (l.digest !== want.digest || l.mediaType !== want.mediaType) continue;
      const same = l.annotations[SIGNATURE_ANNOTATION] === ours;
      if (!same && !signers[i]!.includes(p.req.signer.key)) continue;
      if (p.fits(l)) {
        idx = i;
        break;
      }
      if (fallback < 0 || same) fallback = i;
    }
    if (idx >= 0) {
      const cur = next[idx]!;
      // nothing of ours is written: the signature there counts (an RSA PKCS#1 v1.5 signature of
      // the same key over the same payload is even the same bytes)
      if (p.result.outcome === 'signed') {
        p.result.outcome = 'present';
        delete p.result.tlog; // our entry is not the one the stored layer carries
        if (p.requiredKeys.includes(COSIGN_BUNDLE_ANNOTATION)) p.result.tlog = presentTlog(cur);
      }
      p.expect = cur.annotations[SIGNATURE_ANNOTATION];
      continue;
    }
    if (fallback >= 0) {
      const cur = next[fallback]!;
      const annotations = cur.annotations[SIGNATURE_ANNOTATION] === ours ? sortKeys({ ...cur.annotations, ...want.annotations }) : { ...want.annotations };
      next[fallback] = { ...cur, annotations };
      signers[fallback] = [p.req.signer.key];
      p.expect = ours;
      dirty = true;
      continue;
    }
    next.push({ ...want, annotations: { ...want.annotations } });
    signers.push([p.req.signer.key]);
    p.expect = ours;
    dirty = true;
  }
  return { next, dirty };
}

function presentTlog(l: SignatureLayer): TlogStatus {
  const b = parseCosignBundleAnnotation(l.annotations[COSIGN_BUNDLE_ANNOTATION]);
  return b ? { status: 'present', logIndex: b.logIndex, integratedTime: b.integratedTime } : { status: 'present' };
}

/** Go marshals maps with sorted keys: cosign's layers list annotations that way. */
function sortKeys(o: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]!;
  return out;
}
