/**
 * Every file `signet policy export` writes, for every verifier, validated against that project's
 * published schema (CRDs and docs kept in test/fixtures/policy-schemas, see its README) plus the
 * admission checks those projects run. Negative controls prove the checks can fail.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { policyInput, runExporters, serialize, serializeStream, verifierExporters, type ExportResult, type PolicyDocument } from '../../../src/policy/index.js';
import { PolicyExportError } from '../../../src/policy/model.js';
import { validateObject } from './crd-validator.js';
import { checkKubernetesObject, crds, openshiftCel, policyJsonSchema, registriesDSchema, SCHEMAS, trustedRootSchema } from './verifier-checks.js';
import { sampleInput, sampleKeys } from './sample.js';
import { makeRootCa } from '../../helpers/pki.js';

const keys = sampleKeys();
let cluster: Map<string, ExportResult>;
let namespaced: Map<string, ExportResult>;

beforeAll(() => {
  crds(); // the Kyverno CRD is 1.4 MB of YAML: parse it once
  cluster = runExporters(verifierExporters, sampleInput(keys));
  namespaced = runExporters(verifierExporters, sampleInput(keys, { namespaces: ['team-a', 'team-b'] }));
}, 60_000);

/** The document as it will be read back from disk. */
function roundTrip(d: PolicyDocument, format: 'yaml' | 'json'): any {
  const text = serialize(d, format);
  return (d.format ?? format) === 'json' ? JSON.parse(text) : parse(text);
}

function problems(d: PolicyDocument, format: 'yaml' | 'json'): string[] {
  if (d.text !== undefined) {
    if (d.file.endsWith('.pub')) {
      try {
        createPublicKey(d.text);
        return d.text.startsWith('-----BEGIN PUBLIC KEY-----\n') ? [] : ['not an SPKI PEM'];
      } catch (e) {
        return [(e as Error).message];
      }
    }
    return d.file === 'README.md' && d.text.length > 0 ? [] : [`unexpected text file ${d.file}`];
  }
  const obj = roundTrip(d, format);
  if (d.file === 'trusted_root.json') {
    const r = trustedRootSchema.safeParse(obj);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  }
  if (d.file === 'policy.json') {
    const r = policyJsonSchema.safeParse(obj);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  }
  if (d.file.startsWith('registries.d/')) {
    const r = registriesDSchema.safeParse(obj);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  }
  return checkKubernetesObject(obj);
}

describe('generated files validate against the published schemas', () => {
  for (const v of verifierExporters) {
    it(`${v.id}: every document, as YAML and as JSON, cluster-wide and per namespace`, () => {
      for (const results of [cluster, namespaced]) {
        const docs = results.get(v.id)!.documents;
        // the sample's rules write no Notary Project signatures: notation.test.ts and the notation CLI check that exporter's files
        if (v.id !== 'notation') expect(docs.length).toBeGreaterThan(0);
        for (const d of docs) {
          for (const format of ['yaml', 'json'] as const) expect(problems(d, format), `${v.id} ${d.file} (${format})`).toEqual([]);
        }
      }
    });
  }

  it('Kyverno: one rule per signet rule, one attestor per key; earlier rules are skipped; Rekor off', () => {
    const policy = cluster.get('kyverno')!.documents[0]!.content as any;
    expect(policy.spec.rules).toHaveLength(7);
    const twoKey = policy.spec.rules[1].verifyImages[0];
    expect(twoKey.attestors).toHaveLength(2);
    expect(twoKey.attestors.map((a: any) => a.entries[0].keys.publicKeys)).toEqual([keys.rsa.pem, keys.p256.pem]);
    expect(twoKey.skipImageReferences).toEqual(policy.spec.rules[0].verifyImages[0].imageReferences);
    for (const r of policy.spec.rules)
      for (const a of r.verifyImages[0].attestors) expect(a.entries[0].keys).toMatchObject({ rekor: { ignoreTlog: true }, ctlog: { ignoreSCT: true } });
  });

  it('policy-controller: one ClusterImagePolicy per key, no ctlog without Rekor', () => {
    const docs = cluster.get('policy-controller')!.documents.map((d) => d.content as any);
    const rule1 = docs.filter((d) => d.metadata.name.startsWith('signet-rule-1-'));
    expect(rule1.map((d) => d.spec.authorities[0].key.data)).toEqual([keys.rsa.pem, keys.p256.pem]);
    expect(rule1[0].spec.images).toEqual(rule1[1].spec.images);
    for (const d of docs) expect(d.spec.authorities[0].ctlog).toBeUndefined();
  });

  it('containers/OpenShift: identity tag -> matchRepoDigestOrExact, repository -> matchRepository; one requirement per key', () => {
    const policy = cluster.get('containers')!.documents[0]!.content as any;
    const docker = policy.transports.docker;
    expect(docker['registry.example.com/team-a']).toHaveLength(2);
    expect(docker['registry.example.com/team-a'][0].signedIdentity).toEqual({ type: 'matchRepoDigestOrExact' });
    expect(docker['registry.example.com/team-b'][0].signedIdentity).toEqual({ type: 'matchRepository' });
    expect(Buffer.from(docker['registry.example.com/team-a'][1].keyData, 'base64').toString()).toBe(keys.p256.pem);
    const regd = cluster.get('containers')!.documents[1]!.content as any;
    expect(regd['default-docker']).toEqual({ 'use-sigstore-attachments': true }); // *.corp.example.net
    expect(Object.keys(regd.docker).sort()).toEqual(
      Object.keys(docker)
        .filter((s) => !s.startsWith('*.'))
        .sort(),
    );
    const os = cluster.get('openshift')!.documents.map((d) => d.content as any);
    expect(os.find((d) => d.metadata.name === 'signet-rule-2-p256').spec.policy.signedIdentity).toEqual({ matchPolicy: 'MatchRepository' });
    expect(os.find((d) => d.metadata.name === 'signet-rule-1-rsa').spec.policy.signedIdentity).toEqual({ matchPolicy: 'MatchRepoDigestOrExact' });
    expect(namespaced.get('openshift')!.documents.every((d) => (d.content as any).kind === 'ImagePolicy')).toBe(true);
  });

  it('stdout streams parse back: YAML multi-document and a JSON v1 List', () => {
    const docs = cluster.get('policy-controller')!.documents;
    const yaml = serializeStream(docs, 'yaml');
    expect(
      yaml
        .split(/^---$/m)
        .filter((x) => x.trim())
        .map((x) => parse(x)),
    ).toEqual(docs.map((d) => d.content));
    const list = JSON.parse(serializeStream(docs, 'json'));
    expect(list).toMatchObject({ apiVersion: 'v1', kind: 'List' });
    expect(list.items).toEqual(docs.map((d) => d.content));
  });
});

describe('the checks themselves', () => {
  const first = (id: string) => structuredClone(cluster.get(id)!.documents[0]!.content) as any;

  it('reject unknown fields, wrong enums, bad keys and bad scopes', () => {
    const k = first('kyverno');
    k.spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.ignoreTlog = true; // belongs under rekor
    expect(checkKubernetesObject(k).join('\n')).toMatch(/keys\.ignoreTlog: unknown field/);
    const k2 = first('kyverno');
    k2.spec.rules[0].verifyImages[0].failureAction = 'Deny';
    expect(checkKubernetesObject(k2).join('\n')).toMatch(/must be one of/);
    const k3 = first('kyverno');
    k3.spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys = 'k8s-secret-name';
    expect(checkKubernetesObject(k3).join('\n')).toMatch(/not one SPKI PEM/);

    const p = first('policy-controller');
    p.spec.images[0].glob = 'registry/[a-z]*';
    p.spec.authorities[0].key.kms = 'awskms:///alias/x';
    expect(checkKubernetesObject(p).join('\n')).toMatch(/invalid glob[\s\S]*exactly one of data, kms, secretref/);

    const o = first('openshift');
    o.spec.scopes = ['registry/no-dot-host', '*.example.com/path'];
    o.spec.policy.rootOfTrust.publicKey.keyData = Buffer.from('-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n'.repeat(2)).toString(
      'base64',
    );
    const oe = checkKubernetesObject(o).join('\n');
    expect(oe).toMatch(/fully qualified domain name or 'localhost'/);
    expect(oe).toMatch(/wildcard can only be at the start of the domain/);
    expect(oe).toMatch(/keyData must start with base64 encoding/);
    const o2 = first('openshift');
    o2.spec.policy.rootOfTrust.policyType = 'PKI';
    expect(checkKubernetesObject(o2).join('\n')).toMatch(/pki is required when policyType is PKI/);

    const c = first('cosign-webhook');
    c.spec.authorities.keys = c.spec.authorities.key;
    delete c.spec.authorities.key;
    expect(checkKubernetesObject(c).join('\n')).toMatch(/missing required field "key"[\s\S]*keys: unknown field/);

    const pj = first('containers');
    pj.transports.docker['registry.example.com/team-a'][0].keyPath = '/etc/k.pub';
    pj.transports.docker['registry.example.com/**'] = [{ type: 'reject' }];
    const pr = policyJsonSchema.safeParse(pj);
    expect(pr.success).toBe(false);
    expect(JSON.stringify(pr.error!.issues)).toMatch(/exactly one of keyPath\(s\), keyData\(s\), fulcio, pki[\s\S]*not a docker transport scope/);
    expect(registriesDSchema.safeParse({ docker: { '*.example.com': { 'use-sigstore-attachments': true } } }).success).toBe(false);
  });

  it('accept the upstream examples (containers/image fixture policy.json; the OpenShift CEL table is exercised)', () => {
    const upstream = JSON.parse(readFileSync(path.join(SCHEMAS, 'containers-image.signature-fixtures-policy.json'), 'utf8'));
    const r = policyJsonSchema.safeParse(upstream);
    expect(r.success, JSON.stringify(r.error?.issues)).toBe(true);
    const checked = new Set<string>();
    for (const d of [...cluster.get('openshift')!.documents, ...namespaced.get('openshift')!.documents]) {
      const c = (d.content as any).kind === 'ImagePolicy' ? crds().openshiftNamespaced : crds().openshiftCluster;
      for (const rule of validateObject(c, d.content, openshiftCel).celChecked) checked.add(rule);
    }
    // every rule on the PublicKey path ran: keyData (2), rootOfTrust (3), signedIdentity (2), scopes (3)
    expect(checked.size).toBe(10);
  });

  it('an exporter that cannot express the rules says why', () => {
    const k = sampleKeys();
    const clash = {
      rules: [
        { index: 0, match: 'h.example.com/a-*/x', keys: [k.rsa], identity: 'tag' as const },
        { index: 1, match: 'h.example.com/b-*/x', keys: [k.p256], identity: 'tag' as const },
      ],
    };
    expect(() =>
      runExporters(
        verifierExporters.filter((v) => v.id === 'containers'),
        clash,
      ),
    ).toThrow(PolicyExportError);
    expect(() =>
      runExporters(
        verifierExporters.filter((v) => v.id === 'openshift'),
        clash,
      ),
    ).toThrow(/both become scope "h.example.com"/);
    expect(() =>
      runExporters(
        verifierExporters.filter((v) => v.id === 'kyverno'),
        { rules: [{ index: 0, match: 'h/[ab]/**', keys: [k.rsa], identity: 'tag' }] },
      ),
    ).toThrow(/kyverno: "h\/\[ab\]\/\*\*": only \*, \*\*, \? and \{a,b\}/);
  });

  it('Rekor and bundle-only rules: log settings per verifier (still schema-valid), bundle-only refused where unreadable', async () => {
    const rekorKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const providers = new Map(Object.values(keys).map((k) => [k.name, { publicKeyPem: k.pem, certificate: undefined }]));
    // rule options as the config schema gives them (rules[].rekor, rules[].formats)
    const input = await policyInput(
      {
        rules: [
          {
            match: 'registry.example.com/logged/**',
            keys: ['rsa'],
            identity: 'tag',
            untagged: 'ignore',
            rekor: { url: 'https://rekor.internal.example', publicKey: rekorKey, required: false, timeoutMs: 1000 },
          },
          { match: 'registry.example.com/bundles/**', keys: ['p256'], identity: 'tag', untagged: 'ignore', formats: ['bundle'] },
        ] as any,
      },
      providers,
    );
    expect(input.rules[0]!.rekor).toEqual({ url: 'https://rekor.internal.example', publicKeyPem: rekorKey, required: false });
    expect(input.rules[1]!.formats).toEqual(['bundle']);

    const logged = { rules: [input.rules[0]!] };
    const out = runExporters(verifierExporters, logged);
    for (const r of out.values()) for (const d of r.documents) expect(problems(d, 'yaml'), d.file).toEqual([]);
    const kyvernoKeys = (out.get('kyverno')!.documents[0]!.content as any).spec.rules[0].verifyImages[0].attestors[0].entries[0].keys;
    expect(kyvernoKeys.rekor).toEqual({ url: 'https://rekor.internal.example', pubkey: rekorKey });
    expect((out.get('policy-controller')!.documents[0]!.content as any).spec.authorities[0].ctlog).toEqual({ url: 'https://rekor.internal.example' });
    const req = (out.get('containers')!.documents[0]!.content as any).transports.docker['registry.example.com/logged'][0];
    expect(Buffer.from(req.rekorPublicKeyData, 'base64').toString()).toBe(rekorKey);
    const os = (out.get('openshift')!.documents[0]!.content as any).spec.policy.rootOfTrust.publicKey;
    expect(Buffer.from(os.rekorKeyData, 'base64').toString()).toBe(rekorKey);
    expect(out.get('kyverno')!.notes.join('\n')).toMatch(/rekor.required false/);
    // a plain key: policy-controller would refuse a TrustRoot without a CA, so none is written
    expect(out.get('policy-controller')!.notes.join('\n')).toMatch(/no TrustRoot written/);
    const pki = { rules: [{ ...input.rules[0]!, keys: [{ ...input.rules[0]!.keys[0]!, chain: [makeRootCa('schemas root').pem] }] }] };
    const pc = runExporters(
      verifierExporters.filter((v) => v.id === 'policy-controller'),
      pki,
    ).get('policy-controller')!;
    expect(pc.documents.map((d) => (d.content as any).kind)).toEqual(['TrustRoot', 'ClusterImagePolicy']);
    for (const d of pc.documents) for (const format of ['yaml', 'json'] as const) expect(problems(d, format), `${d.file} (${format})`).toEqual([]);
    expect((pc.documents[1]!.content as any).spec.authorities[0].ctlog.trustRootRef).toBe((pc.documents[0]!.content as any).metadata.name);

    const bundles = { rules: [input.rules[1]!] };
    const k = runExporters(
      verifierExporters.filter((v) => v.id === 'kyverno'),
      bundles,
    ).get('kyverno')!;
    expect((k.documents[0]!.content as any).spec.rules[0].verifyImages[0].type).toBe('SigstoreBundle');
    expect(problems(k.documents[0]!, 'yaml')).toEqual([]);
    for (const id of ['policy-controller', 'containers', 'openshift', 'cosign-webhook']) {
      expect(
        () =>
          runExporters(
            verifierExporters.filter((v) => v.id === id),
            bundles,
          ),
        id,
      ).toThrow(/writes no legacy \.sig/);
    }
  });
});
