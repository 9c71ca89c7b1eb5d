/**
 * Issue 16 "Must show" for key backends other than files: the real Notary Project CLI, `notation`
 * 1.3, verifies the Notation signatures signet writes with
 *   - SoftHSM2 keys through PKCS#11 (a token per run; P-256 with CKM_ECDSA, RSA-2048 with
 *     CKM_RSA_PKCS_PSS: PS256), and
 *   - AWS KMS keys through the real @aws-sdk/client-kms talking to the local stand-in
 *     (ECC_NIST_P256, RSA_2048 with RSASSA_PSS_SHA_256), static credentials, no metadata service.
 * Each key's certificate is obtained the way an operator would: a config with the keys alone,
 * `signet keys csr NAME --subject ... --san ...` (src/cli.ts main, signed through the backend),
 * the request signed by an openssl root CA (test/helpers/notation-pki.ts, `-copy_extensions copy`),
 * then keys[].certificate / chain in the real config. notation's trust material is what
 * `signet policy export --for notation --out DIR` writes (trustpolicy.json + truststore/), copied
 * into each XDG_CONFIG_HOME unchanged (one exact registry scope per rule, pinning its keys' subjects).
 * Per key: single-arch by digest and by tag, an index and each of its children by digest and the
 * index by tag. The exported store with another root under the same name is refused. One image
 * under `[legacy, bundle, notation]` (an HSM RSA key and a KMS P-256 key): cosign 2.5 (key) and
 * cosign 3.1 (bundle, certificate against the CA) still verify, and notation verifies next to them.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { COSIGN3_BIN, cosignEnv, cosignVerify, tempDir } from '../helpers/cosign.js';
import { MT, pushImage, pushIndex, RegistryClient } from '../helpers/images.js';
import { opensslRoot, type TestCa } from '../helpers/notation-pki.js';
import { runProcess } from '../helpers/proc.js';
import { emptyTrustedRoot } from '../helpers/rekor.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { REDIS_URL, startSignet, type RunningSignet } from '../helpers/signet.js';
import { startAwsKmsStandin, type AwsKmsStandin } from '../helpers/standins/aws-kms.js';

const NOTATION = process.env.NOTATION_BIN ?? '/opt/sid-tools/usr/bin/notation';
const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '4321';
const NOTARY_SIG = 'application/vnd.cncf.notary.signature';
const BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const SAN = 'signet@example.com';

/** The keys under test: backend, the repository whose rule signs with it alone, the JWS alg notation sees. */
const KEYS = [
  { name: 'hsm-ec', repo: 'hsm/ec', alg: 'ES256', kmsAlgorithm: undefined },
  { name: 'hsm-rsa', repo: 'hsm/rsa', alg: 'PS256', kmsAlgorithm: undefined },
  { name: 'aws-ec', repo: 'aws/ec', alg: 'ES256', kmsAlgorithm: 'ECDSA_SHA_256' },
  { name: 'aws-rsa', repo: 'aws/rsa', alg: 'PS256', kmsAlgorithm: 'RSASSA_PSS_SHA_256' },
] as const;
const subjectOf = (name: string) => `CN=${name},OU=release,O=signet test,L=Seattle,ST=WA,C=US`;

// No metadata services, whatever the machine's environment says.
process.env.AWS_EC2_METADATA_DISABLED = 'true';

let tmp: { dir: string; remove: () => void };
let registry: RunningRegistry;
let aws: AwsKmsStandin;
let signet: RunningSignet;
let ca: TestCa;
let otherCa: TestCa;
let H: string;
let cfg: string;
let exported: string;
const savedEnv: Record<string, string | undefined> = {};
const file = (...p: string[]) => path.join(tmp.dir, ...p);

async function run(bin: string, args: string[]): Promise<string> {
  const r = await runProcess(bin, args, { env: { ...process.env }, cwd: tmp.dir, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** signet's CLI in this process; secrets come from ${VAR} expansion of process.env. */
async function signetCli(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    args,
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const keysYaml = (withCertificates: boolean) => {
  const cert = (n: string) => (withCertificates ? `, certificate: ${n}.crt, chain: root.crt` : '');
  return `
keys:
  - { name: hsm-ec, provider: pkcs11, module: ${MODULE}, token: nback, label: ec, pin: "\${TEST_NB_HSM_PIN}"${cert('hsm-ec')} }
  - { name: hsm-rsa, ref: "pkcs11:token=nback;id=%02?module-path=${MODULE}", pin: "\${TEST_NB_HSM_PIN}"${cert('hsm-rsa')} }
  - name: aws-ec
    provider: awskms
    keyId: "${aws.keys[1]!.arn}"
    endpoint: "${aws.url}"
    region: ${aws.region}
    credentials: { accessKeyId: "\${TEST_NB_AWS_ACCESS_KEY_ID}", secretAccessKey: "\${TEST_NB_AWS_SECRET_ACCESS_KEY}" }${withCertificates ? '\n    certificate: aws-ec.crt\n    chain: root.crt' : ''}
  - name: aws-rsa
    ref: "awskms://127.0.0.1:${aws.port}/alias/signet-notation-rsa"
    endpoint: "${aws.url}"
    region: ${aws.region}
    credentials: { accessKeyId: "\${TEST_NB_AWS_ACCESS_KEY_ID}", secretAccessKey: "\${TEST_NB_AWS_SECRET_ACCESS_KEY}" }${withCertificates ? '\n    certificate: aws-rsa.crt\n    chain: root.crt' : ''}
`;
};

const rulesYaml = () => `
rules:
${KEYS.map((k) => `  - { match: "${H}/${k.repo}", keys: [${k.name}], formats: [notation] }`).join('\n')}
  - { match: "${H}/mixed/app", keys: [hsm-rsa, aws-ec], formats: [legacy, bundle, notation] }
`;

/** A notation config home holding the exported trustpolicy.json and truststore/ (or `store` instead of the exported store). */
function notationHome(name: string, store = path.join(exported, 'truststore')): string {
  const xdg = file('homes', name);
  mkdirSync(path.join(xdg, 'notation'), { recursive: true });
  cpSync(store, path.join(xdg, 'notation', 'truststore'), { recursive: true });
  cpSync(path.join(exported, 'trustpolicy.json'), path.join(xdg, 'notation', 'trustpolicy.json'));
  return xdg;
}

async function notationVerify(home: string, ref: string) {
  const r = await runProcess(NOTATION, ['verify', '--verbose', '--insecure-registry', ref], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: path.join(home, 'cache') },
    timeoutMs: 60_000,
  });
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}

/** The fallback index entries (referrers) of `digest`. */
async function referrers(repo: string, digest: string): Promise<{ digest: string; artifactType?: string }[]> {
  const r = await new RegistryClient(registry).request('GET', `/v2/${repo}/manifests/${digest.replace(':', '-')}`, { headers: { Accept: MT.ociIndex } });
  return r.status === 200 ? (JSON.parse(r.body.toString()) as { manifests: { digest: string; artifactType?: string }[] }).manifests : [];
}

/** The JWS protected header of the Notation signature manifest `referrer` in `repo`. */
async function jwsHeader(repo: string, referrer: string): Promise<{ alg: string }> {
  const client = new RegistryClient(registry);
  const manifest = JSON.parse((await client.request('GET', `/v2/${repo}/manifests/${referrer}`, { headers: { Accept: MT.ociManifest } })).body.toString()) as {
    layers: { digest: string }[];
  };
  const blob = await client.request('GET', `/v2/${repo}/blobs/${manifest.layers[0]!.digest}`);
  const env = JSON.parse(blob.body.toString()) as { protected: string };
  return JSON.parse(Buffer.from(env.protected, 'base64url').toString()) as { alg: string };
}

const sign = (repository: string, tag: string) => signet.runtime.pipeline.sign({ host: H, repository, tag });

beforeAll(async () => {
  expect(readdirSync(path.dirname(NOTATION)), `notation 1.3 at ${NOTATION}`).toContain(path.basename(NOTATION));
  expect(readdirSync(path.dirname(COSIGN3_BIN())), `cosign 3.1 at ${COSIGN3_BIN()}`).toContain(path.basename(COSIGN3_BIN()));
  tmp = tempDir('signet-notation-backends-');

  // a SoftHSM2 token of this run (SOFTHSM2_CONF is read by the module loaded in this process)
  mkdirSync(file('tokens'));
  writeFileSync(file('softhsm2.conf'), `directories.tokendir = ${file('tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  for (const v of ['SOFTHSM2_CONF', 'TEST_NB_HSM_PIN', 'TEST_NB_AWS_ACCESS_KEY_ID', 'TEST_NB_AWS_SECRET_ACCESS_KEY']) savedEnv[v] = process.env[v];
  process.env.SOFTHSM2_CONF = file('softhsm2.conf');
  await run('softhsm2-util', ['--init-token', '--free', '--label', 'nback', '--so-pin', '8765', '--pin', PIN]);
  const gen = ['--module', MODULE, '--token-label', 'nback', '--login', '--pin', PIN, '--keypairgen'];
  await run('pkcs11-tool', [...gen, '--key-type', 'EC:prime256v1', '--label', 'ec', '--id', '01']);
  await run('pkcs11-tool', [...gen, '--key-type', 'rsa:2048', '--label', 'rsa', '--id', '02']);

  aws = await startAwsKmsStandin();
  aws.addKey({ keySpec: 'RSA_2048', alias: 'signet-notation-rsa' }); // keys[0]
  aws.addKey({ keySpec: 'ECC_NIST_P256' }); // keys[1]
  process.env.TEST_NB_HSM_PIN = PIN;
  process.env.TEST_NB_AWS_ACCESS_KEY_ID = aws.accessKeyId;
  process.env.TEST_NB_AWS_SECRET_ACCESS_KEY = aws.secretAccessKey;

  registry = await startRegistry();
  H = registry.host;
  const registries = `registries: [{ host: "${H}", insecure: true }]\n`;

  // 1. the operator's first config: the keys, no certificates, no rules yet; a CSR per key
  ca = await opensslRoot(tmp.dir, 'root', '/C=US/ST=WA/O=signet test/CN=signet test root');
  otherCa = await opensslRoot(tmp.dir, 'other', '/C=US/ST=WA/O=signet test/CN=signet test root');
  writeFileSync(file('csr.yaml'), `${registries}${keysYaml(false)}`);
  for (const { name } of KEYS) {
    const r = await signetCli('keys', 'csr', name, '--subject', subjectOf(name), '--san', `email:${SAN}`, '--out', file(`${name}.csr`), '-c', file('csr.yaml'));
    expect(r.code, `keys csr ${name}: ${r.err}`).toBe(0);
    // 2. the PKI team signs it (the request's extensions: codeSigning, digitalSignature, CA:false, the SAN)
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'root.crt',
      '-CAkey',
      'root.key',
      '-set_serial',
      String(0x5100 + KEYS.findIndex((k) => k.name === name)),
      '-days',
      '2',
      '-sha256',
      '-copy_extensions',
      'copy',
      '-out',
      `${name}.crt`,
    ]);
  }

  // 3. the real config: certificates and chains, the rules
  const yaml = `${registries}${keysYaml(true)}${rulesYaml()}`;
  signet = await startSignet(yaml, { baseDir: tmp.dir, roles: { receiver: false, worker: true } });
  cfg = file('signet.yaml');
  writeFileSync(cfg, `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }\n${yaml}`);

  // 4. notation's trust material, exported from that config
  exported = file('export');
  const ex = await signetCli('policy', 'export', '--for', 'notation', '--out', exported, '-c', cfg);
  expect(ex.code, ex.err).toBe(0);
  mkdirSync(file('cosign3-home', 'home', '.docker'), { recursive: true });
  mkdirSync(file('cosign3-home', 'tuf'), { recursive: true });
  writeFileSync(file('ca-root.json'), emptyTrustedRoot([{ certificates: [ca.rootPem] }]));
}, 120_000);

afterAll(async () => {
  await signet?.stop();
  for (const k of signet?.runtime.keys.values() ?? []) await (k as { close?: () => Promise<void> }).close?.();
  await registry?.stop();
  await aws?.close();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  tmp?.remove();
});

describe('the operator path: signet keys csr -> CA -> keys[].certificate -> policy export --for notation', () => {
  it('the certificates carry the requested subject and code-signing extensions; the exported policy has one exact scope per rule pinning its keys', async () => {
    for (const { name } of KEYS) {
      const text = await run('openssl', ['x509', '-in', `${name}.crt`, '-noout', '-subject', '-ext', 'extendedKeyUsage,keyUsage,subjectAltName']);
      expect(text).toContain(`CN = ${name}`);
      expect(text).toMatch(/Code Signing/);
      expect(text).toMatch(/Digital Signature/);
      expect(text).toContain(`email:${SAN}`);
    }
    const policy = JSON.parse(readFileSync(path.join(exported, 'trustpolicy.json'), 'utf8')) as {
      trustPolicies: { registryScopes: string[]; trustStores: string[]; trustedIdentities: string[] }[];
    };
    const id = (n: string) => `x509.subject: C=US, ST=WA, L=Seattle, O=signet test, OU=release, CN=${n}`;
    for (const k of KEYS) {
      const st = policy.trustPolicies.find((p) => p.registryScopes.includes(`${H}/${k.repo}`));
      expect(st, k.repo).toBeDefined();
      expect(st!.trustedIdentities).toEqual([id(k.name)]);
      expect(st!.trustStores).toHaveLength(1);
      const store = st!.trustStores[0]!.slice('ca:'.length);
      expect(
        readdirSync(path.join(exported, 'truststore', 'x509', 'ca', store)).map((f) =>
          readFileSync(path.join(exported, 'truststore', 'x509', 'ca', store, f), 'utf8'),
        ),
      ).toEqual([ca.rootPem]);
    }
    const mixed = policy.trustPolicies.find((p) => p.registryScopes.includes(`${H}/mixed/app`));
    expect(mixed?.trustedIdentities.sort()).toEqual([id('aws-ec'), id('hsm-rsa')]);
  });
});

/** AWS KMS Sign requests so far with `algorithm`, for key `arn`. */
const kmsSigns = (arn: string, algorithm: string) =>
  aws.requests.filter((q) => q.target.endsWith('.Sign') && q.body.SigningAlgorithm === algorithm && q.body.KeyId === arn).length;

describe.each(KEYS)('$name: notation 1.3 verifies under the exported policy', ({ name, repo, alg, kmsAlgorithm }) => {
  it(`single-arch by digest and by tag (${alg}); an index and each child by digest, the index by tag`, async () => {
    const home = notationHome(name);
    const img = await pushImage(registry, repo, 'v1');
    const arn = name === 'aws-ec' ? aws.keys[1]!.arn : aws.keys[0]!.arn;
    const kmsBefore = kmsAlgorithm ? kmsSigns(arn, kmsAlgorithm) : 0;
    const r = await sign(repo, 'v1');
    // a KMS key signs through the KMS, with the algorithm notation's `alg` needs (PS256: RSASSA_PSS_SHA_256)
    if (kmsAlgorithm) expect(kmsSigns(arn, kmsAlgorithm)).toBe(kmsBefore + 1);
    expect(r).toMatchObject({ status: 'signed', signatures: [{ key: name, format: 'notation', outcome: 'signed' }] });
    const referrer = (r as { signatures: { referrer?: string }[] }).signatures[0]!.referrer!;
    expect(await referrers(repo, img.digest)).toEqual([expect.objectContaining({ digest: referrer, artifactType: NOTARY_SIG })]);
    expect((await jwsHeader(repo, referrer)).alg).toBe(alg);
    for (const ref of [`${H}/${repo}@${img.digest}`, `${H}/${repo}:v1`]) {
      const v = await notationVerify(home, ref);
      expect(v.code, `${ref}: ${v.out}`).toBe(0);
      expect(v.out).toContain(`Successfully verified signature for ${H}/${repo}@${img.digest}`);
    }

    const idx = await pushIndex(registry, repo, 'multi', ['linux/amd64', 'linux/arm64']);
    expect((await sign(repo, 'multi')).status).toBe('signed');
    for (const d of [idx.digest, ...idx.children]) {
      expect(await referrers(repo, d), d).toEqual([expect.objectContaining({ artifactType: NOTARY_SIG })]);
      const v = await notationVerify(home, `${H}/${repo}@${d}`);
      expect(v.code, `${d}: ${v.out}`).toBe(0);
      expect(v.out).toContain(`Successfully verified signature for ${H}/${repo}@${d}`);
    }
    const byTag = await notationVerify(home, `${H}/${repo}:multi`);
    expect(byTag.code, byTag.out).toBe(0);
    expect(byTag.out).toContain(`Successfully verified signature for ${H}/${repo}@${idx.digest}`);
  }, 60_000);
});

describe('refusals', () => {
  it('the exported store with another root under the same name and file refuses every backend; the exported one accepts', async () => {
    const store = file('wrong-store');
    cpSync(path.join(exported, 'truststore'), store, { recursive: true });
    let replaced = 0;
    for (const dir of readdirSync(path.join(store, 'x509', 'ca'))) {
      for (const f of readdirSync(path.join(store, 'x509', 'ca', dir))) {
        writeFileSync(path.join(store, 'x509', 'ca', dir, f), otherCa.rootPem);
        replaced++;
      }
    }
    expect(replaced).toBeGreaterThan(0);
    const wrong = notationHome('wrong-root', store);
    const right = notationHome('right-root');
    for (const { name, repo } of KEYS) {
      const img = await pushImage(registry, repo, 'refused');
      expect((await sign(repo, 'refused')).status).toBe('signed');
      const ref = `${H}/${repo}@${img.digest}`;
      const bad = await notationVerify(wrong, ref);
      expect(bad.code, `${name}: ${bad.out}`).not.toBe(0);
      expect(bad.out).toMatch(/certificate chain does not contain any trusted certificate/);
      const ok = await notationVerify(right, ref);
      expect(ok.code, `${name}: ${ok.out}`).toBe(0);
    }
  }, 60_000);
});

describe('formats side by side: [legacy, bundle, notation] with an HSM RSA key and a KMS P-256 key', () => {
  it('cosign 2.5 and 3.1 still verify; the fallback index holds both bundles and both Notation signatures; notation verifies', async () => {
    const img = await pushImage(registry, 'mixed/app', 'v1');
    const r = await sign('mixed/app', 'v1');
    expect(r.status).toBe('signed');
    const sigs = (r as { signatures: { key: string; format: string; outcome: string }[] }).signatures;
    expect(sigs.map((s) => `${s.key}/${s.format}/${s.outcome}`).sort()).toEqual(
      ['aws-ec', 'hsm-rsa'].flatMap((k) => ['bundle', 'legacy', 'notation'].map((f) => `${k}/${f}/signed`)).sort(),
    );
    const listed = await referrers('mixed/app', img.digest);
    expect(listed.map((d) => d.artifactType).sort()).toEqual([NOTARY_SIG, NOTARY_SIG, BUNDLE, BUNDLE].sort());

    // cosign 2.5 reads the .sig with each key's exported public key (RSA: PKCS#1 v1.5 from the HSM)
    for (const name of ['hsm-rsa', 'aws-ec']) {
      const pub = file(`${name}.pub`);
      writeFileSync(pub, signet.runtime.keys.get(name)!.publicKeyPem);
      const v2 = await cosignVerify(`${H}/mixed/app:v1`, pub);
      expect(v2.ok, `cosign 2.5 ${name}: ${v2.stderr}`).toBe(true);
    }
    // cosign 3.1 reads the bundles: the certificate (from the CSR) checked against the CA
    const v3 = await runProcess(
      COSIGN3_BIN(),
      [
        'verify',
        `--trusted-root=${file('ca-root.json')}`,
        `--certificate-identity=${SAN}`,
        '--certificate-oidc-issuer-regexp=.*',
        '--insecure-ignore-sct=true',
        '--insecure-ignore-tlog=true',
        '--allow-http-registry',
        `${H}/mixed/app:v1`,
      ],
      { env: cosignEnv(file('cosign3-home')), timeoutMs: 60_000 },
    );
    expect(v3.code, `cosign 3.1: ${v3.stderr}`).toBe(0);
    expect(v3.stderr).toMatch(/verified using trusted certificate authority certificates/);

    const n = await notationVerify(notationHome('mixed'), `${H}/mixed/app@${img.digest}`);
    expect(n.code, n.out).toBe(0);
    expect(n.out).toContain(`Successfully verified signature for ${H}/mixed/app@${img.digest}`);
  }, 60_000);
});
