/**
 * The legacy format's reader: what a plan requires of an image's `.sig` signatures, and whether
 * the layers there meet it. The writers' "present?" checks, `signet backfill` and `signet verify`
 * all use it, built from the signing code's own pieces (the plan's identity,
 * simpleSigningPayload, layerSignedBy), so "present" means the same everywhere:
 *
 * - per manifest (an index and each child), per key of the plan, a layer whose payload is the
 *   simple-signing payload the writer would write (docker-reference from the plan's identity,
 *   this manifest's digest, the plan's annotations) and whose signature verifies with the key;
 * - carrying what the writer would add: the key's certificate (when it has one), a Rekor bundle
 *   (when the rule logs to Rekor) whose entry names what the layer carries (its certificate, else
 *   the key: what cosign >= 3.0.3 compares it with), and an RFC 3161 timestamp (when the rule
 *   stamps).
 *
 * Payloads are matched byte for byte first (no blob download). When that fails and the payload
 * bytes can be read, a layer also counts when its payload names the same docker-reference and
 * digest and holds every expected annotation (webhook pushes may add `${pusher}` ones a later
 * look cannot know), and, for `signet verify IMAGE@DIGEST` (no tag known), any docker-reference
 * of the repository is accepted under `identity: tag`, as containers/image's
 * matchRepoDigestOrExact does for pulls by digest.
 */
import type { SigningKey } from '../../kms/signing-key.js';
import type { RegistryClient } from '../../registry/client.js';
import { COSIGN_SIMPLE_SIGNING, OCI_MANIFEST } from '../../registry/media-types.js';
import { signatureTag } from '../../registry/reference.js';
import { layerSignedBy } from '../../signing/carry.js';
import { CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, legacyEntryVerifier } from '../../signing/certificate.js';
import { COSIGN_MAX_LAYERS, parseSignatureManifest, SIGNATURE_ANNOTATION, type SignatureLayer } from '../../signing/legacy-sig.js';
import { parseSimpleSigningPayload, simpleSigningPayload } from '../../signing/payload.js';
import { planWitnesses, type SigningPlan } from '../../signing/plan.js';
import { getBlob } from '../../signing/registry-ops.js';
import { COSIGN_BUNDLE_ANNOTATION, hashedRekordNames } from '../../transparency/entries.js';
import { sha256Digest } from '../../util/digest.js';
import type { FormatReading, ReadContext, StoredSignature, Subject } from '../types.js';
import { parseTimestampAnnotation, TIMESTAMP_ANNOTATION } from './timestamp.js';

/** Does the layer's RFC 3161 timestamp verify over its raw signature bytes (what cosign checks)? */
function timestampVerifies(l: SignatureLayer, verify: (signature: Buffer, signedTimestamp: Buffer) => Date): boolean {
  const ts = parseTimestampAnnotation(l.annotations[TIMESTAMP_ANNOTATION]);
  const sig = l.annotations[SIGNATURE_ANNOTATION];
  if (!ts || !sig) return false;
  try {
    verify(Buffer.from(sig, 'base64'), ts);
    return true;
  } catch {
    return false;
  }
}

type Requirement = SigningPlan;

/** Layer annotations the writer would add for this key under this plan (besides the signature). */
export function requiredAnnotationKeys(plan: SigningPlan, key: SigningKey): string[] {
  const cert = key.certificate;
  const out: string[] = [];
  if (cert) out.push(CERTIFICATE_ANNOTATION, ...(cert.chain ? [CHAIN_ANNOTATION] : []));
  const w = planWitnesses(plan);
  if (w.rekor) out.push(COSIGN_BUNDLE_ANNOTATION);
  if (w.timestamp) out.push(TIMESTAMP_ANNOTATION);
  return out;
}

/** The exact payload the pipeline signs for `manifestDigest` (undefined when the identity is open). */
export function expectedPayload(req: Requirement, manifestDigest: string): Buffer | undefined {
  return req.identity === undefined ? undefined : simpleSigningPayload(req.identity, manifestDigest, req.annotations);
}

/** Does this payload (already known to be the layer's bytes) say what `req` needs for `manifestDigest`? */
export function payloadMeets(payload: Buffer, req: Requirement, manifestDigest: string): { ok: true } | { ok: false; why: string } {
  const p = parseSimpleSigningPayload(payload);
  if (!p) return { ok: false, why: 'not a simple-signing payload' };
  if (p.manifestDigest !== manifestDigest) return { ok: false, why: `signs ${p.manifestDigest}, not this manifest` };
  if (req.identity !== undefined ? p.dockerReference !== req.identity : !namesRepository(p.dockerReference, `${req.host}/${req.repository}`)) {
    return { ok: false, why: `docker-reference ${p.dockerReference}, rule wants ${req.identity ?? `${req.host}/${req.repository}[:tag|@digest]`}` };
  }
  for (const [k, v] of Object.entries(req.annotations ?? {})) {
    if (p.optional?.[k] !== v) return { ok: false, why: `annotation ${k} is not "${v}"` };
  }
  return { ok: true };
}

function namesRepository(ref: string, repository: string): boolean {
  if (ref === repository) return true;
  const rest = ref.startsWith(repository) ? ref.slice(repository.length) : undefined;
  return rest !== undefined && /^(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/.test(rest);
}

/** Reads a layer's payload bytes (digest-checked), or undefined when they cannot be read. */
export type PayloadReader = (layer: SignatureLayer) => Promise<Buffer | undefined>;

export type KeyCheck = { ok: true; layer: SignatureLayer } | { ok: false; why: string };

/**
 * Is there a layer by `key` meeting `req` for `manifestDigest`? Byte-exact payload first, then
 * (when `read` is given and the exact payload is not there) by the payload's content.
 */
export async function checkKey(
  layers: readonly SignatureLayer[],
  manifestDigest: string,
  req: Requirement,
  key: SigningKey,
  read?: PayloadReader,
  opts: { verifyTimestamp?: ((signature: Buffer, signedTimestamp: Buffer) => Date) | undefined } = {},
): Promise<KeyCheck> {
  const wanted = requiredAnnotationKeys(req, key);
  const keyPem = key.publicKeyPem;
  const complete = (l: SignatureLayer) => {
    const lacking = wanted.filter((k) => l.annotations[k] === undefined);
    if (lacking.length === 0 && opts.verifyTimestamp && wanted.includes(TIMESTAMP_ANNOTATION) && !timestampVerifies(l, opts.verifyTimestamp)) {
      lacking.push("a timestamp by the rule's timestamp authority");
    }
    if (
      lacking.length === 0 &&
      wanted.includes(COSIGN_BUNDLE_ANNOTATION) &&
      !hashedRekordNames(l.annotations[COSIGN_BUNDLE_ANNOTATION], legacyEntryVerifier(l.annotations, keyPem))
    ) {
      lacking.push(`a Rekor entry naming its ${l.annotations[CERTIFICATE_ANNOTATION] ? 'certificate' : 'key'}`);
    }
    return lacking;
  };
  let incomplete: string[] | undefined;
  const exact = expectedPayload(req, manifestDigest);
  if (exact) {
    const d = sha256Digest(exact);
    for (const l of layers) {
      if (!(await layerSignedBy(l, exact, d, key))) continue;
      const lacking = complete(l);
      if (lacking.length === 0) return { ok: true, layer: l };
      incomplete = lacking;
    }
  }
  let why: string | undefined;
  if (read && (!exact || req.annotations)) {
    for (const l of layers) {
      if (l.mediaType !== COSIGN_SIMPLE_SIGNING || !l.annotations[SIGNATURE_ANNOTATION]) continue;
      const payload = await read(l);
      if (!payload || !(await layerSignedBy(l, payload, l.digest, key))) continue;
      const meets = payloadMeets(payload, req, manifestDigest);
      if (!meets.ok) {
        why ??= meets.why;
        continue;
      }
      const lacking = complete(l);
      if (lacking.length === 0) return { ok: true, layer: l };
      incomplete = lacking;
    }
  }
  if (incomplete) return { ok: false, why: `signature lacks ${incomplete.join(', ')}` };
  return { ok: false, why: why ?? 'no signature by this key' };
}

/** Payloads larger than this are not read (cosign's own are a few hundred bytes). */
const MAX_PAYLOAD_BYTES = 1024 * 1024;

export interface SignatureRead {
  /** The layers a verifier reads ([] when there is no .sig, or when cosign refuses it). */
  layers: SignatureLayer[];
  /** Why cosign reads no signature of this .sig (over its limits), when it does not. */
  refused?: string;
}

/** The legacy `.sig` manifest for `digest`, as cosign reads it (its limits applied: legacy-sig.ts). */
export async function readSignatures(client: RegistryClient, repository: string, digest: string): Promise<SignatureRead> {
  const m = await client.getManifest(repository, signatureTag(digest), OCI_MANIFEST);
  if (!m) return { layers: [] };
  const layers = parseSignatureManifest(m.document, `${client.host}/${repository}:${signatureTag(digest)}`);
  if (layers.length > COSIGN_MAX_LAYERS) {
    return { layers: [], refused: `the .sig has ${layers.length} layers and cosign reads none of a .sig with more than ${COSIGN_MAX_LAYERS}` };
  }
  return { layers };
}

/** Reads payload blobs once each (digest-checked); undefined when the registry cannot serve them. */
export function payloadReader(client: RegistryClient, repository: string): PayloadReader {
  const cache = new Map<string, Promise<Buffer | undefined>>();
  return (layer) => {
    let p = cache.get(layer.digest);
    if (!p) {
      p =
        layer.size > MAX_PAYLOAD_BYTES
          ? Promise.resolve(undefined)
          : getBlob(client, repository, layer.digest, MAX_PAYLOAD_BYTES).then((b) => (b.status === 'ok' ? b.data : undefined));
      cache.set(layer.digest, p);
    }
    return p;
  };
}

const readers = new WeakMap<ReadContext, PayloadReader>();
/** One payload reader per read context (a verify run reads each payload blob once). */
function readerFor(ctx: ReadContext): PayloadReader {
  let r = readers.get(ctx);
  if (!r) readers.set(ctx, (r = payloadReader(ctx.client, ctx.repository)));
  return r;
}

/** The legacy format's `read`: each layer of the manifest's `.sig`, and the plan keys without a signature meeting the plan. */
export async function readLegacy(ctx: ReadContext, plan: SigningPlan, subject: Subject): Promise<FormatReading> {
  const { layers, refused } = await readSignatures(ctx.client, ctx.repository, subject.digest);
  if (refused) return { format: 'legacy', signatures: [], refused, missing: plan.keys.map((k) => ({ key: k.name, why: refused })) };
  const read = readerFor(ctx);
  const exact = expectedPayload(plan, subject.digest);
  const exactDigest = exact ? sha256Digest(exact) : undefined;
  // the payload bytes: from the registry, or (when it cannot serve them) the expected payload if the digest says so
  const readOrExpect = async (l: SignatureLayer) => (await read(l)) ?? (l.digest === exactDigest ? exact : undefined);

  const satisfied = new Set<SignatureLayer>();
  const missing: { key: string; why: string }[] = [];
  const w = planWitnesses(plan);
  const verifyTimestamp = w.timestamp && ctx.timestamps ? ctx.timestamps.verifierFor(w.timestamp) : undefined;
  for (const key of plan.keys) {
    const c = await checkKey(layers, subject.digest, plan, key, readOrExpect, { verifyTimestamp });
    if (c.ok) satisfied.add(c.layer);
    else missing.push({ key: key.name, why: c.why });
  }
  // required keys first: when two names hold the same key, the rule's name is reported
  const ordered = [...plan.keys, ...ctx.keys.filter((k) => !plan.keys.includes(k))];
  const signatures: StoredSignature[] = [];
  for (const l of layers) {
    const payload = await readOrExpect(l);
    const rep: StoredSignature = { format: 'legacy', ref: l.digest, key: null, requiredKey: false, satisfies: satisfied.has(l) };
    if (!payload) {
      rep.note = 'payload blob could not be read';
      signatures.push(rep);
      continue;
    }
    const parsed = parseSimpleSigningPayload(payload);
    if (parsed) {
      rep.dockerReference = parsed.dockerReference;
      rep.signedDigest = parsed.manifestDigest;
    }
    const signer = await firstSigner(l, payload, ordered);
    rep.key = signer?.name ?? null;
    rep.requiredKey = signer !== undefined && plan.keys.includes(signer);
    if (!signer) rep.note = 'verifies with no configured key';
    else if (rep.requiredKey && !rep.satisfies) {
      const meets = payloadMeets(payload, plan, subject.digest);
      const lacking = requiredAnnotationKeys(plan, signer).filter((a) => l.annotations[a] === undefined);
      rep.note = !meets.ok ? meets.why : lacking.length ? `lacks ${lacking.join(', ')}` : 'another layer already satisfies this key';
    }
    signatures.push(rep);
  }
  return { format: 'legacy', signatures, missing };
}

async function firstSigner(l: SignatureLayer, payload: Buffer, keys: readonly SigningKey[]): Promise<SigningKey | undefined> {
  for (const k of keys) if (await layerSignedBy(l, payload, l.digest, k)) return k;
  return undefined;
}
