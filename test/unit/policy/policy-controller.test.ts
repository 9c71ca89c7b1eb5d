/**
 * src/policy/verifiers/policy-controller.ts: the TrustRoot (policy.sigstore.dev/v1alpha1) written
 * for a private Rekor, checked against the CRD fixture (policy.sigstore.dev_trustroots.yaml) and
 * policy-controller's admission/reconciler rules (verifier-checks.ts trustRootSemantic), and the
 * ClusterImagePolicy's ctlog.trustRootRef that names it.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { serialize, type PolicyInput, type PolicyKey, type PolicyRule } from '../../../src/policy/index.js';
import { PolicyExportError, rekorLogId } from '../../../src/policy/model.js';
import { policyControllerExporter } from '../../../src/policy/verifiers/policy-controller.js';
import { makeIntermediateCa, makeRootCa } from '../../helpers/pki.js';
import { checkKubernetesObject } from './verifier-checks.js';

const ecPem = (curve = 'P-256') => generateKeyPairSync('ec', { namedCurve: curve }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const key = (name: string, extra: Partial<PolicyKey> = {}): PolicyKey => ({ name, pem: ecPem(), ...extra });
const rule = (index: number, keys: PolicyKey[], extra: Partial<PolicyRule> = {}): PolicyRule => ({
  index,
  match: `reg.example/r${index}/**`,
  keys,
  identity: 'tag',
  ...extra,
});
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

const root = makeRootCa('acme root');
const inter = makeIntermediateCa(root, 'acme intermediate');
/** A bring-your-own-PKI key: its chain is what makes the TrustRoot admissible. */
const pkiKey = (name: string) => key(name, { chain: [inter.pem, root.pem], identity: 'signer@example.com' });

function exported(input: PolicyInput) {
  const r = policyControllerExporter.export(input);
  const docs = r.documents.map((d) => d.content as any);
  return {
    ...r,
    trustRoots: docs.filter((d) => d.kind === 'TrustRoot'),
    cips: docs.filter((d) => d.kind === 'ClusterImagePolicy'),
    notesText: r.notes.join('\n'),
  };
}

describe('policy-controller TrustRoot for a private Rekor', () => {
  const rekorPem = ecPem();
  const rekor = { url: 'https://rekor.internal.example', publicKeyPem: rekorPem };

  it('is written, valid against the CRD and the admission rules; tLogs = {baseURL, sha-256, base64 PEM}; the CAs of the rule keys; the CIP names it', () => {
    const r = exported({ rules: [rule(0, [pkiKey('k')], { rekor })] });
    expect(r.trustRoots).toHaveLength(1);
    const tr = r.trustRoots[0];
    expect(tr.apiVersion).toBe('policy.sigstore.dev/v1alpha1');
    expect(tr.metadata.name).toBe('signet-rekor-rekor-internal-example');
    for (const d of r.documents) {
      for (const format of ['yaml', 'json'] as const) expect(checkKubernetesObject(d.content), `${d.file} ${format}`).toEqual([]);
    }
    const [tlog] = tr.spec.sigstoreKeys.tLogs;
    expect(Object.keys(tlog).sort()).toEqual(['baseURL', 'hashAlgorithm', 'publicKey']);
    expect(tlog.baseURL).toBe('https://rekor.internal.example');
    expect(tlog.hashAlgorithm).toBe('sha-256');
    expect(unb64(tlog.publicKey)).toBe(rekorPem);
    const [ca] = tr.spec.sigstoreKeys.certificateAuthorities;
    expect(ca.subject).toEqual({ organization: 'signet test', commonName: 'acme root' });
    expect(ca.uri).toBe('urn:signet:ca:acme%20root');
    expect(unb64(ca.certChain)).toBe(inter.pem + root.pem);
    // the CIP points at it; the old "needs a TrustRoot" note is gone
    expect(r.cips[0].spec.authorities[0].ctlog).toEqual({ url: 'https://rekor.internal.example', trustRootRef: tr.metadata.name });
    expect(r.notesText).not.toMatch(/TrustRoot/);
    // the legacy entry names the certificate (what the cosign v3.0.5 inside policy-controller wants): nothing to warn about
    expect(r.notesText).not.toMatch(/refuses its legacy signatures/);
    // written first, so `kubectl apply -f` creates it before the policies
    expect(r.documents[0]!.file).toBe(`trustroot-${tr.metadata.name}`);
  });

  it('log ID in the comment = hex sha256 of the DER SPKI, as policy-controller derives it (its own test vector)', () => {
    // sigstore/policy-controller f925c0c1 pkg/reconciler/trustroot/testdata/rekorPublicKey.pem and rekorLogID.txt
    const upstreamPem =
      '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeCH4ML3V6E4yv0aY/YLBcs6fhJCY\nvjKmvMjscnW1non2G4D1VdpoA6cWhJk+aDgkxKf8i7JLXdn2MN7mqMOy4Q==\n-----END PUBLIC KEY-----\n';
    const upstreamLogId = 'aae64285b93ead7787ea91a0bcab400591f42c97f01b137221268b6d64a1df13';
    expect(rekorLogId({ url: 'https://rekor.example', publicKeyPem: upstreamPem }).toString('hex')).toBe(upstreamLogId);
    const r = policyControllerExporter.export({ rules: [rule(0, [pkiKey('k')], { rekor: { url: 'https://rekor.example', publicKeyPem: upstreamPem } })] });
    expect(serialize(r.documents[0]!, 'yaml')).toContain(`# Log ID (policy-controller derives it from publicKey: sha256 of the DER SPKI): ${upstreamLogId}\n`);
  });

  it('one TrustRoot per log key: rules sharing a log share it (CAs of both rules, once each); another log gets its own', () => {
    const root2 = makeRootCa('other root');
    const other = { url: 'https://rekor.internal.example', publicKeyPem: ecPem() }; // same host, rotated key
    const r = exported({
      rules: [rule(0, [pkiKey('a')], { rekor }), rule(1, [pkiKey('b'), key('c', { chain: [root2.pem] })], { rekor }), rule(2, [pkiKey('d')], { rekor: other })],
    });
    expect(r.trustRoots.map((t) => t.metadata.name)).toEqual(['signet-rekor-rekor-internal-example', 'signet-rekor-rekor-internal-example-2']);
    expect(r.trustRoots[0].spec.sigstoreKeys.certificateAuthorities.map((c: any) => c.subject.commonName)).toEqual(['acme root', 'other root']);
    expect(r.trustRoots[1].spec.sigstoreKeys.certificateAuthorities.map((c: any) => c.subject.commonName)).toEqual(['acme root']);
    const refs = r.cips.map((c) => c.spec.authorities[0].ctlog.trustRootRef);
    expect(refs).toEqual([
      'signet-rekor-rekor-internal-example',
      'signet-rekor-rekor-internal-example',
      'signet-rekor-rekor-internal-example',
      'signet-rekor-rekor-internal-example-2',
    ]);
    for (const t of r.trustRoots) expect(checkKubernetesObject(t)).toEqual([]);
  });

  it('none for the public Rekor or without Rekor: ctlog.url only / no ctlog, no note', () => {
    const r = exported({
      rules: [
        rule(0, [pkiKey('a')], { rekor: { url: 'https://rekor.sigstore.dev', publicKeyPem: rekorPem } }),
        rule(1, [pkiKey('b')], { rekor: { url: 'https://rekor.sigstore.dev' } }),
        rule(2, [pkiKey('c')]),
      ],
    });
    expect(r.trustRoots).toEqual([]);
    expect(r.cips.map((c) => c.spec.authorities[0].ctlog)).toEqual([{ url: 'https://rekor.sigstore.dev' }, { url: 'https://rekor.sigstore.dev' }, undefined]);
    expect(r.notesText).not.toMatch(/TrustRoot|Rekor https/);
  });

  it('a private Rekor without a configured key: no TrustRoot, no trustRootRef, a note naming rule.rekor.publicKey', () => {
    const r = exported({ rules: [rule(0, [pkiKey('a')], { rekor: { url: 'https://rekor.internal.example' } })] });
    expect(r.trustRoots).toEqual([]);
    expect(r.cips[0].spec.authorities[0].ctlog).toEqual({ url: 'https://rekor.internal.example' });
    expect(r.notesText).toMatch(/rules\[0\].*Rekor https:\/\/rekor\.internal\.example .*not configured \(rule\.rekor\.publicKey\).*refuses them/);
  });

  it('keys without a certificate chain: no TrustRoot (policy-controller would refuse one without a CA), a note saying what to create', () => {
    const r = exported({ rules: [rule(0, [key('plain')], { rekor })] });
    expect(r.trustRoots).toEqual([]);
    expect(r.cips[0].spec.authorities[0].ctlog).toEqual({ url: 'https://rekor.internal.example' });
    expect(r.notesText).toMatch(
      /refuses a TrustRoot that has no certificate or timestamp authority.*none of its rules. keys has a certificate chain.*tLogs \[\{baseURL: https:\/\/rekor\.internal\.example, hashAlgorithm: sha-256, publicKey: base64 of the Rekor PEM\}\].*ctlog\.trustRootRef/,
    );
  });

  it("a non-ECDSA Rekor key is refused (policy-controller's reconciler takes only ECDSA log keys)", () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() =>
      policyControllerExporter.export({ rules: [rule(0, [pkiKey('a')], { rekor: { url: 'https://rekor.internal.example', publicKeyPem: rsa } })] }),
    ).toThrow(PolicyExportError);
  });

  it('the checks can fail: a tlog-only TrustRoot, a logID field, a raw PEM publicKey, an RSA log key', () => {
    const tr = exported({ rules: [rule(0, [pkiKey('k')], { rekor })] }).trustRoots[0];
    const tlogOnly = structuredClone(tr);
    delete tlogOnly.spec.sigstoreKeys.certificateAuthorities;
    expect(checkKubernetesObject(tlogOnly).join('\n')).toMatch(/got neither: certificateAuthority, timestampAuthorities/);
    const withLogId = structuredClone(tr);
    withLogId.spec.sigstoreKeys.tLogs[0].logID = rekorLogId({ url: '', publicKeyPem: rekorPem }).toString('hex');
    expect(checkKubernetesObject(withLogId).join('\n')).toMatch(/logID: unknown field/);
    const rawPem = structuredClone(tr);
    rawPem.spec.sigstoreKeys.tLogs[0].publicKey = rekorPem;
    expect(checkKubernetesObject(rawPem).join('\n')).toMatch(/publicKey is not base64 of a PEM public key/);
    const rsa = structuredClone(tr);
    rsa.spec.sigstoreKeys.tLogs[0].publicKey = Buffer.from(
      generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    ).toString('base64');
    expect(checkKubernetesObject(rsa).join('\n')).toMatch(/publicKey is not ECDSA/);
    expect(createPublicKey(unb64(tr.spec.sigstoreKeys.tLogs[0].publicKey)).asymmetricKeyType).toBe('ec');
  });
});

describe('policy-controller and a rule with an RFC 3161 timestamp authority', () => {
  const tsaRoot = makeRootCa('tsa root');
  const tsaInter = makeIntermediateCa(tsaRoot, 'tsa intermediate');
  const timestamp = { url: 'https://tsa.internal.example/api/v1/timestamp', chainPem: tsaInter.pem + tsaRoot.pem };
  const rekor = { url: 'https://rekor.internal.example', publicKeyPem: ecPem() };

  it('no Rekor: a TrustRoot holding the TSA, valid against the CRD and admission rules; the authority names it in rfc3161timestamp', () => {
    const r = exported({ rules: [rule(0, [key('k')], { timestamp }), rule(1, [key('j')], { timestamp })] });
    expect(r.trustRoots).toHaveLength(1); // one per TSA
    const tr = r.trustRoots[0];
    expect(tr.spec.sigstoreKeys).toEqual({
      timestampAuthorities: [
        { subject: { organization: 'signet test', commonName: 'tsa root' }, uri: timestamp.url, certChain: Buffer.from(timestamp.chainPem).toString('base64') },
      ],
    });
    for (const d of r.documents) expect(checkKubernetesObject(d.content), d.file).toEqual([]);
    for (const cip of r.cips) {
      expect(cip.spec.authorities[0].rfc3161timestamp).toEqual({ trustRootRef: tr.metadata.name });
      expect(cip.spec.authorities[0].ctlog).toBeUndefined();
    }
  });

  it("a private Rekor and a TSA, keys without a certificate: the log's TrustRoot is admissible by its TSA, and both checks name it", () => {
    const r = exported({ rules: [rule(0, [key('plain')], { rekor, timestamp })] });
    expect(r.trustRoots).toHaveLength(1);
    const tr = r.trustRoots[0];
    expect(tr.spec.sigstoreKeys.certificateAuthorities).toBeUndefined();
    expect(tr.spec.sigstoreKeys.timestampAuthorities).toHaveLength(1);
    expect(checkKubernetesObject(tr)).toEqual([]);
    expect(r.cips[0].spec.authorities[0]).toMatchObject({
      ctlog: { url: rekor.url, trustRootRef: tr.metadata.name },
      rfc3161timestamp: { trustRootRef: tr.metadata.name },
    });
    expect(r.notesText).not.toMatch(/refuses a TrustRoot/);
  });
});

describe('policy-controller: a rule with tags.include/exclude', () => {
  it('images narrowed to R:<include>; tags.exclude has no spelling there: a note; validates against the CRD', () => {
    const r = policyControllerExporter.export({ rules: [rule(0, [key('k')], { tags: { include: ['v*'], exclude: ['*-dev'] } })] });
    const cip = r.documents.find((d) => (d.content as any).kind === 'ClusterImagePolicy')!;
    expect(checkKubernetesObject(cip.content)).toEqual([]);
    expect((cip.content as any).spec.images).toEqual([
      { glob: 'reg.example/r0:v*' },
      { glob: 'reg.example/r0/**:v*' },
      { glob: 'reg.example/r0@*' },
      { glob: 'reg.example/r0/**@*' },
    ]);
    expect(r.notes.join('\n')).toMatch(/rules\[0\] \(reg\.example\/r0\/\*\*\): tags\.exclude \[\*-dev\] cannot be written/);
  });
});
