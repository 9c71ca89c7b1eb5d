/**
 * Redis connections for the queue, with the settings BullMQ wants for each role, for the three
 * topologies of `redis:` (src/config/redis.ts): one node, Sentinel (ioredis follows the master:
 * it asks the sentinels for it, subscribes to +switch-master and reconnects on a failover), and
 * Cluster. A READONLY answer (the node was demoted to a replica) makes the connection reconnect,
 * and through Sentinel find the new master: signet never keeps writing to a demoted master.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { SignetError } from '../errors.js';
import { redisTopology, type RedisConfig, type RedisTls } from '../config/redis.js';

export type RedisClient = Redis | Cluster;
export type RedisRole = 'producer' | 'worker' | 'lock' | 'check';

export function isCluster(c: RedisClient): c is Cluster {
  return (c as Cluster).isCluster === true;
}

function roleOptions(role: RedisRole, findsMaster: boolean): RedisOptions {
  const common: RedisOptions = {
    retryStrategy: (n) => Math.min(n * 200, 2000),
    // 1: reconnect and fail the command (the receiver answers 503, the registry resends);
    // 2: reconnect and send it again (workers, locks: BullMQ's and signet's scripts are safe to
    //    repeat) — only where a reconnect can find another master (Sentinel). With one address
    //    (a plain node, or a proxy that follows the master) the command fails after the reconnect:
    //    resending it to a node that stays a replica would loop silently, whereas the error lets
    //    the worker pause, probe with backoff and say so once (workers/redis-outage.ts).
    reconnectOnError: (err) => (/^READONLY/.test(err.message) ? (role === 'producer' || role === 'check' || !findsMaster ? 1 : 2) : false),
  };
  switch (role) {
    case 'producer':
      // Fail fast so the receiver can answer 503 and the registry retries.
      return { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 3000 };
    case 'check':
      return { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 3000, lazyConnect: true, retryStrategy: () => null };
    case 'lock':
      // Locks and status records from many concurrent jobs: commands issued in the same tick go out in one write.
      return { ...common, maxRetriesPerRequest: null, connectTimeout: 5000, enableAutoPipelining: true };
    default:
      return { ...common, maxRetriesPerRequest: null, connectTimeout: 5000 };
  }
}

function tlsOptions(t: RedisTls | undefined, baseDir: string): ConnectionOptions | undefined {
  if (t === undefined || t === false) return undefined;
  if (t === true) return {};
  const read = (f: string) => readFileSync(path.resolve(baseDir, f));
  return {
    ...(t.caFile ? { ca: read(t.caFile) } : {}),
    ...(t.certFile ? { cert: read(t.certFile) } : {}),
    ...(t.keyFile ? { key: read(t.keyFile) } : {}),
    ...(t.servername ? { servername: t.servername } : {}),
    rejectUnauthorized: t.rejectUnauthorized,
  };
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

/** A connection for `role` (to one node's URL, or per `redis:`); `baseDir` resolves TLS file paths. Errors surface where commands fail. */
export function createRedis(cfg: RedisConfig, role: RedisRole, baseDir?: string): RedisClient;
export function createRedis(url: string, role: RedisRole): Redis;
export function createRedis(given: RedisConfig | string, role: RedisRole, baseDir = process.cwd()): RedisClient {
  const cfg: RedisConfig = typeof given === 'string' ? { url: given, prefix: 'signet', ack: { replicas: 'auto', timeoutMs: 1000 } } : given;
  const opts = roleOptions(role, redisTopology(cfg) === 'sentinel');
  const auth: RedisOptions = {
    ...(cfg.username ? { username: cfg.username } : {}),
    ...(cfg.password ? { password: cfg.password } : {}),
    ...(cfg.db !== undefined ? { db: cfg.db } : {}),
  };
  const tls = tlsOptions(cfg.tls, baseDir);
  let client: RedisClient;
  if (cfg.cluster) {
    const { enableOfflineQueue, enableAutoPipelining, lazyConnect, ...nodeOpts } = opts;
    const clusterOpts: ClusterOptions = {
      redisOptions: { ...nodeOpts, ...auth, ...(tls ? { tls } : {}) },
      ...(enableOfflineQueue === false ? { enableOfflineQueue: false } : {}),
      ...(enableAutoPipelining ? { enableAutoPipelining: true } : {}),
      ...(lazyConnect ? { lazyConnect: true } : {}),
      clusterRetryStrategy: role === 'check' ? () => null : (n) => Math.min(n * 200, 2000),
      slotsRefreshTimeout: 2000,
      // TLS certificates name the nodes, not their IPs
      ...(tls ? { dnsLookup: (address: string, cb: (err: Error | null, a: string) => void) => cb(null, address) } : {}),
      ...(cfg.cluster.natMap ? { natMap: Object.fromEntries(Object.entries(cfg.cluster.natMap).map(([k, v]) => [k, hostPort(v)])) } : {}),
    };
    client = new Cluster(cfg.cluster.nodes.map(hostPort), clusterOpts);
  } else if (cfg.sentinel) {
    const s = cfg.sentinel;
    const sentinelTls = tlsOptions(s.tls, baseDir);
    client = new Redis({
      ...opts,
      ...auth,
      sentinels: s.sentinels.map(hostPort),
      name: s.masterName,
      role: 'master',
      // ioredis' own failoverDetector ends a connection for good when the switch is announced while
      // it is reconnecting (its connect() is cancelled, status 'end'); SentinelWatch does the same job
      failoverDetector: false,
      sentinelRetryStrategy: role === 'check' ? () => null : (n) => Math.min(n * 200, 2000),
      ...(s.sentinelUsername ? { sentinelUsername: s.sentinelUsername } : {}),
      ...(s.sentinelPassword ? { sentinelPassword: s.sentinelPassword } : {}),
      ...(sentinelTls ? { sentinelTLS: sentinelTls } : {}),
      ...(tls ? { tls, enableTLSForSentinelMode: true } : {}),
    });
  } else {
    client = new Redis(cfg.url!, { ...opts, ...auth, ...(tls ? { tls } : {}) });
  }
  client.on('error', () => undefined); // surfaced where commands fail; avoid unhandled 'error' events
  if (cfg.sentinel && role !== 'check') watchSentinels(cfg, client as Redis, baseDir);
  return client;
}

/**
 * Follows a Sentinel failover within moments: subscribed to +switch-master on every sentinel,
 * it makes each connected client of that master reconnect (and so ask the sentinels for the new
 * master) when the switch is announced. Clients still connecting are left alone: they ask the
 * sentinels anyway. One watch per master, closed with its last client. (Writes that reach the
 * old master before the switch are refused by the WAIT acknowledgement, or fail READONLY and
 * reconnect, so this only shortens the time to recover.)
 */
const watches = new Map<string, { clients: Set<Redis>; subscribers: Redis[] }>();

function watchSentinels(cfg: RedisConfig, client: Redis, baseDir: string): void {
  const s = cfg.sentinel!;
  const id = `${s.masterName}@${s.sentinels.join(',')}`;
  let watch = watches.get(id);
  if (!watch) {
    const tls = tlsOptions(s.tls, baseDir);
    const clients = new Set<Redis>();
    const subscribers = s.sentinels.map((addr) => {
      const sub = sentinelConnection(s, addr, tls, { retryStrategy: (n) => Math.min(n * 500, 5000), maxRetriesPerRequest: null });
      sub.subscribe('+switch-master').catch(() => undefined);
      sub.on('message', (_channel: string, message: string) => {
        if (message.split(' ')[0] !== s.masterName) return;
        for (const c of clients) if (c.status === 'ready') c.disconnect(true);
      });
      return sub;
    });
    watch = { clients, subscribers };
    watches.set(id, watch);
  }
  const w = watch;
  w.clients.add(client);
  client.once('end', () => {
    w.clients.delete(client);
    if (w.clients.size === 0 && watches.get(id) === w) {
      watches.delete(id);
      for (const sub of w.subscribers) sub.disconnect();
    }
  });
}

/** A connection to one sentinel (not to the master it names), with the sentinels' credentials and TLS. */
function sentinelConnection(s: NonNullable<RedisConfig['sentinel']>, addr: string, tls: ConnectionOptions | undefined, opts: RedisOptions): Redis {
  const c = new Redis({
    ...hostPort(addr),
    ...(s.sentinelUsername ? { username: s.sentinelUsername } : {}),
    ...(s.sentinelPassword ? { password: s.sentinelPassword } : {}),
    ...(tls ? { tls } : {}),
    ...opts,
  });
  c.on('error', () => undefined);
  return c;
}

/** What the sentinels say about the master's replicas (see sentinelReplicas). */
export interface SentinelReplicas {
  /** Replicas the sentinels know and could promote now (not down, not disconnected); rejects when no sentinel answers. */
  promotable(): Promise<number>;
  close(): void;
}

/**
 * Asks the sentinels (the first that answers, one connection each, opened on first use) which
 * replicas of the master they know and could promote: a demoted master not yet reconfigured, a
 * restarted one still syncing. Such a replica holds none of what the master took since it fell
 * behind, and a failover may promote it, so `redis.ack.replicas: auto` must wait for a replica
 * while one exists, even when none is connected to the master.
 */
export function sentinelReplicas(cfg: RedisConfig, baseDir: string): SentinelReplicas {
  const s = cfg.sentinel!;
  const tls = tlsOptions(s.tls, baseDir);
  const clients = new Map<string, Redis>();
  const client = (addr: string): Redis => {
    let c = clients.get(addr);
    if (!c) {
      c = sentinelConnection(s, addr, tls, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        connectTimeout: 1000,
        commandTimeout: 1000,
        lazyConnect: true,
        retryStrategy: () => null,
      });
      c.once('end', () => clients.delete(addr));
      clients.set(addr, c);
    }
    return c;
  };
  return {
    async promotable() {
      let last: unknown;
      for (const addr of s.sentinels) {
        const c = client(addr);
        try {
          if (c.status === 'wait') await c.connect();
          const replicas = (await c.call('SENTINEL', 'REPLICAS', s.masterName)) as string[][];
          return replicas.filter((fields) => {
            const flags = (fields[fields.indexOf('flags') + 1] ?? '').split(',');
            return !flags.some((f) => f === 's_down' || f === 'o_down' || f === 'disconnected');
          }).length;
        } catch (err) {
          last = err;
          c.disconnect();
        }
      }
      throw last instanceof Error ? last : new Error('no sentinel answered');
    },
    close() {
      for (const c of clients.values()) c.disconnect();
      clients.clear();
    },
  };
}

/** Resolves once the client is connected (a fail-fast connection refuses commands before); rejects after `ms`. */
export function whenReady(client: RedisClient, ms = 10_000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new SignetError('REDIS_UNAVAILABLE', `Redis not ready within ${ms} ms (${client.status})`));
    }, ms);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}

/** Where signet's Redis is, for messages (no password). */
export function describeRedis(cfg: RedisConfig): string {
  if (cfg.cluster) return `Cluster nodes ${cfg.cluster.nodes.join(', ')}`;
  if (cfg.sentinel) return `Sentinel master "${cfg.sentinel.masterName}" via ${cfg.sentinel.sentinels.join(', ')}`;
  return safeUrl(cfg.url ?? 'redis://127.0.0.1:6379');
}

/**
 * One-shot check used at startup, bounded by `timeoutMs` whatever the topology: a clear line when
 * Redis is not there, and when the configured topology is not what answers (a Sentinel's port
 * given as a node's URL, a Cluster node given as a single node).
 */
export async function checkRedis(cfg: RedisConfig, timeoutMs = 5000, baseDir = process.cwd()): Promise<void> {
  const where = describeRedis(cfg);
  let r: RedisClient;
  try {
    r = createRedis(cfg, 'check', baseDir);
  } catch (err) {
    throw new SignetError('REDIS_UNAVAILABLE', `cannot connect to ${where}: ${(err as Error).message}`, { cause: err });
  }
  let lastError: { code?: string; message?: string } | undefined;
  r.on('error', (e) => (lastError = e));
  let timer: NodeJS.Timeout | undefined;
  try {
    const info = await Promise.race([
      (async () => {
        await r.connect();
        if (isCluster(r)) return r.info('server');
        return r.info();
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' })), timeoutMs);
      }),
    ]);
    const topology = redisTopology(cfg);
    if (/^redis_mode:sentinel/m.test(info)) {
      throw new SignetError(
        'REDIS_MISCONFIGURED',
        `${where} is a Redis Sentinel, not a data node: configure redis.sentinel { masterName, sentinels } instead of redis.url`,
      );
    }
    if (topology === 'single' && /^cluster_enabled:1/m.test(info)) {
      throw new SignetError('REDIS_MISCONFIGURED', `${where} is a Redis Cluster node: configure redis.cluster { nodes } instead of redis.url`);
    }
  } catch (err) {
    if (err instanceof SignetError) throw err;
    const e =
      (err as { code?: string }).code === 'TIMEOUT'
        ? (err as { code?: string; message?: string })
        : (lastError ?? (err as { code?: string; message?: string }));
    const reason = e.code && e.code !== 'TIMEOUT' ? e.code : (e.message ?? String(err));
    throw new SignetError(
      'REDIS_UNAVAILABLE',
      `cannot reach Redis at ${where} (${reason}); start one with "redis-server --daemonize yes" (or "docker run -d -p 6379:6379 redis:7") or set redis in the config`,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    r.disconnect();
  }
}

/** The URL without its password, for messages. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'redis://(invalid url)';
  }
}
