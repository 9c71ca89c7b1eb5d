/**
 * Signing status per (digest, rule, key) through the real pipeline: pending while a job runs,
 * signed with both keys, failed with code and reason, skipped with reason; read over
 * GET /api/v1/images/{ref}/status (by tag, which is resolved first, and by digest) and with
 * `signet status`.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { tempDir } from '../helpers/cosign.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { pushImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { REDIS_URL, startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
const API_TOKEN = 'status-api-token-0123456789';

beforeAll(async () => {
  tmp = tempDir();
  for (const k of ['a', 'b']) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(path.join(tmp.dir, `${k}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  }
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  signet = await startSignet(
    `
server: { apiToken: "${API_TOKEN}" }
worker: { concurrency: 4, attempts: 2, backoffMs: 100 }
registries: [{ host: "${proxy.host}", insecure: true }]
keys: [{ name: a, provider: file, path: a.pem }, { name: b, provider: file, path: b.pem }]
rules:
  - { match: "${proxy.host}/team/**", keys: [a, b] }
  - { match: "${proxy.host}/tagged/**", keys: [a], tags: { include: ["v*"] } }
`,
    { baseDir: tmp.dir },
  );
});
afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  await registry?.stop();
  tmp?.remove();
});

const enqueue = (repository: string, tag: string) =>
  signet.service.queue!.enqueue({ event: { integration: 't', host: proxy.host, repository, tag, receivedAt: new Date().toISOString() }, registry: proxy.host, requestId: `st-${repository}` });
const api = async (ref: string) => {
  const res = await fetch(`${signet.url}/api/v1/images/${ref}/status`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
  return { status: res.status, body: (await res.json()) as any };
};

describe('signing status', () => {
  it('pending while in flight, then signed per key; by tag and by digest', async () => {
    const img = await pushImage(registry, 'team/app', 'v1');
    proxy.faults.push({ times: 1, delayMs: 1500, match: (r) => r.method === 'PUT' && (r.url ?? '').includes('/team/app/manifests/sha256-') });
    await enqueue('team/app', 'v1');
    const pending = await waitFor('pending status', async () => {
      const { body } = await api(`${proxy.host}/team/app:v1`);
      return body.statuses?.find((s: any) => s.state === 'pending') ? body : undefined;
    });
    expect(pending.image.digest).toBe(img.digest);
    const done = await waitFor('signed status', async () => {
      const { body } = await api(`${proxy.host}/team/app:v1`);
      return body.statuses?.filter((s: any) => s.state === 'signed').length === 3 ? body : undefined;
    });
    expect(done.rule).toEqual({ index: 0, keys: ['a', 'b'] });
    const perKey = done.statuses.filter((s: any) => s.key);
    expect(perKey.map((s: any) => [s.key, s.state, s.digest, s.rule])).toEqual([
      ['a', 'signed', img.digest, 0],
      ['b', 'signed', img.digest, 0],
    ]);
    expect(perKey[0].reason).toBe(`signed as ${proxy.host}/team/app:v1`);
    expect(Date.parse(perKey[0].updatedAt)).toBeGreaterThanOrEqual(Date.parse(perKey[0].createdAt));
    // kept for status.retentionDays (default 30)
    const ttl = await signet.runtime.lockRedis.ttl(`${signet.prefix}:status:${proxy.host}/team/app@${img.digest}`);
    expect(ttl).toBeGreaterThan(29 * 86400);
    expect(ttl).toBeLessThanOrEqual(30 * 86400);
    const byDigest = await api(`${proxy.host}/team/app@${img.digest}`);
    expect(byDigest.body.statuses.filter((s: any) => s.key).map((s: any) => s.key)).toEqual(['a', 'b']);
  });

  it('failed with its code and reason; skipped with its reason; unknown images and bad refs', async () => {
    await pushImage(registry, 'team/denied', 'v1');
    proxy.faults.push({ times: Infinity, status: 403, match: (r) => (r.url ?? '').includes('/team/denied/') });
    await enqueue('team/denied', 'v1');
    // (the API resolves the tag in the registry, which refuses everything for now: read the store)
    const failed = await waitFor('failed status', async () =>
      (await signet.runtime.status.get(`${proxy.host}/team/denied`, undefined, 'v1')).find((s) => s.state === 'failed'),
    );
    proxy.faults.length = 0;
    expect((await api(`${proxy.host}/team/denied:v1`)).body.statuses.find((s: any) => s.state === 'failed').code).toBe('REGISTRY_DENIED');
    expect(failed).toMatchObject({ code: 'REGISTRY_DENIED', repository: `${proxy.host}/team/denied`, tag: 'v1' });

    await pushImage(registry, 'tagged/app', 'latest');
    await enqueue('tagged/app', 'latest');
    const skipped = await waitFor('skipped status', async () => (await api(`${proxy.host}/tagged/app:latest`)).body.statuses?.find((s: any) => s.state === 'skipped'));
    expect(skipped.reason).toMatch(/not in rule's tags.include/);

    expect((await api(`${proxy.host}/team/nothing:v1`)).status).toBe(404);
    expect((await api(`${proxy.host}/Team/x:v1`)).status).toBe(400);
    expect((await api(`${proxy.host}/team/x%2F..%2Fy:v1`)).status).toBe(400);
    const none = await pushImage(registry, 'other/app', 'v1');
    const other = await api(`${proxy.host}/other/app@${none.digest}`);
    expect(other.body).toMatchObject({ rule: { none: `no rule matches ${proxy.host}/other/app` }, statuses: [] });
  });

  it('signet status IMAGE_REF prints the same', async () => {
    const cfg = path.join(tmp.dir, 'status.yaml');
    writeFileSync(
      cfg,
      `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }
registries: [{ host: "${proxy.host}", insecure: true }]
keys: [{ name: a, provider: file, path: a.pem }, { name: b, provider: file, path: b.pem }]
rules: [{ match: "${proxy.host}/team/**", keys: [a, b] }]
`,
    );
    const lines: string[] = [];
    expect(await main(['status', `${proxy.host}/team/app:v1`, '-c', cfg], (l) => lines.push(l), (l) => lines.push(l))).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/rule 0: keys a, b/);
    expect(text).toMatch(/key a: signed \(signed as /);
    expect(text).toMatch(/key b: signed/);
    const j: string[] = [];
    await main(['status', `${proxy.host}/team/denied:v1`, '--json', '-c', cfg], (l) => j.push(l), (l) => j.push(l));
    expect(JSON.parse(j.join('\n')).statuses.find((s: any) => s.state === 'failed').code).toBe('REGISTRY_DENIED');
  });
});
