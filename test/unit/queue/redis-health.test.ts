/**
 * What would lose data, checked against real redis-server processes (src/queue/redis-health.ts):
 * an evicting maxmemory-policy refuses startup (also with CONFIG disabled, through INFO) and makes
 * /readyz 503; persistence off is a warning; FLUSHALL and a restart without persistence are
 * reported as lost data (/readyz, log, metric); the accepted-jobs counter going back too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { Readiness } from '../../../src/health/readiness.js';
import { createLogger } from '../../../src/log.js';
import { createRedis } from '../../../src/queue/connection.js';
import { RedisHealth } from '../../../src/queue/redis-health.js';
import { createRuntime } from '../../../src/runtime.js';
import { freePort } from '../../helpers/ports.js';
import { redisNode, type RedisNode } from '../../helpers/redis-topology.js';
import { tempKeyDir } from '../../helpers/signet.js';

const root = mkdtempSync(path.join(tmpdir(), 'signet-health-'));
const nodes: RedisNode[] = [];
afterAll(async () => {
  for (const n of nodes) await n.kill();
  rmSync(root, { recursive: true, force: true });
});

async function server(args: string[]): Promise<RedisNode> {
  const port = await freePort();
  const n = redisNode(port, path.join(root, String(port)), args);
  await n.start();
  nodes.push(n);
  return n;
}

function capture() {
  const lines: Record<string, any>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _e, cb) {
        for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
        cb();
      },
    }),
  });
  return { logger, lines };
}

const AOF = ['--appendonly', 'yes', '--save', ''];
const NO_PERSISTENCE = ['--appendonly', 'no', '--save', ''];

function health(n: RedisNode, opts: { embedded?: boolean } = {}) {
  const { logger, lines } = capture();
  const client = createRedis(`redis://127.0.0.1:${n.port}`, 'producer');
  let losses = 0;
  const h = new RedisHealth(client, { prefix: 'signet-health', logger, onDataLoss: () => losses++, ...opts });
  return { h, client, lines, losses: () => losses };
}

describe('Redis checks', () => {
  it('maxmemory-policy allkeys-lru: signet refuses to start (REDIS_MISCONFIGURED, naming the setting)', async () => {
    const n = await server([...AOF, '--maxmemory-policy', 'allkeys-lru']);
    const tmp = tempKeyDir();
    try {
      const loaded = parseConfigText(
        `redis: { url: "redis://127.0.0.1:${n.port}" }\nregistries: [{ host: "127.0.0.1:5000", insecure: true }]\nkeys: [{ name: k, provider: file, path: k.pem }]\n`,
        'evicting.yaml',
        {},
      );
      const err = await createRuntime({ ...loaded, baseDir: tmp.dir }, { logger: capture().logger }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'REDIS_MISCONFIGURED' });
      expect((err as Error).message).toContain('maxmemory-policy allkeys-lru');
      expect((err as Error).message).toContain('noeviction');
    } finally {
      tmp.remove();
    }
  });

  it('with CONFIG disabled (managed Redis), the policy is read from INFO memory', async () => {
    const n = await server([...AOF, '--maxmemory-policy', 'volatile-lru', '--rename-command', 'CONFIG', '""']);
    const { h, client } = health(n);
    try {
      await expect(h.startup()).rejects.toMatchObject({ code: 'REDIS_MISCONFIGURED', message: expect.stringContaining('maxmemory-policy volatile-lru') });
    } finally {
      client.disconnect();
    }
  });

  it('persistence off is a loud warning (info only in the embedded default); AOF is not', async () => {
    const off = await server(NO_PERSISTENCE);
    const a = health(off);
    const b = health(off, { embedded: true });
    const on = await server(AOF);
    const c = health(on);
    try {
      for (const x of [a, b, c]) {
        await x.h.startup();
        x.h.reportStartup();
      }
      const warn = (lines: Record<string, any>[], level: number) => lines.filter((l) => l.level === level && /persistence off/.test(l.msg));
      expect(warn(a.lines, 40)).toHaveLength(1);
      expect(warn(b.lines, 40)).toHaveLength(0);
      expect(warn(b.lines, 30)).toHaveLength(1);
      expect(c.lines.filter((l) => /persistence off/.test(l.msg))).toEqual([]);
      expect((await a.h.check()).warnings[0]).toContain('appendonly yes');
      expect((await c.h.check()).warnings).toEqual([]);
    } finally {
      for (const x of [a, b, c]) x.client.disconnect();
    }
  });

  it('FLUSHALL while signet runs: /readyz reports that Redis lost its data, once in the log and the metric', async () => {
    const n = await server(AOF);
    const { h, client, lines, losses } = health(n);
    try {
      await h.startup();
      expect((await h.check()).dataLoss).toBeUndefined();
      const admin = n.client();
      await admin.flushall();
      admin.disconnect();
      const readiness = new Readiness({ redis: client, redisHealth: h, keys: new Map(), registries: { all: [] } });
      const report = await readiness.check();
      expect(report.status).toBe('ready');
      expect(report.checks.redis.dataLoss?.message).toMatch(/^Redis lost its data; run `signet backfill`/);
      expect(losses()).toBe(1);
      expect(lines.filter((l) => l.level === 50 && /Redis lost its data/.test(l.msg))).toHaveLength(1);
      // the marker is written again: no new detection until Redis loses it again
      await h.check();
      expect(losses()).toBe(1);
    } finally {
      client.disconnect();
    }
  });

  it('a restart with persistence off is detected once Redis answers again', async () => {
    const n = await server(NO_PERSISTENCE);
    const { h, client, losses } = health(n);
    try {
      await h.startup();
      await n.kill();
      await n.start();
      const report = await (async () => {
        for (let i = 0; i < 100; i++) {
          const r = await h.check().catch(() => undefined);
          if (r) return r;
          await new Promise((res) => setTimeout(res, 100));
        }
        throw new Error('Redis never answered again');
      })();
      expect(report.dataLoss?.message).toContain('was gone');
      expect(losses()).toBe(1);
    } finally {
      client.disconnect();
    }
  });

  it('the accepted-jobs counter going back is lost data too', async () => {
    const n = await server(AOF);
    const { h, client, losses } = health(n);
    try {
      h.noteAccepted(5, 5);
      h.noteAccepted(9, 4);
      expect(losses()).toBe(0);
      h.noteAccepted(2, 2);
      expect(losses()).toBe(1);
      expect(h.dataLoss?.message).toContain('counter went back from 9 to 0');
    } finally {
      client.disconnect();
    }
  });

  it('a policy changed while signet runs makes /readyz 503 with REDIS_MISCONFIGURED', async () => {
    const n = await server(AOF);
    const { h, client } = health(n);
    try {
      await h.startup();
      const admin = n.client();
      await admin.config('SET', 'maxmemory-policy', 'allkeys-random');
      admin.disconnect();
      const report = await new Readiness({ redis: client, redisHealth: h, keys: new Map(), registries: { all: [] } }).check();
      expect(report.status).toBe('not ready');
      expect(report.down).toEqual(['redis']);
      expect(report.checks.redis.error).toContain('maxmemory-policy allkeys-random');
    } finally {
      client.disconnect();
    }
  });
});
