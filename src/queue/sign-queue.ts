/**
 * The "sign" queue: job shape, enqueue with dedup, retry policy. The receiver answers 2xx only
 * after `enqueue` resolved, i.e. after Redis has the job.
 */
import { createHash } from 'node:crypto';
import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
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

/** Same (host, repository, digest|tag) while a job for it is waiting: one job. */
export function dedupId(e: Pick<PushEvent, 'repository' | 'tag' | 'digest'>, registry: string): string {
  const key = `${registry}/${e.repository}@${e.digest ?? ''}#${e.tag ?? ''}`;
  return createHash('sha256').update(key).digest('hex').slice(0, 40);
}

export function jobOptions(cfg: Config['worker']): JobsOptions {
  return {
    attempts: cfg.attempts,
    backoff: { type: BACKOFF_STRATEGY, delay: cfg.backoffMs },
    removeOnComplete: { count: cfg.keepCompleted },
    removeOnFail: { count: cfg.keepFailed },
  };
}

export class SignQueue {
  readonly queue: Queue<SignJobData>;
  constructor(
    connection: Redis,
    prefix: string,
    private readonly workerCfg: Config['worker'],
  ) {
    this.queue = new Queue<SignJobData>(SIGN_QUEUE, { connection, prefix });
  }

  async enqueue(data: SignJobData): Promise<string> {
    const id = dedupId(data.event, data.registry);
    const job = await this.queue.add('push', data, { ...jobOptions(this.workerCfg), deduplication: { id } });
    return job.id ?? id;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** Delay before retry `attemptsMade`: base * 2^(n-1), +/- 25 % jitter, at least Retry-After. */
export function retryDelay(attemptsMade: number, baseMs: number, retryAfterSeconds?: number, random = Math.random): number {
  const exp = Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), 10 * 60_000);
  const jittered = exp * (0.75 + random() * 0.5);
  return Math.round(Math.max(jittered, (retryAfterSeconds ?? 0) * 1000));
}
