/**
 * What one signature costs, counted by signet's own metrics (signet_registry_requests_total,
 * signet_key_sign_seconds_count) against a real registry, with the real cosign deciding:
 * - a new signature on a single-arch image: 1 key call and 7 registry requests (GET the pushed
 *   manifest, POST+PUT the payload blob, GET the .sig under the lock, POST+PUT the config blob,
 *   PUT the .sig);
 * - the same push delivered again: 2 requests (the manifest and the .sig), no key call;
 * - a digest signet has no record of but that cosign already signed with the same key: one key
 *   call, signet's signature is dropped in favour of the one there (one layer, outcome present);
 * - `verifyWrites: true`: the read-back costs one request more (8).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COSIGN3_BIN, cosignGenerateKeyPair, cosignSign, cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag, type PushedImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'cost-hook-secret-0123456789';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
let registry: RunningRegistry;
let checked: RunningRegistry;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let pubPath: string;
let keyPath: string;

beforeAll(async () => {
  tmp = tempDir();
  const key = await cosignGenerateKeyPair(tmp.dir, 'cost-pw');
  pubPath = key.pubPath;
  keyPath = key.keyPath;
  registry = await startRegistry();
  checked = await startRegistry();
  signet = await startSignet(
    `
registries:
  - { host: "${registry.host}", insecure: true }
  - { host: "${checked.host}", insecure: true, verifyWrites: true }
integrations: [{ name: local, kind: distribution, secret: "${SECRET}" }]
keys: [{ name: k, provider: file, path: cosign.key, password: "\${COST_PW}" }]
rules:
  - { match: "${registry.host}/default/**", keys: [k], identity: repository }
  - { match: "${registry.host}/**", keys: [k], identity: repository, formats: [legacy] }
  - { match: "${checked.host}/**", keys: [k], identity: repository, formats: [legacy] }
`,
    { baseDir: tmp.dir, env: { COST_PW: 'cost-pw' } },
  );
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await checked?.stop();
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

async function sigManifest(reg: RunningRegistry, repo: string, digest: string): Promise<string | undefined> {
  const m = await getManifest(reg, repo, sigTag(digest));
  return m.status === 200 ? m.body.toString() : undefined;
}
const layerCount = (m: string | undefined) => (m ? (JSON.parse(m) as { layers: unknown[] }).layers.length : 0);

describe('cost per signature, from signet_registry_requests_total', () => {
  it('a new signature on a single-arch image: 1 key call, 7 registry requests; cosign verifies it', async () => {
    const img = await pushImage(registry, 'cost/new', 'v1');
    const c = await deliver(registry.host, 'cost/new', 'v1', img);
    expect(c.keyCalls).toBe(1);
    expect(c.requests).toEqual({ 'GET manifest': 2, 'POST upload': 2, 'PUT upload': 2, 'PUT manifest': 1 });
    expect(total(c.requests)).toBe(7);
    const v = await cosignVerify(`${registry.host}/cost/new:v1`, pubPath);
    expect(v.ok, v.stderr).toBe(true);
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

  it('verifyWrites: true reads the .sig back: 8 requests', async () => {
    const img = await pushImage(checked, 'cost/checked', 'v1');
    const c = await deliver(checked.host, 'cost/checked', 'v1', img);
    expect(c.keyCalls).toBe(1);
    expect(c.requests).toEqual({ 'GET manifest': 3, 'POST upload': 2, 'PUT upload': 2, 'PUT manifest': 1 });
  });

  it('the default formats (legacy .sig and bundle) on a registry without the referrers API: 2 key calls; 18 requests for the first image of a repository, 14 after; cosign 2.5 reads the .sig, cosign 3.1 the bundle', async () => {
    // the first image: the referrers API probed (then remembered per registry), the empty config checked (then remembered per repository)
    const first = await pushImage(registry, 'default/app', 'v1');
    const c = await deliver(registry.host, 'default/app', 'v1', first);
    expect(c.keyCalls).toBe(2);
    console.log(`default formats, first image: ${total(c.requests)} registry requests ${JSON.stringify(c.requests)}`);
    expect(c.requests).toEqual({ 'GET other': 1, 'GET manifest': 5, 'HEAD blob': 1, 'POST upload': 4, 'PUT upload': 4, 'PUT manifest': 3 });
    expect(total(c.requests)).toBe(18);
    for (const bin of [undefined, COSIGN3_BIN()]) {
      const v = await cosignVerify(`${registry.host}/default/app:v1`, pubPath, [], bin ? { bin } : {});
      expect(v.ok, v.stderr).toBe(true);
    }
    // the next one: legacy 7 (resolve; payload POST+PUT; .sig GET; config POST+PUT; .sig PUT) and
    // bundle 7 (fallback index GET; bundle POST+PUT; referrer PUT; index GET under the lock, PUT, read back)
    const next = await pushImage(registry, 'default/app', 'v2');
    const n = await deliver(registry.host, 'default/app', 'v2', next);
    expect(n.keyCalls).toBe(2);
    console.log(`default formats, next image: ${total(n.requests)} registry requests ${JSON.stringify(n.requests)}`);
    expect(n.requests).toEqual({ 'GET manifest': 5, 'POST upload': 3, 'PUT upload': 3, 'PUT manifest': 3 });
    expect(total(n.requests)).toBe(14);
    // delivered again: nothing written, no key call; the bundle is read and verified (referrer and blob), not taken on its listing
    const again = await deliver(registry.host, 'default/app', 'v2', next);
    expect(again.keyCalls).toBe(0);
    console.log(`default formats, same push again: ${total(again.requests)} registry requests ${JSON.stringify(again.requests)}`);
    expect(again.requests).toEqual({ 'GET manifest': 4, 'GET blob': 1 });
  });
});
