/**
 * src/policy/verifiers/kyverno.ts: what a bundle-only rule with a private Rekor needs. Kyverno's
 * SigstoreBundle path (kyverno/kyverno 111e07bb pkg/image/verifiers/cpol/cosign/sigstore.go
 * getTrustedMaterial) checks the log against its TUF trusted_root.json and does not read the
 * attestor's rekor block; the ClusterPolicy has no field for a trusted root, so a note says so.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PolicyKey, PolicyRule } from '../../../src/policy/index.js';
import { kyvernoExporter } from '../../../src/policy/verifiers/kyverno.js';
import { checkKubernetesObject } from './verifier-checks.js';

const ecPem = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const key: PolicyKey = { name: 'k', pem: ecPem() };
const rule = (index: number, extra: Partial<PolicyRule>): PolicyRule => ({ index, match: `reg.example/r${index}/**`, keys: [key], identity: 'tag', ...extra });
const rekor = { url: 'https://rekor.internal.example', publicKeyPem: ecPem() };

describe('kyverno: private Rekor on the SigstoreBundle path', () => {
  it('bundle-only rule: a note naming the TUF trusted root and the log; the policy still validates', () => {
    const r = kyvernoExporter.export({ rules: [rule(0, { formats: ['bundle'], rekor })] });
    const verify = (r.documents[0]!.content as any).spec.rules[0].verifyImages[0];
    expect(verify.type).toBe('SigstoreBundle');
    expect(checkKubernetesObject(r.documents[0]!.content)).toEqual([]);
    expect(r.notes.join('\n')).toMatch(
      /rules\[0\].*SigstoreBundle checks the log against the trusted_root\.json of Kyverno's own TUF repository \(its --tufMirror\/--tufRoot flags\).*Rekor https:\/\/rekor\.internal\.example/,
    );
  });

  it('no such note when the rule also writes legacy (type Cosign reads rekor.pubkey) or logs to the public Rekor', () => {
    const r = kyvernoExporter.export({
      rules: [rule(0, { formats: ['legacy', 'bundle'], rekor }), rule(1, { formats: ['bundle'], rekor: { url: 'https://rekor.sigstore.dev' } })],
    });
    const rules = (r.documents[0]!.content as any).spec.rules;
    expect(rules[0].verifyImages[0].type).toBe('Cosign');
    expect(rules[0].verifyImages[0].attestors[0].entries[0].keys.rekor).toEqual({ url: rekor.url, pubkey: rekor.publicKeyPem });
    expect(r.notes.join('\n')).not.toMatch(/TUF/);
  });
});

describe('kyverno: rules with attest get an attestation check', () => {
  it('a SigstoreBundle entry checking the VSA by every key, PASSED by signet; validates against the CRD; rules without attest have none', () => {
    const k2: PolicyKey = { name: 'sec', pem: ecPem() };
    const r = kyvernoExporter.export({
      rules: [rule(0, { formats: ['legacy', 'bundle'], keys: [key, k2], attest: true }), rule(1, { formats: ['legacy', 'bundle'] })],
    });
    expect(checkKubernetesObject(r.documents[0]!.content)).toEqual([]);
    const rules = (r.documents[0]!.content as any).spec.rules;
    const [sig, att] = rules[0].verifyImages;
    expect(sig.type).toBe('Cosign');
    expect(sig.attestations).toBeUndefined();
    expect(att).toMatchObject({ type: 'SigstoreBundle', imageReferences: sig.imageReferences, required: true, verifyDigest: true });
    expect(att.attestors).toBeUndefined();
    expect(att.attestations).toHaveLength(1);
    const a = att.attestations[0];
    expect(a.type).toBe('https://slsa.dev/verification_summary/v1');
    expect(a.attestors.map((x: any) => x.entries[0].keys.publicKeys)).toEqual([key.pem, k2.pem]);
    expect(a.attestors[0].entries[0].keys.rekor).toEqual({ ignoreTlog: true });
    expect(a.conditions).toEqual([
      {
        all: [
          { key: '{{ verificationResult }}', operator: 'Equals', value: 'PASSED' },
          { key: '{{ verifier.id }}', operator: 'Equals', value: 'urn:signet:verifier' },
        ],
      },
    ]);
    expect(rules[1].verifyImages).toHaveLength(1);
    expect(rules[1].verifyImages[0].attestations).toBeUndefined();
  });

  it("a private Rekor: a note that the attestation check reads Kyverno's TUF trusted root", () => {
    const r = kyvernoExporter.export({ rules: [rule(0, { formats: ['legacy', 'bundle'], rekor, attest: true })] });
    expect(checkKubernetesObject(r.documents[0]!.content)).toEqual([]);
    expect(r.notes.join('\n')).toMatch(/rules\[0\].*attestation check \(type SigstoreBundle\).*Rekor https:\/\/rekor\.internal\.example/);
  });
});

describe('kyverno: a rule with tags.include/exclude', () => {
  it('requires only the tags signet signs (imageReferences R:<include>, skipImageReferences R:<exclude>), digests still; validates against the CRD', async () => {
    const { policyInput } = await import('../../../src/policy/index.js');
    const input = policyInput(
      { rules: [{ match: 'reg.example/team/**', keys: ['k'], tags: { include: ['v*'], exclude: ['*-dev'] }, identity: 'tag', untagged: 'ignore' }] as any },
      new Map([['k', { publicKeyPem: key.pem, certificate: undefined }]]),
    );
    expect(input.rules[0]!.tags).toEqual({ include: ['v*'], exclude: ['*-dev'] });
    const r = kyvernoExporter.export(input);
    expect(checkKubernetesObject(r.documents[0]!.content)).toEqual([]);
    const v = (r.documents[0]!.content as any).spec.rules[0].verifyImages[0];
    expect(v.imageReferences).toEqual(['reg.example/team:v*', 'reg.example/team/*:v*', 'reg.example/team@*', 'reg.example/team/*@*']);
    expect(v.skipImageReferences).toEqual(['reg.example/team:*-dev', 'reg.example/team/*:*-dev']);
    expect(r.notes.join('\n')).toMatch(/referenced by digest alone are still required/);
  });
});
