/** Throughput and kms phases: POST one event per pre-pushed image to `signet serve` and wait for `signet worker` to sign them all. See bench/bench.ts for the whole picture. */
import { CpuMeter, diffCounts, loadAverage, log, mb, pool, round, RssSampler, sleep, stats } from '../lib/common.js';
import { monotonicUs } from '../lib/profile.js';
import { waitsBetween } from '../lib/signet-proc.js';
import { HookPoster, type ImageRef } from '../lib/webhook.js';
import { HOOK_SECRET } from '../lib/options.js';
import { type Ctx, refOf, type Deployment, waitSigned, checkSignatures, requestsOf, total } from '../lib/deploy.js';
// ---------------------------------------------------------------------------------------------
// phase: throughput (and the kms phase, which is the same with another key)

export async function postAll(ctx: Ctx, dep: Deployment, imgs: readonly ImageRef[], concurrency: number) {
  const poster = new HookPoster(dep.hookUrl, HOOK_SECRET, concurrency);
  const postedAt = new Map<string, number>();
  const acks: number[] = [];
  const errors: string[] = [];
  try {
    await pool(
      imgs,
      concurrency,
      async (img) => {
        try {
          const r = await poster.post([img]);
          acks.push(r.ms);
          postedAt.set(refOf(img), r.at);
          if (r.status !== 202) errors.push(`${refOf(img)}: HTTP ${r.status}`);
        } catch (e) {
          errors.push(`${refOf(img)}: ${(e as Error).message}`);
        }
      },
      () => ctx.stopped(),
    );
  } finally {
    await poster.close();
  }
  return { postedAt, acks, errors };
}

/**
 * A fresh signet runs its first few hundred requests cold (interpreted, then baseline-compiled
 * code: the first webhooks cost the receiver about 3 ms of CPU each, a warm one about 0.5 ms).
 * Each deployment signs `imgs` first, unmeasured.
 */
export async function warmUp(ctx: Ctx, dep: Deployment, imgs: readonly ImageRef[] | undefined): Promise<void> {
  if (!imgs?.length) return;
  await postAll(ctx, dep, imgs, Math.min(4, ctx.opts.postConcurrency));
  await waitSigned(ctx, dep.worker!, imgs.map(refOf), `warm-up ${dep.name}`);
}

export async function signingRun(ctx: Ctx, dep: Deployment, imgs: readonly ImageRef[], label: string) {
  const worker = dep.worker!;
  const pids = () => ({
    serve: dep.receiver.pid,
    worker: worker.pid,
    registry: ctx.r1.pid,
    redis: ctx.redisPid,
    ...(ctx.standin && label === 'kms' ? { 'kms stand-in': ctx.standin.pid } : {}),
  });
  const rss = new RssSampler({ receiver: dep.receiver.pid, worker: worker.pid }, 250).start();
  const idle = { receiver: rss.last('receiver'), worker: rss.last('worker') };
  const probe0 = worker.probe();
  const waits0 = worker.waits();
  const loadavg = loadAverage();
  const cpu = new CpuMeter(pids).start();
  const t0 = Date.now();
  const fromUs = monotonicUs();
  const posted = await postAll(ctx, dep, imgs, ctx.opts.postConcurrency);
  const postsDone = Date.now();
  log(`  ${label}: ${imgs.length} webhooks POSTed in ${postsDone - t0} ms (${posted.errors.length} errors), waiting for the signatures`);
  const refs = imgs.map(refOf);
  await waitSigned(ctx, worker, refs, label);
  const cpuUsed = cpu.stop();
  const profileWindow = { fromUs, toUs: monotonicUs() };
  const tEnd = Date.now();
  rss.stop();
  await sleep(1300); // the probe's per-second event-loop entry and its 250 ms flush
  const requests = diffCounts(requestsOf(worker.probe(), ctx.r1.host), requestsOf(probe0, ctx.r1.host));
  const waits = waitsBetween(worker.waits(), waits0, `http://${ctx.r1.host}`, refs.length);
  const times = refs
    .map((r) => worker.signed.get(r))
    .filter((t): t is number => t !== undefined)
    .sort((a, b) => a - b);
  const n = times.length;
  const last = times[n - 1] ?? NaN;
  const seconds = (last - t0) / 1000;
  const t10 = times[Math.floor(0.1 * n)] ?? NaN;
  const t90 = times[Math.max(0, Math.ceil(0.9 * n) - 1)] ?? NaN;
  const steady = (Math.ceil(0.9 * n) - Math.floor(0.1 * n) - 1) / ((t90 - t10) / 1000);
  const sig = await checkSignatures(ctx.oci, imgs);
  const present = refs.filter((r) => worker.present.has(r)).length;
  const dup = refs.filter((r) => (worker.signedCount.get(r) ?? 0) > 1);
  return {
    images: imgs.length,
    signed: n,
    seconds: round(seconds, 2),
    imagesPerSecond: round(n / seconds),
    steadyImagesPerSecond: round(steady),
    postPhaseMs: postsDone - t0,
    postErrors: posted.errors.slice(0, 10),
    postErrorCount: posted.errors.length,
    ackMs: stats(posted.acks),
    loadavg,
    cpu: cpuUsed,
    cpuMsPerImage: Object.fromEntries(Object.entries(cpuUsed.cpuSeconds).map(([k, v]) => [k, round((1000 * v) / Math.max(1, n), 1)])),
    rssMB: {
      receiverIdle: mb(idle.receiver),
      workerIdle: mb(idle.worker),
      receiverMax: mb(rss.max('receiver')),
      workerMax: mb(rss.max('worker')),
    },
    registryRequests: { total: total(requests), perSignature: round(total(requests) / Math.max(1, n), 2), byKind: requests },
    /** what the worker waited on the registry: the job's time, as a share of what each job slot had */
    registryWaits: { ...waits, jobSlotMsPerImage: Math.round((1000 * seconds * ctx.opts.workerConcurrency) / Math.max(1, n)) },
    lost: sig.lost.length,
    lostRefs: sig.lost.slice(0, 10),
    moreThanOneSignature: sig.extra,
    signedLogTwice: dup,
    alreadyPresent: present,
    warnings: worker.errors.slice(0, 10),
    runtime: { receiver: dep.receiver.runtimeStats(t0, tEnd), worker: worker.runtimeStats(t0, tEnd) },
    profileWindow,
  };
}
