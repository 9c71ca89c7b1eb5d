/**
 * Dead letters: list failed sign jobs with their reasons, and put them back in the queue. A job
 * put back gets a fresh set of the configured attempts with backoff: BullMQ's `job.retry` keeps
 * `attemptsMade` (and `queue.retryJobs` moves jobs without touching it), so a job that failed
 * after its last attempt would have one attempt left; here each is reprocessed with
 * `resetAttemptsMade` and `resetAttemptsStarted` (BullMQ's reprocessJob script: HDEL atm, ats).
 */
import { Queue, type Job } from 'bullmq';
import type { RedisClient } from './connection.js';
import { SIGN_QUEUE, type SignJobData } from './sign-queue.js';

export interface FailedJob {
  id: string;
  ref: string;
  /** The configured registry host and the repository in it (what the job's rule is found by). */
  registry?: string;
  repository?: string;
  reason: string;
  attempts: number;
  failedAt?: string;
  receivedAt?: string;
}

/** Failed jobs read per page by retryAll. */
const RETRY_PAGE = 200;

export class QueueAdmin {
  private readonly queue: Queue<SignJobData>;
  constructor(connection: RedisClient, prefix: string) {
    this.queue = new Queue<SignJobData>(SIGN_QUEUE, { connection, prefix });
  }

  async failed(limit = 1000): Promise<FailedJob[]> {
    const jobs = await this.queue.getFailed(0, limit - 1);
    return jobs
      .filter((j) => j && j.id)
      .map((j) => {
        const e = j.data.event;
        return {
          id: j.id!,
          ref: `${j.data.registry}/${e.repository}${e.tag ? `:${e.tag}` : ''}${e.digest ? `@${e.digest}` : ''}`,
          registry: j.data.registry,
          repository: e.repository,
          reason: j.failedReason ?? '',
          attempts: j.attemptsMade,
          ...(j.finishedOn ? { failedAt: new Date(j.finishedOn).toISOString() } : {}),
          receivedAt: e.receivedAt,
        };
      });
  }

  /** Retry one failed job with a fresh set of attempts; false when there is no failed job with that id. */
  async retry(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job || !(await job.isFailed())) return false;
    return reprocess(job);
  }

  /** Retry every failed job, each with a fresh set of attempts; returns how many were put back. */
  async retryAll(): Promise<number> {
    let n = 0;
    for (;;) {
      // each page is the head of the failed set: the jobs put back leave it
      const jobs = (await this.queue.getFailed(0, RETRY_PAGE - 1)).filter((j): j is Job<SignJobData> => Boolean(j?.id));
      if (jobs.length === 0) return n;
      const done = await Promise.all(jobs.map(reprocess));
      const moved = done.filter(Boolean).length;
      n += moved;
      if (moved === 0) return n; // none could move (all taken by another retry meanwhile)
    }
  }

  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** Moves a failed job back to waiting with attemptsMade/attemptsStarted reset; false when it is no longer failed. */
async function reprocess(job: Job<SignJobData>): Promise<boolean> {
  try {
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return true;
  } catch (err) {
    // BullMQ: the job is gone (-1) or no longer in the failed set (-3), e.g. retried by someone else
    if (/Missing key for job|is not in the failed state/.test((err as Error).message)) return false;
    throw err;
  }
}
