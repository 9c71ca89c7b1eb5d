/**
 * Concurrent webhooks against the real receiver and a real Redis: their jobs reach Redis
 * together (one socket write per event-loop turn), yet each request answers 202 only once Redis
 * has its own jobs, with its own job ids; while Redis is away every one of them answers 503 and
 * none reports anything queued (a test-owned redis-server is killed).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/queue/connection.js';
import { SignQueue } from '../../src/queue/sign-queue.js';
import { tempDir } from '../helpers/cosign.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';
import { REDIS_URL, startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'batching-secret-0123456789';
const fixture = (): any => JSON.parse(readFileSync(new URL('../fixtures/webhooks/distribution-push.json', import.meta.url), 'utf8'));
const yaml = `
registries: [{ host: registry.example.com }]
integrations: [{ name: dist, kind: distribution, secret: "${SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "registry.example.com/**", keys: [k] }]
`;

/** A push envelope with one event per tag. */
function push(tags: string[]): string {
  const base = fixture();
  const events = tags.map((tag, i) => {
    const e = structuredClone(base.events[0]);
    e.id = `ev-${tag}-${i}`;
    e.target.tag = tag;
    return e;
  });
  return JSON.stringify({ events });
}

const post = (s: RunningSignet, body: string, requestId?: string) =>
  fetch(`${s.url}/hooks/dist`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}`, ...(requestId ? { 'x-request-id': requestId } : {}) },
    body,
  });

let tmp: { dir: string; remove: () => void };
beforeAll(() => {
  tmp = tempDir();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
});
afterAll(() => tmp?.remove());

describe('concurrent webhooks', () => {
  let signet: RunningSignet;
  let readerConnection: ReturnType<typeof createRedis>;
  let reader: SignQueue;
  beforeAll(async () => {
    signet = await startSignet(yaml, { baseDir: tmp.dir, roles: { receiver: true, worker: false } });
    // reads through a connection of its own: what it sees is what Redis has
    readerConnection = createRedis(REDIS_URL, 'producer');
    reader = new SignQueue(readerConnection, signet.prefix, signet.runtime.config.worker);
  });
  afterAll(async () => {
    await reader?.close();
    readerConnection?.disconnect();
    await signet?.stop();
  });

  it('each 202 comes once Redis has every job of that request, with that request’s own job ids', async () => {
    const requests = Array.from({ length: 60 }, (_, r) => Array.from({ length: 1 + (r % 3) }, (_, k) => `c${r}-${k}`));
    const seen = await Promise.all(
      requests.map(async (tags, r) => {
        const res = await post(signet, push(tags), `req-${r}`);
        const json = (await res.json()) as { requestId: string; queued: { ref: string; job: string }[] };
        const jobs = await Promise.all(json.queued.map((q) => reader.queue.getJob(q.job)));
        return {
          status: res.status,
          requestId: json.requestId,
          refs: json.queued.map((q) => q.ref.split('@')[0]!.split(':').pop()),
          tags: jobs.map((j) => j?.data.event.tag),
          requestIds: jobs.map((j) => j?.data.requestId),
        };
      }),
    );
    seen.forEach((s, r) => {
      expect(s.status).toBe(202);
      expect(s.requestId).toBe(`req-${r}`);
      expect(s.refs).toEqual(requests[r]);
      expect(s.tags).toEqual(requests[r]);
      expect(s.requestIds).toEqual(requests[r]!.map(() => `req-${r}`));
    });
    expect(await reader.queue.getWaitingCount()).toBe(requests.flat().length);
  });

  it('concurrent requests for the same image share one job', async () => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => post(signet, push(['same'])).then((r) => r.json() as Promise<{ queued: { job: string }[] }>)),
    );
    expect(new Set(answers.map((a) => a.queued[0]!.job)).size).toBe(1);
  });
});

describe('concurrent webhooks while Redis is away', () => {
  let redis: OwnRedis;
  let signet: RunningSignet;
  beforeAll(async () => {
    redis = await ownRedis();
    signet = await startSignet(yaml, { baseDir: tmp.dir, roles: { receiver: true, worker: false }, redisUrl: redis.url });
  });
  afterAll(async () => {
    await signet?.stop();
    await redis?.stop();
  });

  it('every concurrent request answers 503 with Retry-After and reports nothing queued; the retry is accepted', async () => {
    expect((await post(signet, push(['before']))).status).toBe(202);
    await redis.kill();
    const answers = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const res = await post(signet, push([`down-${i}`, `down-${i}-b`]));
        return { status: res.status, retryAfter: res.headers.get('retry-after'), json: (await res.json()) as Record<string, unknown> };
      }),
    );
    for (const a of answers) expect(a).toEqual({ status: 503, retryAfter: '5', json: { error: 'queue unavailable, retry later', code: 'REDIS_UNAVAILABLE' } });
    const m = await signet.metrics.webhookEvents.get();
    const unavailable = m.values.filter((v) => v.labels.outcome === 'unavailable').reduce((n, v) => n + v.value, 0);
    expect(unavailable).toBe(24);
    expect(
      signet.logs
        .filter((l) => l.msg === 'push queued')
        .flatMap((l) => l.queued as string[])
        .some((ref) => ref.includes('down-')),
    ).toBe(false);
    // the registry's retry, once Redis is back, is accepted
    await redis.start();
    await waitFor('receiver recovered', async () => (await post(signet, push(['down-0', 'down-0-b']))).status === 202, 20_000, 250);
  });
});
