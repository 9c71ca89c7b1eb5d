/**
 * src/policy/verifiers/notation.ts (`signet policy export --for notation`) and the `type: Notary`
 * entries of the Kyverno exporter: statements per rule, scopes from globs, trust stores from the
 * keys' chain roots and the TSA's root, trusted identities from the leaf subject; the Kyverno
 * policy validated against the CRD fixture. Certificates come from a real openssl CA issuing
 * signet's own certificate requests (src/kms/csr.ts).
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyExportError, resolveVerifiers, type PolicyInput, type PolicyKey, type PolicyRule } from '../../../src/policy/index.js';
import { kyvernoExporter } from '../../../src/policy/verifiers/kyverno.js';
import { notationExporter, subjectIdentity } from '../../../src/policy/verifiers/notation.js';
import { tempDir } from '../../helpers/cosign.js';
import { issuedKey, opensslRoot, type TestCa } from '../../helpers/notation-pki.js';
import { issueSignerChain } from '../../helpers/pki.js';
import { checkKubernetesObject } from './verifier-checks.js';

let tmp: { dir: string; remove: () => void };

const SUBJECT_A = 'CN=builder,OU=Platform,O=Acme Rockets\\, Inc.,L=Seattle,ST=WA,C=US';
const SUBJECT_B = 'CN=release,O=Acme Rockets,ST=WA,C=US';
let rootA: TestCa;
let rootB: TestCa;
let keyA: PolicyKey;
let keyB: PolicyKey;
let keyA2: PolicyKey;
let keyGeneral: PolicyKey;

beforeAll(async () => {
  tmp = tempDir('signet-notation-policy-');
  rootA = await opensslRoot(tmp.dir, 'root-a', '/C=US/O=Acme/CN=Acme Root A');
  rootB = await opensslRoot(tmp.dir, 'root-b', '/C=US/O=Acme/CN=Acme Root B');
  keyA = await issuedKey('a', rootA, SUBJECT_A);
  keyB = await issuedKey('b', rootB, SUBJECT_B, 'rsa');
  keyA2 = await issuedKey('a2', rootA, SUBJECT_B);
  keyGeneral = await issuedKey('general', rootA, 'O=Acme Rockets,ST=WA,C=US');
}, 60_000);
afterAll(() => tmp?.remove());

const rule = (index: number, match: string, keys: PolicyKey[], extra: Partial<PolicyRule> = {}): PolicyRule => ({
  index,
  match,
  keys,
  identity: 'tag',
  formats: ['notation'],
  ...extra,
});
const policyOf = (r: ReturnType<typeof notationExporter.export>) => r.documents.find((d) => d.file === 'trustpolicy.json')!.content as any;

describe('notation exporter', () => {
  it('is registered: --for notation, and part of all', () => {
    expect(resolveVerifiers('notation').map((v) => v.id)).toEqual(['notation']);
    expect(resolveVerifiers('all').map((v) => v.id)).toContain('notation');
  });

  it('a literal repository: one strict statement with its exact scope, the root store, the subject identity; the store file holds the root', () => {
    const r = notationExporter.export({ rules: [rule(0, 'localhost:5000/team/app', [keyA])] });
    const p = policyOf(r);
    expect(p.version).toBe('1.0');
    expect(p.trustPolicies).toHaveLength(1);
    const st = p.trustPolicies[0];
    expect(st.name).toBe('signet-rule-0');
    expect(st.registryScopes).toEqual(['localhost:5000/team/app']);
    expect(st.signatureVerification).toEqual({ level: 'strict' });
    expect(st.trustStores).toHaveLength(1);
    expect(st.trustStores[0]).toMatch(/^ca:signet-acme-root-a-[0-9a-f]{8}$/);
    expect(st.trustedIdentities).toEqual(['x509.subject: C=US, ST=WA, L=Seattle, O=Acme Rockets\\, Inc., OU=Platform, CN=builder']);
    const store = st.trustStores[0].slice(3);
    const files = r.documents.filter((d) => d.text !== undefined);
    expect(files.map((d) => d.file)).toEqual([`truststore/x509/ca/${store}/acme-root-a.crt`]);
    expect(new X509Certificate(files[0]!.text!).fingerprint256).toBe(new X509Certificate(rootA.rootPem).fingerprint256);
    expect(r.notes).toEqual([]);
  });

  it('braces of literals: exact scopes; a glob: the global scope "*" with a note', () => {
    const r = notationExporter.export({ rules: [rule(0, 'reg.example/{a,b/c}', [keyA]), rule(1, 'reg.example/team/**', [keyB])] });
    const p = policyOf(r);
    expect(p.trustPolicies.map((s: any) => [s.name, s.registryScopes])).toEqual([
      ['signet-rule-0', ['reg.example/a', 'reg.example/b/c']],
      ['signet-global', ['*']],
    ]);
    expect(r.notes.join('\n')).toMatch(/rules\[1\] \(reg\.example\/team\/\*\*\): registryScopes are exact repositories or "\*".*becomes the global scope "\*"/);
    // two roots -> two stores
    expect(r.documents.filter((d) => d.text !== undefined)).toHaveLength(2);
  });

  it('two glob rules share "*": their stores and identities together, and a note that Notation cannot keep them apart', () => {
    const r = notationExporter.export({ rules: [rule(0, 'reg.example/a/**', [keyA]), rule(1, 'reg.example/b/**', [keyB])] });
    const p = policyOf(r);
    expect(p.trustPolicies).toHaveLength(1);
    expect(p.trustPolicies[0].registryScopes).toEqual(['*']);
    expect(p.trustPolicies[0].trustStores).toHaveLength(2);
    expect(p.trustPolicies[0].trustedIdentities).toHaveLength(2);
    expect(r.notes.join('\n')).toMatch(/all need the one global scope "\*".*cannot keep their keys apart/);
  });

  it('an exact scope after a glob rule that covers it: a note (exact beats "*" in Notation, first rule wins in signet)', () => {
    const r = notationExporter.export({ rules: [rule(0, 'reg.example/**', [keyA]), rule(1, 'reg.example/app', [keyB])] });
    expect(r.notes.join('\n')).toMatch(
      /rules\[1\] \(reg\.example\/app\)'s exact scope decides reg\.example\/app in Notation, but signet signs those images by the earlier rules\[0\]/,
    );
  });

  it('a repository claimed by an earlier rule is left to it', () => {
    const r = notationExporter.export({ rules: [rule(0, 'reg.example/app', [keyA]), rule(1, 'reg.example/{app,other}', [keyB])] });
    expect(policyOf(r).trustPolicies.map((s: any) => s.registryScopes)).toEqual([['reg.example/app'], ['reg.example/other']]);
    expect(r.notes.join('\n')).toMatch(/rules\[1\].*never applies to reg\.example\/app/);
  });

  it('two keys under one root: one store; overlapping identities reduced to the more general one; a note on "one signature suffices"', () => {
    const r = notationExporter.export({ rules: [rule(0, 'reg.example/app', [keyA, keyA2])] });
    const st = policyOf(r).trustPolicies[0];
    expect(st.trustStores).toHaveLength(1);
    expect(st.trustedIdentities).toHaveLength(2); // different subjects, neither a subset of the other
    expect(r.notes.join('\n')).toMatch(/ONE signature verifies/);
    const same = notationExporter.export({ rules: [rule(0, 'reg.example/app', [keyA2, { ...keyA2, name: 'a2-again' }])] });
    expect(policyOf(same).trustPolicies[0].trustedIdentities).toEqual(['x509.subject: C=US, ST=WA, O=Acme Rockets, CN=release']);
    // C=US, ST=WA, O=Acme Rockets covers CN=release under it: notation-go refuses overlapping identities, so only the general one stays
    const overlap = notationExporter.export({ rules: [rule(0, 'reg.example/app', [keyA2, keyGeneral])] });
    expect(policyOf(overlap).trustPolicies[0].trustedIdentities).toEqual(['x509.subject: C=US, ST=WA, O=Acme Rockets']);
  });

  it('a leaf without C, ST and O: trustedIdentities "*" and a note naming the key', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { certificate, chain } = issueSignerChain(pair.publicKey);
    const blocks = chain.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;
    const k: PolicyKey = { name: 'plain', pem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(), certificate, chain: blocks };
    expect(subjectIdentity(certificate)).toEqual({ problem: expect.stringMatching(/lacks C, ST/) });
    const r = notationExporter.export({ rules: [rule(0, 'reg.example/app', [k, keyA])] });
    expect(policyOf(r).trustPolicies[0].trustedIdentities).toEqual(['*']);
    expect(r.notes.join('\n')).toMatch(/key plain's certificate cannot be named in trustedIdentities.*lacks C, ST.*trusts "\*"/);
  });

  it('a timestamp authority: a tsa store with the TSA root, named in trustStores', () => {
    const tsa = issueSignerChain(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const chainPem = tsa.certificate + tsa.chain;
    const r = notationExporter.export({ rules: [rule(0, 'reg.example/app', [keyA], { timestamp: { url: 'http://127.0.0.1:1/tsa', chainPem } })] });
    const st = policyOf(r).trustPolicies[0];
    expect(st.trustStores).toHaveLength(2);
    expect(st.trustStores[1]).toMatch(/^tsa:signet-signet-test-root-[0-9a-f]{8}$/);
    const tsaFile = r.documents.find((d) => d.file.startsWith('truststore/x509/tsa/'))!;
    const roots = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!;
    expect(new X509Certificate(tsaFile.text!).fingerprint256).toBe(new X509Certificate(roots[roots.length - 1]!).fingerprint256);
  });

  it('a key without a certificate chain is refused, naming the key and keys csr', () => {
    const bare: PolicyKey = { name: 'bare', pem: keyA.pem };
    expect(() => notationExporter.export({ rules: [rule(0, 'reg.example/app', [bare])] })).toThrow(PolicyExportError);
    expect(() => notationExporter.export({ rules: [rule(0, 'reg.example/app', [bare])] })).toThrow(/key bare has no certificate chain.*signet keys csr bare/);
  });

  it('rules that write no notation: skipped; none at all: no documents and a note', () => {
    const none = notationExporter.export({ rules: [rule(0, 'reg.example/app', [keyA], { formats: ['legacy', 'bundle'] })] });
    expect(none.documents).toEqual([]);
    expect(none.notes.join('\n')).toMatch(/no rule writes the notation format/);
    const mixed = notationExporter.export({ rules: [rule(0, 'reg.example/**', [keyA]), rule(1, 'other.example/**', [keyB], { formats: ['legacy'] })] });
    expect(policyOf(mixed).trustPolicies).toHaveLength(1);
    expect(mixed.notes.join('\n')).toMatch(/rules\[1\].*writes no notation signatures: under the global scope "\*" notation verify refuses their images/);
  });
});

describe('kyverno exporter: type Notary for rules that write notation', () => {
  const input = (formats: PolicyRule['formats'], keys = [keyA]): PolicyInput => ({ rules: [rule(0, 'reg.example/team/**', keys, { formats })] });

  it('notation only: one Notary entry, one attestor per key with the root certificate; the CRD accepts it', () => {
    const r = kyvernoExporter.export(input(['notation'], [keyA, keyB]));
    const content = r.documents[0]!.content as any;
    const vi = content.spec.rules[0].verifyImages;
    expect(vi).toHaveLength(1);
    expect(vi[0].type).toBe('Notary');
    expect(vi[0].imageReferences).toContain('reg.example/team/*');
    expect(vi[0].attestors.map((a: any) => new X509Certificate(a.entries[0].certificates.cert).fingerprint256)).toEqual([
      new X509Certificate(rootA.rootPem).fingerprint256,
      new X509Certificate(rootB.rootPem).fingerprint256,
    ]);
    expect(vi[0].attestors[0].entries[0].keys).toBeUndefined();
    expect(checkKubernetesObject(content)).toEqual([]);
  });

  it('legacy + notation: a Cosign entry and a Notary entry (both must pass); the CRD accepts it', () => {
    const r = kyvernoExporter.export(input(['legacy', 'notation']));
    const content = r.documents[0]!.content as any;
    expect(content.spec.rules[0].verifyImages.map((v: any) => v.type)).toEqual(['Cosign', 'Notary']);
    expect(checkKubernetesObject(content)).toEqual([]);
  });

  it('no notation: unchanged (no Notary entry)', () => {
    const r = kyvernoExporter.export(input(undefined));
    expect((r.documents[0]!.content as any).spec.rules[0].verifyImages.map((v: any) => v.type)).toEqual(['Cosign']);
  });

  it('keys under one root and a timestamp authority: notes; a key without a chain: refused', () => {
    const tsa = issueSignerChain(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const r = kyvernoExporter.export({
      rules: [rule(0, 'reg.example/app', [keyA, keyA2], { timestamp: { url: 'http://127.0.0.1:1', chainPem: tsa.certificate + tsa.chain } })],
    });
    expect(r.notes.join('\n')).toMatch(/keys share a root CA/);
    expect(r.notes.join('\n')).toMatch(/no TSA trust store/);
    expect(() => kyvernoExporter.export({ rules: [rule(0, 'reg.example/app', [{ name: 'bare', pem: keyA.pem }])] })).toThrow(
      /key bare has no certificate chain/,
    );
  });
});
