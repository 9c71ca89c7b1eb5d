/**
 * `signet verify IMAGE_REF`: the image's signatures checked against the configured keys, in
 * every format the rule requires. The signing plan (src/signing/plan.ts) says what is required;
 * each format's reader (src/formats/) says, per manifest (an index and each child), what is
 * stored, which configured key each signature verifies with, and which required keys have no
 * signature meeting the plan. `ok` when none is missing; an image no rule asks to sign requires
 * nothing.
 */
import type { RuleMatcher } from '../config/rules.js';
import { SignetError } from '../errors.js';
import { formatsFor } from '../formats/index.js';
import type { ReadContext, StoredSignature } from '../formats/types.js';
import type { SigningKey } from '../kms/signing-key.js';
import type { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import type { RegistryDirectory } from '../registry/directory.js';
import { parseReference } from '../registry/reference.js';
import { decideRule, planSigning, type FormatName } from '../signing/plan.js';
import { imageShape, type SignedManifest } from './image.js';

export interface ManifestReport extends SignedManifest {
  /** Every stored signature of every format the rule requires. */
  signatures: StoredSignature[];
  /** Why no signature of a format's storage counts (cosign refuses the whole .sig), when so. */
  refused?: string;
  /** Required (key, format) pairs without a signature meeting the rule, with why. */
  missing: { key: string; format: FormatName; why: string }[];
}

export interface VerifyReport {
  image: { reference: string; host: string; repository: string; tag?: string; digest: string; mediaType: string };
  rule:
    | { index: number; match: string; keys: string[]; formats: FormatName[]; identity: 'tag' | 'repository'; expectedIdentity: string | null }
    | { none: string; index?: number };
  ok: boolean;
  manifests: ManifestReport[];
}

export interface VerifyDeps {
  registries: RegistryDirectory;
  rules: RuleMatcher;
  /** Every configured key, by name. */
  keys: ReadonlyMap<string, SigningKey>;
  /** The rules' timestamp authorities (timestamps are verified against them). */
  timestamps?: TimestampAuthorities;
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

  const decided = decideRule(deps.rules, host, r.repository, r.tag, { byDigest: !r.tag });
  if ('skip' in decided)
    return { image, rule: { none: decided.skip, ...(decided.index !== undefined ? { index: decided.index } : {}) }, ok: true, manifests: [] };
  const shape = imageShape(m);
  if (shape.kind === 'skip') return { image, rule: { none: shape.reason }, ok: true, manifests: [] };

  const plan = planSigning(decided, { host, repository: r.repository, tag: r.tag, digest: m.digest, byDigest: !r.tag }, deps.keys);
  const ctx: ReadContext = { client, repository: r.repository, keys: [...deps.keys.values()], timestamps: deps.timestamps };
  const formats = formatsFor(plan.formats);
  const manifests = await Promise.all(
    shape.manifests.map(async (sm): Promise<ManifestReport> => {
      // the subject's media type and size matter to writers only: readers go by digest
      const subject = { digest: sm.digest, mediaType: '', size: 0 };
      const readings = await Promise.all(formats.map((f) => f.read(ctx, plan, subject)));
      const refused = readings.filter((x) => x.refused).map((x) => x.refused!);
      return {
        ...sm,
        signatures: readings.flatMap((x) => x.signatures),
        ...(refused.length ? { refused: refused.join('; ') } : {}),
        missing: readings.flatMap((x) => x.missing.map((k) => ({ key: k.key, format: x.format, why: k.why }))),
      };
    }),
  );

  return {
    image,
    rule: {
      index: plan.ruleIndex,
      match: plan.rule.match,
      keys: [...plan.rule.keys],
      formats: plan.formats,
      identity: plan.rule.identity,
      expectedIdentity: plan.identity ?? null,
    },
    ok: manifests.every((x) => x.missing.length === 0),
    manifests,
  };
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
      `  rule ${rep.rule.index} (${rep.rule.match}): keys ${rep.rule.keys.join(', ')}; formats ${rep.rule.formats.join(', ')}; identity ${rep.rule.expectedIdentity ?? `any reference of ${image.host}/${image.repository} (by digest)`}`,
    );
  }
  const width = Math.max(3, ...rep.manifests.flatMap((x) => [...x.signatures.map((s) => (s.key ?? '-').length), ...x.missing.map((k) => k.key.length)]));
  const fw = 6;
  for (const x of rep.manifests) {
    lines.push(`  ${x.role} ${x.digest}${x.platform ? ` ${x.platform}` : ''}`);
    if (x.refused) lines.push(`    ${'REFUSED'.padEnd(8)}${x.refused}`);
    else if (x.signatures.length === 0 && x.missing.length === 0) lines.push('    no signatures');
    for (const s of x.signatures) {
      const status = s.satisfies ? 'ok' : s.key ? 'valid' : 'unknown';
      const detail = s.satisfies
        ? 'required by the rule'
        : s.requiredKey
          ? `required key, but ${s.note}`
          : s.key
            ? 'key not required by the rule'
            : (s.note ?? '');
      const what = s.dockerReference ?? s.ref;
      lines.push(`    ${status.padEnd(8)}${s.format.padEnd(fw)}  ${(s.key ?? '-').padEnd(width)}  ${what}  (${detail})`);
    }
    for (const k of x.missing) lines.push(`    ${'MISSING'.padEnd(8)}${k.format.padEnd(fw)}  ${k.key.padEnd(width)}  (${k.why})`);
  }
  const missing = rep.manifests.reduce((n, x) => n + x.missing.length, 0);
  lines.push(
    rep.ok
      ? 'none' in rep.rule
        ? 'ok: no signature required'
        : `ok: every required key has a valid signature in every required format on ${rep.manifests.length} manifest${rep.manifests.length === 1 ? '' : 's'}`
      : `NOT OK: ${missing} required signature${missing === 1 ? '' : 's'} missing`,
  );
  return lines;
}
