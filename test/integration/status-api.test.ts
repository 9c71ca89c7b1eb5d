/**
 * GET /api/v1/images/{ref}/status as an outsider would try it (issue 14, item 7): off without
 * server.apiToken; with it, refused without the bearer token; every error a JSON {error, code}
 * with a status of its own (no 500 for what is expected: a refusing or unreachable registry, an
 * unknown image); no registry request for a repository no rule covers; 503 quickly while Redis
 * is away (a test-owned redis-server is killed), and answers again once it is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { pushImage } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const TOKEN = 'api-token-0123456789abcdef';
let registry: RunningRegistry;
let proxy: FaultProxy;
let redis: OwnRedis;
let signet: RunningSignet;
let tmp: KeyDir;
let dead: string;

const yaml = (extra: string) => `
server: { ${extra} }
registries: [{ host: "${proxy.host}", insecure: true }, { host: "${dead}", insecure: true, timeoutMs: 1000 }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${proxy.host}/team/**", keys: [k] }, { match: "${dead}/**", keys: [k] }]
`;

async function api(s: RunningSignet, ref: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }, query = '') {
  const res = await fetch(`${s.url}/api/v1/images/${ref}/status${query}`, { headers, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}

beforeAll(async () => {
  tmp = tempKeyDir();
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  dead = `127.0.0.1:${await freePort()}`;
  redis = await ownRedis();
  signet = await startSignet(yaml(`apiToken: "${TOKEN}"`), { baseDir: tmp.dir, roles: { receiver: true, worker: false }, redisUrl: redis.url });
});
afterAll(async () => {
  await signet?.stop();
  await redis?.stop();
  await proxy?.close();
  await registry?.stop();
  tmp?.remove();
});

describe('status API', () => {
  it('is off (404, code API_NOT_FOUND) without server.apiToken', async () => {
    const off = await startSignet(yaml(''), { baseDir: tmp.dir, roles: { receiver: true, worker: false }, redisUrl: redis.url });
    try {
      const r = await api(off, `${proxy.host}/team/app:v1`);
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ error: 'the API is off: set server.apiToken', code: 'API_NOT_FOUND' });
      expect(proxy.log.filter((l) => l.includes('/team/app/'))).toEqual([]);
    } finally {
      await off.stop();
    }
  });

  it('wants Authorization: Bearer <apiToken>: none, a wrong one or a query token get 401 API_UNAUTHORIZED, before the registry is asked', async () => {
    const img = await pushImage(registry, 'team/app', 'v1');
    const before = proxy.log.length;
    for (const [headers, query] of [
      [{}, ''],
      [{ authorization: 'Bearer wrong-token-0123456789' }, ''],
      [{ authorization: TOKEN }, ''],
      [{}, `?token=${TOKEN}`],
    ] as const) {
      const r = await api(signet, `${proxy.host}/team/app:v1`, headers, query);
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ error: 'Authorization: Bearer <server.apiToken> is required', code: 'API_UNAUTHORIZED' });
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="signet api"');
    }
    expect(proxy.log.length).toBe(before);
    const ok = await api(signet, `${proxy.host}/team/app:v1`);
    expect(ok.status).toBe(200);
    expect(ok.body.image.digest).toBe(img.digest);
  });

  it('every error is {error, code} with its own status; a refusing or unreachable registry is 502 or 503, never 500', async () => {
    const cases: [string, number, string][] = [
      [`${proxy.host}/Team/x:v1`, 400, 'INVALID_REFERENCE'],
      ['elsewhere.example.com/team/x:v1', 404, 'REGISTRY_NOT_CONFIGURED'],
      [`${proxy.host}/team/nothing:v1`, 404, 'MANIFEST_NOT_FOUND'],
      [`${dead}/team/app:v1`, 503, 'REGISTRY_UNAVAILABLE'],
    ];
    for (const [ref, status, code] of cases) {
      const r = await api(signet, ref);
      expect([r.status, r.body.code], ref).toEqual([status, code]);
      expect(typeof r.body.error).toBe('string');
    }
    proxy.faults.push({ times: Infinity, status: 403, match: (r) => (r.url ?? '').includes('/team/denied/') });
    try {
      const denied = await api(signet, `${proxy.host}/team/denied:v1`);
      expect([denied.status, denied.body.code]).toEqual([502, 'REGISTRY_DENIED']);
    } finally {
      proxy.faults.length = 0;
    }
    const route = await fetch(`${signet.url}/api/v1/images/${proxy.host}/team/app:v1/other`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(route.status).toBe(404);
    expect(((await route.json()) as any).code).toBe('API_NOT_FOUND');
  });

  it('a repository no rule covers is answered from signet’s records: its tag is not looked up in the registry', async () => {
    await pushImage(registry, 'private/secret', 'v1');
    const before = proxy.log.length;
    const r = await api(signet, `${proxy.host}/private/secret:v1`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      image: { reference: `${proxy.host}/private/secret:v1`, repository: `${proxy.host}/private/secret`, tag: 'v1' },
      rule: { none: `no rule matches ${proxy.host}/private/secret` },
      statuses: [],
    });
    expect(proxy.log.slice(before)).toEqual([]);
  });

  it('answers 503 REDIS_UNAVAILABLE quickly while Redis is away, and answers again once it is back', async () => {
    const img = await pushImage(registry, 'team/redis', 'v1');
    await signet.runtime.status.record([{ state: 'signed', repository: `${proxy.host}/team/redis`, digest: img.digest, rule: 0, key: 'k' }]);
    const ref = `${proxy.host}/team/redis@${img.digest}`;
    expect((await api(signet, ref)).body.statuses).toHaveLength(1);
    await redis.kill();
    try {
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now();
        const r = await api(signet, ref);
        expect(Date.now() - t0).toBeLessThan(5000);
        expect([r.status, r.body.code]).toEqual([503, 'REDIS_UNAVAILABLE']);
      }
    } finally {
      await redis.start();
    }
    const back = await waitFor(
      'status API answers again',
      async () => {
        const r = await api(signet, ref);
        return r.status === 200 ? r : undefined;
      },
      20_000,
      200,
    );
    expect(back.body.statuses.map((s: any) => s.state)).toEqual(['signed']);
  });
});
