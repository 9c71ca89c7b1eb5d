/**
 * The bundle format (src/formats/bundle) through every caller, against a real registry
 * (distribution 2.8, no referrers API: the `sha256-<hex>` fallback index) and the real cosign 2.5
 * and 3.1 — the defects issue 15 names, each failing on the code before it:
 *
 * 1. A legacy-only signature disappears from cosign 3 the moment anyone attaches a bundle (cosign
 *    3 reads `.sig` only when an image has no bundle): the default formats now write both, so
 *    signet's signature survives another signer's bundle.
 * 2. signet was blind to bundles: `signet verify` said "ok: no signature required" for an
 *    unsigned image under a bundle-only rule, reported an image `cosign sign` 3.1 had signed with
 *    a configured key as MISSING, backfill queued it, and the worker wrote a second bundle. Now
 *    the bundle format's reader decides, for verify, backfill and the writer alike.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackfillReport } from '../../src/backfill/backfill.js';
import { main } from '../../src/cli.js';
import type { VerifyReport } from '../../src/verify/verify.js';
import { COSIGN3_BIN, cosignGenerateKeyPair, cosignVerify, runCosign, tempDir } from '../helpers/cosign.js';
import { MT, pushImage, RegistryClient } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { REDIS_URL, startSignet, type RunningSignet } from '../helpers/signet.js';

let registry: RunningRegistry;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let H: string;
let cfg: string;
const file = (...p: string[]) => path.join(tmp.dir, ...p);

const rulesYaml = () => `
keys:
  - { name: a, provider: file, path: a.pem }
  - { name: b, provider: file, path: cosign.key, password: "pw-b" }
rules:
  - { match: "${H}/bundles/**", keys: [b], formats: [bundle] }
  - { match: "${H}/legacy/**", keys: [a], formats: [legacy] }
  - { match: "${H}/**", keys: [a] }
`;

/** cosign 3.1 in a private sandbox (no network but loopback), in the work dir. */
const cosign3 = (args: string[], env: Record<string, string> = {}) => runCosign(args, { bin: COSIGN3_BIN(), cwd: tmp.dir, env, timeoutMs: 120_000 });

/** `cosign sign` 3.1 as a CI job would, with no transparency log: a bundle referrer, no .sig. */
async function cosign3Sign(ref: string, key: string, password: string): Promise<void> {
  const r = await cosign3(['sign', `--key=${key}`, `--signing-config=${file('sc.json')}`, '--allow-http-registry=true', '-y', ref], {
    COSIGN_PASSWORD: password,
  });
  expect(r.code, r.stderr).toBe(0);
}

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

/** The referrers listed in the fallback index of `digest`. */
async function referrers(repo: string, digest: string): Promise<string[]> {
  const r = await new RegistryClient(registry).request('GET', `/v2/${repo}/manifests/${digest.replace(':', '-')}`, { headers: { Accept: MT.ociIndex } });
  return r.status === 200 ? (JSON.parse(r.body.toString()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest) : [];
}

beforeAll(async () => {
  tmp = tempDir();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file('a.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(file('a.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  await cosignGenerateKeyPair(tmp.dir, 'pw-b');
  // another signer's key, unknown to signet
  mkdirSync(file('other'));
  await cosignGenerateKeyPair(file('other'), 'pw-o');
  const sc = await cosign3([
    'signing-config',
    'create',
    '--no-default-fulcio',
    '--no-default-rekor',
    '--no-default-tsa',
    '--no-default-oidc',
    `--out=${file('sc.json')}`,
  ]);
  expect(sc.code, sc.stderr).toBe(0);

  registry = await startRegistry();
  H = registry.host;
  signet = await startSignet(`registries: [{ host: "${H}", insecure: true }]\n${rulesYaml()}`, { baseDir: tmp.dir, roles: { receiver: false, worker: true } });
  cfg = file('signet.yaml');
  writeFileSync(cfg, `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }\nregistries: [{ host: "${H}", insecure: true }]\n${rulesYaml()}`);
}, 120_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  tmp?.remove();
});

describe("default formats: signet signatures survive another signer's bundle (defect 1)", () => {
  it("default rule: after `cosign sign` 3.1 adds a bundle by another key, cosign 3.1 still verifies signet's key (its bundle is there); legacy-only: it no longer does", async () => {
    const both = await pushImage(registry, 'team/app', 'v1');
    const only = await pushImage(registry, 'legacy/app', 'v1');
    for (const [repo] of [['team/app'], ['legacy/app']] as const)
      expect((await signet.runtime.pipeline.sign({ host: H, repository: repo, tag: 'v1' })).status).toBe('signed');
    for (const [repo, img] of [
      ['team/app', both],
      ['legacy/app', only],
    ] as const)
      await cosign3Sign(`${H}/${repo}@${img.digest}`, file('other', 'cosign.key'), 'pw-o');

    const v3 = (ref: string) => cosignVerify(ref, file('a.pub'), [], { bin: COSIGN3_BIN() });
    const withBundle = await v3(`${H}/team/app:v1`);
    expect(withBundle.ok, withBundle.stderr).toBe(true);
    const legacyOnly = await v3(`${H}/legacy/app:v1`);
    expect(legacyOnly.ok).toBe(false); // what the old default did to its users
    expect(legacyOnly.stderr).toMatch(/no matching (attestations|signatures)/);
    // cosign 2.5 reads the .sig either way
    expect((await cosignVerify(`${H}/legacy/app:v1`, file('a.pub'))).ok).toBe(true);
    expect((await cosignVerify(`${H}/team/app:v1`, file('a.pub'))).ok).toBe(true);
  }, 120_000);
});

describe('bundles are read by verify, backfill and the writer (defect 2)', () => {
  it('a bundle-only rule and an unsigned image: signet verify says MISSING and exits 1', async () => {
    await pushImage(registry, 'bundles/unsigned', 'v1');
    const r = await verify('bundles/unsigned:v1');
    expect(r.code).toBe(1);
    expect(r.report.rule).toMatchObject({ formats: ['bundle'], keys: ['b'] });
    expect(r.report.manifests[0]!.missing).toEqual([{ key: 'b', format: 'bundle', why: 'no bundle by this key' }]);
  });

  it('an image `cosign sign` 3.1 signed with a configured key: verify ok, backfill finds nothing, the worker writes no second bundle', async () => {
    const img = await pushImage(registry, 'bundles/cosigned', 'v1');
    await cosign3Sign(`${H}/bundles/cosigned@${img.digest}`, file('cosign.key'), 'pw-b');
    const listed = await referrers('bundles/cosigned', img.digest);
    expect(listed).toHaveLength(1);

    const r = await verify('bundles/cosigned:v1');
    expect(r.code).toBe(0);
    expect(r.report.manifests[0]!.signatures).toEqual([expect.objectContaining({ format: 'bundle', key: 'b', ref: listed[0], satisfies: true })]);

    const dry = await run('backfill', '--dry-run', '--json', '--repo', 'bundles/cosigned');
    expect(dry.code).toBe(0);
    const report = JSON.parse(dry.out.join('\n')) as BackfillReport;
    expect(report).toMatchObject({ toSign: [], complete: 1 });

    const signed = await signet.runtime.pipeline.sign({ host: H, repository: 'bundles/cosigned', tag: 'v1' });
    expect(signed).toMatchObject({ status: 'signed', signatures: [{ key: 'b', format: 'bundle', outcome: 'present', referrer: listed[0] }] });
    expect(await referrers('bundles/cosigned', img.digest)).toEqual(listed);
  }, 120_000);

  it('a bundle by a key signet does not know, or for another image, does not count', async () => {
    const img = await pushImage(registry, 'bundles/stranger', 'v1');
    await cosign3Sign(`${H}/bundles/stranger@${img.digest}`, file('other', 'cosign.key'), 'pw-o');
    const r = await verify('bundles/stranger:v1');
    expect(r.code).toBe(1);
    expect(r.report.manifests[0]!.signatures).toEqual([expect.objectContaining({ format: 'bundle', key: null, satisfies: false })]);
    // the worker adds its own next to it
    const signed = await signet.runtime.pipeline.sign({ host: H, repository: 'bundles/stranger', tag: 'v1' });
    expect(signed).toMatchObject({ status: 'signed', signatures: [{ key: 'b', format: 'bundle', outcome: 'signed' }] });
    expect(await referrers('bundles/stranger', img.digest)).toHaveLength(2);
    expect((await verify('bundles/stranger:v1')).code).toBe(0);
  }, 120_000);
});
