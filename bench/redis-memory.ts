/**
 * Redis memory per image, for the sizing paragraph of docs/deploy.md: a fresh redis-server, then
 * what signet keeps per pushed image, measured with INFO memory (used_memory) differences:
 * (1) waiting jobs (a backlog), (2) a completed job kept for history (worker.keepCompleted, 1,000
 * by default), (3) the status records of a signed image (one push-level entry, one per key, plus
 * the recent list, capped at 500). Run: npx tsx bench/redis-memory.ts [images=1000]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Queue, Worker } from 'bullmq';
import { SignQueue, type SignJobData } from '../src/queue/sign-queue.js';
import { StatusStore } from '../src/status/store.js';
import { createRedis } from '../src/queue/connection.js';
import { freePort } from '../test/helpers/ports.js';

const N = Number(process.argv[2] ?? 1000);
const workerCfg = {
  concurrency: 32,
  attempts: 10,
  backoffMs: 2000,
  keepFailed: 10000,
  keepCompleted: 1_000_000,
  lockDurationMs: 30000,
  stalledIntervalMs: 30000,
  shutdownTimeoutMs: 1000,
};

const port = await freePort();
const dir = mkdtempSync(path.join(tmpdir(), 'signet-mem-'));
const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
const admin = new Redis({ port, lazyConnect: true, retryStrategy: () => 100 });
for (;;) {
  try {
    await admin.connect();
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 100));
  }
}
const used = async () => Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
const digest = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`;
const job = (i: number): SignJobData =>
  ({
    registry: 'registry.example.com',
    requestId: `0f8e7c1a-${String(i).padStart(4, '0')}-4c7e-9d2b-5e6f7a8b9c0d`,
    event: {
      integration: 'distribution',
      host: 'registry.example.com',
      repository: `team-${i % 20}/service-${i}`,
      tag: 'v1.2.3',
      digest: digest(i),
      receivedAt: new Date().toISOString(),
      pusher: 'ci-bot',
    },
  }) as SignJobData;

try {
  const producer = createRedis(`redis://127.0.0.1:${port}`, 'producer');
  const queue = new SignQueue(producer, 'signet', workerCfg);
  await queue.queue.waitUntilReady();
  const base = await used();
  for (let i = 0; i < N; i += 100) await queue.enqueueMany(Array.from({ length: Math.min(100, N - i) }, (_, k) => job(i + k)));
  const waiting = (await used()) - base;

  // complete them all (a worker that returns a report like the pipeline's), kept as history
  const worker = new Worker(
    'sign',
    async (j) => ({
      status: 'signed',
      digest: j.data.event.digest,
      rule: 0,
      identity: 'tag',
      signatures: [{ key: 'prod', digest: j.data.event.digest, format: 'legacy', outcome: 'signed' }],
    }),
    { connection: createRedis(`redis://127.0.0.1:${port}`, 'worker'), prefix: 'signet', concurrency: 32 },
  );
  const q = new Queue('sign', { connection: admin, prefix: 'signet' });
  while ((await q.getCompletedCount()) < N) await new Promise((r) => setTimeout(r, 200));
  await worker.close();
  const completed = (await used()) - base;

  const status = new StatusStore(producer, 'signet', 30 * 86400);
  const before = await used();
  for (let i = 0; i < N; i++) {
    const e = job(i).event;
    const repository = `registry.example.com/${e.repository}`;
    await status.record([
      { repository, digest: e.digest!, tag: e.tag!, state: 'signed', rule: 0, requestId: job(i).requestId, jobId: String(i + 1) },
      { repository, digest: e.digest!, tag: e.tag!, rule: 0, key: 'prod', state: 'signed', reason: 'signed as tag', requestId: job(i).requestId },
    ]);
  }
  const records = (await used()) - before;
  const kb = (b: number) => `${(b / N / 1024).toFixed(2)} KB`;
  console.log(
    JSON.stringify({
      images: N,
      waitingJobBytes: waiting,
      perWaitingJob: kb(waiting),
      completedJobBytes: completed,
      perCompletedJob: kb(completed),
      statusBytes: records,
      perImageStatus: kb(records),
    }),
  );
  await q.close();
  await queue.close();
  producer.disconnect();
} finally {
  admin.disconnect();
  proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
