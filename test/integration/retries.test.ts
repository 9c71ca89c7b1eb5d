/**
 * Faults injected for real between signet and a real registry (a loopback proxy that answers
 * 503/429/412 or drops connections): retryable failures are retried with backoff and end in a
 * signature cosign accepts; the rest fail the job at once and keep their reason.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignVerify } from '../helpers/cosign.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { pushImage, tagExisting } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { keySignCalls, REDIS_URL, startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';
import { main } from '../../src/cli.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let signet: RunningSignet;
let tmp: KeyDir;
let pub: string;

beforeAll(async () => {
  tmp = tempKeyDir();
  pub = tmp.pub;
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  signet = await startSignet(
    `
worker: { concurrency: 4, attempts: 5, backoffMs: 100 }
registries: [{ host: "${proxy.host}", insecure: true, timeoutMs: 2000 }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${proxy.host}/**", keys: [k], formats: [legacy] }]
`,
    { baseDir: tmp.dir, roles: { receiver: true, worker: true } },
  );
});
afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  await registry?.stop();
  tmp?.remove();
});

async function enqueue(repository: string, tag: string): Promise<string> {
  return signet.service.queue!.enqueue({
    event: { integration: 'test', host: proxy.host, repository, tag, receivedAt: new Date().toISOString() },
    registry: proxy.host,
    requestId: `retry-${repository}`,
  });
}

async function finished(jobId: string) {
  return waitFor(
    `job ${jobId} finished`,
    async () => {
      const state = await signet.service.queue!.queue.getJobState(jobId);
      if (state !== 'completed' && state !== 'failed') return undefined;
      // read the job after its state, so attemptsMade and failedReason are the final ones
      return { job: (await signet.service.queue!.queue.getJob(jobId))!, state };
    },
    30_000,
  );
}

const retriesOf = (repo: string) => signet.logs.filter((l) => l.msg === 'sign failed, will retry' && String(l.ref).includes(repo));

describe('faults between signet and the registry', () => {
  it('503 three times on the manifest: retried with backoff, then signed', async () => {
    await pushImage(registry, 'flaky/app', 'v1');
    proxy.faults.push({ times: 3, status: 503, match: (r) => r.method === 'GET' && /\/flaky\/app\/manifests\/v1$/.test(r.url ?? '') });
    const { state } = await finished(await enqueue('flaky/app', 'v1'));
    expect(state).toBe('completed');
    const retries = retriesOf('flaky/app');
    expect(retries).toHaveLength(3);
    expect(retries[0].err).toMatch(/^REGISTRY_UNAVAILABLE: .*HTTP 503/);
    // backoff was applied: base 100 ms doubling, at least 75 % of each delay (jitter): 75 + 150 + 300
    // (growth and jitter bounds are checked exactly in test/unit/queue/retry-delay.test.ts)
    const signedAt = signet.logs.find((l) => l.msg === 'signed' && String(l.ref).includes('flaky/app'))!.time;
    expect(signedAt - retries[0].time).toBeGreaterThanOrEqual(525);
    expect((await cosignVerify(`${registry.host}/flaky/app:v1`, pub)).ok).toBe(true);
  });

  it('a 500 on the .sig PUT after signing: the retry writes the same signature, no second key call', async () => {
    const keyCalls = () => keySignCalls(signet);
    const img = await pushImage(registry, 'late-fault/app', 'v1');
    proxy.faults.push({
      times: 1,
      status: 500,
      match: (r) => r.method === 'PUT' && /\/late-fault\/app\/manifests\/sha256-[0-9a-f]{64}\.sig$/.test(r.url ?? ''),
    });
    const before = await keyCalls();
    const { job, state } = await finished(await enqueue('late-fault/app', 'v1'));
    expect(state).toBe('completed');
    expect(job.attemptsMade).toBeGreaterThanOrEqual(1);
    expect(retriesOf('late-fault/app')).toHaveLength(1);
    expect(proxy.log.filter((l) => l.startsWith('PUT') && l.includes('/late-fault/app/manifests/') && l.endsWith('-> 500'))).toHaveLength(1);
    expect((await keyCalls()) - before).toBe(1);
    const v = await cosignVerify(`${registry.host}/late-fault/app@${img.digest}`, pub);
    expect(v.ok, v.stderr).toBe(true);
  });

  it('429 with Retry-After: the next attempt waits at least that long', async () => {
    await pushImage(registry, 'throttled/app', 'v1');
    proxy.faults.push({ times: 1, status: 429, headers: { 'retry-after': '2' }, match: (r) => (r.url ?? '').includes('/throttled/app/') });
    const { state } = await finished(await enqueue('throttled/app', 'v1'));
    expect(state).toBe('completed');
    const [retry] = retriesOf('throttled/app');
    expect(retry.err).toMatch(/^REGISTRY_THROTTLED: .*Retry-After 2s/);
    const signed = signet.logs.find((l) => l.msg === 'signed' && String(l.ref).includes('throttled/app'))!;
    expect(signed.time - retry.time).toBeGreaterThanOrEqual(2000);
  });

  it('registry unreachable for a while (connections dropped): the job completes once it is back', async () => {
    await pushImage(registry, 'outage/app', 'v1');
    const outage: { times: number; drop: boolean; match: (r: any) => boolean } = {
      times: Infinity,
      drop: true,
      match: (r) => (r.url ?? '').includes('/outage/app/'),
    };
    proxy.faults.push(outage);
    const id = await enqueue('outage/app', 'v1');
    await waitFor('two failed attempts', () => retriesOf('outage/app').length >= 2);
    outage.times = 0; // the registry is back
    const { state } = await finished(id);
    expect(state).toBe('completed');
    expect(retriesOf('outage/app')[0].err).toMatch(/^REGISTRY_UNAVAILABLE: registry .* unreachable/);
  });

  it('a registry that refuses the .sig update (immutable tags): failed at once, with the reason kept', async () => {
    await pushImage(registry, 'immutable/app', 'v1');
    proxy.faults.push({
      times: Infinity,
      status: 412,
      match: (r) => r.method === 'PUT' && /\/immutable\/app\/manifests\/sha256-[0-9a-f]+\.sig$/.test(r.url ?? ''),
    });
    const { job, state } = await finished(await enqueue('immutable/app', 'v1'));
    expect(state).toBe('failed');
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toMatch(/^SIGNATURE_WRITE_REJECTED: registry .* refused PUT immutable\/app:sha256-[0-9a-f]{64}\.sig \(HTTP 412/);
    const failed = await signet.service.queue!.queue.getFailed();
    expect(failed.map((j) => j.id)).toContain(job.id);
  });

  it('a 403 on reading the image: REGISTRY_DENIED, not retried', async () => {
    await pushImage(registry, 'denied/app', 'v1');
    proxy.faults.push({ times: Infinity, status: 403, match: (r) => (r.url ?? '').includes('/denied/app/') });
    const { job, state } = await finished(await enqueue('denied/app', 'v1'));
    expect(state).toBe('failed');
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toMatch(/^REGISTRY_DENIED: /);
  });

  it('retryable failures that never clear end as failed jobs after the configured attempts, reason kept', async () => {
    proxy.faults.push({ times: Infinity, status: 500, match: (r) => (r.url ?? '').includes('/broken/app/') });
    const { job, state } = await finished(await enqueue('broken/app', 'v1'));
    expect(state).toBe('failed');
    expect(job.attemptsMade).toBe(5);
    expect(job.failedReason).toMatch(/^REGISTRY_UNAVAILABLE: .*HTTP 500/);
    // nothing was written: every attempt stopped at reading the image
    expect(proxy.log.filter((l) => l.startsWith('PUT') && l.includes('/broken/app/'))).toEqual([]);
  });

  it('a re-pushed tag whose link lags behind the notification is waited for, not reported as moved', async () => {
    const old = await pushImage(registry, 'relink/app', 'latest');
    const fresh = await pushImage(registry, 'relink/app', undefined); // pushed by digest, not yet tagged
    expect(fresh.digest).not.toBe(old.digest);
    const id = await signet.service.queue!.enqueue({
      event: { integration: 'test', host: proxy.host, repository: 'relink/app', tag: 'latest', digest: fresh.digest, receivedAt: new Date().toISOString() },
      registry: proxy.host,
      requestId: 'relink',
    });
    // the registry links the tag a moment after it notified
    setTimeout(() => void tagExisting(registry, 'relink/app', fresh.digest, 'latest'), 150);
    const { state, job } = await finished(id);
    expect(job.failedReason ?? '').toBe('');
    expect(state).toBe('completed');
    expect((await cosignVerify(`${registry.host}/relink/app@${fresh.digest}`, pub)).ok).toBe(true);
  });

  it('signet jobs failed lists the dead letters; signet jobs retry ID|--all brings them back', async () => {
    const cfg = path.join(tmp.dir, 'jobs.yaml');
    writeFileSync(
      cfg,
      `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }
registries: [{ host: "${proxy.host}", insecure: true }]
keys: [{ name: k, provider: file, path: k.pem }]
`,
    );
    const run = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(
        [...args, '-c', cfg],
        (l) => out.push(l),
        (l) => err.push(l),
      );
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    const listed = await run('jobs', 'failed', '--json');
    expect(listed.code).toBe(0);
    const failed = JSON.parse(listed.out) as { id: string; ref: string; reason: string }[];
    const denied = failed.find((f) => f.ref.endsWith('/denied/app:v1'))!;
    expect(denied.reason).toMatch(/^REGISTRY_DENIED/);
    expect(failed.map((f) => f.ref.split('/').slice(1).join('/')).sort()).toEqual(['broken/app:v1', 'denied/app:v1', 'immutable/app:v1']);
    expect((await run('jobs', 'failed')).out).toContain(`${denied.id}  `);

    // the operator fixes the registry, then retries one job, then all
    proxy.faults.length = 0;
    await pushImage(registry, 'broken/app', 'v1');
    expect((await run('jobs', 'retry', denied.id)).out).toBe(`job ${denied.id} queued again`);
    await finished(denied.id).then(({ state }) => expect(state).toBe('completed'));
    expect((await run('jobs', 'retry', denied.id)).code).toBe(1);
    expect((await run('jobs', 'retry', '--all')).out).toBe('retrying 2 failed job(s)');
    for (const f of failed) expect((await finished(f.id)).state).toBe('completed');
    expect((await run('jobs', 'failed')).out).toBe('no failed jobs');
    expect((await cosignVerify(`${registry.host}/immutable/app:v1`, pub)).ok).toBe(true);
    expect((await run('jobs', 'retry')).code).toBe(2);
  });
});
