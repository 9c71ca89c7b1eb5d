/**
 * `signet verify IMAGE_REF`: the image's legacy `.sig` signatures checked against the configured
 * keys. Per manifest (an index and each child) and per layer: which configured key the signature
 * verifies with, the payload's docker-reference, and whether it meets what the first matching
 * rule requires (src/verify/requirements.ts). `ok` when every required key has such a signature
 * on every manifest; an image no rule asks to sign requires nothing.
 */
import type { RuleMatcher } from '../config/rules.js';
import { SignetError } from '../errors.js';
import type { KeyProvider } from '../kms/types.js';
import type { RegistryDirectory } from '../registry/directory.js';
import { isAttachmentTag, parseReference } from '../registry/reference.js';
import { layerSignedBy } from '../signing/carry.js';
import type { SignatureLayer } from '../signing/legacy-sig.js';
import { parseSimpleSigningPayload } from '../signing/payload.js';
import { sha256Digest } from '../util/digest.js';
import { imageShape, payloadReader, readSignatures, type SignatureRead, type SignedManifest } from './image.js';
import { checkKey, expectedPayload, payloadMeets, requiredAnnotationKeys, requirementFor, type Requirement } from './requirements.js';

export interface LayerReport {
  /** The payload blob's digest (the layer digest). */
  payloadDigest: string;
  /** The configured key this signature verifies with, or null (another key, or not a valid signature). */
  key: string | null;
  /** From the payload, when it could be read. */
  dockerReference?: string;
  signedDigest?: string;
  /** The key is one the matching rule requires. */
  requiredKey: boolean;
  /** This layer is a signature the rule requires (right key, payload and annotations). */
  satisfies: boolean;
  /** Why a signature by a required key does not count, or why the layer could not be checked. */
  note?: string;
}

export interface ManifestReport extends SignedManifest {
  signatures: LayerReport[];
  /** Why no signature of this manifest's .sig counts (cosign refuses the whole .sig), when so. */
  refused?: string;
  /** Required keys without a signature meeting the rule, with why. */
  missing: { key: string; why: string }[];
}

export interface VerifyReport {
  image: { reference: string; host: string; repository: string; tag?: string; digest: string; mediaType: string };
  rule:
    | { index: number; match: string; keys: string[]; identity: 'tag' | 'repository'; expectedIdentity: string | null }
    | { none: string; index?: number };
  ok: boolean;
  manifests: ManifestReport[];
}

export interface VerifyDeps {
  registries: RegistryDirectory;
  rules: RuleMatcher;
  /** Every configured key, by name. */
  keys: ReadonlyMap<string, KeyProvider>;
}

export async function verifyImage(ref: string, deps: VerifyDeps): Promise<VerifyReport> {
  const r = parseReference(ref);
  const known = deps.registries.resolve(r.host);
  if (!known) throw new SignetError('REGISTRY_NOT_CONFIGURED', `registry ${r.host} is not in registries: not contacted`);
  const host = known.config.host;
  const client = known.client;
  const at = r.digest ?? r.tag!;
  const m = await client.getManifest(r.repository, at);
  if (!m) throw new SignetError('MANIFEST_NOT_FOUND', `${host}/${r.repository}${r.digest ? '@' : ':'}${at} is not in the registry`);
  const image = { reference: ref, host, repository: r.repository, ...(r.tag ? { tag: r.tag } : {}), digest: m.digest, mediaType: m.mediaType };

  if (r.tag && isAttachmentTag(r.tag)) return { image, rule: { none: 'signature or attachment tag (written by a signer)' }, ok: true, manifests: [] };
  const shape = imageShape(m);
  if (shape.kind === 'skip') return { image, rule: { none: shape.reason }, ok: true, manifests: [] };

  const decision = requirementFor(deps.rules, host, r.repository, r.tag, m.digest, { byDigest: !r.tag });
  const req = 'required' in decision ? decision.required : undefined;
  if (req) {
    for (const name of req.keys) {
      if (!deps.keys.has(name)) throw new SignetError('KEY_INVALID', `rule ${req.ruleIndex} names key "${name}" which is not loaded`);
    }
  }
  // required keys first: when two names hold the same key, the rule's name is reported
  const ordered = [...(req?.keys ?? []), ...[...deps.keys.keys()].filter((k) => !req?.keys.includes(k))].map((n) => deps.keys.get(n)!);
  const read = payloadReader(client, r.repository);
  const manifests = await Promise.all(shape.manifests.map((sm) => checkManifest(sm, req, ordered, (d) => readSignatures(client, r.repository, d), read)));

  return {
    image,
    rule: req
      ? { index: req.ruleIndex, match: req.rule.match, keys: req.keys, identity: req.rule.identity, expectedIdentity: req.identity ?? null }
      : { none: 'none' in decision ? decision.none : '', ...('ruleIndex' in decision && decision.ruleIndex !== undefined ? { index: decision.ruleIndex } : {}) },
    ok: manifests.every((x) => x.missing.length === 0),
    manifests,
  };
}

async function checkManifest(
  sm: SignedManifest,
  req: Requirement | undefined,
  keys: readonly KeyProvider[],
  layersOf: (digest: string) => Promise<SignatureRead>,
  read: (l: SignatureLayer) => Promise<Buffer | undefined>,
): Promise<ManifestReport> {
  const { layers, refused } = await layersOf(sm.digest);
  if (refused) return { ...sm, signatures: [], refused, missing: (req?.keys ?? []).map((key) => ({ key, why: refused })) };
  const exact = req ? expectedPayload(req, sm.digest) : undefined;
  const exactDigest = exact ? sha256Digest(exact) : undefined;
  // the payload bytes: from the registry, or (when it cannot serve them) the expected payload if the digest says so
  const readOrExpect = async (l: SignatureLayer) => (await read(l)) ?? (l.digest === exactDigest ? exact : undefined);

  const satisfied = new Set<SignatureLayer>();
  const missing: { key: string; why: string }[] = [];
  for (const name of req?.keys ?? []) {
    const key = keys.find((k) => k.name === name)!;
    const c = await checkKey(layers, sm.digest, req!, key, readOrExpect);
    if (c.ok) satisfied.add(c.layer);
    else missing.push({ key: name, why: c.why });
  }

  const signatures: LayerReport[] = [];
  for (const l of layers) {
    const payload = await readOrExpect(l);
    const rep: LayerReport = { payloadDigest: l.digest, key: null, requiredKey: false, satisfies: satisfied.has(l) };
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
    for (const k of keys) {
      if (await layerSignedBy(l, payload, l.digest, k)) {
        rep.key = k.name;
        break;
      }
    }
    rep.requiredKey = rep.key !== null && (req?.keys.includes(rep.key) ?? false);
    if (rep.key === null) rep.note = 'verifies with no configured key';
    else if (rep.requiredKey && !rep.satisfies) {
      const meets = payloadMeets(payload, req!, sm.digest);
      const lacking = requiredAnnotationKeys(req!.rule, keys.find((k) => k.name === rep.key)!).filter((a) => l.annotations[a] === undefined);
      rep.note = !meets.ok ? meets.why : lacking.length ? `lacks ${lacking.join(', ')}` : 'another layer already satisfies this key';
    }
    signatures.push(rep);
  }
  return { ...sm, signatures, missing };
}

/** The report as lines for a terminal. */
export function formatVerifyReport(rep: VerifyReport): string[] {
  const lines: string[] = [];
  const { image } = rep;
  const name = `${image.host}/${image.repository}${image.tag ? `:${image.tag}` : ''}`;
  const children = rep.manifests.filter((x) => x.role === 'child').length;
  lines.push(`${name}@${image.digest}${children ? ` (index, ${children} child manifest${children === 1 ? '' : 's'})` : ''}`);
  if ('none' in rep.rule) {
    lines.push(`  ${rep.rule.index !== undefined ? `rule ${rep.rule.index}: ` : ''}nothing required: ${rep.rule.none}`);
  } else {
    lines.push(
      `  rule ${rep.rule.index} (${rep.rule.match}): keys ${rep.rule.keys.join(', ')}; identity ${rep.rule.expectedIdentity ?? `any reference of ${image.host}/${image.repository} (by digest)`}`,
    );
  }
  const width = Math.max(3, ...rep.manifests.flatMap((x) => [...x.signatures.map((s) => (s.key ?? '-').length), ...x.missing.map((k) => k.key.length)]));
  for (const x of rep.manifests) {
    lines.push(`  ${x.role} ${x.digest}${x.platform ? ` ${x.platform}` : ''}`);
    if (x.refused) lines.push(`    ${'REFUSED'.padEnd(8)}${x.refused}`);
    else if (x.signatures.length === 0 && x.missing.length === 0) lines.push('    no signatures');
    for (const s of x.signatures) {
      const status = s.satisfies ? 'ok' : s.key ? 'valid' : 'unknown';
      const detail = s.satisfies ? 'required by the rule' : s.requiredKey ? `required key, but ${s.note}` : s.key ? 'key not required by the rule' : (s.note ?? '');
      lines.push(`    ${status.padEnd(8)}${(s.key ?? '-').padEnd(width)}  ${s.dockerReference ?? '?'}  (${detail})`);
    }
    for (const k of x.missing) lines.push(`    ${'MISSING'.padEnd(8)}${k.key.padEnd(width)}  (${k.why})`);
  }
  const missing = rep.manifests.reduce((n, x) => n + x.missing.length, 0);
  lines.push(
    rep.ok
      ? 'none' in rep.rule
        ? 'ok: no signature required'
        : `ok: every required key has a valid signature on ${rep.manifests.length} manifest${rep.manifests.length === 1 ? '' : 's'}`
      : `NOT OK: ${missing} required signature${missing === 1 ? '' : 's'} missing`,
  );
  return lines;
}
