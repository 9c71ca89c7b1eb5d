/**
 * The attestation step: for a rule with `attest: true`, a SLSA verification summary
 * (./statement.ts) about each manifest signet signs, signed by each of the rule's keys through
 * the same Signer chain (key -> certificate -> Rekor dsse entry / timestamp) and stored like the
 * bundle format's signatures: a sigstore bundle v0.3 referrer, through the bundle format's
 * writer (attachBundles) with the VSA predicate type, so the referrers fallback index, the lock
 * and the read-back are the ones signatures use. `cosign verify-attestation --type
 * https://slsa.dev/verification_summary/v1 --key ...` reads it.
 *
 * Not a SignatureFormat (a rule does not list it in `formats:`, and it signs a decision, not
 * the image): the pipeline runs it after the formats. "Present" is decided by meaning: a VSA
 * for this digest by this key, PASSED under the same rule (policy digest), with what the rule's
 * witnesses require; a re-delivered event finds it and writes nothing.
 */
import { attachBundles } from '../bundle/write.js';
import { needsOf } from '../bundle/read.js';
import type { SignResult, Subject, WriteContext } from '../types.js';
import type { SigningPlan } from '../../signing/plan.js';
import { policyDescriptor, VSA_PREDICATE, sameDecision, vsaStatement } from './statement.js';

export { VSA_PREDICATE } from './statement.js';
export type { ScanSummary } from './statement.js';

/** One attestation per (manifest, key): written, or found present. */
export type AttestationResult = Omit<SignResult, 'format' | 'upgraded'> & { predicateType: string };

/** Does the plan's rule ask for the attestation? */
export const attests = (plan: Pick<SigningPlan, 'rule'>): boolean => plan.rule.attest === true;

export async function writeAttestations(ctx: WriteContext, plan: SigningPlan, subject: Subject): Promise<AttestationResult[]> {
  const rule = plan.rule as unknown as { match: string } & Record<string, unknown>;
  const statement = vsaStatement({
    host: plan.host,
    repository: plan.repository,
    tag: plan.tag,
    digest: subject.digest,
    pusher: plan.pusher,
    decidedAt: plan.decidedAt ?? new Date(),
    ruleIndex: plan.ruleIndex,
    rule,
    scan: plan.scan,
  });
  const policyDigest = policyDescriptor(plan.ruleIndex, rule).digest.sha256;
  const needs = needsOf(plan, ctx);
  const results = await attachBundles(
    ctx.client,
    ctx.repository,
    subject,
    ctx.signers.map((signer) => ({ signer, statement, predicateType: VSA_PREDICATE, sameClaim: (s: Buffer) => sameDecision(s, policyDigest) })),
    ctx.lock,
    { verifyWrite: ctx.verifyWrite, needs: { rekorKey: needs.rekorKey, verifyTimestamp: needs.verifyTimestamp } },
  );
  return results.map(({ format: _format, upgraded: _upgraded, ...r }) => ({ ...r, predicateType: VSA_PREDICATE }));
}
