/**
 * The WAIT acknowledgement (src/queue/ack.ts) on a real master and replica: with the replica in
 * sync, jobs are acknowledged once it has them; with it gone, `auto` keeps asking for it for a
 * while (a replica being promoted looks exactly like that) and the enqueue is refused
 * (REDIS_NOT_REPLICATED, the receiver's 503); more replicas asked than exist: refused; a node with
 * no replica and `auto`: the master alone. With Sentinel, after a failover: the demoted master
 * the sentinels could promote is waited for until it is in sync (refused meanwhile), never
 * acknowledged past. Also: connection checks that name the topology.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisSchema } from '../../../src/config/redis.js';
import { Acknowledger } from '../../../src/queue/ack.js';
import { checkRedis, createRedis, sentinelReplicas, whenReady } from '../../../src/queue/connection.js';
import { SignQueue } from '../../../src/queue/sign-queue.js';
import { freePort } from '../../helpers/ports.js';
import { redisNode, startSentinel, type RedisNode } from '../../helpers/redis-topology.js';
import { queueWorkerConfig, signJob } from '../../helpers/sign-jobs.js';
import { uniquePrefix } from '../../helpers/signet.js';

const root = mkdtempSync(path.join(tmpdir(), 'signet-ack-'));
let master: RedisNode;
let replica: RedisNode;
let alone: RedisNode;

beforeAll(async () => {
  const [m, r, a] = [await freePort(), await freePort(), await freePort()];
  master = redisNode(m, path.join(root, 'm'), ['--appendonly', 'yes', '--save', '']);
  replica = redisNode(r, path.join(root, 'r'), ['--appendonly', 'yes', '--save', '', '--replicaof', '127.0.0.1', String(m)]);
  alone = redisNode(a, path.join(root, 'a'), ['--appendonly', 'yes', '--save', '']);
  for (const n of [master, replica, alone]) await n.start();
  const c = master.client();
  for (let i = 0; i < 100 && !/state=online/.test(await c.info('replication')); i++) await new Promise((res) => setTimeout(res, 100));
  c.disconnect();
});
afterAll(async () => {
  for (const n of [master, replica, alone]) await n?.kill();
  rmSync(root, { recursive: true, force: true });
});

describe('redis.ack', () => {
  it('auto with a replica in sync: the jobs are acknowledged once the replica has them', async () => {
    const producer = createRedis(`redis://127.0.0.1:${master.port}`, 'producer');
    const prefix = uniquePrefix();
    const accepted: number[] = [];
    const ack = new Acknowledger(producer, prefix, { replicas: 'auto', timeoutMs: 1000 }, { onAccepted: (r) => accepted.push(r.total) });
    const queue = new SignQueue(producer, prefix, queueWorkerConfig, ack);
    try {
      await whenReady(producer);
      expect(await ack.replicasWanted()).toBe(1);
      const ids = await queue.enqueueMany([signJob('a'), signJob('b')]);
      const r = replica.client();
      expect(await r.exists(`${prefix}:sign:${ids[0]}`, `${prefix}:sign:${ids[1]}`)).toBe(2);
      r.disconnect();
      expect(accepted).toEqual([2]);
    } finally {
      await queue.close();
      ack.close();
      producer.disconnect();
    }
  });

  it('replicas: 2 with one replica: refused (REDIS_NOT_REPLICATED); replicas: 0: the master alone', async () => {
    const producer = createRedis(`redis://127.0.0.1:${master.port}`, 'producer');
    const prefix = uniquePrefix();
    const two = new SignQueue(producer, prefix, queueWorkerConfig, new Acknowledger(producer, prefix, { replicas: 2, timeoutMs: 200 }));
    const none = new SignQueue(producer, prefix, queueWorkerConfig, new Acknowledger(producer, prefix, { replicas: 0, timeoutMs: 200 }));
    try {
      await expect(two.enqueueMany([signJob('c')])).rejects.toMatchObject({
        code: 'REDIS_NOT_REPLICATED',
        message: expect.stringContaining('1 of 2 Redis replicas'),
      });
      expect(await none.enqueueMany([signJob('d')])).toHaveLength(1);
    } finally {
      await two.close();
      await none.close();
      producer.disconnect();
    }
  });

  it('a node that never had a replica, auto: the master alone', async () => {
    const producer = createRedis(`redis://127.0.0.1:${alone.port}`, 'producer');
    const prefix = uniquePrefix();
    const ack = new Acknowledger(producer, prefix, { replicas: 'auto', timeoutMs: 200 });
    const queue = new SignQueue(producer, prefix, queueWorkerConfig, ack);
    try {
      expect(await queue.enqueueMany([signJob('e')])).toHaveLength(1);
      expect(await ack.replicasWanted()).toBe(0);
    } finally {
      await queue.close();
      ack.close();
      producer.disconnect();
    }
  });

  it('auto, the replica gone: refused while the master had it moments ago (as when it is being promoted)', async () => {
    const producer = createRedis(`redis://127.0.0.1:${master.port}`, 'producer');
    const prefix = uniquePrefix();
    const ack = new Acknowledger(producer, prefix, { replicas: 'auto', timeoutMs: 200 });
    const queue = new SignQueue(producer, prefix, queueWorkerConfig, ack);
    try {
      await whenReady(producer);
      expect(await ack.replicasWanted()).toBe(1);
      await replica.kill();
      await expect(queue.enqueueMany([signJob('f')])).rejects.toMatchObject({ code: 'REDIS_NOT_REPLICATED' });
    } finally {
      await queue.close();
      ack.close();
      producer.disconnect();
      await replica.start();
    }
  });
});

describe('redis.ack with Sentinel', () => {
  it('after a failover, auto waits for the demoted master the sentinels could promote: refused until it is in sync, never acknowledged without it', async () => {
    const topo = await startSentinel({ replicas: 1 });
    const cfg = redisSchema.parse({ sentinel: topo.config });
    const producer = createRedis(cfg, 'producer', root);
    const prefix = uniquePrefix();
    const ack = new Acknowledger(producer, prefix, { replicas: 'auto', timeoutMs: 300 }, {}, sentinelReplicas(cfg, root));
    const queue = new SignQueue(producer, prefix, queueWorkerConfig, ack);
    try {
      await whenReady(producer);
      const old = await topo.master();
      // a client per question: a master demoted closes its clients' connections
      const ask = async <T>(address: string, q: (c: ReturnType<RedisNode['client']>) => Promise<T>): Promise<T> => {
        const c = topo.node(address).client();
        try {
          return await q(c);
        } finally {
          c.disconnect();
        }
      };
      const replicaOnline = (address: string) => ask(address, async (c) => /^slave\d+:.*state=online/m.test(await c.info('replication')));
      for (let i = 0; i < 300 && !(await replicaOnline(old)); i++) await new Promise((res) => setTimeout(res, 100));
      const first = await queue.enqueue(signJob('before-failover'));
      const replica = topo.nodes.find((n) => n.address !== old)!.address;
      expect(await ask(replica, (c) => c.exists(`${prefix}:sign:${first}`))).toBe(1);

      const s = topo.sentinels[0]!.client();
      await s.call('SENTINEL', 'FAILOVER', topo.masterName);
      s.disconnect();
      const now = await topo.waitNewMaster(old);
      // push until the old master is an online replica of the new one; every job acknowledged
      // meanwhile must already be on the old master, the one a second failover would promote
      const outcomes: { synced: boolean; outcome: string; onReplica?: boolean }[] = [];
      const deadline = Date.now() + 60_000;
      for (let i = 0; Date.now() < deadline; i++) {
        const synced = await replicaOnline(now);
        const r = await queue.enqueue(signJob(`after-${i}`)).then(
          (id) => ({ id, code: undefined }),
          // (a connection error while it follows the switch has no code: refused too)
          (err: { code?: string; message?: string }) => ({ id: undefined, code: err.code ?? err.message }),
        );
        const onReplica = r.id ? (await ask(old, (c) => c.exists(`${prefix}:sign:${r.id}`))) === 1 : undefined;
        outcomes.push({ synced, outcome: r.id ? 'acknowledged' : String(r.code), ...(onReplica !== undefined ? { onReplica } : {}) });
        if (synced && r.id) break;
        await new Promise((res) => setTimeout(res, 200));
      }
      const refused = outcomes.filter((o) => o.outcome === 'REDIS_NOT_REPLICATED').length;
      const codes = [...new Set(outcomes.map((o) => o.outcome))];
      process.stdout.write(
        `\nack after SENTINEL FAILOVER: ${outcomes.length} pushes, ${refused} refused until the demoted master was in sync (${codes.join(', ')})\n`,
      );
      expect(outcomes.filter((o) => o.outcome === 'acknowledged' && !o.onReplica)).toEqual([]);
      expect(refused).toBeGreaterThan(0); // the window was there (seconds: Sentinel reconfigures, then a resync)
      expect(outcomes.at(-1)).toMatchObject({ synced: true, outcome: 'acknowledged', onReplica: true });
    } finally {
      await queue.close();
      ack.close();
      producer.disconnect();
      await topo.stop();
    }
  }, 120_000);
});

describe('checkRedis names the topology', () => {
  it('a Sentinel port given as redis.url: REDIS_MISCONFIGURED pointing at redis.sentinel', async () => {
    const port = await freePort();
    const s = redisNode(port, path.join(root, 's'), ['--sentinel'], `sentinel monitor m 127.0.0.1 ${master.port} 1\n`);
    await s.start();
    try {
      await expect(checkRedis(redisSchema.parse({ url: `redis://127.0.0.1:${port}` }))).rejects.toMatchObject({
        code: 'REDIS_MISCONFIGURED',
        message: expect.stringContaining('redis.sentinel'),
      });
    } finally {
      await s.kill();
    }
  });

  it('sentinels that do not answer: REDIS_UNAVAILABLE within the timeout, not a silent hang', async () => {
    const dead = await freePort();
    const cfg = redisSchema.parse({ sentinel: { masterName: 'm', sentinels: [`127.0.0.1:${dead}`] } });
    await expect(checkRedis(cfg, 2000)).rejects.toMatchObject({ code: 'REDIS_UNAVAILABLE', message: expect.stringContaining('Sentinel master "m"') });
  });
});
