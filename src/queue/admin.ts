/**
 * Dead letters: list failed sign jobs with their reasons, and put them back in the queue.
 */
import { Queue } from 'bullmq';
import type { RedisClient } from './connection.js';
import { SIGN_QUEUE, type SignJobData } from './sign-queue.js';

export interface FailedJob {
  id: string;
  ref: string;
  reason: string;
  attempts: number;
  failedAt?: string;
  receivedAt?: string;
}

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
          reason: j.failedReason ?? '',
          attempts: j.attemptsMade,
          ...(j.finishedOn ? { failedAt: new Date(j.finishedOn).toISOString() } : {}),
          receivedAt: e.receivedAt,
        };
      });
  }

  /** Retry one failed job; false when there is no failed job with that id. */
  async retry(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job || !(await job.isFailed())) return false;
    await job.retry('failed', { resetAttemptsMade: true });
    return true;
  }

  /** Retry every failed job; returns how many were failed before. */
  async retryAll(): Promise<number> {
    const n = await this.queue.getFailedCount();
    if (n > 0) await this.queue.retryJobs({ state: 'failed', count: 1000 });
    return n;
  }

  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
