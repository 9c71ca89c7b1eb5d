/**
 * SignQueue.enqueueMany on a real, test-owned redis-server: what concurrent callers add in one
 * event-loop turn reaches Redis together, each caller gets its own jobs' ids only once Redis has
 * them, duplicates share a job, the job stored is the one BullMQ's own queue.add stores, and while
 * Redis is away every caller is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { createRedis } from '../../src/queue/connection.js';
import { Queue } from 'bullmq';
import { dedupId, jobOptions, releaseDedup, SIGN_QUEUE, SignQueue, type SignJobData } from '../../src/queue/sign-queue.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';
import { uniquePrefix } from '../helpers/signet.js';

const workerCfg = configSchema.parse({
  registries: [{ host: 'registry.example.com' }],
  integrations: [{ name: 'd', kind: 'distribution', secret: 'queue-secret-0123456789' }],
  keys: [{ name: 'k', provider: 'file', path: 'k.pem' }],
  rules: [{ match: 'registry.example.com/**', keys: ['k'] }],
}).worker;

const D = `sha256:${'cd'.repeat(32)}`;
const job = (tag: string, requestId = tag): SignJobData => ({
  event: { integration: 'd', host: 'registry.example.com', repository: 'team/app', tag, digest: D, receivedAt: new Date().toISOString() },
  registry: 'registry.example.com',
  requestId,
});

let redis: OwnRedis;
let connection: ReturnType<typeof createRedis>;
let queue: SignQueue;
/** Reads through a connection of its own: what it sees is what Redis has. */
let reader: SignQueue;
let readerConnection: ReturnType<typeof createRedis>;

beforeAll(async () => {
  redis = await ownRedis();
  const prefix = uniquePrefix();
  connection = createRedis(redis.url, 'producer');
  queue = new SignQueue(connection, prefix, workerCfg);
  readerConnection = createRedis(redis.url, 'producer');
  reader = new SignQueue(readerConnection, prefix, workerCfg);
  await Promise.all([queue.queue.waitUntilReady(), reader.queue.waitUntilReady()]);
});
afterAll(async () => {
  await Promise.allSettled([queue?.close(), reader?.close()]);
  connection?.disconnect();
  readerConnection?.disconnect();
  await redis?.stop();
});

describe('SignQueue.enqueueMany', () => {
  it('concurrent callers: each gets its own ids once Redis has the jobs; one turn goes out together', async () => {
    const requests = Array.from({ length: 40 }, (_, r) => Array.from({ length: 1 + (r % 3) }, (_, k) => job(`r${r}-e${k}`, `req-${r}`)));
    const calls = requests.map((jobs) => queue.enqueueMany(jobs));
    // the socket holds this turn's writes and sends them together when the turn ends
    expect(connection.stream.writableCorked).toBe(1);
    const ids = await Promise.all(calls);
    expect(connection.stream.writableCorked).toBe(0);
    const inRedis = await Promise.all(ids.map((list) => Promise.all(list.map(async (id) => (await reader.queue.getJob(id))?.data))));
    expect(inRedis.map((list) => list.map((d) => d?.event.tag))).toEqual(requests.map((jobs) => jobs.map((j) => j.event.tag)));
    expect(inRedis.map((list) => list.map((d) => d?.requestId))).toEqual(requests.map((jobs) => jobs.map((j) => j.requestId)));
  });

  it('an id is resolved only after Redis has the job, as seen from another connection', async () => {
    const [id] = await queue.enqueueMany([job('seen')]);
    expect((await reader.queue.getJob(id!))?.data.event.tag).toBe('seen');
  });

  it('a duplicate (same image and tag) gets the id of the job already waiting, in the same turn or later', async () => {
    const [a, b] = await Promise.all([queue.enqueueMany([job('dup', 'first')]), queue.enqueueMany([job('dup', 'second'), job('other')])]);
    expect(b![0]).toBe(a![0]);
    expect(b![1]).not.toBe(a![0]);
    expect(await queue.enqueue(job('dup', 'third'))).toBe(a![0]);
    expect((await reader.queue.getJob(a![0]!))?.data.requestId).toBe('first');
  });

  it("stores the job BullMQ's queue.add stores for the same data and options (field by field, dedup key included)", async () => {
    const data = job('same-as-bullmq');
    const theirPrefix = uniquePrefix();
    const theirs = new Queue<SignJobData>(SIGN_QUEUE, { connection: readerConnection, prefix: theirPrefix });
    try {
      const ours = new SignQueue(connection, uniquePrefix(), workerCfg);
      const [ourId] = await ours.enqueueMany([data]);
      const their = await theirs.add('push', data, { ...jobOptions(workerCfg), deduplication: { id: dedupId(data.event, data.registry) } });
      const read = async (q: Queue<SignJobData>, id: string) => {
        const h = await readerConnection.hgetall(q.toKey(id));
        expect(Number(h['timestamp'])).toBeGreaterThan(Date.now() - 60_000);
        delete h['timestamp'];
        return h;
      };
      const ourHash = await read(ours.queue, ourId!);
      expect(ourHash).toMatchObject({ name: 'push', deid: dedupId(data.event, data.registry) });
      expect(JSON.parse(ourHash['data']!)).toEqual(data);
      expect(ourHash).toEqual(await read(theirs, their.id!));
      // the dedup key points at the job in both
      const dedupKey = (q: Queue<SignJobData>) => q.toKey(`de:${dedupId(data.event, data.registry)}`);
      expect(await readerConnection.get(dedupKey(ours.queue))).toBe(ourId);
      expect(await readerConnection.get(dedupKey(theirs))).toBe(their.id);
      // and BullMQ reads it back with the options queue.add was given
      const back = await ours.queue.getJob(ourId!);
      expect(back?.opts).toMatchObject({
        attempts: workerCfg.attempts,
        backoff: { type: 'signet', delay: workerCfg.backoffMs },
        removeOnComplete: { count: workerCfg.keepCompleted },
      });
      expect(back?.data).toEqual(data);
      await ours.close();
    } finally {
      await theirs.close();
    }
  });

  it('while Redis is away every concurrent caller is refused; it works again once Redis is back', async () => {
    await redis.kill();
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => queue.enqueueMany([job(`down-${i}`), job(`down-${i}-b`)])));
    expect(outcomes.map((o) => o.status)).toEqual(Array(8).fill('rejected'));
    await redis.start();
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ids = await queue.enqueueMany([job('back')]).catch(() => undefined);
      if (ids) break;
      if (Date.now() > deadline) throw new Error('the queue did not recover');
      await new Promise((res) => setTimeout(res, 200));
    }
  });
});

describe('releaseDedup (a worker taking a job)', () => {
  it('after it, the same image makes a new job; an earlier job releasing again leaves the newer key alone', async () => {
    const first = await queue.enqueue(job('release-me'));
    expect(await queue.enqueue(job('release-me'))).toBe(first); // folded while it waits
    const taken = (await reader.queue.getJob(first))!;
    expect(taken.deduplicationId).toBe(dedupId(job('release-me').event, 'registry.example.com'));
    await releaseDedup(taken);
    const second = await queue.enqueue(job('release-me'));
    expect(second).not.toBe(first);
    expect(await queue.enqueue(job('release-me'))).toBe(second);
    // the first job's next attempt (a retry) releases again: the second job's key stays
    await releaseDedup(taken);
    expect(await queue.enqueue(job('release-me'))).toBe(second);
  });
});
