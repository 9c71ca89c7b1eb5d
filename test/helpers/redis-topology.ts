/**
 * Test-owned Redis topologies of real redis-server processes on free loopback ports:
 * - Sentinel: one master, replicas, three sentinels (`redis-server <conf> --sentinel`), short
 *   down-after so a killed master fails over in a couple of seconds;
 * - Cluster: masters created with `redis-cli --cluster create ... --cluster-yes`.
 * Every data node runs with appendonly yes (fsync always). Any node can be killed (SIGKILL) and
 * started again on its port and data directory.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { spawnTracked } from './proc.js';

const run = promisify(execFile);

export interface RedisNode {
  port: number;
  /** host:port */
  address: string;
  start(): Promise<void>;
  /** SIGKILL, waits for the exit. */
  kill(): Promise<void>;
  running(): boolean;
  /** A short-lived client to this node. */
  client(): Redis;
}

async function waitPing(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      if ((await c.ping()) === 'PONG') return;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis on ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      c.disconnect();
    }
  }
}

/** A redis-server on `port` with `args` (after a config file, when `conf` is given), in its own directory. */
export function redisNode(port: number, dir: string, args: string[], conf?: string): RedisNode {
  let proc: ChildProcess | undefined;
  mkdirSync(dir, { recursive: true });
  const self: RedisNode = {
    port,
    address: `127.0.0.1:${port}`,
    async start() {
      const confArgs = conf ? [path.join(dir, 'redis.conf')] : [];
      if (conf) writeFileSync(confArgs[0]!, conf);
      proc = spawnTracked('redis-server', [...confArgs, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...args], { stdio: 'ignore', cwd: dir });
      await waitPing(port);
    },
    async kill() {
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const p = proc;
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    },
    running: () => !!proc && proc.exitCode === null && proc.signalCode === null,
    client: () => {
      const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
      c.on('error', () => undefined);
      return c;
    },
  };
  return self;
}

const DATA = ['--appendonly', 'yes', '--appendfsync', 'always', '--save', ''];

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ask<T>(node: RedisNode, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = node.client();
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

export interface SentinelSetup {
  masterName: string;
  /** Data nodes; nodes[0] is the first master. */
  nodes: RedisNode[];
  sentinels: RedisNode[];
  /** `redis.sentinel` for signet's config. */
  config: { masterName: string; sentinels: string[] };
  /** host:port of the master the sentinels name now. */
  master(): Promise<string>;
  node(address: string): RedisNode;
  /** Waits until every sentinel names a master other than `old` and it answers as master. */
  waitNewMaster(old: string, ms?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startSentinel(opts: { replicas?: number; masterName?: string; downAfterMs?: number } = {}): Promise<SentinelSetup> {
  const masterName = opts.masterName ?? 'signet-master';
  const root = mkdtempSync(path.join(tmpdir(), 'signet-sentinel-'));
  const nodes: RedisNode[] = [];
  const sentinels: RedisNode[] = [];
  const masterPort = await freePort();
  nodes.push(redisNode(masterPort, path.join(root, `n${masterPort}`), DATA));
  for (let i = 0; i < (opts.replicas ?? 1); i++) {
    const p = await freePort();
    nodes.push(redisNode(p, path.join(root, `n${p}`), [...DATA, '--replicaof', '127.0.0.1', String(masterPort)]));
  }
  for (const n of nodes) await n.start();
  for (let i = 0; i < 3; i++) {
    const p = await freePort();
    const conf = [
      `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${masterName} ${opts.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${masterName} 10000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n');
    const s = redisNode(p, path.join(root, `s${p}`), ['--sentinel'], conf);
    await s.start();
    sentinels.push(s);
  }
  const self: SentinelSetup = {
    masterName,
    nodes,
    sentinels,
    config: { masterName, sentinels: sentinels.map((s) => s.address) },
    async master() {
      for (const s of sentinels) {
        if (!s.running()) continue;
        const a = (await ask(s, (c) => c.call('SENTINEL', 'get-master-addr-by-name', masterName)).catch(() => null)) as string[] | null;
        if (a) return `${a[0]}:${a[1]}`;
      }
      throw new Error('no sentinel answers');
    },
    node(address) {
      const n = nodes.find((x) => x.address === address);
      if (!n) throw new Error(`no node ${address}`);
      return n;
    },
    async waitNewMaster(old, ms = 30_000) {
      return until(
        `a master other than ${old}`,
        async () => {
          const names = await Promise.all(sentinels.map((s) => ask(s, (c) => c.call('SENTINEL', 'get-master-addr-by-name', masterName) as Promise<string[]>)));
          const addr = names.map((a) => `${a[0]}:${a[1]}`);
          if (addr.some((a) => a !== addr[0]) || addr[0] === old) return undefined;
          const role = await ask(self.node(addr[0]!), (c) => c.info('replication'));
          return /^role:master/m.test(role) ? addr[0] : undefined;
        },
        ms,
      );
    },
    async stop() {
      for (const n of [...sentinels, ...nodes]) await n.kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
  // ready: every sentinel sees the replicas and the two other sentinels (failover needs them)
  await until(
    'sentinels to know the topology',
    async () => {
      const views = await Promise.all(
        sentinels.map((s) =>
          ask(s, async (c) => ({
            replicas: ((await c.call('SENTINEL', 'replicas', masterName)) as string[][]).filter(
              (r) => !r.join(' ').includes('disconnected') && !r.join(' ').includes('s_down'),
            ).length,
            others: ((await c.call('SENTINEL', 'sentinels', masterName)) as unknown[]).length,
          })),
        ),
      );
      return views.every((v) => v.replicas === nodes.length - 1 && v.others === 2);
    },
    30_000,
  );
  return self;
}

export interface ClusterSetup {
  nodes: RedisNode[];
  /** `redis.cluster` for signet's config. */
  config: { nodes: string[] };
  stop(): Promise<void>;
}

export async function startCluster(opts: { masters?: number } = {}): Promise<ClusterSetup> {
  const root = mkdtempSync(path.join(tmpdir(), 'signet-cluster-'));
  const nodes: RedisNode[] = [];
  for (let i = 0; i < (opts.masters ?? 3); i++) {
    const p = await freePort();
    nodes.push(
      redisNode(p, path.join(root, `n${p}`), [...DATA, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000']),
    );
  }
  for (const n of nodes) await n.start();
  await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
  await until('cluster_state:ok on every node', async () =>
    (await Promise.all(nodes.map((n) => ask(n, (c) => c.cluster('INFO') as Promise<string>)))).every((i) => /cluster_state:ok/.test(i)),
  );
  return {
    nodes,
    config: { nodes: nodes.map((n) => n.address) },
    async stop() {
      for (const n of nodes) await n.kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
