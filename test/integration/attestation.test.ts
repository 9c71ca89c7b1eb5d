/**
 * The signed decision (issue 17), end to end on a real registry (distribution, no referrers API:
 * the `sha256-<hex>` fallback index): a rule with `attest: true` signs an image and adds a SLSA
 * verification summary attestation (a sigstore bundle referrer signed by the same key). The real
 * cosign 2.5 (`verify-attestation --new-bundle-format --trusted-root`) and 3.1
 * (`verify-attestation`) accept it with the rule's key and refuse it with another key; its
 * predicate says what signet decided; a re-delivered event writes nothing new; the signature
 * itself still verifies next to it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COSIGN3_BIN, cosignVerify, runCosign, tempDir } from '../helpers/cosign.js';
import { cosign } from '../helpers/cosign-formats.js';
import { MT, pushImage, pushIndex, RegistryClient } from '../helpers/images.js';
import { emptyTrustedRoot, startRekor, type RekorStandIn } from '../helpers/rekor.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { REDIS_URL, startSignet, type RunningSignet } from '../helpers/signet.js';
import { main } from '../../src/cli.js';
import type { VerifyReport } from '../../src/verify/verify.js';

const VSA = 'https://slsa.dev/verification_summary/v1';

let registry: RunningRegistry;
let rekor: RekorStandIn;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let H: string;
const file = (...p: string[]) => path.join(tmp.dir, ...p);

function writeKey(name: string): void {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file(`${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(file(`${name}.pub`), publicKey.export({ type: 'spki', format: 'pem' }));
}

/** cosign 2.5: v0.3 bundles through verify-attestation --new-bundle-format and a trusted root (no logs). */
const verify25 = (ref: string, pub: string) =>
  cosign([
    'verify-attestation',
    '--new-bundle-format',
    `--trusted-root=${file('no-tlog-root.json')}`,
    `--key=${file(pub)}`,
    '--insecure-ignore-tlog=true',
    `--type=${VSA}`,
    '--allow-http-registry',
    ref,
  ]);

/** cosign 3.1 (bundles are its default format). */
const verify31 = (ref: string, pub: string) =>
  runCosign(['verify-attestation', `--key=${file(pub)}`, '--insecure-ignore-tlog=true', `--type=${VSA}`, '--allow-http-registry=true', ref], {
    bin: COSIGN3_BIN(),
    cwd: tmp.dir,
    timeoutMs: 120_000,
  });

/** The descriptors of the fallback index of `digest`. */
async function referrers(repo: string, digest: string): Promise<{ digest: string; artifactType?: string; annotations?: Record<string, string> }[]> {
  const r = await new RegistryClient(registry).request('GET', `/v2/${repo}/manifests/${digest.replace(':', '-')}`, { headers: { Accept: MT.ociIndex } });
  return r.status === 200 ? (JSON.parse(r.body.toString()) as { manifests: { digest: string }[] }).manifests : [];
}

/** The in-toto statement of the bundle a referrer holds. */
async function statementOf(repo: string, referrer: string): Promise<any> {
  const c = new RegistryClient(registry);
  const m = await c.request('GET', `/v2/${repo}/manifests/${referrer}`, { headers: { Accept: MT.ociManifest } });
  expect(m.status).toBe(200);
  const layer = (JSON.parse(m.body.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;
  const b = await c.request('GET', `/v2/${repo}/blobs/${layer}`);
  expect(b.status).toBe(200);
  const bundle = JSON.parse(b.body.toString()) as { dsseEnvelope: { payload: string; payloadType: string } };
  expect(bundle.dsseEnvelope.payloadType).toBe('application/vnd.in-toto+json');
  return JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
}

beforeAll(async () => {
  tmp = tempDir();
  writeKey('a');
  writeKey('other');
  writeFileSync(file('no-tlog-root.json'), emptyTrustedRoot());
  rekor = await startRekor();
  writeFileSync(file('trusted-root.json'), rekor.trustedRoot());
  registry = await startRegistry();
  H = registry.host;
  const yaml = `registries: [{ host: "${H}", insecure: true }]
keys:
  - { name: a, provider: file, path: a.pem }
rules:
  - { match: "${H}/attested/**", keys: [a], attest: true }
  - { match: "${H}/logged/**", keys: [a], attest: true, rekor: { url: "${rekor.url}", publicKey: ${JSON.stringify(rekor.publicKeyPem)} } }
  - { match: "${H}/**", keys: [a] }
`;
  signet = await startSignet(yaml, { baseDir: tmp.dir, roles: { receiver: false, worker: true } });
  writeFileSync(file('signet.yaml'), `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }\n${yaml}`);
}, 120_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await rekor?.stop();
  tmp?.remove();
});

describe('attest: true — a SLSA verification summary next to the signatures', () => {
  it('cosign 2.5 and 3.1 accept it with the rule key and refuse it with another; the predicate records the decision; a second delivery writes nothing; the signature still verifies', async () => {
    const img = await pushImage(registry, 'attested/app', 'v1');
    const before = new Date(Date.now() - 1000);
    const r = await signet.runtime.pipeline.sign({ host: H, repository: 'attested/app', tag: 'v1', digest: img.digest, pusher: 'alice' });
    expect(r.status).toBe('signed');
    if (r.status !== 'signed') return;
    expect(r.attestations).toEqual([expect.objectContaining({ key: 'a', outcome: 'signed', digest: img.digest, predicateType: VSA })]);
    const att = r.attestations![0]!.referrer!;

    // stored as a bundle referrer next to the signature's bundle, named by its predicate type
    const listed = await referrers('attested/app', img.digest);
    expect(listed.map((d) => d.digest)).toContain(att);
    expect(listed.find((d) => d.digest === att)!.annotations!['dev.sigstore.bundle.predicateType']).toBe(VSA);
    expect(listed).toHaveLength(2); // the signature's bundle and the attestation

    const ref = `${H}/attested/app@${img.digest}`;
    const ok25 = await verify25(ref, 'a.pub');
    expect(ok25.ok, ok25.stderr).toBe(true);
    const no25 = await verify25(ref, 'other.pub');
    expect(no25.ok).toBe(false);
    expect(no25.stderr).toMatch(/no matching attestations: failed to verify signature/);
    const ok31 = await verify31(ref, 'a.pub');
    expect(ok31.code, ok31.stderr).toBe(0);
    // cosign 3.1 prints the verified envelope: it is signet's VSA
    const printed = JSON.parse(ok31.stdout.trim().split('\n')[0]!) as { payload: string };
    expect(JSON.parse(Buffer.from(printed.payload, 'base64').toString('utf8'))).toMatchObject({
      predicateType: VSA,
      predicate: { verificationResult: 'PASSED' },
    });
    const no31 = await verify31(ref, 'other.pub');
    expect(no31.code).not.toBe(0);
    expect(no31.stderr).toMatch(/no matching attestations: failed to verify signature/);

    // what it says
    const st = await statementOf('attested/app', att);
    expect(st).toMatchObject({ _type: 'https://in-toto.io/Statement/v1', predicateType: VSA, subject: [{ digest: { sha256: img.digest.slice(7) } }] });
    const p = st.predicate;
    expect(p).toMatchObject({
      verifier: { id: 'urn:signet:verifier' },
      verificationResult: 'PASSED',
      verifiedLevels: ['SIGNET_RULE_PASSED'],
      resourceUri: `pkg:oci/app@sha256%3A${img.digest.slice(7)}?repository_url=${encodeURIComponent(H)}/attested/app`,
      policy: { uri: 'urn:signet:rule:0', name: `${H}/attested/**`, digest: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } },
      'urn:signet:push': { registry: H, repository: 'attested/app', tag: 'v1', digest: img.digest, pusher: 'alice' },
    });
    expect(p['urn:signet:scan']).toBeUndefined(); // no scan gate on this rule
    const t = new Date(p.timeVerified as string);
    expect(t.getTime()).toBeGreaterThanOrEqual(before.getTime());
    expect(p['urn:signet:push'].time).toBe(p.timeVerified);

    // a re-delivered event: the signatures and the attestation are present, nothing new written
    const again = await signet.runtime.pipeline.sign({ host: H, repository: 'attested/app', tag: 'v1', digest: img.digest, pusher: 'alice' });
    expect(again).toMatchObject({ status: 'signed', attestations: [{ key: 'a', outcome: 'present', referrer: att }] });
    expect((again as { signatures: { outcome: string }[] }).signatures.every((s) => s.outcome === 'present')).toBe(true);
    expect(await referrers('attested/app', img.digest)).toEqual(listed);

    // the signature verifies next to the attestation: cosign 2.5 (.sig) and 3.1 (its bundle)
    const sig25 = await cosignVerify(ref, file('a.pub'));
    expect(sig25.ok, sig25.stderr).toBe(true);
    const sig31 = await cosignVerify(ref, file('a.pub'), [], { bin: COSIGN3_BIN() });
    expect(sig31.ok, sig31.stderr).toBe(true);
    // and `signet verify` finds the image signed in both formats (the attestation is no signature)
    const out: string[] = [];
    const code = await main(
      ['verify', '--json', `${H}/attested/app:v1`, '-c', file('signet.yaml')],
      (l) => out.push(l),
      () => undefined,
    );
    const report = JSON.parse(out.join('\n')) as VerifyReport;
    expect(code).toBe(0);
    expect(report.manifests[0]!.missing).toEqual([]);
    const satisfied = report.manifests[0]!.signatures.filter((x) => x.satisfies).map((x) => x.format);
    expect(satisfied.sort()).toEqual(['bundle', 'legacy']);
  }, 180_000);

  it('with rekor: each manifest of an index gets a VSA logged as a dsse entry; cosign 2.5 checks the entry against the trusted root; a re-delivery logs nothing new', async () => {
    const idx = await pushIndex(registry, 'logged/multi', 'v1', ['linux/amd64', 'linux/arm64']);
    const size = rekor.size();
    const r = await signet.runtime.pipeline.sign({ host: H, repository: 'logged/multi', tag: 'v1', pusher: 'ci-bot' });
    expect(r.status).toBe('signed');
    if (r.status !== 'signed') return;
    const all = [idx.digest, ...idx.children];
    expect(r.attestations!.map((a) => a.digest)).toEqual(all);
    expect(r.attestations!.every((a) => a.outcome === 'signed' && a.tlog?.status === 'logged')).toBe(true);
    // legacy + bundle + attestation per manifest, each logged
    expect(rekor.size()).toBe(size + 3 * all.length);
    for (const d of [idx.digest, idx.children[1]!]) {
      const ok = await cosign([
        'verify-attestation',
        '--new-bundle-format',
        `--trusted-root=${file('trusted-root.json')}`,
        `--key=${file('a.pub')}`,
        `--type=${VSA}`,
        '--allow-http-registry',
        `${H}/logged/multi@${d}`,
      ]);
      expect(ok.ok, ok.stderr).toBe(true);
    }
    // the log is checked: without it (a trusted root with no logs) cosign refuses
    const noLog = await cosign([
      'verify-attestation',
      '--new-bundle-format',
      `--trusted-root=${file('no-tlog-root.json')}`,
      `--key=${file('a.pub')}`,
      `--type=${VSA}`,
      '--allow-http-registry',
      `${H}/logged/multi@${idx.digest}`,
    ]);
    expect(noLog.ok).toBe(false);
    const st = await statementOf('logged/multi', r.attestations![0]!.referrer!);
    expect(st.predicate['urn:signet:push']).toMatchObject({ repository: 'logged/multi', tag: 'v1', digest: idx.digest, pusher: 'ci-bot' });

    const again = await signet.runtime.pipeline.sign({ host: H, repository: 'logged/multi', tag: 'v1', pusher: 'ci-bot' });
    expect((again as { attestations: { outcome: string }[] }).attestations.map((a) => a.outcome)).toEqual(all.map(() => 'present'));
    expect(rekor.size()).toBe(size + 3 * all.length);
  }, 180_000);

  it('a rule without attest writes no attestation', async () => {
    const img = await pushImage(registry, 'plain/app', 'v1');
    const r = await signet.runtime.pipeline.sign({ host: H, repository: 'plain/app', tag: 'v1' });
    expect(r.status).toBe('signed');
    expect(r).not.toHaveProperty('attestations');
    const listed = await referrers('plain/app', img.digest);
    expect(listed).toHaveLength(1);
    expect(listed[0]!.annotations!['dev.sigstore.bundle.predicateType']).toBe('https://sigstore.dev/cosign/sign/v1');
    const v = await verify25(`${H}/plain/app@${img.digest}`, 'a.pub');
    expect(v.ok).toBe(false);
    expect(v.stderr).toMatch(/none of the attestations matched the predicate type/);
    const v3 = await verify31(`${H}/plain/app@${img.digest}`, 'a.pub');
    expect(v3.code).not.toBe(0);
    expect(v3.stderr).toMatch(/none of the attestations matched the predicate type/);
  }, 120_000);
});
