/**
 * src/policy/verifiers/cosign.ts: the TrustedRoot document (shape from protobuf-specs
 * sigstore_trustroot.proto, as `cosign trusted-root create` writes it: checked against cosign 3.1
 * itself in test/integration/policy-export-cosign.test.ts), the files, and the commands per rule.
 */
import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { policyInput, runExporters, serializeStream, type PolicyInput, type PolicyKey, type PolicyRule } from '../../../src/policy/index.js';
import { PolicyExportError } from '../../../src/policy/model.js';
import { cosignExporter, LOG_VALID_FROM, TRUSTED_ROOT_MEDIA_TYPE, trustedRoot } from '../../../src/policy/verifiers/cosign.js';
import { EKU, issueCertificate, makeIntermediateCa, makeRootCa } from '../../helpers/pki.js';
import { trustedRootSchema } from './verifier-checks.js';

const ecPem = (curve = 'P-256') => generateKeyPairSync('ec', { namedCurve: curve }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const key = (name: string, extra: Partial<PolicyKey> = {}): PolicyKey => ({ name, pem: ecPem(), ...extra });
const rule = (index: number, keys: PolicyKey[], extra: Partial<PolicyRule> = {}): PolicyRule => ({
  index,
  match: `reg.example/r${index}/**`,
  keys,
  identity: 'tag',
  ...extra,
});
const der = (pem: string) => createPublicKey(pem).export({ type: 'spki', format: 'der' });

function exported(input: PolicyInput) {
  const r = cosignExporter.export(input);
  const byFile = new Map(r.documents.map((d) => [d.file, d]));
  const readme = byFile.get('README.md')!.text!;
  const section = (i: number, k: string) =>
    readme
      .split(/^## /m)
      .find((s) => s.startsWith(`rules[${i}]`))!
      .split(/^### /m)
      .find((s) => s.startsWith(`key ${k}\n`))!;
  const cmd = (i: number, k: string, v: '2' | '3') => {
    const lines = section(i, k).split('\n');
    return lines[lines.indexOf(`# cosign ${v}.x`) + 1];
  };
  return { ...r, byFile, readme, section, cmd, root: byFile.get('trusted_root.json')!.content as any };
}

describe('trusted_root.json', () => {
  it('a log: baseUrl, SHA2_256, DER SPKI, keyDetails by curve, validFor.start, logId = sha256(DER SPKI); empty lists left out', () => {
    const p256 = ecPem();
    const p384 = ecPem('P-384');
    const doc = trustedRoot(
      [
        { url: 'https://rekor.internal.example', publicKeyPem: p256 },
        { url: 'https://rekor2.internal.example', publicKeyPem: p384 },
      ],
      [],
    );
    expect(doc).toEqual({
      mediaType: TRUSTED_ROOT_MEDIA_TYPE,
      tlogs: [
        {
          baseUrl: 'https://rekor.internal.example',
          hashAlgorithm: 'SHA2_256',
          publicKey: { rawBytes: der(p256).toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: LOG_VALID_FROM } },
          logId: { keyId: createHash('sha256').update(der(p256)).digest('base64') },
        },
        {
          baseUrl: 'https://rekor2.internal.example',
          hashAlgorithm: 'SHA2_256',
          publicKey: { rawBytes: der(p384).toString('base64'), keyDetails: 'PKIX_ECDSA_P384_SHA_384', validFor: { start: LOG_VALID_FROM } },
          logId: { keyId: createHash('sha256').update(der(p384)).digest('base64') },
        },
      ],
    });
    expect(TRUSTED_ROOT_MEDIA_TYPE).toBe('application/vnd.dev.sigstore.trustedroot+json;version=0.1');
    expect(trustedRootSchema.safeParse(doc).success).toBe(true);
    expect(trustedRoot([], [])).toEqual({ mediaType: TRUSTED_ROOT_MEDIA_TYPE });
  });

  it('a CA chain: subject = the root O/CN, the issuers then the root (DER), validFor.start = the root notBefore (whole seconds)', () => {
    const root = makeRootCa('acme root', { notBefore: new Date('2025-03-04T05:06:07.000Z') });
    const inter = makeIntermediateCa(root, 'acme intermediate');
    const doc = trustedRoot([], [[inter.pem, root.pem]]) as any;
    expect(doc.tlogs).toBeUndefined();
    expect(doc.certificateAuthorities).toEqual([
      {
        subject: { organization: 'signet test', commonName: 'acme root' },
        certChain: { certificates: [inter.pem, root.pem].map((p) => ({ rawBytes: new X509Certificate(p).raw.toString('base64') })) },
        validFor: { start: '2025-03-04T05:06:07Z' },
      },
    ]);
    expect(trustedRootSchema.safeParse(doc).success).toBe(true);
  });

  it('a Rekor key that is not ECDSA is refused (sigstore-go reads only ECDSA, RSA and Ed25519 logs; signet only ECDSA)', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => trustedRoot([{ url: 'https://r.example', publicKeyPem: rsa }], [])).toThrow(PolicyExportError);
    expect(() => trustedRoot([{ url: 'https://r.example', publicKeyPem: 'junk' }], [])).toThrow(/not a public key PEM/);
  });

  it('the schema check can fail: another media type, a missing validFor, an unknown field', () => {
    const good = trustedRoot([{ url: 'https://r.example', publicKeyPem: ecPem() }], []) as any;
    expect(trustedRootSchema.safeParse({ ...good, mediaType: 'application/vnd.dev.sigstore.trustedroot.v0.2+json' }).success).toBe(false);
    const noValid = structuredClone(good);
    delete noValid.tlogs[0].publicKey.validFor;
    expect(trustedRootSchema.safeParse(noValid).success).toBe(false);
    expect(trustedRootSchema.safeParse({ ...good, publicKeys: [] }).success).toBe(false);
  });
});

describe('--for cosign', () => {
  const rekorPem = ecPem();
  const rekor = { url: 'https://rekor.internal.example', publicKeyPem: rekorPem };

  it('files: trusted_root.json, one .pub per key (names made file-safe, collisions numbered), rekor.pub, README.md', () => {
    const a = key('team/a');
    const b = key('team:a');
    const r = exported({ rules: [rule(0, [a, b], { rekor }), rule(1, [a])] });
    expect(r.documents.map((d) => d.file)).toEqual(['trusted_root.json', 'team-a.pub', 'team-a-2.pub', 'rekor.pub', 'README.md']);
    expect(r.byFile.get('team-a.pub')!.text).toBe(a.pem);
    expect(r.byFile.get('team-a-2.pub')!.text).toBe(b.pem);
    expect(r.byFile.get('rekor.pub')!.text).toBe(rekorPem);
    expect(r.root.tlogs).toHaveLength(1);
    expect(r.notes.join('\n')).toMatch(/no CT log/);
    expect(r.notes.join('\n')).toMatch(/valid from 1970-01-01T00:00:00Z/);
  });

  it('the commands: Rekor -> 3.x --trusted-root, 2.x SIGSTORE_REKOR_PUBLIC_KEY; no Rekor -> --insecure-ignore-tlog=true; bundle-only -> 2.x verify-attestation', () => {
    const k = key('k');
    const r = exported({ rules: [rule(0, [k], { rekor }), rule(1, [k]), rule(2, [k], { formats: ['bundle'] }), rule(3, [k], { formats: ['bundle'], rekor })] });
    expect(r.cmd(0, 'k', '3')).toBe('cosign verify --key k.pub --trusted-root trusted_root.json "$IMAGE"');
    expect(r.cmd(0, 'k', '2')).toBe('SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub cosign verify --key k.pub --rekor-url https://rekor.internal.example "$IMAGE"');
    expect(r.cmd(1, 'k', '3')).toBe('cosign verify --key k.pub --insecure-ignore-tlog=true "$IMAGE"');
    expect(r.cmd(1, 'k', '2')).toBe('cosign verify --key k.pub --insecure-ignore-tlog=true "$IMAGE"');
    expect(r.cmd(2, 'k', '2')).toBe(
      'cosign verify-attestation --new-bundle-format --trusted-root trusted_root.json --key k.pub --insecure-ignore-tlog=true --type https://sigstore.dev/cosign/sign/v1 "$IMAGE"',
    );
    expect(r.cmd(3, 'k', '2')).toBe(
      'cosign verify-attestation --new-bundle-format --trusted-root trusted_root.json --key k.pub --type https://sigstore.dev/cosign/sign/v1 "$IMAGE"',
    );
    expect(r.cmd(3, 'k', '3')).toBe('cosign verify --key k.pub --trusted-root trusted_root.json "$IMAGE"');
  });

  it('two log keys: rekor-1.pub and rekor-2.pub, both in trusted_root.json; a log shared by rules appears once', () => {
    const other = { url: 'https://rekor-b.internal.example', publicKeyPem: ecPem() };
    const r = exported({ rules: [rule(0, [key('a')], { rekor }), rule(1, [key('b')], { rekor: other }), rule(2, [key('c')], { rekor })] });
    expect(r.root.tlogs.map((t: any) => t.baseUrl)).toEqual(['https://rekor.internal.example', 'https://rekor-b.internal.example']);
    expect(r.cmd(1, 'b', '2')).toMatch(/^SIGSTORE_REKOR_PUBLIC_KEY=rekor-2\.pub /);
    expect(r.cmd(2, 'c', '2')).toMatch(/^SIGSTORE_REKOR_PUBLIC_KEY=rekor-1\.pub /);
  });

  it("Rekor without a configured key: the public instance uses cosign's own root; a private one is reported, with no command that would skip the log", () => {
    const r = exported({
      rules: [
        rule(0, [key('a')], { rekor: { url: 'https://rekor.sigstore.dev' } }),
        rule(1, [key('b')], { rekor: { url: 'https://rekor.internal.example', required: false } }),
      ],
    });
    expect(r.root.tlogs).toBeUndefined();
    expect(r.cmd(0, 'a', '3')).toBe('cosign verify --key a.pub "$IMAGE"');
    expect(r.cmd(0, 'a', '2')).toBe('cosign verify --key a.pub "$IMAGE"');
    expect(r.section(1, 'b')).not.toMatch(/cosign verify/);
    expect(r.section(1, 'b')).toMatch(/rekor\.publicKey/);
    expect(r.notes.join('\n')).toMatch(/rules\[1\].*has no publicKey/);
    expect(r.notes.join('\n')).toMatch(/rekor.required false/);
  });

  it('keys with a certificate chain: one CertificateAuthority per distinct chain, a .chain.pem per key; legacy-only with Rekor is checked through the certificate by both cosign generations', () => {
    const root = makeRootCa();
    const inter = makeIntermediateCa(root);
    const chain = [inter.pem, root.pem];
    const r = exported({ rules: [rule(0, [key('c1', { chain, identity: 'a@example.com' }), key('c2', { chain })], { rekor }), rule(1, [key('plain')])] });
    expect(r.root.certificateAuthorities).toHaveLength(1);
    expect(r.root.certificateAuthorities[0].certChain.certificates).toHaveLength(2);
    expect(r.byFile.get('c1.chain.pem')!.text).toBe(inter.pem + root.pem);
    expect(r.byFile.has('plain.chain.pem')).toBe(false);
    expect(r.notes.join('\n')).not.toMatch(/3\.0\.3 refuses/);
    expect(r.notes.join('\n')).toMatch(
      /key c2: its certificate has no email or URI subject alternative name.*cosign 2\.x --key refuses its \.sig signatures under rules\[0\]/,
    );
    expect(r.section(0, 'c1')).toMatch(/CA chain is in trusted_root.json/);
    expect(r.section(0, 'c1')).toMatch(/Rekor entries of its `\.sig` signatures name the certificate/);
    // legacy only with Rekor: the entry names the certificate; both generations check the certificate
    const id = "--certificate-identity a@example.com --certificate-oidc-issuer-regexp '.*' --insecure-ignore-sct=true";
    expect(r.cmd(0, 'c1', '3')).toBe(`cosign verify --trusted-root trusted_root.json ${id} "$IMAGE"`);
    expect(r.cmd(0, 'c1', '2')).toBe(
      `SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub cosign verify --certificate-chain c1.chain.pem ${id} --rekor-url https://rekor.internal.example "$IMAGE"`,
    );
    // no identity: --key (cosign 3 compares the entry with the certificate anyway)
    expect(r.cmd(0, 'c2', '3')).toBe('cosign verify --key c2.pub --trusted-root trusted_root.json "$IMAGE"');
    // no Rekor: --key checks the .sig with the key alone
    const n = exported({ rules: [rule(0, [key('c3', { chain, identity: 'a@example.com' })])] });
    expect(n.cmd(0, 'c3', '2')).toBe('cosign verify --key c3.pub --insecure-ignore-tlog=true "$IMAGE"');
    expect(n.section(0, 'c3')).toMatch(/`--key` checks a `\.sig` signature with the key alone/);
  });

  it('a certificate key on a bundle rule: cosign 3.x checks the certificate (trusted root + identity); 2.x bundle-only gets SIGSTORE_ROOT_FILE; odd identities are shell-quoted', () => {
    const root = makeRootCa();
    const chain = [makeIntermediateCa(root).pem, root.pem];
    const c = key('c', { chain, identity: 'signer@example.com' });
    const q = key('q', { chain, identity: "https://ci.example/it's?x=1&y" });
    const r = exported({ rules: [rule(0, [c], { formats: ['legacy', 'bundle'], rekor }), rule(1, [c, q], { formats: ['bundle'] })] });
    const id = "--certificate-identity signer@example.com --certificate-oidc-issuer-regexp '.*' --insecure-ignore-sct=true";
    expect(r.cmd(0, 'c', '3')).toBe(`cosign verify --trusted-root trusted_root.json ${id} "$IMAGE"`);
    expect(r.cmd(0, 'c', '2')).toBe(
      `SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub cosign verify --certificate-chain c.chain.pem ${id} --rekor-url https://rekor.internal.example "$IMAGE"`,
    );
    expect(r.cmd(1, 'c', '3')).toBe(`cosign verify --trusted-root trusted_root.json ${id} --insecure-ignore-tlog=true "$IMAGE"`);
    expect(r.cmd(1, 'c', '2')).toBe(
      `SIGSTORE_ROOT_FILE=c.chain.pem cosign verify-attestation --new-bundle-format --trusted-root trusted_root.json ${id} --insecure-ignore-tlog=true --type https://sigstore.dev/cosign/sign/v1 "$IMAGE"`,
    );
    expect(r.cmd(1, 'q', '3')).toContain(`--certificate-identity 'https://ci.example/it'\\''s?x=1&y' `);
    expect(r.notes.join('\n')).not.toMatch(/3\.0\.3/);
  });

  it('no rules: nothing written, a note', () => {
    expect(cosignExporter.export({ rules: [] })).toEqual({ documents: [], notes: ['cosign: the config has no rules: nothing to verify'] });
  });

  it('on stdout: the YAML stream carries the text files as strings, the JSON stream as {file, text}', () => {
    const k = key('k');
    const docs = runExporters([cosignExporter], { rules: [rule(0, [k], { rekor })] }).get('cosign')!.documents;
    const yamlDocs = parseAllDocuments(serializeStream(docs, 'yaml')).map((d) => d.toJS());
    expect(yamlDocs[0].mediaType).toBe(TRUSTED_ROOT_MEDIA_TYPE);
    expect(yamlDocs[1]).toBe(k.pem);
    expect(yamlDocs.at(-1)).toMatch(/^# Verifying signet signatures with cosign/);
    const json = JSON.parse(serializeStream(docs, 'json'));
    expect(json[0].mediaType).toBe(TRUSTED_ROOT_MEDIA_TYPE);
    expect(json[1]).toEqual({ file: 'k.pub', text: k.pem });
  });

  it("policyInput: a key's certificate gives its chain (one PEM per certificate) and its email or URI SAN as identity", async () => {
    const root = makeRootCa();
    const inter = makeIntermediateCa(root);
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const certificate = issueCertificate({ cn: 'signer', publicKey, issuer: inter, eku: [EKU.codeSigning], email: 'signer@example.com' });
    const input = await policyInput(
      { rules: [{ match: 'reg.example/**', keys: ['c', 'plain'], identity: 'tag', untagged: 'ignore' }] as any },
      new Map([
        ['c', { publicKeyPem: pem, certificate: { certificate, chain: inter.pem + root.pem, notAfter: new Date() } }],
        ['plain', { publicKeyPem: pem, certificate: undefined }],
      ]),
    );
    const [c, plain] = input.rules[0]!.keys;
    expect(c!.chain!.map((p) => new X509Certificate(p).subject)).toEqual([new X509Certificate(inter.pem).subject, new X509Certificate(root.pem).subject]);
    expect(c!.identity).toBe('signer@example.com');
    expect(plain!.chain).toBeUndefined();
    expect(plain!.identity).toBeUndefined();
  });
});
