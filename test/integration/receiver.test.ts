/**
 * The webhook receiver against real Redis: authentication, answers for bad input, what is
 * ignored or refused, and 503 while Redis is away (a test-owned redis-server is killed and
 * restarted). No registry is contacted here: the worker does not run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'receiver-secret-0123456789';
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));

const yaml = `
registries:
  - host: registry.example.com
  - host: harbor.example.com
integrations:
  - { name: dist, kind: distribution, secret: "${SECRET}" }
  - { name: harbor, kind: harbor, secret: "${SECRET}" }
  - { name: slow, kind: distribution, secret: "${SECRET}", rateLimit: { requestsPerSecond: 1, burst: 3 } }
keys:
  - { name: k, provider: file, path: k.pem }
rules:
  - { match: "registry.example.com/**", keys: [k] }
  - { match: "harbor.example.com/**", keys: [k] }
`;

let signet: RunningSignet;
const j = (r: Response): Promise<any> => r.json();
let dir: string;

async function writeKey(d: string): Promise<void> {
  const { generateKeyPairSync } = await import('node:crypto');
  const { writeFileSync } = await import('node:fs');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(d, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
}

function post(s: RunningSignet, integration: string, body: unknown, opts: { auth?: string | null; query?: string; type?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': opts.type ?? 'application/json' };
  if (opts.auth !== null) headers['authorization'] = opts.auth ?? `Bearer ${SECRET}`;
  return fetch(`${s.url}/hooks/${integration}${opts.query ?? ''}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'signet-recv-'));
  await writeKey(dir);
  signet = await startSignet(yaml, { baseDir: dir, roles: { receiver: true, worker: false } });
});
afterAll(async () => {
  await signet?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function queued(): Promise<any[]> {
  const jobs = await signet.service.queue!.queue.getJobs(['waiting', 'delayed', 'prioritized']);
  return jobs.map((j) => j.data);
}

describe('receiver', () => {
  it('queues a distribution push (202) only with the right secret', async () => {
    const body = fixture('distribution-push.json');
    expect((await post(signet, 'dist', body, { auth: null })).status).toBe(401);
    expect((await post(signet, 'dist', body, { auth: 'Bearer wrong-secret-wrong-secret' })).status).toBe(401);
    expect((await post(signet, 'dist', body, { auth: `Basic ${Buffer.from(`x:${SECRET}`).toString('base64')}` })).status).toBe(401);
    const res = await post(signet, 'dist', body, { type: 'application/vnd.docker.distribution.events.v1+json' });
    expect(res.status).toBe(202);
    const json = await j(res);
    expect(json.queued).toHaveLength(1);
    const jobs = await queued();
    const job = jobs.find((j) => j.event.eventId === '50676354-46ce-40b7-b4c0-bf41922e7449');
    expect(job).toMatchObject({ registry: 'registry.example.com', event: { repository: 'team-a/api', tag: 'v1.2.3', digest: D, integration: 'dist' } });
  });

  it('accepts the secret as ?token= and as a bare Authorization header (Harbor)', async () => {
    const body = fixture('distribution-push.json');
    body.events[0].target.tag = 'v-token';
    expect((await post(signet, 'dist', body, { auth: null, query: `?token=${encodeURIComponent(SECRET)}` })).status).toBe(202);
    expect((await post(signet, 'dist', body, { auth: null, query: '?token=nope' })).status).toBe(401);
    const harbor = fixture('harbor-push_artifact.json');
    expect((await post(signet, 'harbor', harbor, { auth: SECRET })).status).toBe(202);
    const ce = fixture('harbor-push_artifact-cloudevents.json');
    const r = await post(signet, 'harbor', ce, { type: 'application/cloudevents+json' });
    expect(r.status).toBe(202);
  });

  it('v2 content type (distribution 3.x) is accepted; unknown content types get 415', async () => {
    const body = fixture('distribution-push.json');
    body.events[0].target.tag = 'v-v2';
    expect((await post(signet, 'dist', body, { type: 'application/vnd.docker.distribution.events.v2+json' })).status).toBe(202);
    expect((await post(signet, 'dist', body, { type: 'text/plain' })).status).toBe(415);
  });

  it('answers 2xx with a reason for what is not an image push', async () => {
    const blob = await post(signet, 'dist', fixture('distribution-push-blob.json'));
    expect(blob.status).toBe(200);
    expect((await j(blob)).ignored[0].reason).toMatch(/blob|media type/);
    const pull = fixture('distribution-push.json');
    pull.events[0].action = 'pull';
    expect((await j(await post(signet, 'dist', pull))).ignored[0].reason).toMatch(/not a push/);
    const del = fixture('harbor-push_artifact.json');
    del.type = 'DELETE_ARTIFACT';
    const r = await post(signet, 'harbor', del);
    expect(r.status).toBe(200);
    expect((await j(r)).ignored[0].reason).toContain('DELETE_ARTIFACT');
  });

  it('refuses hosts not in registries, without queueing anything', async () => {
    const before = (await queued()).length;
    const body = fixture('distribution-push.json');
    body.events[0].request.host = 'evil.example.net';
    const r = await post(signet, 'dist', body);
    expect(r.status).toBe(200);
    expect((await j(r)).ignored[0].reason).toMatch(/not in registries/);
    expect((await queued()).length).toBe(before);
    const metrics = await (await fetch(`${signet.url}/metrics`)).text();
    expect(metrics).toMatch(/signet_webhook_events_total\{integration="dist",outcome="refused"\} 1/);
  });

  it('answers 400 for malformed JSON and for payloads of the wrong shape, 404 for unknown integrations', async () => {
    expect((await post(signet, 'dist', '{"events": [')).status).toBe(400);
    expect((await post(signet, 'dist', '')).status).toBe(400);
    expect((await post(signet, 'dist', { events: 'nope' })).status).toBe(400);
    expect((await post(signet, 'harbor', [1, 2, 3])).status).toBe(400);
    expect((await post(signet, 'nosuch', {})).status).toBe(404);
  });

  it('answers 413 for bodies over 1 MiB', async () => {
    const big = JSON.stringify({ events: [], pad: 'x'.repeat(1024 * 1024 + 10) });
    expect((await post(signet, 'dist', big)).status).toBe(413);
  });

  it('signature pushes (sha256-<hex>.sig) are ignored as signer output', async () => {
    const body = fixture('distribution-push.json');
    body.events[0].target.tag = `sha256-${D.slice(7)}.sig`;
    body.events[0].target.mediaType = 'application/vnd.oci.image.manifest.v1+json';
    const r = await post(signet, 'dist', body);
    expect(r.status).toBe(200);
    expect((await j(r)).ignored[0].reason).toMatch(/signature/);
  });
});

describe('receiver limits and log hygiene', () => {
  it('limits the request rate per integration: 429 with Retry-After past the burst; unauthenticated calls spend none of it', async () => {
    const body = fixture('distribution-push-blob.json');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await post(signet, 'slow', body, { auth: i < 2 ? null : undefined })).status);
    expect(statuses.slice(0, 2)).toEqual([401, 401]);
    expect(statuses.slice(2, 5)).toEqual([200, 200, 200]);
    expect(statuses.slice(5)).toEqual([429]);
    const r = await post(signet, 'slow', body);
    expect(r.headers.get('retry-after')).toBe('1');
    // other integrations are not affected
    expect((await post(signet, 'dist', body)).status).toBe(200);
  });

  it('no secret or token reaches a log line', async () => {
    await post(signet, 'dist', fixture('distribution-push.json'), { auth: null, query: '?token=wrong-token-aaaaaaaaaaaa' });
    await post(signet, 'dist', fixture('distribution-push.json'), { auth: 'Bearer wrong-bearer-bbbbbbbbbbbb' });
    const text = JSON.stringify(signet.logs);
    expect(signet.logs.some((l) => l.msg === 'webhook rejected: bad or missing secret')).toBe(true);
    for (const secret of [SECRET, 'wrong-token-aaaaaaaaaaaa', 'wrong-bearer-bbbbbbbbbbbb']) expect(text).not.toContain(secret);
  });
});

describe('receiver under hostile input', () => {
  it('deeply nested JSON, unknown kinds of payload and odd strings: 4xx or 2xx, never 5xx', async () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    expect((await post(signet, 'dist', deep)).status).toBe(400);
    const deepObj = `{"events":[${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}]}`;
    expect((await post(signet, 'dist', deepObj)).status).toBe(400);
    const traversal = fixture('distribution-push.json');
    traversal.events[0].target.repository = '../../v2/_catalog';
    const r = await post(signet, 'dist', traversal);
    expect(r.status).toBe(200);
    expect((await j(r)).ignored[0].reason).toBe('invalid repository name');
    const badDigest = fixture('harbor-push_artifact.json');
    badDigest.event_data.resources[0].digest = 'sha256:../../x';
    expect((await j(await post(signet, 'harbor', badDigest))).ignored[0].reason).toBe('invalid digest');
  });

  it('fuzzed bodies (fast-check) over HTTP: never a 5xx, never a crash', async () => {
    const fc = (await import('fast-check')).default;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('dist', 'harbor'),
        fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc.string(),
          fc
            .record({
              events: fc.array(
                fc.record({
                  action: fc.constant('push'),
                  target: fc.dictionary(fc.constantFrom('mediaType', 'digest', 'repository', 'tag', 'url'), fc.string()),
                  request: fc.record({ host: fc.constantFrom('registry.example.com', 'evil.example') }),
                }),
              ),
            })
            .map((v) => JSON.stringify(v)),
        ),
        async (integration, body) => {
          const res = await post(signet, integration, body);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          await res.arrayBuffer();
          expect(res.status).toBeLessThan(500);
        },
      ),
      { numRuns: 300 },
    );
    expect((await fetch(`${signet.url}/healthz`)).status).toBe(200);
    expect([...statuses.keys()].every((s) => [200, 202, 400].includes(s))).toBe(true);
  });
});

describe('receiver while Redis is away', () => {
  let redis: ChildProcess | undefined;
  let port: number;
  let redisDir: string;
  let s: RunningSignet;

  async function startRedis(): Promise<void> {
    redis = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', redisDir],
      { stdio: 'ignore' },
    );
    await waitFor('redis up', async () => {
      const { Redis } = await import('ioredis');
      const c = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } finally {
        c.disconnect();
      }
    });
  }

  beforeAll(async () => {
    port = await freePort();
    redisDir = mkdtempSync(path.join(tmpdir(), 'signet-redis-'));
    await startRedis();
    s = await startSignet(yaml, { baseDir: dir, roles: { receiver: true, worker: false }, redisUrl: `redis://127.0.0.1:${port}` });
  });
  afterAll(async () => {
    await s?.stop();
    redis?.kill('SIGKILL');
    rmSync(redisDir, { recursive: true, force: true });
  });

  it('answers 503 (so the registry retries) while Redis is down, and recovers by itself; queued events survive', async () => {
    const body = fixture('distribution-push.json');
    const accepted: string[] = [];
    for (const tag of ['before-1', 'before-2', 'before-3']) {
      body.events[0].target.tag = tag;
      const r = await post(s, 'dist', body);
      expect(r.status).toBe(202);
      accepted.push(...(await j(r)).queued.map((q: { job: string }) => q.job));
    }
    redis!.kill('SIGKILL');
    await new Promise((r) => redis!.once('exit', r));
    const down = await post(s, 'dist', body);
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBeTruthy();
    await startRedis();
    await waitFor('receiver recovered', async () => (await post(s, 'dist', body)).status === 202, 20_000, 250);
    // every event acknowledged with 202 before the crash is still queued (appendonly)
    const waiting = await s.service.queue!.queue.getJobs(['waiting']);
    const ids = waiting.map((jb) => jb.id);
    for (const id of accepted) expect(ids).toContain(id);
  });
});
