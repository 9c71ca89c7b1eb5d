/**
 * "Acknowledge only what survives a failover": after the jobs of a webhook are in the master,
 * WAIT until `redis.ack.replicas` replicas have them too (Redis replicates asynchronously, so a
 * master that dies or is demoted right after answering loses what it had not sent on). Also
 * counts accepted jobs in Redis (`<prefix>:accepted`), a counter that only grows: reading back a
 * smaller total than this process saw before means Redis lost data (RedisHealth reports it).
 *
 * The jobs of every request answered during one event-loop turn share one INCRBY and one WAIT,
 * sent on the connection that wrote them (WAIT counts that connection's writes), after their
 * writes were answered. On Cluster that is the connection to the master of the queue's slot.
 *
 * `replicas: auto` waits for one replica when the master has had a replica (connected, in sync
 * or still syncing) in the last AUTO_MEMORY_MS (INFO replication, refreshed every REFRESH_MS), else for none: while a
 * replica is being promoted the old master already shows none connected, and must not then
 * acknowledge alone. With Sentinel it also waits for one while the sentinels know a replica they
 * could promote (not down), connected to the master or not: after a failover the demoted master
 * is reconfigured as a replica seconds later and then resyncs, and until it is in sync a second
 * failover would promote it without what the new master took meanwhile (seen: 6-21 acknowledged
 * pushes lost that way, a SIGKILL ~15 s after a SENTINEL FAILOVER). The WAIT then refuses (503)
 * until that replica is in sync. A master with no replica the sentinels could promote (a single
 * node; a newly promoted master whose old master is still down) acknowledges alone: no failover
 * can lose what it has then, only a crash without persistence (see RedisHealth).
 *
 * A WAIT proves something only on the connection that wrote. When that connection closes while
 * the WAIT is out (the master killed mid-WAIT, a Sentinel switch), ioredis sends the unanswered
 * WAIT again on its next connection, possibly to the promoted replica, which never had the jobs
 * the dead master took; once a replica syncs from it, that WAIT answers 1. So every caller marks
 * the connection's generation before its writes (`mark()`), every close of a connection to Redis
 * bumps it, and a batch whose connection closed anywhere between its first write and the WAIT's
 * answer is refused (REDIS_NOT_REPLICATED: the registry sends it again; dedup folds the copy).
 */
import type { Cluster, Redis } from 'ioredis';
import { SignetError } from '../errors.js';
import { isCluster, type RedisClient, type SentinelReplicas } from './connection.js';

const REFRESH_MS = 1000;
const AUTO_MEMORY_MS = 10_000;

export interface AckPolicy {
  replicas: 'auto' | number;
  timeoutMs: number;
}

export interface AckResult {
  /** The counter after this batch. */
  total: number;
  /** Jobs in this batch. */
  added: number;
}

interface Batch {
  count: number;
  /** The oldest mark() among its callers. */
  since: number;
  promise: Promise<AckResult>;
}

export class Acknowledger {
  private batch: Batch | undefined;
  /** Closes of a connection to Redis seen so far (see mark()). */
  private generation = 0;
  private slotNodeKey: string | undefined;
  /** The queue's slot on Cluster (asked once). */
  private slot: number | undefined;
  private replicaSeen = new Map<string, number>();
  private currentReplid: string | undefined;
  private refresher: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly client: RedisClient,
    /** The queue's prefix (hash-tagged on Cluster): the counter shares the queue's slot. */
    private readonly prefix: string,
    private readonly policy: AckPolicy,
    private readonly hooks: { onAccepted?: (r: AckResult) => void; onRefused?: () => void } = {},
    /** With Sentinel: the replicas the sentinels could promote (closed with this). */
    private readonly sentinel?: SentinelReplicas,
  ) {
    const closed = () => void this.generation++;
    if (isCluster(client)) {
      for (const node of client.nodes()) node.on('close', closed);
      (client as Cluster).on('+node', (node: Redis) => node.on('close', closed));
    } else {
      client.on('close', closed);
    }
    if (policy.replicas === 'auto') {
      this.refresher = setInterval(() => void this.refresh().catch(() => undefined), REFRESH_MS);
      this.refresher.unref();
      void this.refresh().catch(() => undefined);
    }
  }

  get counterKey(): string {
    return `${this.prefix}:accepted`;
  }

  /** Taken before the writes that `acknowledge` will cover: a connection closed after it voids the acknowledgement. */
  mark(): number {
    return this.generation;
  }

  /**
   * Resolves once `n` jobs already answered by Redis, written after `since` (a `mark()`), are
   * acknowledged; rejects (REDIS_NOT_REPLICATED, or the Redis error) otherwise.
   */
  acknowledge(n: number, since: number): Promise<AckResult> {
    if (!this.batch) {
      const b: Batch = { count: 0, since, promise: undefined as unknown as Promise<AckResult> };
      b.promise = new Promise<void>((r) => setImmediate(r)).then(() => {
        if (this.batch === b) this.batch = undefined;
        return this.flush(b);
      });
      this.batch = b;
    }
    this.batch.count += n;
    this.batch.since = Math.min(this.batch.since, since);
    return this.batch.promise;
  }

  /** Replicas to wait for now. */
  async replicasWanted(): Promise<number> {
    if (this.policy.replicas !== 'auto') return this.policy.replicas;
    if (!this.currentReplid) await this.refresh();
    const seen = this.currentReplid ? this.replicaSeen.get(this.currentReplid) : undefined;
    return seen !== undefined && Date.now() - seen <= AUTO_MEMORY_MS ? 1 : 0;
  }

  private async flush(batch: Batch): Promise<AckResult> {
    const n = batch.count;
    const node = await this.node();
    const wanted = await this.replicasWanted();
    // sent back to back on one connection: the WAIT covers the INCRBY and every write before it
    const [total, acked] = await Promise.all([
      node.incrby(this.counterKey, n),
      wanted > 0 ? (node.call('WAIT', wanted, this.policy.timeoutMs) as Promise<number>) : Promise.resolve(0),
    ]);
    const result = { total, added: n };
    if (this.generation !== batch.since) {
      // a connection closed since the first write: the WAIT may have run on another master
      this.hooks.onRefused?.();
      throw new SignetError(
        'REDIS_NOT_REPLICATED',
        'the connection to Redis closed between the job write and its acknowledgement (a failover?): not acknowledged (redis.ack)',
      );
    }
    if (acked < wanted) {
      // not acknowledged: the counter's increment may be lost with the jobs, it proves nothing
      this.hooks.onRefused?.();
      throw new SignetError(
        'REDIS_NOT_REPLICATED',
        `${acked} of ${wanted} Redis replica${wanted === 1 ? '' : 's'} confirmed the job within ${this.policy.timeoutMs} ms (redis.ack)`,
      );
    }
    this.hooks.onAccepted?.(result);
    return result;
  }

  /** The connection the queue's writes go over: the client itself, or on Cluster the master of the queue's slot. */
  private async node(): Promise<Redis> {
    const c = this.client;
    if (!isCluster(c)) return c;
    if (c.status !== 'ready') throw new SignetError('REDIS_UNAVAILABLE', `Redis Cluster not ready (${c.status})`);
    const slot = (this.slot ??= Number(await c.cluster('KEYSLOT', this.counterKey)));
    const key = c.slots[slot]?.[0];
    const node = key ? c.nodes('master').find((m) => `${m.options.host}:${m.options.port}` === key) : undefined;
    if (!node) throw new SignetError('REDIS_UNAVAILABLE', `no Redis Cluster master known for slot ${slot}`);
    this.slotNodeKey = key;
    return node;
  }

  /** Reads INFO replication of the master the queue writes to: its replication id, and whether a replica is connected. */
  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const node = await this.node();
        const info = await node.info('replication');
        const replid = /^master_replid:(\S+)/m.exec(info)?.[1] ?? this.slotNodeKey ?? 'node';
        this.currentReplid = replid;
        // a replica counts in sync or not (one still loading the master's snapshot acknowledges
        // nothing, so the WAIT refuses until it is in sync): a failover may promote it; with
        // Sentinel, so does one the sentinels could promote that is not connected yet
        const connected = /^role:master/m.test(info) && /^slave\d+:/m.test(info);
        if (connected || (this.sentinel && (await this.sentinel.promotable().catch(() => 0)) > 0)) this.replicaSeen.set(replid, Date.now());
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  close(): void {
    clearInterval(this.refresher);
    this.sentinel?.close();
  }
}
