/**
 * `--for containers`: one sigstoreSigned requirement per key. A bare key gets keyData (+
 * rekorPublicKeyData on a rule with a Rekor key). A key with a certificate chain gets the `pki`
 * trust of containers/image 5.34.1+ (root, intermediates, the subject email or DNS name, no Rekor
 * key), and the export adds policy-keydata.json (keyData for every key) for older hosts. A key
 * whose certificate pki cannot express (no chain, a URI identity, no code-signing EKU) keeps
 * keyData with no rekorPublicKeyData (its entries name the certificate) and a note says why.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PolicyKey, PolicyRule } from '../../../src/policy/model.js';
import { containersExporter, KEYDATA_POLICY_FILE, pkiTrust } from '../../../src/policy/verifiers/containers.js';
import { openshiftExporter } from '../../../src/policy/verifiers/openshift.js';
import { EKU, issueCertificate, issueSignerChain, makeIntermediateCa, makeRootCa } from '../../helpers/pki.js';

const ecKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = (k: ReturnType<typeof ecKey>) => k.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const ecPem = () => spki(ecKey());
const rekor = { url: 'https://rekor.internal.example', publicKeyPem: ecPem() };
const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString();
const splitPem = (s: string) => s.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;

/** A PolicyKey as policyInput makes it for a file key with `certificate:` and `chain:`. */
function pkiKey(name: string, email = 'signer@example.com'): PolicyKey & { root: string; intermediate: string } {
  const k = ecKey();
  const { certificate, chain } = issueSignerChain(k.publicKey, email);
  const [intermediate, root] = splitPem(chain) as [string, string];
  return { name, pem: spki(k), certificate, chain: [intermediate, root], identity: email, root, intermediate };
}

/** A self-signed certificate with the given SAN and EKU (openssl: the test issuer writes only email SANs). */
function opensslCert(san: string, eku = 'codeSigning'): string {
  return execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=signer',
      '-addext',
      `subjectAltName=${san}`,
      '-addext',
      `extendedKeyUsage=${eku}`,
      '-keyout',
      '/dev/null',
    ],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  ).toString();
}

const docs = (r: ReturnType<typeof containersExporter.export>) => Object.fromEntries(r.documents.map((d) => [d.file, d.content as any]));

describe('--for containers', () => {
  it('a key with a certificate chain gets pki (root, intermediates, subjectEmail, no Rekor key); a bare key keeps keyData + rekorPublicKeyData', () => {
    const bare: PolicyKey = { name: 'bare', pem: ecPem() };
    const pki = pkiKey('pki');
    const rule: PolicyRule = { index: 0, match: 'reg.example/app/**', keys: [bare, pki], identity: 'tag', rekor };
    const r = containersExporter.export({ rules: [rule] });
    const d = docs(r);
    expect(Object.keys(d)).toEqual(['policy.json', KEYDATA_POLICY_FILE, 'registries.d/signet.yaml']);
    const [a, b] = d['policy.json'].transports.docker['reg.example/app'];
    expect(a).toEqual({
      type: 'sigstoreSigned',
      keyData: b64(bare.pem),
      rekorPublicKeyData: b64(rekor.publicKeyPem),
      signedIdentity: { type: 'matchRepoDigestOrExact' },
    });
    expect(b).toEqual({
      type: 'sigstoreSigned',
      pki: { caRootsData: b64(pki.root), caIntermediatesData: b64(pki.intermediate), subjectEmail: 'signer@example.com' },
      signedIdentity: { type: 'matchRepoDigestOrExact' },
    });
    // exactly one key source per requirement, as containers/image demands; pki takes no Rekor key
    for (const req of [a, b]) expect(['keyPath', 'keyPaths', 'keyData', 'keyDatas', 'fulcio', 'pki'].filter((f) => f in req)).toHaveLength(1);
    expect(b.rekorPublicKeyData).toBeUndefined();
    // the compat policy: what the export wrote before pki (keyData, no Rekor key for the certificate key)
    const [ca, cb] = d[KEYDATA_POLICY_FILE].transports.docker['reg.example/app'];
    expect(ca).toEqual(a);
    expect(cb).toEqual({ type: 'sigstoreSigned', keyData: b64(pki.pem), signedIdentity: { type: 'matchRepoDigestOrExact' } });
    expect(d[KEYDATA_POLICY_FILE].default).toEqual(d['policy.json'].default);
    const n = r.notes.join('\n');
    expect(n).toMatch(/key pki has a certificate chain: policy.json trusts its CA \(pki, containers\/image 5\.34\.1\+\) with subjectEmail signer@example\.com/);
    expect(n).toMatch(/key pki: pki checks the certificate chain at pull time .* after the certificate expires \(\d{4}-/);
    expect(n).toMatch(/key pki: the pki trust takes no Rekor key/);
    expect(n).toMatch(new RegExp(`before 5\\.34\\.1 refuses, policy and all .* install ${KEYDATA_POLICY_FILE} as /etc/containers/policy.json`));
    expect(n).not.toMatch(/key bare/);
  });

  it('repository identity, a chain of the root alone (no caIntermediatesData), several scopes, no Rekor', () => {
    const k = ecKey();
    const root = makeRootCa();
    const certificate = issueCertificate({ cn: 'signer', publicKey: k.publicKey, issuer: root, eku: [EKU.codeSigning], email: 'ci@example.com' });
    const key: PolicyKey = { name: 'direct', pem: spki(k), certificate, chain: [root.pem], identity: 'ci@example.com' };
    const r = containersExporter.export({ rules: [{ index: 0, match: 'reg.example/{a,b}/**', keys: [key], identity: 'repository' }] });
    const d = docs(r);
    const want = { type: 'sigstoreSigned', pki: { caRootsData: b64(root.pem), subjectEmail: 'ci@example.com' }, signedIdentity: { type: 'matchRepository' } };
    expect(d['policy.json'].transports.docker).toEqual({ 'reg.example/a': [want], 'reg.example/b': [want] });
    expect(r.notes.filter((x) => /key direct has a certificate chain/.test(x))).toHaveLength(1);
    expect(r.notes.join('\n')).not.toMatch(/Rekor key|Rekor entries|the log/);
  });

  it('subject: the identity email, else the first email SAN, else the first DNS SAN (subjectHostname); a URI-only certificate keeps keyData', () => {
    const root = makeRootCa();
    const base = { name: 'k', pem: ecPem(), chain: [root.pem] };
    const dns = pkiTrust({ ...base, certificate: opensslCert('DNS:signer.example.com,DNS:other.example.com') });
    expect('pki' in dns && dns.pki).toEqual({ caRootsData: b64(root.pem), subjectHostname: 'signer.example.com' });
    const both = pkiTrust({
      ...base,
      certificate: opensslCert('URI:spiffe://example.com/ci,email:ci@example.com,DNS:h.example.com'),
      identity: 'spiffe://example.com/ci',
    });
    expect('pki' in both && both.pki.subjectEmail).toBe('ci@example.com');
    const second = pkiTrust({ ...base, certificate: opensslCert('email:a@example.com,email:b@example.com'), identity: 'b@example.com' });
    expect('pki' in second && second.pki.subjectEmail).toBe('b@example.com');
    const uri = pkiTrust({ ...base, certificate: opensslCert('URI:spiffe://example.com/ci'), identity: 'spiffe://example.com/ci' });
    expect('why' in uri && uri.why).toMatch(/no email or DNS subject alternative name \(only spiffe:\/\/example\.com\/ci\)/);
  });

  it('keys pki cannot express keep keyData, no Rekor key, a note each, and no compat file', () => {
    const root = makeRootCa();
    const inter = makeIntermediateCa(root);
    const k1 = ecKey();
    const serverCert = issueCertificate({ cn: 's', publicKey: k1.publicKey, issuer: inter, eku: [EKU.serverAuth], email: 's@example.com' });
    const noEku: PolicyKey = { name: 'server', pem: spki(k1), certificate: serverCert, chain: [inter.pem, root.pem], identity: 's@example.com' };
    const noChain: PolicyKey = { ...pkiKey('nochain'), chain: undefined } as PolicyKey;
    delete (noChain as any).chain;
    const uri: PolicyKey = {
      name: 'spiffe',
      pem: ecPem(),
      certificate: opensslCert('URI:spiffe://example.com/ci'),
      chain: [root.pem],
      identity: 'spiffe://example.com/ci',
    };
    const rule: PolicyRule = { index: 0, match: 'reg.example/app/**', keys: [noEku, noChain, uri], identity: 'tag', rekor };
    const r = containersExporter.export({ rules: [rule] });
    const d = docs(r);
    expect(Object.keys(d)).toEqual(['policy.json', 'registries.d/signet.yaml']);
    const reqs = d['policy.json'].transports.docker['reg.example/app'];
    expect(reqs.map((x: any) => unb64(x.keyData))).toEqual([noEku.pem, noChain.pem, uri.pem]);
    expect(reqs.every((x: any) => x.rekorPublicKeyData === undefined && x.pki === undefined)).toBe(true);
    const n = r.notes.join('\n');
    expect(n).toMatch(/key server has a certificate but keeps keyData: its certificate has no code-signing extended key usage/);
    expect(n).toMatch(/key nochain has a certificate but keeps keyData: no chain/);
    expect(n).toMatch(/key spiffe has a certificate but keeps keyData: its certificate has no email or DNS/);
    expect(n).toMatch(/key server has a certificate, so its Rekor entries name the certificate/);
    expect(n).not.toMatch(/before 5\.34\.1 refuses/);
  });

  it('OpenShift keeps keyData for certificate keys (rekorKeyData for the bare key only); without Rekor nothing about the log is noted', () => {
    const bare: PolicyKey = { name: 'bare', pem: ecPem() };
    const withCert = pkiKey('pki');
    const rule: PolicyRule = { index: 0, match: 'reg.example/app/**', keys: [bare, withCert], identity: 'tag', rekor };
    const os = openshiftExporter.export({ rules: [rule] });
    const keys = os.documents.map((d) => (d.content as any).spec.policy.rootOfTrust.publicKey);
    expect(keys.map((k) => k.rekorKeyData !== undefined)).toEqual([true, false]);
    expect(os.notes.join('\n')).toMatch(/openshift: .*key pki has a certificate/);
    const plain = containersExporter.export({ rules: [{ ...rule, rekor: undefined } as PolicyRule] });
    expect(plain.notes.join('\n')).not.toMatch(/Rekor key|Rekor entries|the log/);
    expect(new X509Certificate(withCert.certificate!).subjectAltName).toBe('email:signer@example.com');
  });
});

describe('a rule with a tag filter, for verifiers that match repositories only', () => {
  it('containers and openshift say that every tag is required there (no silent drop)', () => {
    const rule: PolicyRule = { index: 0, match: 'reg.example/team/**', keys: [{ name: 'k', pem: ecPem() }], identity: 'tag', tags: { exclude: ['latest'] } };
    for (const [id, exporter] of [
      ['containers', containersExporter],
      ['openshift', openshiftExporter],
    ] as const) {
      const notes = exporter.export({ rules: [rule] }).notes.join('\n');
      expect(notes).toContain(`${id}: rules[0] (reg.example/team/**) signs only some tags (tags.exclude [latest]), but ${id} matches repositories, not tags`);
    }
    const plain = containersExporter.export({ rules: [{ ...rule, tags: undefined } as PolicyRule] }).notes.join('\n');
    expect(plain).not.toContain('signs only some tags');
  });
});
