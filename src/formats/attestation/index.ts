/**
 * The signed decision (issue 17): a SLSA verification summary attestation per signed manifest for
 * rules with `attest: true`. See ./statement.ts (what it says) and ./write.ts (how it is stored).
 */
export { attests, writeAttestations, type AttestationResult, type ScanSummary } from './write.js';
export { VSA_PREDICATE, SIGNET_VERIFIER_ID, PUSH_FIELD, SCAN_FIELD, vsaStatement, sameDecision, policyDescriptor } from './statement.js';
