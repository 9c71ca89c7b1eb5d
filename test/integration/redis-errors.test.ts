/**
 * Redis outages at the edges (issue 19 item 8, src/queue/redis-errors.ts): a test-owned
 * redis-server is killed under a running receiver; the webhook is answered 503 and logged as
 * REDIS_UNAVAILABLE (not "INTERNAL: Stream isn't writeable..."), the status API answers 503
 * REDIS_UNAVAILABLE, the status page renders with the headline "Redis unavailable" (503, not a
 * 500), and the CLI's status and jobs verbs exit 1 with REDIS_UNAVAILABLE. The mapping itself is
 * checked on the errors a real ioredis client raises against the dead port.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { isSignetError } from '../../src/errors.js';
import { asRedisUnavailable, isRedisUnavailable } from '../../src/queue/redis-errors.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';
import { startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const PAGE_TOKEN = 'redis-down-page-token-0123456789';
const API_TOKEN = 'redis-down-api-token-0123456789';
const HOOK_SECRET = 'redis-down-hook-secret-0123456789';
const HOST = 'registry.example.com';
let redis: OwnRedis;
let signet: RunningSignet;
let tmp: KeyDir;

beforeAll(async () => {
  tmp = tempKeyDir();
  redis = await ownRedis();
  signet = await startSignet(
    `
server: { statusPageToken: "${PAGE_TOKEN}", apiToken: "${API_TOKEN}" }
registries: [{ host: "${HOST}" }]
integrations: [{ name: dist, kind: distribution, secret: "${HOOK_SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${HOST}/**", keys: [k] }]
`,
    { baseDir: tmp.dir, roles: { receiver: true, worker: false }, redisUrl: redis.url },
  );
});
afterAll(async () => {
  await signet?.stop();
  await redis?.stop();
  tmp?.remove();
});

const digest = `sha256:${'cd'.repeat(32)}`;
const hook = () =>
  fetch(`${signet.url}/hooks/dist`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${HOOK_SECRET}` },
    body: JSON.stringify({
      events: [
        {
          id: 'e1',
          action: 'push',
          target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1, repository: 'team/app', tag: 'v1' },
          request: { host: HOST },
        },
      ],
    }),
  });

describe('Redis unavailable at the edges', () => {
  it('the mapping: what ioredis raises against a dead Redis becomes REDIS_UNAVAILABLE; other errors are left alone', async () => {
    await redis.kill();
    try {
      const failFast = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null });
      failFast.on('error', () => undefined);
      const err = await failFast.get('x').then(
        () => undefined,
        (e: unknown) => e,
      );
      failFast.disconnect();
      expect(String((err as Error).message)).toMatch(/Stream isn't writeable/);
      expect(isRedisUnavailable(err)).toBe(true);
      const mapped = asRedisUnavailable(err, 'status');
      expect(isSignetError(mapped) && mapped.code).toBe('REDIS_UNAVAILABLE');
      expect((mapped as Error).message).toMatch(/^status: Redis is unavailable \(Stream isn't writeable/);
      const bug = new TypeError('x is not a function');
      expect(asRedisUnavailable(bug)).toBe(bug);
    } finally {
      await redis.start();
    }
  });

  it('receiver, status API, status page and CLI say REDIS_UNAVAILABLE (and the page a headline) while it is away', async () => {
    // (the receiver's connection comes back by itself after the first test's restart)
    await waitFor('webhook accepted', async () => (await hook()).status === 202, 20_000, 200);
    const cfg = path.join(tmp.dir, 'cli.yaml');
    writeFileSync(
      cfg,
      `redis: { url: "${redis.url}", prefix: ${signet.prefix} }\nregistries: [{ host: "${HOST}" }]\nkeys: [{ name: k, provider: file, path: k.pem }]\nrules: [{ match: "${HOST}/**", keys: [k] }]\n`,
    );
    await redis.kill();
    try {
      // the webhook: 503 with Retry-After, and the log line names the code
      const res = await hook();
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      const line = await waitFor('queue unavailable log line', () => signet.logs.find((l) => String(l.msg).startsWith('queue unavailable')));
      expect(line.err).toMatch(/^REDIS_UNAVAILABLE: queue: Redis is unavailable \(/);
      expect(signet.logs.some((l) => String(l.err ?? '').startsWith('INTERNAL'))).toBe(false);

      const api = await fetch(`${signet.url}/api/v1/images/${HOST}/team/app@${digest}/status`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
      expect(api.status).toBe(503);
      expect(((await api.json()) as { code: string }).code).toBe('REDIS_UNAVAILABLE');

      const page = await fetch(`${signet.url}/ui?token=${PAGE_TOKEN}`);
      expect(page.status).toBe(503);
      const html = await page.text();
      expect(html).toContain('<div class="headline" role="alert" id="headline"><h2>Redis unavailable</h2><p>REDIS_UNAVAILABLE: ');
      expect(html).not.toMatch(/INTERNAL/);
      expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
      // as a browser shows it (test-artifacts/status-page-redis-down.png)
      const profile = path.join(tmp.dir, 'chromium-profile');
      const browser = await launchChromium(profile, { width: 1000, height: 700 });
      try {
        const tab = browser.pages()[0] ?? (await browser.newPage());
        expect((await tab.goto(`${signet.url}/ui?token=${PAGE_TOKEN}`))!.status()).toBe(503);
        expect(await tab.textContent('#headline h2')).toBe('Redis unavailable');
        const artifacts = path.resolve(import.meta.dirname, '../../test-artifacts');
        mkdirSync(artifacts, { recursive: true });
        await tab.screenshot({ path: path.join(artifacts, 'status-page-redis-down.png') });
      } finally {
        await browser.close();
      }

      for (const args of [
        ['status', `${HOST}/team/app@${digest}`],
        ['jobs', 'failed'],
      ]) {
        const out: string[] = [];
        const code = await main(
          [...args, '-c', cfg],
          (l) => out.push(l),
          (l) => out.push(l),
        );
        expect(code, args.join(' ')).toBe(1);
        expect(out.join('\n')).toMatch(/^signet: REDIS_UNAVAILABLE: /);
      }
    } finally {
      await redis.start();
    }
    // back: the page answers 200 without the headline
    const back = await waitFor(
      'page without headline',
      async () => {
        const r = await fetch(`${signet.url}/ui?token=${PAGE_TOKEN}`);
        return r.status === 200 ? r.text() : undefined;
      },
      20_000,
      200,
    );
    expect(back).not.toContain('Redis unavailable');
  });
});
