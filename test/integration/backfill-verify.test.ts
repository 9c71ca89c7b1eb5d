/**
 * `signet backfill` and `signet verify` on real parts: a real docker-registry holding images
 * signed by signet's pipeline, by cosign (one of two keys), partly (an index whose child lost
 * its .sig), not at all, and a repository no rule matches; real Redis and an in-process worker
 * sign what backfill queues; the real `cosign verify` agrees with `signet verify` afterwards.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import type { BackfillReport } from '../../src/backfill/backfill.js';
import type { VerifyReport } from '../../src/verify/verify.js';
import { cosignGenerateKeyPair, cosignSign, cosignVerify, tempDir } from '../helpers/cosign.js';
import { deleteManifest, getManifest, pushImage, pushIndex, sigTag, tagExisting } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { REDIS_URL, startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

let registry: RunningRegistry;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let H: string;
let cfg: string;
const pub: Record<string, string> = {};
const img: Record<string, string> = {};
let children: string[] = [];

const rulesYaml = () => `
keys:
  - { name: a, provider: file, path: a.pem }
  - { name: b, provider: file, path: cosign.key, password: "pw-b" }
rules:
  - { match: "${H}/one/**", keys: [a], tags: { exclude: ["*-dev"] } }
  - { match: "${H}/two/**", keys: [a, b] }
  - { match: "${H}/repo/**", keys: [a, b], identity: repository }
`;

async function run(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    [...args, '-c', cfg],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out, err };
}

async function verify(ref: string): Promise<{ code: number; report: VerifyReport }> {
  const r = await run('verify', '--json', `${H}/${ref}`);
  return { code: r.code, report: JSON.parse(r.out.join('\n')) as VerifyReport };
}

beforeAll(async () => {
  tmp = tempDir();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, 'a.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  pub['a'] = path.join(tmp.dir, 'a.pub');
  writeFileSync(pub['a'], publicKey.export({ type: 'spki', format: 'pem' }));
  const b = await cosignGenerateKeyPair(tmp.dir, 'pw-b');
  pub['b'] = b.pubPath;

  registry = await startRegistry();
  H = registry.host;
  // worker only: backfill (through main) queues into the same Redis prefix
  signet = await startSignet(`registries: [{ host: "${H}", insecure: true }]\nworker: { concurrency: 4 }\n${rulesYaml()}`, {
    baseDir: tmp.dir,
    roles: { receiver: false, worker: true },
  });
  cfg = path.join(tmp.dir, 'signet.yaml');
  writeFileSync(cfg, `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }\nregistries: [{ host: "${H}", insecure: true }]\n${rulesYaml()}`);

  img['one/signed:v1'] = (await pushImage(registry, 'one/signed', 'v1')).digest;
  img['one/unsigned:v1'] = (await pushImage(registry, 'one/unsigned', 'v1')).digest;
  img['one/unsigned:v1-dev'] = (await pushImage(registry, 'one/unsigned', 'v1-dev')).digest;
  img['repo/half:v1'] = (await pushImage(registry, 'repo/half', 'v1')).digest;
  await tagExisting(registry, 'repo/half', img['repo/half:v1'], 'v2');
  const idx = await pushIndex(registry, 'two/multi', 'v1', ['linux/amd64', 'linux/arm64']);
  img['two/multi:v1'] = idx.digest;
  children = idx.children;
  img['other/app:v1'] = (await pushImage(registry, 'other/app', 'v1')).digest;

  // signed by signet's own pipeline (no webhook)
  expect((await signet.runtime.pipeline.sign({ host: H, repository: 'one/signed', tag: 'v1' })).status).toBe('signed');
  expect((await signet.runtime.pipeline.sign({ host: H, repository: 'two/multi', tag: 'v1' })).status).toBe('signed');
  // ... then the arm64 child loses its signatures
  const childSig = await getManifest(registry, 'two/multi', sigTag(children[1]!));
  await deleteManifest(registry, 'two/multi', childSig.digest!);
  // signed by cosign with key b only (cosign's repository identity, what the rule asks for)
  await cosignSign(`${H}/repo/half:v1`, b.keyPath, 'pw-b');
}, 120_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  tmp?.remove();
});

describe('signet verify', () => {
  it('reports per manifest and layer the key, the docker-reference and what the rule requires', async () => {
    const ok = await verify('one/signed:v1');
    expect(ok.code).toBe(0);
    expect(ok.report.rule).toMatchObject({ index: 0, keys: ['a'], expectedIdentity: `${H}/one/signed:v1` });
    // the default formats: the .sig and the bundle, each checked
    expect(ok.report.rule).toMatchObject({ formats: ['legacy', 'bundle'] });
    expect(ok.report.manifests[0]!.signatures).toEqual([
      expect.objectContaining({ format: 'legacy', key: 'a', dockerReference: `${H}/one/signed:v1`, requiredKey: true, satisfies: true }),
      expect.objectContaining({ format: 'bundle', key: 'a', signedDigest: img['one/signed:v1'], requiredKey: true, satisfies: true }),
    ]);
    // by digest: the tag is unknown, any reference of the repository counts (matchRepoDigestOrExact)
    expect((await verify(`one/signed@${img['one/signed:v1']}`)).code).toBe(0);

    const half = await verify('repo/half:v2');
    expect(half.code).toBe(1);
    // cosign 2.5 wrote b's .sig only: a lacks both formats, b the bundle
    expect(half.report.manifests[0]).toMatchObject({
      signatures: [{ format: 'legacy', key: 'b', dockerReference: `${H}/repo/half`, requiredKey: true, satisfies: true }],
      missing: [
        { key: 'a', format: 'legacy', why: 'no signature by this key' },
        { key: 'a', format: 'bundle', why: 'no bundle by this key' },
        { key: 'b', format: 'bundle', why: 'no bundle by this key' },
      ],
    });

    const multi = await verify('two/multi:v1');
    expect(multi.code).toBe(1);
    expect(multi.report.manifests.map((m) => [m.role, m.platform ?? null, m.missing.map((k) => k.key)])).toEqual([
      ['index', null, []],
      ['child', 'linux/amd64', []],
      ['child', 'linux/arm64', ['a', 'b']],
    ]);
    const text = await run('verify', `${H}/two/multi:v1`);
    expect(text.out.join('\n')).toMatch(/MISSING +legacy +a +\(no signature by this key\)[\s\S]*NOT OK: 2 required signatures missing/);

    const unmatched = await run('verify', `${H}/other/app:v1`);
    expect(unmatched.code).toBe(0);
    expect(unmatched.out.join('\n')).toContain(`nothing required: no rule matches ${H}/other/app`);
    expect((await verify('one/unsigned:v1-dev')).report.rule).toMatchObject({ none: 'tag "v1-dev" matches rule\'s tags.exclude' });
  });
});

describe('signet backfill', () => {
  it('lists exactly the images missing a required signature, pages through the catalog, and keeps going past errors', async () => {
    const client = signet.runtime.registries.resolve(H)!.client;
    expect(await client.listRepositories(2)).toEqual(['one/signed', 'one/unsigned', 'other/app', 'repo/half', 'two/multi']);
    expect((await client.listTags('repo/half', 1)).sort()).toEqual(['sha256-' + img['repo/half:v1']!.slice(7) + '.sig', 'v1', 'v2'].sort());
    expect(await client.listTags('no/such')).toEqual([]);

    const dry = await run('backfill', '--dry-run', '--json');
    expect(dry.code).toBe(0);
    const report = JSON.parse(dry.out.join('\n')) as BackfillReport;
    expect(report.toSign.map((m) => [`${m.repository}:${m.tags.join(',')}`, m.digest, m.missing.map((x) => `${x.role}:${x.keys.join('+')}`)])).toEqual([
      ['one/unsigned:v1', img['one/unsigned:v1'], ['image:a']],
      ['repo/half:v1,v2', img['repo/half:v1'], ['image:a+b']],
      ['two/multi:v1', img['two/multi:v1'], ['child:a+b']],
    ]);
    expect(report.toSign[2]!.missing[0]!.digest).toBe(children[1]);
    expect(report).toMatchObject({ repositories: 5, repositoriesWithoutRule: 1, tags: 6, checked: 6, complete: 1, errors: [] });
    expect(report.notRequired).toEqual({ 'tag "v1-dev" matches rule\'s tags.exclude': 1 });
    expect(dry.err.at(-1)).toMatch(
      /^backfill: dry run done in [\d.]+ s: 5 repositories \(1 without a rule\), 6 tags: 1 signed, 3 to sign \(nothing queued\), 1 not required, 0 errors$/,
    );
    expect(dry.err.some((l) => /^backfill: 6\/6 tags, 3 to sign, 0 errors$/.test(l))).toBe(true);

    // --repo: a glob over the catalog, or one repository by name (no catalog needed)
    const some = await run('backfill', '--dry-run', '--repo', 'one/**');
    expect(some.out).toEqual([
      expect.stringMatching(
        new RegExp(`^would sign ${H}/one/unsigned:v1@${img['one/unsigned:v1']}  missing image sha256:[0-9a-f]{12}: a \\(legacy\\), a \\(bundle\\)$`),
      ),
    ]);
    const named = await run('backfill', '--dry-run', '--repo', 'two/multi', '--registry', H);
    expect(named.out).toEqual([expect.stringContaining('missing child linux/arm64 sha256:')]);

    // a registry that cannot be reached: reported and counted, the other one is still walked
    const broken = path.join(tmp.dir, 'broken.yaml');
    writeFileSync(
      broken,
      `registries: [{ host: "${H}", insecure: true }, { host: "127.0.0.1:${await freePort()}", insecure: true, timeoutMs: 2000 }]\n${rulesYaml()}`,
    );
    const out: string[] = [];
    const err: string[] = [];
    expect(
      await main(
        ['backfill', '--dry-run', '-c', broken],
        (l) => out.push(l),
        (l) => err.push(l),
      ),
    ).toBe(1);
    expect(out).toHaveLength(3);
    expect(err.filter((l) => l.startsWith('backfill: error'))).toEqual([expect.stringMatching(/^backfill: error 127\.0\.0\.1:\d+: REGISTRY_UNAVAILABLE: /)]);
    expect(err.at(-1)).toMatch(/3 to sign \(nothing queued\), 1 not required, 1 error$/);
  });

  it('progress never shows more to sign than tags checked; text output is sorted; --repo that matches nothing exits 1 saying so', async () => {
    const { backfill } = await import('../../src/backfill/backfill.js');
    const { TimestampAuthorities } = await import('../../src/transparency/timestamp-trust.js');
    const rt = signet.runtime;
    const lines: string[] = [];
    const report = await backfill(
      { dryRun: true, concurrency: 3, progressEvery: 1 },
      {
        registries: rt.registries,
        rules: rt.rules,
        keys: rt.keys,
        timestamps: new TimestampAuthorities(rt.config.rules, tmp.dir),
        progress: (l) => lines.push(l),
      },
    );
    expect(report.toSign).toHaveLength(3);
    expect(lines.length).toBeGreaterThanOrEqual(6);
    for (const l of lines) {
      const m = /^backfill: (\d+)\/(\d+) tags, (\d+) to sign/.exec(l)!;
      expect(Number(m[3]), l).toBeLessThanOrEqual(Number(m[1]));
    }

    const text = await run('backfill', '--dry-run');
    const refs = text.out.map((l) => /^would sign (\S+)@/.exec(l)![1]!);
    expect(refs).toEqual([`${H}/one/unsigned:v1`, `${H}/repo/half:v1`, `${H}/two/multi:v1`]);
    expect(refs).toEqual([...refs].sort());

    const none = await run('backfill', '--dry-run', '--repo', 'nosuch/**');
    expect(none.code).toBe(1);
    expect(none.out).toEqual([]);
    expect(none.err.at(-1)).toBe(`backfill: --repo nosuch/** matches no repository in ${H}`);
    expect((await run('backfill', '--dry-run', '--repo', 'no/such')).code).toBe(1);
  });

  it('--repo NAME counts only registries that hold it; --repo HOST/NAME walks that registry only', async () => {
    const other = await startRegistry();
    try {
      await pushImage(other, 'elsewhere/app', 'v1');
      const two = path.join(tmp.dir, 'two-registries.yaml');
      writeFileSync(
        two,
        `registries: [{ host: "${H}", insecure: true }, { host: "${other.host}", insecure: true }]\n${rulesYaml()}  - { match: "${other.host}/**", keys: [a] }\n`,
      );
      const go = async (...args: string[]) => {
        const out: string[] = [];
        const err: string[] = [];
        const code = await main(
          ['backfill', '--dry-run', '--json', '-c', two, ...args],
          (l) => out.push(l),
          (l) => err.push(l),
        );
        return { code, report: JSON.parse(out.join('\n')) as BackfillReport, err };
      };
      const plain = await go('--repo', 'two/multi');
      expect(plain.code).toBe(0);
      expect(plain.report).toMatchObject({ registries: [H, other.host], repositories: 1, errors: [] });
      expect(plain.report.toSign.map((m) => `${m.host}/${m.repository}`)).toEqual([`${H}/two/multi`]);
      const qualified = await go('--repo', `${other.host}/elsewhere/**`);
      expect(qualified.report).toMatchObject({ registries: [other.host], repositories: 1 });
      expect(qualified.report.toSign.map((m) => `${m.host}/${m.repository}:${m.tag}`)).toEqual([`${other.host}/elsewhere/app:v1`]);
      // in the other registry only: nothing matches there
      const wrongHost = await go('--repo', `${other.host}/two/multi`);
      expect(wrongHost.code).toBe(1);
      expect(wrongHost.err.at(-1)).toBe(`backfill: --repo ${other.host}/two/multi matches no repository in ${other.host}`);
    } finally {
      await other.stop();
    }
  }, 60_000);

  it('queues them; the worker signs them; then signet verify and cosign verify agree and a second run finds nothing', async () => {
    const r = await run('backfill');
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(3);
    for (const l of r.out) expect(l).toMatch(/^queued .* {2}job \S+$/);

    for (const ref of ['one/unsigned:v1', 'repo/half:v1', 'repo/half:v2', 'two/multi:v1']) {
      await waitFor(`signet verify ${ref}`, async () => (await verify(ref)).code === 0, 30_000, 250);
    }
    const again = await run('backfill', '--dry-run');
    expect(again.out).toEqual([]);
    expect(again.err.at(-1)).toMatch(/: 5 signed, 0 to sign/);

    // the worker ran the pipeline on backfill's events
    expect(
      signet.logs
        .filter((l) => l.msg === 'signed')
        .map((l) => l.ref)
        .sort(),
    ).toEqual([`${H}/one/unsigned:v1`, `${H}/repo/half:v1`, `${H}/two/multi:v1`]);
    // cosign agrees: key a on the formerly unsigned image and on the child that had lost both
    expect((await cosignVerify(`${H}/one/unsigned:v1`, pub['a']!)).ok).toBe(true);
    const child = `${H}/two/multi@${children[1]}`;
    const [va, vb] = await Promise.all([cosignVerify(child, pub['a']!), cosignVerify(child, pub['b']!)]);
    expect([va.ok, vb.ok]).toEqual([true, true]);
    expect(va.payloads.map((p) => p.critical.identity['docker-reference'])).toEqual([`${H}/two/multi:v1`]);
    expect((await cosignVerify(`${H}/repo/half:v2`, pub['a']!)).ok).toBe(true);
  });
});
