/** Phase soak: steady pushes for --soak seconds; RSS of receiver and worker at start, middle and end. See bench/bench.ts for the whole picture. */
import { randomBytes } from 'node:crypto';
import { CpuMeter, loadAverage, log, mb, metricSum, paced, round, RssSampler, sleep, stats } from '../lib/common.js';
import { HookPoster, type ImageRef } from '../lib/webhook.js';
import { HOOK_SECRET, repoFor } from '../lib/options.js';
import { type Ctx, refOf, type Deployment, waitSigned, checkSignatures } from '../lib/deploy.js';
// ---------------------------------------------------------------------------------------------
// phase: memory soak

export async function phaseSoak(ctx: Ctx, dep: Deployment, rate: number) {
  const seconds = ctx.opts.soakSeconds;
  const count = Math.round(rate * seconds);
  log(
    `soak: ${seconds} s of steady pushes at ${rate} images/s (${count} images; cheap pushes: 2 blob mounts + manifest PUT, --images-per-repo to a repository); load ${loadAverage()}`,
  );
  const worker = dep.worker!;
  const loadavg = loadAverage();
  const rss = new RssSampler({ receiver: dep.receiver.pid, worker: worker.pid }, 1000).start();
  const heap: { t: number; receiverHeapMB: number }[] = [];
  const poster = new HookPoster(dep.hookUrl, HOOK_SECRET, 64);
  const pushed: { img: ImageRef; doneAt: number }[] = [];
  const errors: string[] = [];
  const tag = `s${randomBytes(3).toString('hex')}`;
  const cpu = new CpuMeter(() => ({ serve: dep.receiver.pid, worker: worker.pid, registry: ctx.r1.pid, redis: ctx.redisPid })).start();
  const t0 = Date.now();
  const sampleHeap = async (): Promise<void> => {
    try {
      const m = await dep.receiver.metrics();
      heap.push({ t: Date.now(), receiverHeapMB: mb(metricSum(m, 'signet_nodejs_heap_size_used_bytes')) });
    } catch {
      /* a missed sample */
    }
  };
  await sampleHeap();
  const progress = setInterval(() => {
    const signed = pushed.reduce((a, p) => a + (worker.signed.has(refOf(p.img)) ? 1 : 0), 0);
    log(
      `  soak ${Math.round((Date.now() - t0) / 1000)} s: pushed ${pushed.length}, signed ${signed}, RSS receiver ${mb(rss.last('receiver'))} MB, worker ${mb(rss.last('worker'))} MB, load ${loadAverage()}`,
    );
    void sampleHeap();
  }, 30_000);
  try {
    const { lateMs } = await paced(
      count,
      rate,
      async (i) => {
        const repo = repoFor(`soak-${tag}`, i, ctx.opts.imagesPerRepo);
        try {
          const p = await ctx.oci.pushCheap(repo, `v${i}`, `${tag}-${i}`);
          const doneAt = Date.now();
          const img: ImageRef = { host: ctx.r1.host, repo, tag: `v${i}`, digest: p.digest, size: p.size };
          const r = await poster.post([img]);
          if (r.status !== 202) errors.push(`${repo}: HTTP ${r.status}`);
          pushed.push({ img, doneAt });
        } catch (e) {
          errors.push(`${repo}: ${(e as Error).message}`);
        }
      },
      () => ctx.stopped(),
    );
    const pushEnd = Date.now();
    await waitSigned(
      ctx,
      worker,
      pushed.map((p) => refOf(p.img)),
      'soak',
    );
    await sleep(1300);
    const runtime = { receiver: dep.receiver.runtimeStats(t0, pushEnd), worker: worker.runtimeStats(t0, pushEnd) };
    await sampleHeap();
    clearInterval(progress);
    rss.stop();
    const cpuUsed = cpu.stop();
    const span = pushEnd - t0;
    const at = (f: number) => t0 + f * span;
    const window = (name: string, a: number, b: number) => mb(rss.medianIn(name, at(a), at(b)));
    const rssOf = (name: string) => ({
      first: mb(rss.series.get(name)?.[0]?.rss ?? NaN),
      start: window(name, 0.1, 0.2),
      middle: window(name, 0.45, 0.55),
      end: window(name, 0.9, 1.0),
      max: mb(rss.max(name)),
      slopeMBPerMin: round(rss.slopePerMin(name, at(0.1), at(1.0)) / 2 ** 20, 2),
      growthMB: round(window(name, 0.9, 1.0) - window(name, 0.1, 0.2)),
    });
    const lat: number[] = [];
    for (const p of pushed) {
      const t = worker.signed.get(refOf(p.img));
      if (t !== undefined) lat.push(t - p.doneAt);
    }
    // read back a sample of the signatures (all of them would be a registry load of its own)
    const sample = pushed.length <= 600 ? pushed : pushed.filter((_, i) => i % Math.ceil(pushed.length / 600) === 0);
    const sig = await checkSignatures(
      ctx.oci,
      sample.map((p) => p.img),
    );
    const dup = pushed.filter((p) => (worker.signedCount.get(refOf(p.img)) ?? 0) > 1).length;
    return {
      seconds,
      rate,
      pushes: count,
      pushed: pushed.length,
      signed: lat.length,
      schedulerLateMs: lateMs,
      errors: errors.slice(0, 10),
      errorCount: errors.length,
      loadavg,
      cpu: cpuUsed,
      rssMB: { receiver: rssOf('receiver'), worker: rssOf('worker') },
      receiverHeapUsedMB: heap.map((h) => ({ atSecond: Math.round((h.t - t0) / 1000), mb: h.receiverHeapMB })),
      pushToSignedMs: stats(lat),
      signatureCheck: { checked: sig.checked, lost: sig.lost.length, moreThanOne: sig.extra.length },
      signedLogTwice: dup,
      runtime,
    };
  } finally {
    clearInterval(progress);
    rss.stop();
    await poster.close();
  }
}
