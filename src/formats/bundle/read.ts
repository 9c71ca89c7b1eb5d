/**
 * The bundle format's reader: the sigstore bundle referrers of one manifest, and which of them
 * hold a valid signature by each of the plan's keys: a DSSE in-toto statement about this digest
 * with cosign's sign predicate and the plan's annotations, signed by the key, carrying what the
 * plan's witnesses add (a Rekor entry, a timestamp). A bundle written by `cosign sign` 3.x with a
 * configured key counts like signet's own (the statement is compared by meaning, not bytes).
 */
import { planWitnesses, type SigningPlan } from '../../signing/plan.js';
import type { BundleNeeds } from './check.js';
import type { FormatReading, ReadContext, Subject } from '../types.js';
import { bundleMeets } from './check.js';
import { BUNDLE_PREDICATE_ANNOTATION, COSIGN_SIGN_PREDICATE } from '../../signing/bundle.js';
import { attributeReferrers } from '../referrers/attribute.js';
import { listReferrers, mayHoldBundle, readBundle, type Checked } from './referrers.js';

/** Bundle referrers read and checked per manifest (each costs two GETs). */
const MAX_READ = 32;

export async function readBundles(ctx: ReadContext, plan: SigningPlan, subject: Subject): Promise<FormatReading> {
  const listing = await listReferrers(ctx.client, ctx.repository, subject.digest);
  // a referrer whose predicate annotation names another predicate (an attestation) is not a signature
  const candidates = listing.descriptors.filter(
    (d) => mayHoldBundle(d) && [undefined, COSIGN_SIGN_PREDICATE].includes(d.annotations?.[BUNDLE_PREDICATE_ANNOTATION]),
  );
  const read = candidates.slice(0, MAX_READ);
  const bundles: { digest: string; bundle: Checked }[] = await Promise.all(
    read.map(async (d) => ({ digest: d.digest, bundle: await readBundle(ctx.client, ctx.repository, d.digest) })),
  );
  const needs = needsOf(plan, ctx);
  return attributeReferrers(
    'bundle',
    bundles.map((b) => ({ digest: b.digest, doc: b.bundle })),
    plan,
    ctx.keys,
    (bundle, key) => bundleMeets(bundle, { digest: subject.digest, annotations: plan.annotations }, key, needs),
    { unreadable: 'not a readable sigstore bundle', one: 'bundle' },
  );
}

/** What the plan's witnesses require of a bundle. */
export function needsOf(plan: Pick<SigningPlan, 'rule'>, ctx: Pick<ReadContext, 'timestamps'>): BundleNeeds {
  const w = planWitnesses(plan);
  return {
    tlog: Boolean(w.rekor),
    rekorKey: w.rekor?.publicKey,
    timestamp: Boolean(w.timestamp),
    verifyTimestamp: w.timestamp && ctx.timestamps ? ctx.timestamps.verifierFor(w.timestamp) : undefined,
  };
}
