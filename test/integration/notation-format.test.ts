/**
 * The notation format (src/formats/notation) against a real registry (distribution 2.8: no
 * referrers API, the shared `sha256-<hex>` fallback index) and the real Notary Project CLI,
 * `notation` 1.3 (its own XDG_CONFIG_HOME with trustpolicy.json and the trust store): signet signs
 * with a P-256 file key (and an RSA-2048 one: PS256, needs the file provider's PSS from h/npss) carrying a BYO-PKI chain (leaf, intermediate, root: the leaf issued by
 * openssl since notation's trusted identities need C, ST and O in its subject, which
 * test/helpers/pki.ts does not write); notation verifies by
 * digest and by tag, single-arch and each child of an index, and lists the signature; a wrong root
 * and a wrong trusted identity are refused; formats side by side ([legacy, bundle, notation]) keep
 * cosign 2.5 and 3.1 working and the fallback index holds both referrers; `signet verify` reports
 * the signature, and MISSING without it; with a timestamp authority notation checks the
 * countersignature against its `tsa` trust store.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import type { VerifyReport } from '../../src/verify/verify.js';
import { COSIGN3_BIN, cosignEnv, cosignVerify, tempDir } from '../helpers/cosign.js';
import { MT, pushImage, pushIndex, RegistryClient } from '../helpers/images.js';
import { makeIntermediateCa, makeRootCa } from '../helpers/pki.js';
import { runProcess } from '../helpers/proc.js';
import { emptyTrustedRoot } from '../helpers/rekor.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { REDIS_URL, startSignet, type RunningSignet } from '../helpers/signet.js';
import { verifyContainers } from '../helpers/verifiers.js';
import { startTsa, type TsaStandIn } from '../helpers/tsa.js';

const NOTATION = process.env.NOTATION_BIN ?? '/opt/sid-tools/usr/bin/notation';
const NOTARY_SIG = 'application/vnd.cncf.notary.signature';
const LEAF_CN = 'signet signer';
const IDENTITY = `x509.subject: C=US, ST=WA, O=signet test, CN=${LEAF_CN}`;

let registry: RunningRegistry;
let signet: RunningSignet;
let tsa: TsaStandIn;
let tmp: { dir: string; remove: () => void };
let H: string;
let cfg: string;
let rootPem: string;
const file = (...p: string[]) => path.join(tmp.dir, ...p);

const rulesYaml = () => `
keys:
  - { name: n, provider: file, path: n.pem, certificate: n.crt, chain: n-chain.pem }
  - { name: r, provider: file, path: r.pem, certificate: r.crt, chain: n-chain.pem }
rules:
  - { match: "${H}/rsa/**", keys: [r], formats: [notation] }
  - { match: "${H}/ts/**", keys: [n], formats: [notation], timestamp: { url: "${tsa.url}", certificateChain: tsa-chain.pem } }
  - { match: "${H}/mixed/**", keys: [n], formats: [legacy, bundle, notation] }
  - { match: "${H}/**", keys: [n], formats: [notation] }
`;

interface PolicyOpts {
  root?: string;
  identities?: string[];
  tsaRoot?: string;
}

/** A notation config home: trustpolicy.json and the trust store (ca: the signer's root; tsa: the TSA root when given). */
function notationHome(name: string, o: PolicyOpts = {}): string {
  const home = file(`notation-${name}`);
  const ca = path.join(home, 'notation', 'truststore', 'x509', 'ca', 'signet');
  mkdirSync(ca, { recursive: true });
  writeFileSync(path.join(ca, 'root.crt'), o.root ?? rootPem);
  const stores = ['ca:signet'];
  if (o.tsaRoot) {
    const t = path.join(home, 'notation', 'truststore', 'x509', 'tsa', 'signet-tsa');
    mkdirSync(t, { recursive: true });
    writeFileSync(path.join(t, 'root.crt'), o.tsaRoot);
    stores.push('tsa:signet-tsa');
  }
  const policy = {
    version: '1.0',
    trustPolicies: [
      {
        name: 'signet',
        registryScopes: ['*'],
        signatureVerification: { level: 'strict' },
        trustStores: stores,
        trustedIdentities: o.identities ?? ['*'],
      },
    ],
  };
  writeFileSync(path.join(home, 'notation', 'trustpolicy.json'), JSON.stringify(policy, null, 2));
  return home;
}

async function notation(home: string, args: string[]) {
  return runProcess(NOTATION, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: path.join(home, 'cache') },
    timeoutMs: 60_000,
  });
}
const notationVerify = (home: string, ref: string) => notation(home, ['verify', '--verbose', '--insecure-registry', ref]);

async function run(...args: string[]) {
  const out: string[] = [];
  const code = await main(
    [...args, '-c', cfg],
    (l) => out.push(l),
    () => undefined,
  );
  return { code, out };
}
const verify = async (ref: string) => {
  const r = await run('verify', '--json', `${H}/${ref}`);
  return { code: r.code, report: JSON.parse(r.out.join('\n')) as VerifyReport };
};

/** The fallback index entries of `digest`: digest and artifactType. */
async function referrers(repo: string, digest: string): Promise<{ digest: string; artifactType?: string }[]> {
  const r = await new RegistryClient(registry).request('GET', `/v2/${repo}/manifests/${digest.replace(':', '-')}`, { headers: { Accept: MT.ociIndex } });
  return r.status === 200 ? (JSON.parse(r.body.toString()) as { manifests: { digest: string; artifactType?: string }[] }).manifests : [];
}

const sign = (repository: string, tag: string) => signet.runtime.pipeline.sign({ host: H, repository, tag });

beforeAll(async () => {
  expect(existsSync(NOTATION), `notation 1.3 at ${NOTATION}`).toBe(true);
  expect(existsSync(COSIGN3_BIN()), `cosign 3.1 at ${COSIGN3_BIN()}`).toBe(true);
  tmp = tempDir();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file('n.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(file('n.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  // notation's trusted identities need C, ST and O in the subject (pki.ts names only O and CN):
  // the leaf is issued by openssl under a pki.ts intermediate and root
  const root = makeRootCa();
  const inter = makeIntermediateCa(root);
  writeFileSync(file('inter.crt'), inter.pem);
  writeFileSync(file('inter.key'), inter.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(
    file('leaf.ext'),
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectAltName=email:signet@example.com\n',
  );
  const openssl = async (args: string[]) => {
    const r = await runProcess('openssl', args, { cwd: tmp.dir });
    expect(r.code, r.stderr).toBe(0);
  };
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(file('r.pem'), rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  for (const k of ['n', 'r']) {
    await openssl(['req', '-new', '-key', `${k}.pem`, '-subj', `/C=US/ST=WA/O=signet test/CN=${LEAF_CN}`, '-out', `${k}.csr`]);
    await openssl([
      'x509',
      '-req',
      '-in',
      `${k}.csr`,
      '-CA',
      'inter.crt',
      '-CAkey',
      'inter.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      'leaf.ext',
      '-out',
      `${k}.crt`,
    ]);
  }
  const chain = inter.pem + root.pem;
  writeFileSync(file('n-chain.pem'), chain);
  rootPem = root.pem;
  writeFileSync(file('ca-root.json'), emptyTrustedRoot([{ certificates: chain.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)! }]));
  mkdirSync(file('cosign3-home', 'home', '.docker'), { recursive: true });
  mkdirSync(file('cosign3-home', 'tuf'), { recursive: true });
  tsa = await startTsa();
  writeFileSync(file('tsa-chain.pem'), tsa.chainPem);

  registry = await startRegistry();
  H = registry.host;
  signet = await startSignet(`registries: [{ host: "${H}", insecure: true }]\n${rulesYaml()}`, { baseDir: tmp.dir, roles: { receiver: false, worker: true } });
  cfg = file('signet.yaml');
  writeFileSync(cfg, `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }\nregistries: [{ host: "${H}", insecure: true }]\n${rulesYaml()}`);
}, 120_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await tsa?.stop();
  tmp?.remove();
});

describe('notation verifies what signet writes', () => {
  it('single-arch: notation verify accepts by digest and by tag, notation list lists the signature; a repeat sign finds it present', async () => {
    const img = await pushImage(registry, 'team/app', 'v1');
    const r = await sign('team/app', 'v1');
    expect(r).toMatchObject({ status: 'signed', signatures: [{ key: 'n', format: 'notation', outcome: 'signed' }] });
    const referrer = (r as { signatures: { referrer?: string }[] }).signatures[0]!.referrer!;
    expect(await referrers('team/app', img.digest)).toEqual([expect.objectContaining({ digest: referrer, artifactType: NOTARY_SIG })]);

    const home = notationHome('ok', { identities: [IDENTITY] });
    for (const ref of [`${H}/team/app@${img.digest}`, `${H}/team/app:v1`]) {
      const v = await notationVerify(home, ref);
      expect(v.code, `${ref}: ${v.stdout}\n${v.stderr}`).toBe(0);
      expect(v.stdout).toContain(`Successfully verified signature for ${H}/team/app@${img.digest}`);
    }
    const list = await notation(home, ['list', '--insecure-registry', `${H}/team/app@${img.digest}`]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(NOTARY_SIG);
    expect(list.stdout).toContain(referrer);

    const again = await sign('team/app', 'v1');
    expect(again).toMatchObject({ status: 'signed', signatures: [{ key: 'n', format: 'notation', outcome: 'present', referrer }] });
    expect(await referrers('team/app', img.digest)).toHaveLength(1);
  }, 120_000);

  it('index: every child and the index verify, by digest (and the index by tag)', async () => {
    const idx = await pushIndex(registry, 'team/multi', 'v1', ['linux/amd64', 'linux/arm64']);
    expect((await sign('team/multi', 'v1')).status).toBe('signed');
    const home = notationHome('index');
    for (const d of [idx.digest, ...idx.children]) {
      expect(await referrers('team/multi', d)).toEqual([expect.objectContaining({ artifactType: NOTARY_SIG })]);
      const v = await notationVerify(home, `${H}/team/multi@${d}`);
      expect(v.code, `${d}: ${v.stdout}\n${v.stderr}`).toBe(0);
    }
    const byTag = await notationVerify(home, `${H}/team/multi:v1`);
    expect(byTag.code, byTag.stderr).toBe(0);
  }, 120_000);

  it('a wrong root and a wrong trusted identity are refused', async () => {
    const img = await pushImage(registry, 'team/refused', 'v1');
    expect((await sign('team/refused', 'v1')).status).toBe('signed');
    const ref = `${H}/team/refused@${img.digest}`;
    const wrongRoot = await notationVerify(notationHome('wrong-root', { root: makeRootCa('another root').pem }), ref);
    expect(wrongRoot.code).not.toBe(0);
    expect(wrongRoot.stderr).toMatch(/certificate chain does not contain any trusted certificate/);
    const wrongId = await notationVerify(notationHome('wrong-id', { identities: ['x509.subject: C=US, ST=WA, O=signet test, CN=someone else'] }), ref);
    expect(wrongId.code).not.toBe(0);
    expect(wrongId.stderr).toMatch(/signing certificate from the digital signature does not match the X\.509 trusted identities/);
    // the same trust store with the leaf's identity accepts it: the refusals are the root and the identity
    const control = await notationVerify(notationHome('control', { identities: [IDENTITY] }), ref);
    expect(control.code, control.stderr).toBe(0);
  }, 120_000);
});

describe('RSA-2048: RSASSA-PSS (PS256)', () => {
  it('an RSA file key signs PS256; notation verifies by digest and by tag; signet verify accepts it', async () => {
    const img = await pushImage(registry, 'rsa/app', 'v1');
    const r = await sign('rsa/app', 'v1');
    expect(r).toMatchObject({ status: 'signed', signatures: [{ key: 'r', format: 'notation', outcome: 'signed' }] });
    const [d] = await referrers('rsa/app', img.digest);
    const manifest = JSON.parse(
      (await new RegistryClient(registry).request('GET', `/v2/rsa/app/manifests/${d!.digest}`, { headers: { Accept: MT.ociManifest } })).body.toString(),
    ) as { layers: { digest: string }[] };
    const blob = await new RegistryClient(registry).request('GET', `/v2/rsa/app/blobs/${manifest.layers[0]!.digest}`);
    const env = JSON.parse(blob.body.toString()) as { protected: string };
    expect(JSON.parse(Buffer.from(env.protected, 'base64url').toString())).toMatchObject({ alg: 'PS256' });
    const home = notationHome('rsa', { identities: [IDENTITY] });
    for (const ref of [`${H}/rsa/app@${img.digest}`, `${H}/rsa/app:v1`]) {
      const v = await notationVerify(home, ref);
      expect(v.code, `${ref}: ${v.stdout}\n${v.stderr}`).toBe(0);
    }
    expect((await verify('rsa/app:v1')).code).toBe(0);
  }, 120_000);
});

describe('signet verify reads notation signatures', () => {
  it('MISSING when absent, the signature when present', async () => {
    await pushImage(registry, 'team/verify', 'v1');
    const before = await verify('team/verify:v1');
    expect(before.code).toBe(1);
    expect(before.report.manifests[0]!.missing).toEqual([{ key: 'n', format: 'notation', why: 'no Notation signature by this key' }]);
    expect((await sign('team/verify', 'v1')).status).toBe('signed');
    const after = await verify('team/verify:v1');
    expect(after.code, JSON.stringify(after.report)).toBe(0);
    expect(after.report.manifests[0]!.signatures).toEqual([expect.objectContaining({ format: 'notation', key: 'n', satisfies: true })]);
  }, 120_000);
});

describe('formats side by side: [legacy, bundle, notation]', () => {
  it('cosign 2.5 and 3.1 still verify; the fallback index holds both the bundle and the notation referrer; notation verifies', async () => {
    const img = await pushImage(registry, 'mixed/app', 'v1');
    const r = await sign('mixed/app', 'v1');
    expect(r.status).toBe('signed');
    const listed = await referrers('mixed/app', img.digest);
    expect(listed.map((d) => d.artifactType).sort()).toEqual([NOTARY_SIG, 'application/vnd.dev.sigstore.bundle.v0.3+json']);
    // cosign 2.5 reads the .sig (with the key); cosign 3.1 reads the bundle first: it carries the certificate, checked against the CA
    const v2 = await cosignVerify(`${H}/mixed/app:v1`, file('n.pub'));
    expect(v2.ok, `cosign 2.5: ${v2.stderr}`).toBe(true);
    const v3 = await runProcess(
      COSIGN3_BIN(),
      [
        'verify',
        `--trusted-root=${file('ca-root.json')}`,
        '--certificate-identity=signet@example.com',
        '--certificate-oidc-issuer-regexp=.*',
        '--insecure-ignore-sct=true',
        '--insecure-ignore-tlog=true',
        '--allow-http-registry',
        `${H}/mixed/app:v1`,
      ],
      { env: cosignEnv(file('cosign3-home')), timeoutMs: 120_000 },
    );
    expect(v3.code, `cosign 3.1: ${v3.stderr}`).toBe(0);
    expect(v3.stderr).toMatch(/verified using trusted certificate authority certificates/);
    const n = await notationVerify(notationHome('mixed'), `${H}/mixed/app@${img.digest}`);
    expect(n.code, n.stderr).toBe(0);
    const v = await verify('mixed/app:v1');
    expect(v.code).toBe(0);
    expect(v.report.manifests[0]!.signatures.map((s) => s.format).sort()).toEqual(['bundle', 'legacy', 'notation']);
    // containers/image (CRI-O) reads the .sig under the exported policy (a config with the mixed
    // rule only: --for containers refuses rules it cannot read, the notation-only ones)
    const mixedCfg = file('containers.yaml');
    writeFileSync(
      mixedCfg,
      `registries: [{ host: "${H}", insecure: true }]\nkeys:\n  - { name: n, provider: file, path: n.pem, certificate: n.crt, chain: n-chain.pem }\nrules:\n  - { match: "${H}/mixed/**", keys: [n], formats: [legacy, bundle, notation] }\n`,
    );
    expect(
      await main(
        ['policy', 'export', '--for', 'containers', '--out', file('trust', 'containers'), '-c', mixedCfg],
        () => undefined,
        () => undefined,
      ),
    ).toBe(0);
    const c = await verifyContainers(undefined as never, `${H}/mixed/app@${img.digest}`, file('trust'));
    expect(c.accepted, c.detail).toBe(true);
  }, 180_000);
});

describe('RFC 3161 countersignature', () => {
  it('with a TSA: notation verifies the countersignature against its tsa trust store; signet verify requires it', async () => {
    const img = await pushImage(registry, 'ts/app', 'v1');
    const before = tsa.requests.length;
    const r = await sign('ts/app', 'v1');
    expect(r).toMatchObject({ status: 'signed', signatures: [{ key: 'n', format: 'notation', outcome: 'signed', timestamp: { status: 'stamped' } }] });
    expect(tsa.requests.length).toBe(before + 1);
    const ref = `${H}/ts/app@${img.digest}`;
    const tsaRoot = tsa.rootPem;
    const v = await notationVerify(notationHome('tsa', { tsaRoot }), ref);
    expect(v.code, `${v.stdout}\n${v.stderr}`).toBe(0);
    // a tsa trust store without the TSA's root: the countersignature does not verify
    const wrong = await startTsa();
    try {
      const bad = await notationVerify(notationHome('tsa-wrong', { tsaRoot: wrong.rootPem }), ref);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/failed to verify the timestamp countersignature/);
    } finally {
      await wrong.stop();
    }
    expect((await verify('ts/app:v1')).code).toBe(0);
  }, 120_000);

  it('a policy with a tsa store refuses a signature without a countersignature', async () => {
    const img = await pushImage(registry, 'team/nots', 'v1');
    expect((await sign('team/nots', 'v1')).status).toBe('signed');
    const v = await notationVerify(notationHome('tsa-none', { tsaRoot: tsa.rootPem }), `${H}/team/nots@${img.digest}`);
    expect(v.code).not.toBe(0);
    expect(v.stderr).toMatch(/no timestamp countersignature/);
  }, 120_000);
});
