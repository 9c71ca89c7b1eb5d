/**
 * The Notation format's reader: the Notary Project signature referrers of one manifest, and which
 * of them hold a valid signature by each of the plan's keys (check.ts notationMeets: signed by
 * the key with its configured certificate, about this manifest with the plan's annotations, with
 * a countersignature under a rule with a timestamp authority). A signature written by `notation
 * sign` with the same key and certificate counts like signet's own.
 */
import { attributeReferrers } from '../referrers/attribute.js';
import { planWitnesses, type SigningPlan } from '../../signing/plan.js';
import type { FormatReading, ReadContext, Subject } from '../types.js';
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
  const needs = notationNeedsOf(plan, ctx);
  return attributeReferrers(
    'notation',
    envelopes.map((e) => ({ digest: e.digest, doc: e.env })),
    plan,
    ctx.keys,
    (env, key) => notationMeets(env, { subject, annotations: plan.annotations }, key, needs),
    {
      unreadable: 'not a readable Notation JWS envelope',
      one: 'Notation signature',
      none: (k) => (k.certificate ? 'no Notation signature by this key' : 'the key has no certificate (Notation needs one)'),
    },
  );
}

/** What the plan's witnesses require of a Notation signature (Rekor does not apply: Notation has no transparency log). */
export function notationNeedsOf(plan: Pick<SigningPlan, 'rule'>, ctx: Pick<ReadContext, 'timestamps'>): NotationNeeds {
  const w = planWitnesses(plan);
  return {
    timestamp: Boolean(w.timestamp),
    verifyTimestamp: w.timestamp && ctx.timestamps ? ctx.timestamps.verifierFor(w.timestamp) : undefined,
  };
}
