/**
 * What `redis.ack` buys, shown on a failover that loses data: a master and a replica (real
 * redis-servers) whose replication link goes through a loopback TCP relay the test can stall, so
 * the replica falls behind for real (nothing reaches its socket). Two receivers on that master,
 * one with `ack.replicas: 0`, one with `auto`, get the same webhooks while the link is stalled;
 * then the master is SIGKILLed and the replica promoted (REPLICAOF NO ONE, as Sentinel does).
 * Without WAIT, every push answered 202 meanwhile is gone from the new master; with it, those
 * webhooks were answered 503 (so the registry sends them again) and no acknowledged job is missing.
 *
 * And the same failover with the master killed while a WAIT is out: ioredis sends the unanswered
 * WAIT again on its next connection, which reaches the promoted replica; once that has a replica
 * of its own the WAIT answers 1, for jobs it never had. The acknowledgement must not count it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Acknowledger } from '../../src/queue/ack.js';
import { createRedis, whenReady } from '../../src/queue/connection.js';
import { SignQueue } from '../../src/queue/sign-queue.js';
import { freePort } from '../helpers/ports.js';
import { redisNode, type RedisNode } from '../helpers/redis-topology.js';
import { queueWorkerConfig, signJob } from '../helpers/sign-jobs.js';
import { startSignet, tempKeyDir, uniquePrefix, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'ack-secret-0123456789abcdef';
const root = mkdtempSync(path.join(tmpdir(), 'signet-ack-e2e-'));
const fixture = JSON.parse(readFileSync(new URL('../fixtures/webhooks/distribution-push.json', import.meta.url), 'utf8'));
let master: RedisNode;
let replica: RedisNode;
let relay: Relay;
let tmp: KeyDir;
const signets: RunningSignet[] = [];

type Relay = { server: Server; port: number; stall(): void; sockets: Socket[] };

/**
 * A TCP relay to the port `target()` names when a connection opens (a replica -> its master, a
 * client -> whichever node is master); stall() stops passing the far end's bytes on.
 */
async function startRelay(target: number | (() => number)): Promise<Relay> {
  const port = await freePort();
  const sockets: Socket[] = [];
  let stalled = false;
  const server = createServer((down) => {
    const up = connect(typeof target === 'number' ? target : target(), '127.0.0.1');
    sockets.push(down, up);
    down.on('data', (d) => up.write(d));
    up.on('data', (d) => {
      if (!stalled) down.write(d);
    });
    for (const s of [down, up]) s.on('error', () => undefined);
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { server, port, sockets, stall: () => void (stalled = true) };
}

beforeAll(async () => {
  tmp = tempKeyDir();
  const m = await freePort();
  master = redisNode(m, path.join(root, 'm'), ['--appendonly', 'yes', '--save', '']);
  await master.start();
  relay = await startRelay(m);
  const r = await freePort();
  replica = redisNode(r, path.join(root, 'r'), ['--appendonly', 'yes', '--save', '', '--replicaof', '127.0.0.1', String(relay.port)]);
  await replica.start();
  const c = master.client();
  for (let i = 0; i < 100 && !/state=online/.test(await c.info('replication')); i++) await new Promise((res) => setTimeout(res, 100));
  c.disconnect();
  const yaml = `
registries: [{ host: registry.example.com }]
integrations: [{ name: dist, kind: distribution, secret: "${SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "registry.example.com/**", keys: [k] }]
`;
  for (const replicas of [0, 'auto']) {
    signets.push(
      await startSignet(yaml, {
        baseDir: tmp.dir,
        roles: { receiver: true, worker: false },
        redis: { url: `redis://127.0.0.1:${m}`, ack: { replicas, timeoutMs: 300 } },
      }),
    );
  }
}, 60_000);

afterAll(async () => {
  for (const s of signets) await s.stop().catch(() => undefined);
  for (const s of relay?.sockets ?? []) s.destroy();
  relay?.server.close();
  await master?.kill();
  await replica?.kill();
  tmp?.remove();
  rmSync(root, { recursive: true, force: true });
});

function push(s: RunningSignet, i: number) {
  const body = structuredClone(fixture);
  body.events[0].id = `ack-${s.prefix}-${i}`;
  body.events[0].target.tag = `v${i}`;
  body.events[0].target.digest = `sha256:${i.toString(16).padStart(64, 'a')}`;
  return fetch(`${s.url}/hooks/dist`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
    body: JSON.stringify(body),
  });
}

describe('redis.ack on a failover that loses data', () => {
  it('replicas: 0 acknowledges jobs the promoted replica never got; auto answers 503 instead and loses no acknowledged job', async () => {
    // both receivers work while the replica keeps up
    for (const s of signets) expect((await push(s, 0)).status).toBe(202);
    relay.stall();
    const acked = new Map<RunningSignet, string[]>(signets.map((s) => [s, []]));
    const refused = new Map<RunningSignet, number>(signets.map((s) => [s, 0]));
    for (const s of signets) {
      for (let i = 1; i <= 10; i++) {
        const res = await push(s, i);
        if (res.status === 202) acked.get(s)!.push(...((await res.json()) as { queued: { job: string }[] }).queued.map((q) => q.job));
        else {
          expect(res.status).toBe(503);
          expect(res.headers.get('retry-after')).toBeTruthy();
          expect(((await res.json()) as { code?: string }).code).toBe('REDIS_NOT_REPLICATED');
          refused.set(s, refused.get(s)! + 1);
        }
      }
    }
    await master.kill();
    const r = replica.client();
    try {
      await r.call('REPLICAOF', 'NO', 'ONE');
      const lost = async (s: RunningSignet) => {
        let n = 0;
        for (const id of acked.get(s)!) if (!(await r.exists(`${s.prefix}:sign:${id}`))) n++;
        return n;
      };
      const [noAck, auto] = signets as [RunningSignet, RunningSignet];
      const report = {
        'replicas: 0': { answered202: acked.get(noAck)!.length, lostAfterFailover: await lost(noAck), answered503: refused.get(noAck) },
        'replicas: auto': { answered202: acked.get(auto)!.length, lostAfterFailover: await lost(auto), answered503: refused.get(auto) },
      };
      process.stdout.write(`\nredis-ack failover with a stalled replica: ${JSON.stringify(report)}\n`);
      expect(report['replicas: 0'].answered202).toBe(10);
      expect(report['replicas: 0'].lostAfterFailover).toBe(10);
      expect(report['replicas: auto'].lostAfterFailover).toBe(0);
      expect(report['replicas: auto'].answered503).toBe(10);
      expect(auto.logs.some((l) => /REDIS_NOT_REPLICATED/.test(String(l.err)))).toBe(true);
    } finally {
      r.disconnect();
    }
  }, 60_000);
});

describe('redis.ack when the master dies while its WAIT is out', () => {
  const nodes: RedisNode[] = [];
  const relays: Relay[] = [];
  afterAll(async () => {
    for (const r of relays) {
      for (const s of r.sockets) s.destroy();
      r.server.close();
    }
    for (const n of nodes) if (n.running()) await n.kill();
  });

  const online = async (master: RedisNode) => {
    const c = master.client();
    try {
      await waitFor(`a replica online on ${master.address}`, async () => /state=online/.test(await c.info('replication')), 20_000);
    } finally {
      c.disconnect();
    }
  };

  it('the WAIT sent again to the promoted replica does not acknowledge the job the dead master took: REDIS_NOT_REPLICATED', async () => {
    const dir = path.join(root, 'resend');
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    const A = redisNode(a, path.join(dir, 'a'), ['--appendonly', 'yes', '--save', '', '--repl-diskless-sync-delay', '0']);
    nodes.push(A);
    await A.start();
    const link = await startRelay(a); // B's replication link to A, stalled below
    relays.push(link);
    const B = redisNode(b, path.join(dir, 'b'), [
      '--appendonly',
      'yes',
      '--save',
      '',
      '--repl-diskless-sync-delay',
      '0',
      '--replicaof',
      '127.0.0.1',
      String(link.port),
    ]);
    const C = redisNode(c, path.join(dir, 'c'), ['--appendonly', 'yes', '--save', '', '--replicaof', '127.0.0.1', String(b)]);
    nodes.push(B, C);
    await B.start();
    await online(A);
    // signet reaches "the master" through a relay that connects to A, then (after the failover) to B
    let master = a;
    const front = await startRelay(() => master);
    relays.push(front);

    const producer = createRedis(`redis://127.0.0.1:${front.port}`, 'producer');
    const prefix = uniquePrefix();
    const ack = new Acknowledger(producer, prefix, { replicas: 1, timeoutMs: 5000 });
    const queue = new SignQueue(producer, prefix, queueWorkerConfig, ack);
    const b1 = B.client();
    const a1 = A.client();
    try {
      await whenReady(producer);
      const before = await queue.enqueue(signJob('before', 'team/resend'));
      expect(await b1.exists(`${prefix}:sign:${before}`)).toBe(1);

      link.stall();
      const during = queue.enqueue(signJob('during', 'team/resend')).then(
        (id) => ({ id, err: undefined }),
        (err: Error & { code?: string }) => ({ id: undefined, err }),
      );
      // A has the job and has answered its write; the WAIT for it is out (B hears nothing)
      await waitFor('the second job on A', async () => (await a1.exists(`${prefix}:sign:2`)) === 1);
      a1.disconnect();
      // the failover: B promoted without the job, C syncs from it, the master is killed mid-WAIT
      await b1.call('REPLICAOF', 'NO', 'ONE');
      await C.start();
      await online(B);
      master = b;
      await A.kill();

      const result = await during;
      expect(await b1.exists(`${prefix}:sign:2`)).toBe(0); // acknowledging it would have lost it
      expect(result.id).toBeUndefined();
      expect(result.err?.code).toBe('REDIS_NOT_REPLICATED');
      expect(result.err?.message).toMatch(/connection to Redis closed between the job write and its acknowledgement/);
      // the next webhook goes to the new master and its replica: acknowledged, and there
      const after = await queue.enqueue(signJob('after', 'team/resend'));
      expect(await b1.exists(`${prefix}:sign:${after}`)).toBe(1);
    } finally {
      a1.disconnect();
      b1.disconnect();
      await queue.close();
      ack.close();
      producer.disconnect();
    }
  }, 60_000);
});
