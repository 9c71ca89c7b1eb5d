/**
 * /metrics after a real signing (a real registry's push notification, through a loopback proxy
 * that answers one 503 and drops one connection), and /readyz against real dependencies: 200
 * when Redis, the key and both registries answer; 503 naming the registry once it is stopped and
 * Redis once it is killed; back when Redis is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { pushImage } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'metrics-hook-secret-0123456789';

let redis: OwnRedis;
let registry: RunningRegistry;
let spare: RunningRegistry;
let proxy: FaultProxy;
let signet: RunningSignet;
let tmp: KeyDir;

beforeAll(async () => {
  tmp = tempKeyDir();
  redis = await ownRedis();
  const port = await freePort();
  registry = await startRegistry({
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
    notifyIgnoredMediaTypes: ['application/octet-stream'],
  });
  spare = await startRegistry();
  // signet reaches the registry through the proxy; the push notifications name the registry itself (an alias)
  proxy = await startFaultProxy(registry.host);
  signet = await startSignet(
    `
worker: { concurrency: 2, attempts: 5, backoffMs: 100 }
registries:
  - { host: "${proxy.host}", insecure: true, aliases: ["${registry.host}"], timeoutMs: 2000 }
  - { host: "${spare.host}", insecure: true }
integrations: [{ name: local, kind: distribution, secret: "${SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${proxy.host}/**", keys: [k] }]
`,
    { baseDir: tmp.dir, port, redisUrl: redis.url },
  );
});
afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  await registry?.stop();
  await spare?.stop();
  await redis?.stop();
  tmp?.remove();
});

/** Prometheus text -> samples. */
async function scrape(): Promise<{ name: string; labels: Record<string, string>; value: number }[]> {
  const res = await fetch(`${signet.url}/metrics`);
  expect(res.status).toBe(200);
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}
const value = (samples: Awaited<ReturnType<typeof scrape>>, name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
const has = (samples: Awaited<ReturnType<typeof scrape>>, name: string) => samples.some((s) => s.name === name);

const readyz = async () => {
  const res = await fetch(`${signet.url}/readyz`);
  return { status: res.status, body: (await res.json()) as any };
};

describe('metrics', () => {
  it('a real signing (one 503, one dropped connection on the way) shows in every new series', async () => {
    proxy.faults.push(
      { times: 1, status: 503, match: (r) => r.method === 'GET' && (r.url ?? '').includes('/team/app/manifests/') },
      { times: 1, drop: true, match: (r) => r.method === 'GET' && (r.url ?? '').includes('/team/app/manifests/') },
    );
    await pushImage(registry, 'team/app', 'v1');
    const m = await waitFor(
      'signature counted and the job out of the queue',
      async () => {
        // the signatures are counted as they are written, a moment before BullMQ marks the job
        // completed: wait for both, or a scrape in between sees the job still active
        const s = await scrape();
        const queued = ['waiting', 'active', 'delayed', 'failed'].reduce((n, state) => n + value(s, 'signet_queue_jobs', { state }), 0);
        return value(s, 'signet_signatures_total', { key: 'k', outcome: 'signed' }) >= 2 && queued === 0 ? s : undefined;
      },
      30_000,
      200,
    );

    expect(value(m, 'signet_webhook_events_total', { integration: 'local', outcome: 'queued' })).toBe(1);
    // one per format (the default: legacy .sig and bundle)
    expect(value(m, 'signet_signatures_total', { key: 'k', outcome: 'signed' })).toBe(2);
    expect(value(m, 'signet_jobs_total', { outcome: 'retry' })).toBe(2);
    // push to signed: one observation, with the two retries' backoff (>= 75 + 150 ms) in it
    expect(value(m, 'signet_push_to_signed_seconds_count')).toBe(1);
    const latency = value(m, 'signet_push_to_signed_seconds_sum');
    expect(latency).toBeGreaterThan(0.2);
    expect(latency).toBeLessThan(30);
    // key backend: one sign call per signature written, fast for a file key
    const signs = value(m, 'signet_key_sign_seconds_count', { key: 'k', outcome: 'ok' });
    expect(signs).toBeGreaterThanOrEqual(1);
    expect(value(m, 'signet_key_sign_seconds_sum', { key: 'k', outcome: 'ok' }) / signs).toBeLessThan(1);
    expect(value(m, 'signet_key_sign_seconds_bucket', { key: 'k', outcome: 'ok', le: '+Inf' })).toBe(signs);
    expect(value(m, 'signet_key_sign_seconds_count', { key: 'k', outcome: 'error' })).toBe(0);
    // registry errors: exactly the injected ones, labelled with the configured host
    expect(value(m, 'signet_registry_errors_total', { registry: proxy.host, method: 'GET', status: '503' })).toBe(1);
    expect(value(m, 'signet_registry_errors_total', { registry: proxy.host, method: 'GET', status: 'network' })).toBe(1);
    expect(value(m, 'signet_registry_errors_total', { registry: spare.host })).toBe(0);
    // queue depth, read on scrape: one series per state, nothing left (a gauge stuck above 0 times out above)
    for (const state of ['waiting', 'active', 'delayed', 'failed']) {
      expect(m.filter((s) => s.name === 'signet_queue_jobs' && s.labels['state'] === state)).toHaveLength(1);
      expect(value(m, 'signet_queue_jobs', { state })).toBe(0);
    }
  });

  it('a job refused by the registry (403): counted as a registry error and as a failed job in the queue gauge', async () => {
    proxy.faults.push({ times: Infinity, status: 403, match: (r) => (r.url ?? '').includes('/denied/app/') });
    await pushImage(registry, 'denied/app', 'v1');
    const m = await waitFor(
      'failed job in the gauge',
      async () => {
        const s = await scrape();
        return value(s, 'signet_queue_jobs', { state: 'failed' }) === 1 ? s : undefined;
      },
      30_000,
      200,
    );
    expect(value(m, 'signet_registry_errors_total', { registry: proxy.host, status: '403' })).toBeGreaterThanOrEqual(1);
    expect(value(m, 'signet_jobs_total', { outcome: 'failed' })).toBe(1);
    proxy.faults.length = 0;
  });
});

describe('health', () => {
  it('/readyz is 200 when Redis, the key and every registry answer; /healthz too; no status page without a token', async () => {
    const { status, body } = await readyz();
    expect(status).toBe(200);
    expect(body.status).toBe('ready');
    expect(body.down).toEqual([]);
    expect(body.checks.redis.ok).toBe(true);
    expect(body.checks.keys).toEqual({ k: expect.objectContaining({ ok: true }) });
    expect(body.checks.registries[proxy.host]).toMatchObject({ ok: true, status: 200 });
    expect(body.checks.registries[spare.host]).toMatchObject({ ok: true, status: 200 });
    expect((await fetch(`${signet.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${signet.url}/ui?token=anything-at-all-0123456789`)).status).toBe(404);
  });

  it('/readyz is 503 naming a stopped registry', async () => {
    await spare.stop();
    const { status, body } = await readyz();
    expect(status).toBe(503);
    expect(body.status).toBe('not ready');
    expect(body.down).toEqual([`registry:${spare.host}`]);
    expect(body.checks.registries[spare.host]).toMatchObject({ ok: false, error: expect.stringMatching(/ECONNREFUSED/) });
    expect(body.checks.registries[proxy.host].ok).toBe(true);
  });

  it('/readyz is 503 naming Redis while it is unreachable, quickly; /metrics still answers; ready again once it is back', async () => {
    await redis.kill();
    const t0 = Date.now();
    const { status, body } = await readyz();
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(status).toBe(503);
    expect(body.down).toEqual(['redis', `registry:${spare.host}`]);
    expect(body.checks.redis).toMatchObject({ ok: false, error: expect.stringMatching(/^not connected \(|Stream isn't writeable/) });
    const t1 = Date.now();
    const m = await scrape(); // the queue gauge is left out rather than hanging the scrape
    expect(Date.now() - t1).toBeLessThan(3000);
    expect(has(m, 'signet_webhook_events_total')).toBe(true);
    expect((await fetch(`${signet.url}/healthz`)).status).toBe(200);

    await redis.start();
    const back = await waitFor(
      'redis ready again',
      async () => {
        const r = await readyz();
        return r.body.checks.redis.ok ? r : undefined;
      },
      15_000,
      200,
    );
    expect(back.body.down).toEqual([`registry:${spare.host}`]);
  });
});
