/**
 * The bundle format's reader: the sigstore bundle referrers of one manifest, and which of them
 * hold a valid signature by each of the plan's keys: a DSSE in-toto statement about this digest
 * with cosign's sign predicate and the plan's annotations, signed by the key, carrying what the
 * plan's witnesses add (a Rekor entry, a timestamp). A bundle written by `cosign sign` 3.x with a
 * configured key counts like signet's own (the statement is compared by meaning, not bytes).
 */
import type { SigningKey } from '../../kms/signing-key.js';
import { planWitnesses, type SigningPlan } from '../../signing/plan.js';
import type { BundleNeeds } from './check.js';
import type { FormatReading, ReadContext, StoredSignature, Subject } from '../types.js';
import { bundleMeets } from './check.js';
import { BUNDLE_PREDICATE_ANNOTATION, COSIGN_SIGN_PREDICATE } from '../../signing/bundle.js';
import { listReferrers, mayHoldBundle, readBundle, type Checked } from './referrers.js';

/** Bundle referrers read and checked per manifest (each costs two GETs). */
const MAX_READ = 32;

export async function readBundles(ctx: ReadContext, plan: SigningPlan, subject: Subject): Promise<FormatReading> {
  const listing = await listReferrers(ctx.client, ctx.repository, subject.digest);
  // a referrer whose predicate annotation names another predicate (an attestation) is not a signature
  const candidates = listing.descriptors.filter((d) => mayHoldBundle(d) && [undefined, COSIGN_SIGN_PREDICATE].includes(d.annotations?.[BUNDLE_PREDICATE_ANNOTATION]));
  const read = candidates.slice(0, MAX_READ);
  const bundles: { digest: string; bundle: Checked }[] = await Promise.all(read.map(async (d) => ({ digest: d.digest, bundle: await readBundle(ctx.client, ctx.repository, d.digest) })));
  const ordered = [...plan.keys, ...ctx.keys.filter((k) => !plan.keys.includes(k))];

  const satisfied = new Map<SigningKey, string>();
  const why = new Map<SigningKey, string>();
  const signatures: StoredSignature[] = [];
  for (const { digest, bundle } of bundles) {
    const rep: StoredSignature = { format: 'bundle', ref: digest, key: null, requiredKey: false, satisfies: false };
    signatures.push(rep);
    if (!bundle) {
      rep.note = 'not a readable sigstore bundle';
      continue;
    }
    for (const key of ordered) {
      const verdict = await bundleMeets(bundle, { digest: subject.digest, annotations: plan.annotations }, key, needsOf(plan, ctx));
      if (verdict.signedBy === false) continue;
      rep.key = key.name;
      rep.signedDigest = verdict.signedDigest;
      rep.requiredKey = plan.keys.includes(key);
      if (verdict.ok && rep.requiredKey && !satisfied.has(key)) {
        satisfied.set(key, digest);
        rep.satisfies = true;
      } else if (!verdict.ok) {
        rep.note = verdict.why;
        if (rep.requiredKey && !why.has(key)) why.set(key, `bundle ${digest.slice(0, 19)}…: ${verdict.why}`);
      } else if (rep.requiredKey) rep.note = 'another bundle already satisfies this key';
      break;
    }
    if (rep.key === null) rep.note ??= 'verifies with no configured key';
  }
  const missing = plan.keys.filter((k) => !satisfied.has(k)).map((k) => ({ key: k.name, why: why.get(k) ?? 'no bundle by this key' }));
  return { format: 'bundle', signatures, missing };
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
