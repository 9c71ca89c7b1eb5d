/**
 * The signed decision: an in-toto Statement v1 about one manifest digest with the SLSA
 * Verification Summary predicate (https://slsa.dev/verification_summary/v1), saying "signet
 * checked this image against rule N and it PASSED". Built here, signed and stored by
 * ./write.ts through the bundle format's writer (a DSSE bundle v0.3 referrer).
 *
 * The predicate's fields (SLSA spec v1.0 "Verification Summary Attestation"):
 * - `verifier.id`: SIGNET_VERIFIER_ID (a URN: signet has no web home to name it by);
 * - `timeVerified`: when signet decided (the plan's decidedAt), RFC 3339 in UTC, whole seconds;
 * - `resourceUri`: the image as a package URL, `pkg:oci/<name>@<digest>?repository_url=<host>/<repo>`
 *   (purl's OCI type; the VSA spec asks for a URI naming the artifact);
 * - `policy`: a ResourceDescriptor for the rule: `uri` `urn:signet:rule:<index>`, `name` its
 *   `match` pattern, `digest.sha256` over the rule's configuration as canonical JSON (keys sorted),
 *   so a VSA names exactly the rule text it was decided under and an edited rule is a new policy;
 * - `verificationResult` `PASSED` (signet writes no attestation for a push it refuses: a refused
 *   push is `skipped(reason)` in status) and `verifiedLevels` `[SIGNET_RULE_PASSED]`: the spec lets
 *   producers use custom values that do not start with `SLSA_`; claiming a SLSA track level would
 *   be false, signet does not check build provenance;
 * - `slsaVersion` `1.0`; no inputAttestations (signet reads none), no dependencyLevels.
 *
 * The push facts and the scan summary have no field in the VSA, so they go in two extension
 * fields of the predicate, named by URNs as the in-toto / SLSA parsing rules ask of extensions
 * (consumers MUST ignore fields they do not know; a URI-named field cannot collide with a later
 * spec field): `urn:signet:push` {registry, repository, tag?, digest, pusher?, time} and, only
 * when the rule's scan gate produced one, `urn:signet:scan` (ScanSummary). Keeping them in the
 * predicate (not in the subject's annotations) puts them where Kyverno's attestation conditions
 * and `cosign verify-attestation --policy` look: the predicate.
 *
 * Idempotence: a re-delivered event rebuilds the statement with another time, so "present" is
 * decided by meaning (sameDecision): a VSA about this digest, by this verifier, PASSED, under the
 * same policy digest. Pusher, time and scan do not make a decision new.
 */
import { createHash } from 'node:crypto';
import { INTOTO_STATEMENT_V1 } from '../../signing/bundle.js';

export const VSA_PREDICATE = 'https://slsa.dev/verification_summary/v1';
export const SIGNET_VERIFIER_ID = 'urn:signet:verifier';
export const PUSH_FIELD = 'urn:signet:push';
export const SCAN_FIELD = 'urn:signet:scan';
export const SIGNET_LEVEL = 'SIGNET_RULE_PASSED';

/**
 * What a passed scan gate (rules[].require.scan, src/scan/gate.ts) records. Counts by severity
 * as the scanner reports them (Harbor's scan_overview summary: Critical, High, ...).
 */
export interface ScanSummary {
  /** The scanner, e.g. "Trivy" (Harbor scan_overview scanner.name), with its version when known. */
  scanner: string;
  scannerVersion?: string | undefined;
  /** When the scan finished (RFC 3339). */
  completedAt?: string | undefined;
  /** The gate's threshold: nothing above this severity was found. */
  maxSeverity: string;
  /** The worst severity found (e.g. "Low"), or "None". */
  severity: string;
  /** Findings per severity. */
  counts: Record<string, number>;
}

export interface VsaInput {
  /** The configured host, the repository, the tag pushed (if any) and the manifest digest. */
  host: string;
  repository: string;
  tag?: string | undefined;
  digest: string;
  pusher?: string | undefined;
  /** When signet decided. */
  decidedAt: Date;
  ruleIndex: number;
  /** The rule as configured (hashed into policy.digest). */
  rule: { match: string } & Record<string, unknown>;
  scan?: ScanSummary | undefined;
}

/** The statement's bytes (signed as-is). */
export function vsaStatement(input: VsaInput): Buffer {
  const [alg, hex] = input.digest.split(':');
  const push: Record<string, string> = { registry: input.host, repository: input.repository };
  if (input.tag !== undefined) push['tag'] = input.tag;
  push['digest'] = input.digest;
  if (input.pusher !== undefined) push['pusher'] = input.pusher;
  push['time'] = rfc3339(input.decidedAt);
  const predicate: Record<string, unknown> = {
    verifier: { id: SIGNET_VERIFIER_ID },
    timeVerified: rfc3339(input.decidedAt),
    resourceUri: resourceUri(input.host, input.repository, input.digest),
    policy: policyDescriptor(input.ruleIndex, input.rule),
    verificationResult: 'PASSED',
    verifiedLevels: [SIGNET_LEVEL],
    slsaVersion: '1.0',
    [PUSH_FIELD]: push,
  };
  if (input.scan) predicate[SCAN_FIELD] = scanField(input.scan);
  return Buffer.from(JSON.stringify({ _type: INTOTO_STATEMENT_V1, subject: [{ digest: { [alg!]: hex } }], predicateType: VSA_PREDICATE, predicate }));
}

/** `pkg:oci/<last path segment>@<digest>?repository_url=<host>/<repository>` (purl-spec PURL-TYPES oci). */
export function resourceUri(host: string, repository: string, digest: string): string {
  const name = repository.split('/').pop()!;
  return `pkg:oci/${encodeURIComponent(name)}@${encodeURIComponent(digest)}?repository_url=${encodeURIComponent(`${host}/${repository}`).replace(/%2F/g, '/')}`;
}

export function policyDescriptor(
  ruleIndex: number,
  rule: { match: string } & Record<string, unknown>,
): { uri: string; name: string; digest: { sha256: string } } {
  return { uri: `urn:signet:rule:${ruleIndex}`, name: rule.match, digest: { sha256: createHash('sha256').update(canonicalJson(rule)).digest('hex') } };
}

/** JSON with object keys sorted at every level and undefined members dropped. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

function scanField(s: ScanSummary): Record<string, unknown> {
  const out: Record<string, unknown> = { scanner: s.scanner };
  if (s.scannerVersion !== undefined) out['scannerVersion'] = s.scannerVersion;
  if (s.completedAt !== undefined) out['completedAt'] = s.completedAt;
  out['maxSeverity'] = s.maxSeverity;
  out['severity'] = s.severity;
  out['counts'] = { ...s.counts };
  return out;
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Does a (verified) statement record the same decision: a VSA by signet, PASSED, under this
 * policy digest? Its subject and predicate type are checked by the bundle reader already.
 */
export function sameDecision(statement: Buffer, policyDigest: string): boolean {
  let doc: unknown;
  try {
    doc = JSON.parse(statement.toString('utf8'));
  } catch {
    return false;
  }
  const p = (doc as { predicate?: unknown })?.predicate as
    { verifier?: { id?: unknown }; verificationResult?: unknown; policy?: { digest?: { sha256?: unknown } } } | undefined;
  if (!p || typeof p !== 'object') return false;
  return p.verifier?.id === SIGNET_VERIFIER_ID && p.verificationResult === 'PASSED' && p.policy?.digest?.sha256 === policyDigest;
}
