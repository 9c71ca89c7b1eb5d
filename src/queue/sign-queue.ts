/**
 * The "sign" queue: job shape, enqueue with dedup, retry policy. The receiver answers 2xx only
 * after `enqueueMany` resolved, i.e. after Redis has every job of the request and, with an
 * Acknowledger (redis.ack), after the replicas it asks for have them too (src/queue/ack.ts).
 */
import { hash } from 'node:crypto';
import { Job, Queue, type JobJson, type JobsOptions, type RedisJobOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Acknowledger } from './ack.js';
import type { RedisClient } from './connection.js';
import type { Config } from '../config/schema.js';
import type { PushEvent } from '../webhooks/types.js';

export const SIGN_QUEUE = 'sign';
/** Custom backoff: exponential with jitter, but never sooner than a registry's Retry-After. */
export const BACKOFF_STRATEGY = 'signet';

export interface SignJobData {
  event: PushEvent;
  /** Configured registry host the event maps to (aliases resolved). */
  registry: string;
  requestId: string;
}

/**
 * Same (host, repository, digest|tag) while a job for it is waiting: one job. Only while it
 * waits: the worker that takes it calls `releaseDedup` first (see there).
 */
export function dedupId(e: Pick<PushEvent, 'repository' | 'tag' | 'digest'>, registry: string): string {
  return hash('sha256', `${registry}/${e.repository}@${e.digest ?? ''}#${e.tag ?? ''}`, 'hex').slice(0, 40);
}

export function jobOptions(cfg: Config['worker']): JobsOptions {
  return {
    attempts: cfg.attempts,
    backoff: { type: BACKOFF_STRATEGY, delay: cfg.backoffMs },
    removeOnComplete: { count: cfg.keepCompleted },
    removeOnFail: { count: cfg.keepFailed },
  };
}

/** The name every sign job carries. */
const JOB_NAME = 'push';

export class SignQueue {
  readonly queue: Queue<SignJobData>;
  /** The options of every job as BullMQ stores them (its short keys), without the dedup id. */
  private readonly storedOpts: RedisJobOptions;
  private corked = false;
  private client: Awaited<Queue['client']> | undefined;
  constructor(
    private readonly connection: RedisClient,
    prefix: string,
    workerCfg: Config['worker'],
    private readonly ack?: Acknowledger,
  ) {
    this.queue = new Queue<SignJobData>(SIGN_QUEUE, { connection, prefix });
    // what Job's constructor makes of queue.add's options: attempts defaulted, backoff normalised
    this.storedOpts = Job.optsAsJSON({ attempts: 0, ...jobOptions(workerCfg) });
  }

  /** Adds one job; resolves with its id (the waiting job's id when it is a duplicate). */
  async enqueue(data: SignJobData): Promise<string> {
    return (await this.enqueueMany([data]))[0]!;
  }

  /**
   * Adds every job; resolves with their ids in order once Redis has all of them, a duplicate's
   * id being that of the job already waiting for the same image. Rejects when any add failed,
   * so that none is reported queued (some may be in Redis: a retry dedups to them).
   * What this and concurrent calls add during one event-loop turn leaves in one socket write.
   */
  async enqueueMany(list: readonly SignJobData[]): Promise<string[]> {
    this.corkUntilTurnEnds();
    const since = this.ack?.mark() ?? 0;
    const ids = list.length === 1 ? [await this.add(list[0]!)] : await Promise.all(list.map((data) => this.add(data)));
    if (this.ack && ids.length) await this.ack.acknowledge(ids.length, since);
    return ids;
  }

  /**
   * What `queue.add('push', data, { ...jobOptions, deduplication })` does, without building a Job
   * object per add (its constructor, option merging and serialisation were ~10 % of the
   * receiver's CPU at peak): the same `addJob` script of BullMQ with the same arguments, the
   * stored options computed once. test/integration/sign-queue.test.ts checks that the stored job
   * is queue.add's, field by field, and that BullMQ reads back the same options.
   */
  private async add(data: SignJobData): Promise<string> {
    const id = dedupId(data.event, data.registry);
    const opts: RedisJobOptions = { ...this.storedOpts, de: { id } };
    const job: JobJson = {
      id: '',
      name: JOB_NAME,
      data: JSON.stringify(data),
      opts,
      progress: 0,
      attemptsMade: 0,
      attemptsStarted: 0,
      stalledCounter: 0,
      timestamp: Date.now(),
      failedReason: 'null',
      stacktrace: 'null',
      returnvalue: 'null',
      deduplicationId: id,
    };
    // the connection signet passed in; BullMQ resolves it once it has loaded its scripts
    const client = (this.client ??= await this.queue.client);
    return this.queue.scripts.addJob(client, job, opts, undefined as unknown as string, {});
  }

  /**
   * Holds this turn's writes to Redis in the socket and sends them together once the turn ends.
   * (BullMQ's addBulk batches with an ioredis pipeline instead; measured here, pipelines kept
   * megabytes alive across young-generation GCs, 5-8 ms pauses, and accepted ~20 % fewer
   * webhooks per second at peak.)
   */
  private corkUntilTurnEnds(): void {
    const socket = (this.connection as Redis).stream; // a Cluster has one per node: not corked
    if (this.corked || !socket?.writable) return;
    this.corked = true;
    socket.cork();
    setImmediate(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/**
 * Called by the worker when it takes a job, before it reads anything from the registry: from now
 * on an event for the same image makes a new job instead of being folded into this one. An event
 * folded in was accepted before this release, hence before this attempt resolves the tag, so the
 * resolve sees the digest that event's push left (or a later one); an event accepted after it
 * gets its own job, which resolves again. Without it, a tag re-pushed while its first job was
 * signing (Quay and Docker Hub name only the tag) was answered 202 and its digest never signed.
 * BullMQ's script deletes `<prefix>:sign:de:<id>` only while it still names this job, so a newer
 * job's key is left alone; on a retry there is then nothing to release.
 */
export async function releaseDedup(job: Pick<Job, 'removeDeduplicationKey'>): Promise<void> {
  await job.removeDeduplicationKey();
}

/** Delay before retry `attemptsMade`: base * 2^(n-1), +/- 25 % jitter, at least Retry-After. */
export function retryDelay(attemptsMade: number, baseMs: number, retryAfterSeconds?: number, random = Math.random): number {
  const exp = Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), 10 * 60_000);
  const jittered = exp * (0.75 + random() * 0.5);
  return Math.round(Math.max(jittered, (retryAfterSeconds ?? 0) * 1000));
}
