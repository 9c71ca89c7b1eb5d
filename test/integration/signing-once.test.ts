/**
 * One signing per (digest, key, payload) across workers (issue 18; src/signing/pipeline.ts, the
 * signing lock in src/signing/lock.ts). Three signet runtimes (receiver + worker each, one Redis,
 * one queue), the real docker-registry notifying them round robin through a small fan-out, the
 * Rekor stand-in, `identity: repository` (so every tag of a digest signs the same payload) and
 * each digest pushed under three tags at once. Every image ends with exactly one signature per
 * key and format, the key backend is called once per signature written (signet_key_sign_seconds
 * count, summed over the runtimes) and Rekor holds one entry per signature.
 * Then a job that fails after signing (the .sig PUT refused with 503) and is retried by another
 * runtime: the retry reuses the signature through Redis (src/signing/shared-signatures.ts), so
 * still one key call, and Rekor answers 409 with the one entry.
 */
import { Writable } from 'node:stream';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { getManifest, pushImage, sigTag, tagExisting } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startRekor, type RekorStandIn } from '../helpers/rekor.js';
import {
  deletePrefix,
  keySignCalls,
  pendingJobs,
  REDIS_URL,
  startSignet,
  tempKeyDir,
  uniquePrefix,
  waitFor,
  type KeyDir,
  type RunningSignet,
} from '../helpers/signet.js';

const SECRET = 'signing-once-secret-0123456789';
// larger runs for measuring: SIGNING_ONCE_IMAGES=300 SIGNING_ONCE_TAGS=2 SIGNING_ONCE_WORKERS=2
const IMAGES = Number(process.env.SIGNING_ONCE_IMAGES ?? 12);
const TAGS = Array.from({ length: Number(process.env.SIGNING_ONCE_TAGS ?? 3) }, (_, i) => `t${i}`);
const WORKERS = Number(process.env.SIGNING_ONCE_WORKERS ?? 3);

let registry: RunningRegistry;
let rekor: RekorStandIn;
let fanout: Server;
let tmp: KeyDir;
let proxy: FaultProxy;
const runtimes: Runtime[] = [];
const signets: RunningSignet[] = [];
const prefix = uniquePrefix();

/** Forwards each registry notification to the next receiver in turn (several receivers, one registry). */
function startFanout(): Promise<Server> {
  let next = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const target = signets[next++ % signets.length];
      if (!target) return void res.writeHead(503).end();
      fetch(`${target.url}${req.url}`, {
        method: 'POST',
        headers: { 'content-type': String(req.headers['content-type'] ?? 'application/json'), authorization: String(req.headers['authorization'] ?? '') },
        body: Buffer.concat(chunks),
      }).then(
        async (r) => res.writeHead(r.status).end(await r.text()),
        () => res.writeHead(502).end(),
      );
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  let n = 0;
  for (const s of signets) {
    const m = await s.metrics.registry.getSingleMetric(name)?.get();
    for (const v of m?.values ?? []) if (Object.entries(labels).every(([k, x]) => v.labels[k] === x)) n += v.value;
  }
  return n;
}

beforeAll(async () => {
  tmp = tempKeyDir();
  rekor = await startRekor();
  fanout = await startFanout();
  registry = await startRegistry({
    notifyUrl: `http://127.0.0.1:${(fanout.address() as AddressInfo).port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
  });
  const yaml = `worker: { concurrency: 8, backoffMs: 100 }
registries: [{ host: "${registry.host}", insecure: true }]
integrations: [{ name: local, kind: distribution, secret: "${SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules:
  - match: "${registry.host}/once/**"
    keys: [k]
    identity: repository
    formats: [legacy, bundle]
    rekor: { url: "${rekor.url}", publicKey: ${JSON.stringify(rekor.publicKeyPem)} }
`;
  for (let i = 0; i < WORKERS; i++) signets.push(await startSignet(yaml, { baseDir: tmp.dir, prefix }));
  proxy = await startFaultProxy(registry.host);
}, 90_000);

afterAll(async () => {
  for (const s of signets) await s.service.stop();
  for (const s of signets) await s.runtime.close().catch(() => undefined);
  for (const rt of runtimes) await rt.close();
  await deletePrefix(prefix);
  await proxy?.close();
  await new Promise((r) => fanout?.close(r));
  await registry?.stop();
  await rekor?.stop();
  tmp?.remove();
});

describe('one signing per digest, key and payload across workers', () => {
  it(`${IMAGES} digests, each pushed under ${TAGS.length} tags at once, ${WORKERS} receivers and workers: one signature per key and format, key calls = signatures = Rekor entries`, async () => {
    // Rekor answers after 200 ms: the time from a job's read of the digest to its write is wide,
    // as with a real KMS and Rekor, so the tags' jobs overlap (the old code signed in each)
    rekor.delay(200);
    const images = await Promise.all(
      Array.from({ length: IMAGES }, async (_, i) => {
        const repo = `once/app${i}`;
        const img = await pushImage(registry, repo, TAGS[0]);
        await Promise.all(TAGS.slice(1).map((t) => tagExisting(registry, repo, img.digest, t)));
        return { repo, digest: img.digest };
      }),
    );
    const jobs = IMAGES * TAGS.length;
    await waitFor('every tag push signed', async () => (await counter('signet_jobs_total', { outcome: 'signed' })) >= jobs, 120_000 + jobs * 500, 250);
    await waitFor('queue drained', async () => (await pendingJobs(signets[0]!)) === 0, 30_000, 250);
    // every runtime took part (the fan-out spread the webhooks; the queue spread the jobs)
    for (const s of signets) expect(s.logs.some((l) => l.msg === 'signed')).toBe(true);

    const signatures = IMAGES * 2; // one legacy and one bundle signature per image, one key
    const written = await counter('signet_signatures_total', { outcome: 'signed' });
    const present = await counter('signet_signatures_total', { outcome: 'present' });
    const keyCalls = (await Promise.all(signets.map((s) => keySignCalls(s)))).reduce((a, b) => a + b, 0);
    const entries = rekor.size();
    rekor.delay(0);
    console.log(`signing-once: ${jobs} jobs, signatures written ${written}, present ${present}, key calls ${keyCalls}, Rekor entries ${entries}`);
    expect(await counter('signet_jobs_total', { outcome: 'signed' })).toBe(jobs);
    expect(written).toBe(signatures);
    expect(present).toBe(jobs * 2 - signatures);
    expect(keyCalls).toBe(signatures);
    expect(entries).toBe(signatures);

    for (const { repo, digest } of images) {
      const sig = await getManifest(registry, repo, sigTag(digest));
      expect(sig.status).toBe(200);
      expect(JSON.parse(sig.body.toString()).layers).toHaveLength(1);
      // distribution 2.8 has no referrers API: the bundle is listed in the fallback tag's index
      const referrers = await getManifest(registry, repo, digest.replace(':', '-'));
      expect(referrers.status).toBe(200);
      expect(JSON.parse(referrers.body.toString()).manifests).toHaveLength(1);
    }
  });
});

/** A runtime without receiver or worker (like a worker process's), signing through the fault proxy. */
async function proxiedRuntime(): Promise<Runtime> {
  const loaded = parseConfigText(
    `redis: { url: "${REDIS_URL}", prefix: ${prefix} }
registries: [{ host: "${proxy.host}", insecure: true, timeoutMs: 2000 }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${proxy.host}/**", keys: [k], identity: repository, formats: [legacy], rekor: { url: "${rekor.url}", publicKey: ${JSON.stringify(rekor.publicKeyPem)} } }]
`,
    'c.yaml',
  );
  const rt = await createRuntime(
    { ...loaded, baseDir: tmp.dir },
    { logger: createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }), metrics: new Metrics() },
  );
  runtimes.push(rt);
  return rt;
}

async function signCalls(rt: Runtime): Promise<number> {
  const m = await rt.metrics.registry.getSingleMetric('signet_key_sign_seconds')?.get();
  return (m?.values ?? []).filter((v) => (v as { metricName?: string }).metricName === 'signet_key_sign_seconds_count').reduce((n, v) => n + v.value, 0);
}

describe('a job retried by another worker after its signature was made', () => {
  it('reuses the signature (no second key call) and the Rekor entry (409): one signature, one entry', async () => {
    const [a, b] = [await proxiedRuntime(), await proxiedRuntime()];
    const repo = 'retry/app';
    const img = await pushImage(registry, repo, 'v1');
    const entriesBefore = rekor.size();
    const target = { host: proxy.host, repository: repo, tag: 'v1' };
    // the first worker signs and logs, then the registry refuses its .sig PUT
    proxy.faults.push({ times: Infinity, status: 503, match: (r) => r.method === 'PUT' && (r.url ?? '').includes(`/${repo}/manifests/sha256-`) });
    await expect(a.pipeline.sign(target)).rejects.toMatchObject({ code: 'REGISTRY_UNAVAILABLE' });
    proxy.faults.length = 0;
    expect(await signCalls(a)).toBe(1);
    expect(rekor.size() - entriesBefore).toBe(1);
    // the retry runs in the other worker (its own key object and memo)
    const report = await b.pipeline.sign({ ...target, retry: true });
    expect(report.status).toBe('signed');
    const sig = report.status === 'signed' ? report.signatures[0]! : undefined;
    expect(sig).toMatchObject({ key: 'k', outcome: 'signed', tlog: { status: 'existing' } });
    expect(await signCalls(b)).toBe(0);
    expect(rekor.size() - entriesBefore).toBe(1);
    const stored = await getManifest(registry, repo, sigTag(img.digest));
    expect(JSON.parse(stored.body.toString()).layers).toHaveLength(1);
  });
});
