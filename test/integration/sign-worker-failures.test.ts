/**
 * A job that uses up its retries is visible to alerting (issue 19, item 1): against a registry
 * that is down (a loopback port nothing listens on), with `worker.attempts: 3`, the first two
 * attempts count `signet_jobs_total{outcome="retry"}` and log "will retry"; the last counts
 * `failed` and logs "sign failed after 3 attempts" at error level with the image ref, request
 * id, job id and code. Real Redis, the real worker (workers/sign-worker.ts) in this process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

let signet: RunningSignet;
let tmp: KeyDir;
let host: string;

beforeAll(async () => {
  tmp = tempKeyDir();
  host = `127.0.0.1:${await freePort()}`; // nothing listens there: every request is refused
  signet = await startSignet(
    `worker: { concurrency: 2, attempts: 3, backoffMs: 50 }
registries: [{ host: "${host}", insecure: true, timeoutMs: 1000 }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${host}/**", keys: [k] }]
`,
    { baseDir: tmp.dir },
  );
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  tmp?.remove();
});

async function jobs(outcome: string): Promise<number> {
  const m = await signet.metrics.registry.getSingleMetric('signet_jobs_total')!.get();
  return m.values.filter((v) => v.labels['outcome'] === outcome).reduce((n, v) => n + v.value, 0);
}

describe('a job that uses up its retries', () => {
  it('counts retry twice, then failed once, and logs the last attempt as an error with ref, request id, job id and code', async () => {
    const id = await signet.service.queue!.enqueue({
      event: { integration: 't', host, repository: 'down/app', tag: 'v1', receivedAt: new Date().toISOString() },
      registry: host,
      requestId: 'req-down-1',
    });
    const last = await waitFor('the final failure line', () => signet.logs.find((l) => l.job === id && l.level === 50), 60_000);
    expect(last.msg).toBe('sign failed after 3 attempts');
    expect(last).toMatchObject({ ref: `${host}/down/app:v1`, requestId: 'req-down-1', job: id, code: 'REGISTRY_UNAVAILABLE', attempt: 3, attempts: 3 });
    const retries = signet.logs.filter((l) => l.job === id && l.msg === 'sign failed, will retry');
    expect(retries.map((l) => l.attempt)).toEqual([1, 2]);
    expect(retries.every((l) => l.level === 40 && l.code === 'REGISTRY_UNAVAILABLE')).toBe(true);
    // nothing else says "will retry" about the last attempt, and the failure is logged once
    expect(signet.logs.filter((l) => l.job === id && l.level === 50)).toHaveLength(1);
    expect(await jobs('retry')).toBe(2);
    expect(await jobs('failed')).toBe(1);
    const job = await signet.service.queue!.queue.getJob(id);
    expect(await job!.getState()).toBe('failed');
    expect(job!.failedReason).toMatch(/^REGISTRY_UNAVAILABLE: /);
    expect(job!.attemptsMade).toBe(3);
  });

  it('a failure retrying cannot help (an unconfigured registry) is failed at once: one failed, no retry', async () => {
    const before = { retry: await jobs('retry'), failed: await jobs('failed') };
    const id = await signet.service.queue!.enqueue({
      event: { integration: 't', host: 'elsewhere.example', repository: 'x/app', tag: 'v1', receivedAt: new Date().toISOString() },
      registry: 'elsewhere.example',
      requestId: 'req-unknown-1',
    });
    const line = await waitFor('the failure line', () => signet.logs.find((l) => l.job === id && l.level === 50), 30_000);
    expect(line).toMatchObject({ msg: 'sign failed', ref: 'elsewhere.example/x/app:v1', requestId: 'req-unknown-1', code: 'REGISTRY_NOT_CONFIGURED' });
    expect(await jobs('retry')).toBe(before.retry);
    expect(await jobs('failed')).toBe(before.failed + 1);
  });
});
