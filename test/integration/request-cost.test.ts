/**
 * What one signature costs, counted by signet's own metrics (signet_registry_requests_total,
 * signet_key_sign_seconds_count), with the real cosign 2.5 and 3.1 deciding that what was written
 * verifies. The request sequence per format set (docs/formats.md "Cost"):
 *
 * distribution 2.8 (no referrers API; it answers a single-POST upload with 202 and ignores the
 * body, so every blob costs POST + PUT):
 * - `[legacy]`, a new signature: 1 key call, 5 requests (GET the pushed manifest, POST+PUT the
 *   payload blob, GET the .sig under the lock, PUT the .sig); 7 for a repository's first
 *   signature (the shared .sig config, POST+PUT, then remembered per repository);
 * - two keys in one rule: one .sig read-modify-write for both (2 key calls, still 5 requests:
 *   the payload is the same blob);
 * - the same push delivered again: 2 requests (the manifest and the .sig), no key call;
 * - a digest signet has no record of but that cosign already signed with the same key: one key
 *   call, signet's signature is dropped in favour of the one there (one layer, outcome present);
 * - `verifyWrites: true`: the read-back costs one request more;
 * - `[legacy, bundle]` (the default): 10 requests after a repository's first image (legacy 5;
 *   bundle 5: the fallback index GET under the lock, bundle POST+PUT, referrer PUT, index PUT),
 *   15 for the first (the referrers API probe, the .sig config and the empty config).
 * A registry with the referrers API and single-POST uploads (the in-memory OCI registry of
 * test/helpers/fake-oci.ts) is counted too: each blob is one request there, and the referrers
 * API replaces the fallback index.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COSIGN3_BIN, cosignGenerateKeyPair, cosignSign, cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag, type PushedImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startFakeOci, type FakeOci } from '../helpers/fake-oci.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'cost-hook-secret-0123456789';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
let registry: RunningRegistry;
let checked: RunningRegistry;
let fake: FakeOci;
let fakeNoApi: FakeOci;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let pubPath: string;
let keyPath: string;
let pub2Path: string;

beforeAll(async () => {
  tmp = tempDir();
  const key = await cosignGenerateKeyPair(tmp.dir, 'cost-pw');
  pubPath = key.pubPath;
  keyPath = key.keyPath;
  mkdirSync(join(tmp.dir, 'second'));
  pub2Path = (await cosignGenerateKeyPair(join(tmp.dir, 'second'), 'cost-pw')).pubPath;
  registry = await startRegistry();
  checked = await startRegistry();
  // the referrers API and single-POST uploads; and neither (distribution 2.8's answers, in memory)
  fake = await startFakeOci();
  fake.singlePost = true;
  fakeNoApi = await startFakeOci();
  fakeNoApi.referrersApi = false;
  signet = await startSignet(
    `
registries:
  - { host: "${registry.host}", insecure: true }
  - { host: "${checked.host}", insecure: true, verifyWrites: true }
  - { host: "${fake.host}", insecure: true }
  - { host: "${fakeNoApi.host}", insecure: true }
integrations: [{ name: local, kind: distribution, secret: "${SECRET}" }]
keys:
  - { name: k, provider: file, path: cosign.key, password: "\${COST_PW}" }
  - { name: k2, provider: file, path: second/cosign.key, password: "\${COST_PW}" }
rules:
  - { match: "${registry.host}/default/**", keys: [k], identity: repository }
  - { match: "${registry.host}/bundle/**", keys: [k], identity: repository, formats: [bundle] }
  - { match: "${registry.host}/two/**", keys: [k, k2], identity: repository, formats: [legacy] }
  - { match: "${registry.host}/**", keys: [k], identity: repository, formats: [legacy] }
  - { match: "${checked.host}/**", keys: [k], identity: repository, formats: [legacy] }
  - { match: "${fake.host}/default/**", keys: [k], identity: repository }
  - { match: "${fake.host}/**", keys: [k], identity: repository, formats: [legacy] }
  - { match: "${fakeNoApi.host}/**", keys: [k], identity: repository }
`,
    { baseDir: tmp.dir, env: { COST_PW: 'cost-pw' } },
  );
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await checked?.stop();
  await fake?.stop();
  await fakeNoApi?.stop();
  tmp?.remove();
});

type Counts = Record<string, number>;

/** Registry requests by "METHOD kind" and key calls, from signet's /metrics registry. */
async function counters(host: string): Promise<{ requests: Counts; keyCalls: number; jobs: number }> {
  const requests: Counts = {};
  let keyCalls = 0;
  let jobs = 0;
  for (const m of await signet.metrics.registry.getMetricsAsJSON()) {
    for (const v of m.values as { labels: Record<string, string | number>; value: number; metricName?: string }[]) {
      if (m.name === 'signet_registry_requests_total' && v.labels['registry'] === host) {
        const k = `${v.labels['method']} ${v.labels['kind']}`;
        requests[k] = (requests[k] ?? 0) + v.value;
      }
      if (m.name === 'signet_key_sign_seconds' && v.metricName === 'signet_key_sign_seconds_count') keyCalls += v.value;
      if (m.name === 'signet_jobs_total') jobs += v.value;
    }
  }
  return { requests, keyCalls, jobs };
}

function diff(after: Counts, before: Counts): Counts {
  const out: Counts = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

const total = (c: Counts) => Object.values(c).reduce((a, b) => a + b, 0);

/** POST one distribution push event (tag + digest, as distribution sends it) and wait for its job to finish. */
async function deliver(host: string, repo: string, tag: string, img: PushedImage) {
  const before = await counters(host);
  const body = {
    events: [
      {
        id: `e-${Math.random()}`,
        timestamp: new Date().toISOString(),
        action: 'push',
        target: {
          mediaType: OCI_MANIFEST,
          size: img.size,
          digest: img.digest,
          length: img.size,
          repository: repo,
          tag,
          url: `http://${host}/v2/${repo}/manifests/${img.digest}`,
        },
        request: { id: 'r', addr: '127.0.0.1:1', host, method: 'PUT', useragent: 'test' },
        actor: {},
        source: { addr: 'test', instanceID: 'test' },
      },
    ],
  };
  const res = await fetch(`${signet.url}/hooks/local`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(202);
  await waitFor('job finished', async () => (await counters(host)).jobs > before.jobs || undefined, 20_000, 50);
  const after = await counters(host);
  return { requests: diff(after.requests, before.requests), keyCalls: after.keyCalls - before.keyCalls };
}

async function sigManifest(reg: { url: string }, repo: string, digest: string): Promise<string | undefined> {
  const m = await getManifest(reg, repo, sigTag(digest));
  return m.status === 200 ? m.body.toString() : undefined;
}
const layerCount = (m: string | undefined) => (m ? (JSON.parse(m) as { layers: unknown[] }).layers.length : 0);

const target = (f: FakeOci) => ({ host: f.host, url: `http://${f.host}` });

/** Push `n` images to one repository and deliver each: the cost of each, in push order. */
async function series(reg: { host: string; url: string }, repo: string, n: number) {
  const out: { img: PushedImage; keyCalls: number; requests: Counts }[] = [];
  for (let i = 1; i <= n; i++) {
    const img = await pushImage(reg, repo, `v${i}`);
    out.push({ img, ...(await deliver(reg.host, repo, `v${i}`, img)) });
  }
  return out;
}

async function verifies(reg: { host: string }, ref: string, pub = pubPath) {
  for (const bin of [undefined, COSIGN3_BIN()]) {
    const v = await cosignVerify(`${reg.host}/${ref}`, pub, [], bin ? { bin } : {});
    expect(v.ok, `${bin ?? 'cosign 2.5'}: ${v.stderr}`).toBe(true);
  }
}

describe('cost per signature on distribution 2.8, from signet_registry_requests_total', () => {
  it("[legacy]: 1 key call and 5 registry requests per new signature, 7 for a repository's first (the shared .sig config); cosign 2.5 and 3.1 verify", async () => {
    const [first, second, third] = await series(registry, 'cost/new', 3);
    expect(first!.keyCalls).toBe(1);
    // GET manifest (resolve), POST+PUT payload, GET .sig, POST+PUT the .sig config, PUT .sig
    expect(first!.requests).toEqual({ 'GET manifest': 2, 'POST upload': 2, 'PUT upload': 2, 'PUT manifest': 1 });
    for (const c of [second!, third!]) {
      expect(c.keyCalls).toBe(1);
      // the config is remembered for the repository: GET manifest, POST+PUT payload, GET .sig, PUT .sig
      expect(c.requests).toEqual({ 'GET manifest': 2, 'POST upload': 1, 'PUT upload': 1, 'PUT manifest': 1 });
      expect(total(c.requests)).toBe(5);
    }
    for (const i of [1, 3]) await verifies(registry, `cost/new:v${i}`);
  });

  it('two keys in one rule: one .sig read-modify-write for both (2 key calls, one GET and one PUT of the .sig)', async () => {
    const [, c] = await series(registry, 'two/app', 2);
    expect(c!.keyCalls).toBe(2);
    expect(c!.requests).toEqual({ 'GET manifest': 2, 'POST upload': 1, 'PUT upload': 1, 'PUT manifest': 1 });
    expect(layerCount(await sigManifest(registry, 'two/app', c!.img.digest))).toBe(2);
    await verifies(registry, 'two/app:v2');
    await verifies(registry, 'two/app:v2', pub2Path);
  });

  it('the same push delivered again: 2 requests, no key call, still one signature', async () => {
    const img = await pushImage(registry, 'cost/again', 'v1');
    await deliver(registry.host, 'cost/again', 'v1', img);
    const c = await deliver(registry.host, 'cost/again', 'v1', img);
    expect(c.keyCalls).toBe(0);
    expect(c.requests).toEqual({ 'GET manifest': 2 });
    expect(layerCount(await sigManifest(registry, 'cost/again', img.digest))).toBe(1);
  });

  it('signed by cosign before signet saw it: one key call, the present signature is kept, one layer', async () => {
    const img = await pushImage(registry, 'cost/cosigned', 'v1');
    await cosignSign(`${registry.host}/cost/cosigned@${img.digest}`, keyPath, 'cost-pw');
    const before = await sigManifest(registry, 'cost/cosigned', img.digest);
    expect(layerCount(before)).toBe(1);
    const c = await deliver(registry.host, 'cost/cosigned', 'v1', img);
    expect(c.keyCalls).toBe(1);
    // nothing written: cosign's signature (same payload, same key) is the one there
    expect(await sigManifest(registry, 'cost/cosigned', img.digest)).toBe(before);
    const present = signet.logs.find((l) => l.msg === 'signed' && String(l.ref).includes('cost/cosigned'));
    expect(present?.signatures?.[0]).toMatch(/ k legacy present$/);
  });

  it('verifyWrites: true reads the .sig back: one request more (6 once the config is remembered)', async () => {
    const [, c] = await series(checked, 'cost/checked', 2);
    expect(c!.keyCalls).toBe(1);
    expect(c!.requests).toEqual({ 'GET manifest': 3, 'POST upload': 1, 'PUT upload': 1, 'PUT manifest': 1 });
  });

  it('a remembered .sig config the registry lost since (garbage-collected): the PUT is refused, the config uploaded again, the PUT redone, in the same job', async () => {
    const [first] = await series(registry, 'cost/gc', 1);
    const config = JSON.parse((await sigManifest(registry, 'cost/gc', first!.img.digest))!).config.digest as string;
    expect((await fetch(`${registry.url}/v2/cost/gc/blobs/${config}`, { method: 'DELETE' })).status).toBe(202);
    const img = await pushImage(registry, 'cost/gc', 'v2');
    const c = await deliver(registry.host, 'cost/gc', 'v2', img);
    expect(c.keyCalls).toBe(1);
    // 5, plus the refused PUT of the .sig and the config's POST+PUT
    expect(c.requests).toEqual({ 'GET manifest': 2, 'POST upload': 2, 'PUT upload': 2, 'PUT manifest': 2 });
    expect(signet.logs.filter((l) => l.level >= 50 && String(l.ref ?? '').includes('cost/gc'))).toEqual([]);
    await verifies(registry, 'cost/gc:v2');
  });

  it("[legacy, bundle] (the default), no referrers API: 2 key calls; 15 requests for a repository's first image, 10 after; 5 for the same push again", async () => {
    const [first, next] = await series(registry, 'default/app', 2);
    expect(first!.keyCalls).toBe(2);
    console.log(`default formats, first image: ${total(first!.requests)} registry requests ${JSON.stringify(first!.requests)}`);
    // + the referrers API probe (GET other; remembered per registry), the .sig config and the empty config (POST+PUT each)
    expect(first!.requests).toEqual({ 'GET other': 1, 'GET manifest': 3, 'POST upload': 4, 'PUT upload': 4, 'PUT manifest': 3 });
    // legacy 5 (resolve; payload POST+PUT; .sig GET; .sig PUT) and bundle 5 (fallback index GET under the lock; bundle POST+PUT; referrer PUT; index PUT)
    expect(next!.keyCalls).toBe(2);
    console.log(`default formats, next image: ${total(next!.requests)} registry requests ${JSON.stringify(next!.requests)}`);
    expect(next!.requests).toEqual({ 'GET manifest': 3, 'POST upload': 2, 'PUT upload': 2, 'PUT manifest': 3 });
    expect(total(next!.requests)).toBe(10);
    await verifies(registry, 'default/app:v1');
    await verifies(registry, 'default/app:v2');
    // delivered again: nothing written, no key call; the bundle is read and verified (referrer and blob), not taken on its listing
    const again = await deliver(registry.host, 'default/app', 'v2', next!.img);
    expect(again.keyCalls).toBe(0);
    expect(again.requests).toEqual({ 'GET manifest': 4, 'GET blob': 1 });
  });

  it("[bundle] alone, no referrers API: 1 key call, 6 requests after a repository's first image; cosign 3.1 verifies", async () => {
    const [first, next] = await series(registry, 'bundle/app', 2);
    expect(first!.keyCalls).toBe(1);
    expect(next!.keyCalls).toBe(1);
    console.log(`[bundle], first image: ${JSON.stringify(first!.requests)}; next: ${JSON.stringify(next!.requests)}`);
    // resolve; fallback index GET under the lock; bundle POST+PUT; referrer PUT; index PUT
    expect(next!.requests).toEqual({ 'GET manifest': 2, 'POST upload': 1, 'PUT upload': 1, 'PUT manifest': 2 });
    const v = await cosignVerify(`${registry.host}/bundle/app:v2`, pubPath, [], { bin: COSIGN3_BIN() });
    expect(v.ok, v.stderr).toBe(true);
  });
});

describe('cost per signature on a registry with single-POST uploads and the referrers API (in memory)', () => {
  it("[legacy]: 4 requests per new signature (each blob one POST), 5 for a repository's first", async () => {
    const [first, next] = await series(target(fake), 'cost/app', 2);
    expect(first!.keyCalls).toBe(1);
    expect(first!.requests).toEqual({ 'GET manifest': 2, 'POST upload': 2, 'PUT manifest': 1 });
    expect(next!.requests).toEqual({ 'GET manifest': 2, 'POST upload': 1, 'PUT manifest': 1 });
  });

  it('[legacy, bundle]: 7 requests per new image with the referrers API (listing instead of the fallback index)', async () => {
    const [first, next] = await series(target(fake), 'default/app', 2);
    expect(first!.keyCalls).toBe(2);
    console.log(`default formats with the referrers API, first image: ${JSON.stringify(first!.requests)}; next: ${JSON.stringify(next!.requests)}`);
    // legacy 4 (resolve; payload POST; .sig GET; .sig PUT), bundle 3 (referrers GET under the lock; bundle POST; referrer PUT)
    expect(next!.requests).toEqual({ 'GET manifest': 2, 'GET other': 1, 'POST upload': 2, 'PUT manifest': 2 });
    expect(fake.requests.filter((r) => r.includes('/manifests/sha256-') && !r.endsWith('.sig'))).toEqual([]); // no fallback tag
  });

  it('a registry that answers the single POST with 202 (distribution 2.8) is asked once, then gets POST+PUT', async () => {
    const before = fakeNoApi.requests.length;
    const [first, next] = await series(target(fakeNoApi), 'default/app', 2);
    const posts = fakeNoApi.requests.slice(before).filter((r) => r.startsWith('POST'));
    expect(posts.length).toBeGreaterThan(0);
    // default formats without the API: 15, then 10, as on distribution 2.8
    expect(total(first!.requests)).toBe(15);
    expect(next!.requests).toEqual({ 'GET manifest': 3, 'POST upload': 2, 'PUT upload': 2, 'PUT manifest': 3 });
  });
});
