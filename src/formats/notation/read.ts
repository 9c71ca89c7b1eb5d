/**
 * The Notation format's reader: the Notary Project signature referrers of one manifest, and which
 * of them hold a valid signature by each of the plan's keys (check.ts notationMeets: signed by
 * the key with its configured certificate, about this manifest with the plan's annotations, with
 * a countersignature under a rule with a timestamp authority). A signature written by `notation
 * sign` with the same key and certificate counts like signet's own.
 */
import type { SigningKey } from '../../kms/signing-key.js';
import { planWitnesses, type SigningPlan } from '../../signing/plan.js';
import type { FormatReading, ReadContext, StoredSignature, Subject } from '../types.js';
import { listReferrers } from '../referrers/index.js';
import { notationMeets, type NotationNeeds } from './check.js';
import type { ParsedEnvelope } from './jws.js';
import { isNotationReferrer, readEnvelope } from './referrers.js';

/** Notation referrers read and checked per manifest (each costs two GETs). */
const MAX_READ = 32;

export async function readNotation(ctx: ReadContext, plan: SigningPlan, subject: Subject): Promise<FormatReading> {
  const listing = await listReferrers(ctx.client, ctx.repository, subject.digest);
  const read = listing.descriptors.filter(isNotationReferrer).slice(0, MAX_READ);
  const envelopes: { digest: string; env: ParsedEnvelope | undefined }[] = await Promise.all(
    read.map(async (d) => ({ digest: d.digest, env: await readEnvelope(ctx.client, ctx.repository, d.digest) })),
  );
  const ordered = [...plan.keys, ...ctx.keys.filter((k) => !plan.keys.includes(k))];
  const needs = notationNeedsOf(plan, ctx);

  const satisfied = new Map<SigningKey, string>();
  const why = new Map<SigningKey, string>();
  const signatures: StoredSignature[] = [];
  for (const { digest, env } of envelopes) {
    const rep: StoredSignature = { format: 'notation', ref: digest, key: null, requiredKey: false, satisfies: false };
    signatures.push(rep);
    if (!env) {
      rep.note = 'not a readable Notation JWS envelope';
      continue;
    }
    for (const key of ordered) {
      const verdict = notationMeets(env, { subject, annotations: plan.annotations }, key, needs);
      if (verdict.signedBy === false) continue;
      rep.key = key.name;
      rep.signedDigest = verdict.signedDigest;
      rep.requiredKey = plan.keys.includes(key);
      if (verdict.ok && rep.requiredKey && !satisfied.has(key)) {
        satisfied.set(key, digest);
        rep.satisfies = true;
      } else if (!verdict.ok) {
        rep.note = verdict.why;
        if (rep.requiredKey && !why.has(key)) why.set(key, `notation signature ${digest.slice(0, 19)}…: ${verdict.why}`);
      } else if (rep.requiredKey) rep.note = 'another Notation signature already satisfies this key';
      break;
    }
    if (rep.key === null) rep.note ??= 'verifies with no configured key';
  }
  const missing = plan.keys
    .filter((k) => !satisfied.has(k))
    .map((k) => ({ key: k.name, why: why.get(k) ?? (k.certificate ? 'no Notation signature by this key' : 'the key has no certificate (Notation needs one)') }));
  return { format: 'notation', signatures, missing };
}

/** What the plan's witnesses require of a Notation signature (Rekor does not apply: Notation has no transparency log). */
export function notationNeedsOf(plan: Pick<SigningPlan, 'rule'>, ctx: Pick<ReadContext, 'timestamps'>): NotationNeeds {
  const w = planWitnesses(plan);
  return {
    timestamp: Boolean(w.timestamp),
    verifyTimestamp: w.timestamp && ctx.timestamps ? ctx.timestamps.verifierFor(w.timestamp) : undefined,
  };
}
