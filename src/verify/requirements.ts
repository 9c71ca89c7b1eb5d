/**
 * What a rule requires of an image's legacy `.sig` signatures, and whether the layers there meet
 * it. Shared by `signet backfill` (what is missing?) and `signet verify` (what is there?), and
 * built from the signing code's own pieces (identityFor, simpleSigningPayload, layerSignedBy), so
 * "present" means here what it means to the pipeline:
 *
 * - per manifest (an index and each child), per key of the first matching rule, a layer whose
 *   payload is the simple-signing payload the pipeline would write (docker-reference from the
 *   rule's identity, this manifest's digest, the rule's annotations expanded for this tag) and
 *   whose signature verifies with the key's public key;
 * - carrying what the pipeline would add: the key's certificate (when it has one) and a Rekor
 *   bundle (when the rule logs to Rekor) whose entry names what the layer carries (its
 *   certificate, else the key: what cosign >= 3.0.3 compares it with).
 *
 * Payloads are matched byte for byte first (no blob download). When that fails and the payload
 * bytes can be read, a layer also counts when its payload names the same docker-reference and
 * digest and holds every expected annotation (webhook pushes may add `${pusher}` ones a later
 * look cannot know), and, for `signet verify IMAGE@DIGEST` (no tag known), any docker-reference
 * of the repository is accepted under `identity: tag`, as containers/image's
 * matchRepoDigestOrExact does for pulls by digest.
 */
import type { RuleMatcher } from '../config/rules.js';
import type { RuleConfig } from '../config/schema.js';
import type { KeyProvider } from '../kms/types.js';
import { COSIGN_SIMPLE_SIGNING } from '../registry/media-types.js';
import { expandAnnotations } from '../signing/annotations.js';
import { layerSignedBy } from '../signing/carry.js';
import { CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, certificateOf, legacyEntryVerifier } from '../signing/certificate.js';
import { SIGNATURE_ANNOTATION, type SignatureLayer } from '../signing/legacy-sig.js';
import { parseSimpleSigningPayload, simpleSigningPayload } from '../signing/payload.js';
import { identityFor } from '../signing/pipeline.js';
import { COSIGN_BUNDLE_ANNOTATION, hashedRekordNames } from '../transparency/entries.js';
import { sha256Digest } from '../util/digest.js';

/** What one image (tag or digest) must carry, per the first matching rule. */
export interface Requirement {
  ruleIndex: number;
  rule: RuleConfig;
  /** host/repository (configured host, aliases resolved). */
  repository: string;
  /** The exact docker-reference, or undefined: any reference naming `repository` (verify by digest). */
  identity: string | undefined;
  /** The payload annotations the rule writes, expanded for this image (absent when none). */
  annotations: Record<string, string> | undefined;
  /** Key names, in rule order. */
  keys: string[];
}

export type RequirementDecision = { required: Requirement } | { none: string; ruleIndex?: number };

/**
 * The pipeline's decision for host/repository[:tag] whose pushed manifest is `digest`: the first
 * matching rule, its tag filters, the identity and annotations it signs with. `tag` undefined
 * with `byDigest` is `signet verify` on a digest: the tag filters cannot apply and any identity
 * of the repository is accepted (identity: tag).
 */
export function requirementFor(
  rules: RuleMatcher,
  host: string,
  repository: string,
  tag: string | undefined,
  digest: string,
  opts: { byDigest?: boolean } = {},
): RequirementDecision {
  const found = rules.find(host, repository);
  if (!found) return { none: `no rule matches ${host}/${repository}` };
  const { rule, index } = found;
  if (!(tag === undefined && opts.byDigest)) {
    const why = rules.skipReason(rule, tag);
    if (why) return { none: why, ruleIndex: index };
  }
  const formats = rule.formats?.length ? rule.formats : ['legacy'];
  if (!formats.includes('legacy')) {
    return { none: `rule ${index} writes no legacy .sig signatures (formats: ${formats.join(', ')}); only .sig is checked`, ruleIndex: index };
  }
  const identity = tag === undefined && opts.byDigest && rule.identity !== 'repository' ? undefined : identityFor(rule, host, repository, tag, digest);
  return {
    required: {
      ruleIndex: index,
      rule,
      repository: `${host}/${repository}`,
      identity,
      annotations: expandAnnotations(rule.annotations, { registry: host, repository, tag, digest }),
      keys: [...rule.keys],
    },
  };
}

/** Layer annotations the pipeline would add for this key under this rule (besides the signature). */
export function requiredAnnotationKeys(rule: RuleConfig, key: KeyProvider): string[] {
  const cert = certificateOf(key);
  const out: string[] = [];
  if (cert) out.push(CERTIFICATE_ANNOTATION, ...(cert.chain ? [CHAIN_ANNOTATION] : []));
  if (rule.rekor) out.push(COSIGN_BUNDLE_ANNOTATION);
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
  if (req.identity !== undefined ? p.dockerReference !== req.identity : !namesRepository(p.dockerReference, req.repository)) {
    return { ok: false, why: `docker-reference ${p.dockerReference}, rule wants ${req.identity ?? `${req.repository}[:tag|@digest]`}` };
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
  key: KeyProvider,
  read?: PayloadReader,
): Promise<KeyCheck> {
  const wanted = requiredAnnotationKeys(req.rule, key);
  const keyPem = req.rule.rekor ? await key.publicKeyPem() : '';
  const complete = (l: SignatureLayer) => {
    const lacking = wanted.filter((k) => l.annotations[k] === undefined);
    if (lacking.length === 0 && req.rule.rekor && !hashedRekordNames(l.annotations[COSIGN_BUNDLE_ANNOTATION], legacyEntryVerifier(l.annotations, keyPem))) {
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
