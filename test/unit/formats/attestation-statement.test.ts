/**
 * src/formats/attestation/statement.ts: the SLSA verification summary signet signs for a rule
 * with `attest: true` — its fields, the optional scan summary (the scan gate's hook), the policy
 * digest over the rule text, and sameDecision (what makes a stored VSA "present").
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  policyDescriptor,
  PUSH_FIELD,
  resourceUri,
  SCAN_FIELD,
  sameDecision,
  SIGNET_VERIFIER_ID,
  VSA_PREDICATE,
  vsaStatement,
  type VsaInput,
} from '../../../src/formats/attestation/statement.js';

const digest = `sha256:${'ab'.repeat(32)}`;
const rule = { match: 'reg.example/team/**', keys: ['sec'], attest: true };
const input = (extra: Partial<VsaInput> = {}): VsaInput => ({
  host: 'reg.example',
  repository: 'team/app',
  tag: 'v1',
  digest,
  pusher: 'alice',
  decidedAt: new Date('2026-12-06T00:01:02.345Z'),
  ruleIndex: 2,
  rule,
  ...extra,
});
const parse = (b: Buffer) => JSON.parse(b.toString('utf8'));

describe('vsaStatement', () => {
  it('an in-toto v1 statement about the digest with the VSA v1 predicate and the push facts', () => {
    const st = parse(vsaStatement(input()));
    expect(st).toEqual({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ digest: { sha256: 'ab'.repeat(32) } }],
      predicateType: 'https://slsa.dev/verification_summary/v1',
      predicate: {
        verifier: { id: 'urn:signet:verifier' },
        timeVerified: '2026-12-06T00:01:02Z',
        resourceUri: `pkg:oci/app@sha256%3A${'ab'.repeat(32)}?repository_url=reg.example/team/app`,
        policy: { uri: 'urn:signet:rule:2', name: 'reg.example/team/**', digest: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } },
        verificationResult: 'PASSED',
        verifiedLevels: ['SIGNET_RULE_PASSED'],
        slsaVersion: '1.0',
        [PUSH_FIELD]: { registry: 'reg.example', repository: 'team/app', tag: 'v1', digest, pusher: 'alice', time: '2026-12-06T00:01:02Z' },
      },
    });
    expect(st.predicate.verifiedLevels.some((l: string) => l.startsWith('SLSA_'))).toBe(false); // custom levels must not claim a SLSA track
  });

  it('no tag, no pusher: those facts are left out, not written empty; no scan field without a scan', () => {
    const p = parse(vsaStatement(input({ tag: undefined, pusher: undefined }))).predicate;
    expect(p[PUSH_FIELD]).toEqual({ registry: 'reg.example', repository: 'team/app', digest, time: '2026-12-06T00:01:02Z' });
    expect(p).not.toHaveProperty(SCAN_FIELD);
  });

  it('a scan summary, when given, is recorded as the gate passed it', () => {
    const scan = { scanner: 'Trivy', scannerVersion: '0.50.1', maxSeverity: 'High', severity: 'Medium', counts: { Medium: 2, Low: 5 } };
    expect(parse(vsaStatement(input({ scan }))).predicate[SCAN_FIELD]).toEqual(scan);
  });

  it('resourceUri: a package URL whose repository_url keeps the path and escapes the port colon', () => {
    expect(resourceUri('127.0.0.1:5000', 'a/b/c', digest)).toBe(`pkg:oci/c@sha256%3A${'ab'.repeat(32)}?repository_url=127.0.0.1%3A5000/a/b/c`);
  });
});

describe('policy digest and sameDecision', () => {
  it('the policy digest is over the rule text, independent of key order, and changes with the rule', () => {
    const a = policyDescriptor(0, { match: 'x/**', keys: ['k'], attest: true }).digest.sha256;
    expect(policyDescriptor(0, { attest: true, keys: ['k'], match: 'x/**' }).digest.sha256).toBe(a);
    expect(policyDescriptor(0, { match: 'x/**', keys: ['k', 'j'], attest: true }).digest.sha256).not.toBe(a);
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: undefined }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"f":2}]},"b":1}');
  });

  it('same decision: another time, pusher or scan; not: another rule, another verifier, not PASSED, not JSON', () => {
    const pd = policyDescriptor(2, rule).digest.sha256;
    const base = vsaStatement(input());
    expect(sameDecision(base, pd)).toBe(true);
    expect(sameDecision(vsaStatement(input({ decidedAt: new Date(), pusher: 'bob' })), pd)).toBe(true);
    expect(sameDecision(vsaStatement(input({ rule: { ...rule, keys: ['other'] } })), pd)).toBe(false);
    const edit = (f: (p: any) => void) => {
      const st = parse(base);
      f(st.predicate);
      return Buffer.from(JSON.stringify(st));
    };
    expect(
      sameDecision(
        edit((p) => (p.verificationResult = 'FAILED')),
        pd,
      ),
    ).toBe(false);
    expect(
      sameDecision(
        edit((p) => (p.verifier.id = 'https://example.com/other')),
        pd,
      ),
    ).toBe(false);
    expect(
      sameDecision(
        edit((p) => delete p.policy),
        pd,
      ),
    ).toBe(false);
    expect(sameDecision(Buffer.from('not json'), pd)).toBe(false);
    expect(SIGNET_VERIFIER_ID).toBe('urn:signet:verifier');
    expect(VSA_PREDICATE).toBe('https://slsa.dev/verification_summary/v1');
  });
});
