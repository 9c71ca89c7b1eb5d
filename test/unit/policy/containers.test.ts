/**
 * `--for containers`: one sigstoreSigned requirement per key; a key with a certificate on a rule
 * with Rekor gets no rekorPublicKeyData (its entries name the certificate, which containers/image
 * compares with keyData's key), and a note says why.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PolicyKey, PolicyRule } from '../../../src/policy/model.js';
import { containersExporter } from '../../../src/policy/verifiers/containers.js';
import { openshiftExporter } from '../../../src/policy/verifiers/openshift.js';

const ecPem = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const rekor = { url: 'https://rekor.internal.example', publicKeyPem: ecPem() };

describe('--for containers', () => {
  it('Rekor: bare keys get rekorPublicKeyData; a key with a certificate gets keyData alone and a note', () => {
    const bare: PolicyKey = { name: 'bare', pem: ecPem() };
    const withCert: PolicyKey = { name: 'pki', pem: ecPem(), certificate: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' };
    const rule: PolicyRule = { index: 0, match: 'reg.example/app/**', keys: [bare, withCert], identity: 'tag', rekor };
    const r = containersExporter.export({ rules: [rule] });
    const [a, b] = (r.documents[0]!.content as any).transports.docker['reg.example/app'];
    expect(Buffer.from(a.rekorPublicKeyData, 'base64').toString()).toBe(rekor.publicKeyPem);
    expect(Buffer.from(b.keyData, 'base64').toString()).toBe(withCert.pem);
    expect(b.rekorPublicKeyData).toBeUndefined();
    expect(r.notes.join('\n')).toMatch(/key pki has a certificate, so its Rekor entries name the certificate/);
    expect(r.notes.join('\n')).not.toMatch(/key bare/);
    // OpenShift renders the same containers/image requirement: rekorKeyData for the bare key only
    const os = openshiftExporter.export({ rules: [rule] });
    const keys = os.documents.map((d) => (d.content as any).spec.policy.rootOfTrust.publicKey);
    expect(keys.map((k) => k.rekorKeyData !== undefined)).toEqual([true, false]);
    expect(os.notes.join('\n')).toMatch(/openshift: .*key pki has a certificate/);
    // without Rekor nothing changes and nothing is noted
    const plain = containersExporter.export({ rules: [{ ...rule, rekor: undefined } as PolicyRule] });
    expect(plain.notes.join('\n')).not.toMatch(/has a certificate/);
  });
});
