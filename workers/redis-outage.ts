/**
 * The sign worker's side of a Redis that is away or refuses writes (a read-only replica after a
 * failover, a master that is gone, LOADING, OOM, MISCONF), and its shutdown.
 *
 * Why not BullMQ's own handling: BullMQ waits `runRetryDelay` only after *connection* errors.
 * A reply error such as "READONLY You can't write against a read only replica" is emitted as an
 * 'error' event and the fetch loop goes round again at once: measured, 474,615 log lines (98 MB)
 * in 62 s. So on the first such error the worker is paused (no new jobs fetched; the ones in
 * flight run on and fail or retry on their own), and a write probe is tried with exponential,
 * capped, jittered backoff; when it succeeds the worker is resumed. One line is logged per state
 * change ("redis unavailable: READONLY ...", "redis recovered after 12 s"), plus one when the
 * reason changes while down; other worker errors are logged once per distinct message a minute.
 *
 * Shutdown (`stopSignWorker`): BullMQ's close() waits for the jobs in flight and then QUITs its
 * connections, which never completes while the master is gone (commands wait in ioredis's
 * offline queue), and a later close(true) returns that same pending promise. So past
 * `worker.shutdownTimeoutMs` the connections are disconnected (what waits on them fails) and
 * the close is no longer awaited: jobs still running are left to stalled-job recovery.
 */
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../src/log.js';
import { redactText } from '../src/log.js';

/** Redis reply errors that mean "this node cannot take our writes now", not a bug in a job. */
const REPLY_OUTAGE = /^(READONLY|LOADING|MASTERDOWN|OOM|MISCONF|NOREPLICAS|CLUSTERDOWN|TRYAGAIN|BUSY|NOAUTH|WRONGPASS|NOPERM)\b/;
const CONNECTION_OUTAGE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EPIPE|Connection is closed|max retries per request/i;

/** Is this error Redis being unavailable (as opposed to, say, a job's lock lost)? */
export function isRedisOutage(err: unknown): boolean {
  const e = err as { message?: unknown; code?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : '';
  const code = typeof e?.code === 'string' ? e.code : '';
  return REPLY_OUTAGE.test(message) || CONNECTION_OUTAGE.test(message) || CONNECTION_OUTAGE.test(code);
}

/** "unreachable" or the reply's code ("READONLY", "LOADING"): a change of reason while down is logged once. */
function reasonKind(message: string): string {
  if (CONNECTION_OUTAGE.test(message)) return 'unreachable';
  return REPLY_OUTAGE.exec(message)?.[1] ?? message.slice(0, 40);
}

export interface OutageOptions {
  worker: Pick<Worker, 'pause' | 'resume' | 'isPaused' | 'isRunning'>;
  /** A write to Redis that succeeds only when it takes writes again. */
  probe: () => Promise<void>;
  logger: Logger;
  /** First wait before probing; doubled each failed probe up to maxDelayMs (jittered). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  now?: () => number;
}

export class RedisOutage {
  private downSince: number | undefined;
  private kind = '';
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** When the last outage ended: a new one soon after keeps the grown delay (a node that flaps). */
  private recoveredAt = -Infinity;
  /** Errors other than outages: message -> when last logged and how many since. */
  private readonly seen = new Map<string, { at: number; repeats: number }>();
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: OutageOptions) {
    this.initialDelayMs = opts.initialDelayMs ?? 250;
    this.maxDelayMs = opts.maxDelayMs ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.delay = this.initialDelayMs;
  }

  get down(): boolean {
    return this.downSince !== undefined;
  }

  /** The worker's 'error' listener. */
  onError(err: Error): void {
    if (isRedisOutage(err)) return this.outage(err);
    this.other(err);
  }

  /** Stop probing (shutdown): the worker is not resumed any more. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private outage(err: Error): void {
    const message = redactText(err.message);
    const kind = reasonKind(message);
    if (this.downSince === undefined) {
      this.downSince = this.now();
      this.kind = kind;
      if (this.downSince - this.recoveredAt > 60_000) this.delay = this.initialDelayMs;
      this.opts.logger.error({ err: message }, `redis unavailable: ${message}`);
      // no new jobs until a write goes through (the jobs in flight go on)
      if (!this.stopped) void this.opts.worker.pause(true).catch(() => undefined);
      this.schedule();
    } else if (kind !== this.kind) {
      this.kind = kind;
      this.opts.logger.error({ err: message, downForSeconds: this.elapsed() }, `redis still unavailable: ${message}`);
    }
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    const wait = Math.round(this.delay * (0.75 + Math.random() * 0.25));
    this.delay = Math.min(this.delay * 2, this.maxDelayMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tryProbe();
    }, wait);
    this.timer.unref();
  }

  private async tryProbe(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.opts.probe();
    } catch (err) {
      // a reason other than the one logged (READONLY, then the node gone) is a state change
      if (isRedisOutage(err)) this.outage(err as Error);
      this.schedule();
      return;
    }
    if (this.stopped) return;
    const seconds = this.elapsed();
    this.downSince = undefined;
    this.recoveredAt = this.now();
    this.kind = '';
    this.opts.logger.info({ downForSeconds: seconds }, `redis recovered after ${seconds} s`);
    this.opts.worker.resume();
  }

  private elapsed(): number {
    return this.downSince === undefined ? 0 : Math.round((this.now() - this.downSince) / 1000);
  }

  private other(err: Error): void {
    const message = redactText(err.message);
    const at = this.now();
    const last = this.seen.get(message);
    if (last && at - last.at < 60_000) {
      last.repeats++;
      return;
    }
    this.seen.set(message, { at, repeats: 0 });
    if (this.seen.size > 100) this.seen.delete(this.seen.keys().next().value as string);
    this.opts.logger.error({ err: message, ...(last?.repeats ? { repeatedSinceLastLine: last.repeats } : {}) }, 'worker error');
  }
}

/** A write that fails while the node is read-only, loading or gone (without waiting in the offline queue). */
export function writeProbe(connection: Redis, key: string, timeoutMs = 2000): () => Promise<void> {
  return async () => {
    if (connection.status !== 'ready') throw Object.assign(new Error(`Connection is closed (${connection.status})`), { code: 'ECONNRESET' });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        connection.set(key, String(Date.now()), 'PX', 10_000),
        new Promise((_, reject) => (timer = setTimeout(() => reject(Object.assign(new Error('probe timed out'), { code: 'ETIMEDOUT' })), timeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}

export interface StopOptions {
  worker: Worker;
  /** The worker's own connection (shared with BullMQ: it is not closed by worker.close()). */
  connection: Redis;
  outage?: RedisOutage | undefined;
  timeoutMs: number;
  logger: Logger;
}

/**
 * Stop taking jobs and let the ones in flight finish; past `timeoutMs`, disconnect and return
 * anyway (another worker runs the unfinished jobs again once their lock expires). Resolves
 * within `timeoutMs` plus about a second, whatever state Redis is in.
 */
export async function stopSignWorker({ worker, connection, outage, timeoutMs, logger }: StopOptions): Promise<void> {
  outage?.stop();
  logger.info('worker stopping: no new jobs, finishing in-flight ones');
  const closing = worker.close();
  closing.catch(() => undefined);
  if (await within(closing, timeoutMs)) {
    connection.disconnect();
    return;
  }
  logger.warn({ timeoutMs }, 'in-flight jobs did not finish in time; they will be run again by a worker');
  // What waits on Redis fails now (ioredis rejects its offline queue on disconnect).
  connection.disconnect();
  const blocking = (worker as unknown as { blockingConnection?: { disconnect(wait?: boolean): Promise<void> } }).blockingConnection;
  await within(blocking?.disconnect(false).catch(() => undefined) ?? Promise.resolve(), 500);
  await within(closing, 500);
}

/** Did `p` settle within `ms`? */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = p.then(
    () => true,
    () => true,
  );
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}
