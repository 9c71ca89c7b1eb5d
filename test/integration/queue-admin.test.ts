/**
 * QueueAdmin (src/queue/admin.ts) on the real Redis with a real BullMQ worker (issue 19 item 7):
 * a job that failed after all its attempts, put back by `retry(id)` or `retryAll()`, gets a fresh
 * set of the configured attempts, each retry after the backoff (the worker's backoff strategy is
 * asked again for attempts 1 and 2), instead of the single attempt BullMQ's `retryJobs` leaves.
 */
import { Worker, type Job, type MinimalJob } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { QueueAdmin } from '../../src/queue/admin.js';
import { BACKOFF_STRATEGY, SIGN_QUEUE, SignQueue, type SignJobData } from '../../src/queue/sign-queue.js';
import { REDIS_URL, uniquePrefix, waitFor } from '../helpers/signet.js';

const ATTEMPTS = 3;
const prefix = uniquePrefix();
const config = configSchema.parse({
  worker: { attempts: ATTEMPTS, backoffMs: 20 },
  registries: [{ host: 'registry.test' }],
  keys: [{ name: 'k', provider: 'file', path: 'k.pem' }],
  rules: [{ match: 'registry.test/**', keys: ['k'] }],
});

let producer: Redis;
let workerConn: Redis;
let adminConn: Redis;
let queue: SignQueue;
let admin: QueueAdmin;
let worker: Worker<SignJobData>;
/** Per job id: attemptsMade as the processor saw it, one entry per run. */
const runs = new Map<string, number[]>();
/** Per job id: the attemptsMade the backoff strategy was asked about. */
const backoffs = new Map<string, number[]>();

beforeAll(async () => {
  producer = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  workerConn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  adminConn = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  queue = new SignQueue(producer, prefix, config.worker);
  admin = new QueueAdmin(adminConn, prefix);
  worker = new Worker<SignJobData>(
    SIGN_QUEUE,
    async (job: Job<SignJobData>) => {
      runs.set(job.id!, [...(runs.get(job.id!) ?? []), job.attemptsMade]);
      throw new Error('REGISTRY_UNAVAILABLE: registry.test answered 503'); // retryable: not an UnrecoverableError
    },
    {
      connection: workerConn,
      prefix,
      concurrency: 4,
      settings: {
        backoffStrategy: (attemptsMade: number, type?: string, _err?: Error, job?: MinimalJob) => {
          if (type !== BACKOFF_STRATEGY) return 0;
          if (job?.id) backoffs.set(job.id, [...(backoffs.get(job.id) ?? []), attemptsMade]);
          return 20;
        },
      },
    },
  );
  await worker.waitUntilReady();
});

afterAll(async () => {
  await worker?.close();
  await admin?.close();
  await queue?.close();
  const keys = await producer.keys(`${prefix}:*`);
  if (keys.length) await producer.del(...keys);
  for (const c of [producer, workerConn, adminConn]) c?.disconnect();
});

const push = (repository: string) =>
  queue.enqueue({
    event: { integration: 't', host: 'registry.test', repository, tag: 'v1', receivedAt: new Date().toISOString() },
    registry: 'registry.test',
    requestId: `req-${repository}`,
  });

async function failedAfter(id: string, runsSoFar: number): Promise<void> {
  await waitFor(
    `job ${id} failed after ${runsSoFar} runs`,
    async () => (runs.get(id)?.length ?? 0) >= runsSoFar && (await queue.queue.getJobState(id)) === 'failed',
    20_000,
    50,
  );
}

describe('QueueAdmin retry', () => {
  it('retry(id): the failed job runs the configured attempts again, with backoff between them', async () => {
    const id = await push('one/app');
    await failedAfter(id, ATTEMPTS);
    expect(runs.get(id)).toEqual([0, 1, 2]);
    expect(backoffs.get(id)).toEqual([1, 2]);
    expect((await admin.failed()).find((f) => f.id === id)).toMatchObject({ attempts: ATTEMPTS, registry: 'registry.test', repository: 'one/app' });

    expect(await admin.retry(id)).toBe(true);
    await failedAfter(id, 2 * ATTEMPTS);
    expect(runs.get(id)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(backoffs.get(id)).toEqual([1, 2, 1, 2]);
    // no failed job with that id any more once it is back (and none at all for an unknown id)
    expect(await admin.retry('no-such-job')).toBe(false);
  });

  it('retryAll(): every failed job gets a fresh set of attempts, not one', async () => {
    const ids = [await push('all/a'), await push('all/b')];
    for (const id of ids) await failedAfter(id, ATTEMPTS);
    const failedBefore = (await admin.failed()).length;
    expect(await admin.retryAll()).toBe(failedBefore);
    for (const id of ids) {
      await failedAfter(id, 2 * ATTEMPTS);
      expect(runs.get(id)).toEqual([0, 1, 2, 0, 1, 2]);
      expect(backoffs.get(id)).toEqual([1, 2, 1, 2]);
    }
    const job = await queue.queue.getJob(ids[0]!);
    expect(job!.attemptsMade).toBe(ATTEMPTS);
  });
});
