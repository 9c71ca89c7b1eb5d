/** Phase latency: live pushes at a fixed rate, each webhook POSTed as its push returns; push-to-signed percentiles. See bench/bench.ts for the whole picture. */
import { randomBytes } from 'node:crypto';
import { pushImage } from '../../test/helpers/images.js';
import { CpuMeter, loadAverage, log, paced, round, stats } from '../lib/common.js';
import { HookPoster, type ImageRef } from '../lib/webhook.js';
import { HOOK_SECRET, repoFor } from '../lib/options.js';
import { type Ctx, refOf, type Deployment, waitSigned, checkSignatures } from '../lib/deploy.js';
// ---------------------------------------------------------------------------------------------
// phase: latency at half the peak rate, with live pushes

export async function phaseLatency(ctx: Ctx, dep: Deployment, rate: number) {
  const count = Math.max(5, Math.round(rate * ctx.opts.latencySeconds));
  const full = ctx.opts.latencyPush === 'full';
  log(
    `latency: ${count} live pushes at ${rate} images/s (${full ? 'test-kit pushImage: 2 blob uploads + manifest' : '2 blob mounts + manifest PUT'}), webhook POSTed when each push returns; load ${loadAverage()}`,
  );
  const worker = dep.worker!;
  const loadavg = loadAverage();
  const poster = new HookPoster(dep.hookUrl, HOOK_SECRET, 64);
  const pushed: { img: ImageRef; startedAt: number; doneAt: number; postedAt: number }[] = [];
  const acks: number[] = [];
  const errors: string[] = [];
  const cpu = new CpuMeter(() => ({ serve: dep.receiver.pid, worker: worker.pid, registry: ctx.r1.pid, redis: ctx.redisPid })).start();
  const tag = `l${randomBytes(3).toString('hex')}`;
  try {
    const { lateMs } = await paced(
      count,
      rate,
      async (i) => {
        const repo = repoFor(`lat-${tag}`, i, ctx.opts.imagesPerRepo);
        const startedAt = Date.now();
        try {
          const p = full ? await pushImage(ctx.r1, repo, `v${i}`) : await ctx.oci.pushCheap(repo, `v${i}`, `${tag}-${i}`);
          const doneAt = Date.now();
          const img: ImageRef = { host: ctx.r1.host, repo, tag: `v${i}`, digest: p.digest, size: p.size };
          const r = await poster.post([img]);
          acks.push(r.ms);
          if (r.status !== 202) errors.push(`${repo}: HTTP ${r.status}`);
          pushed.push({ img, startedAt, doneAt, postedAt: r.at });
        } catch (e) {
          errors.push(`${repo}: ${(e as Error).message}`);
        }
      },
      () => ctx.stopped(),
    );
    await waitSigned(
      ctx,
      worker,
      pushed.map((p) => refOf(p.img)),
      'latency',
    );
    const cpuUsed = cpu.stop();
    const lat: number[] = [];
    const postToSigned: number[] = [];
    for (const p of pushed) {
      const t = worker.signed.get(refOf(p.img));
      if (t === undefined) continue;
      lat.push(t - p.doneAt);
      postToSigned.push(t - p.postedAt);
    }
    const first = Math.min(...pushed.map((p) => p.startedAt));
    const lastDone = Math.max(...pushed.map((p) => p.doneAt));
    const sig = await checkSignatures(
      ctx.oci,
      pushed.map((p) => p.img),
    );
    return {
      rate,
      push: full ? 'full (test-kit pushImage)' : 'cheap (2 blob mounts + manifest PUT)',
      pushes: count,
      pushed: pushed.length,
      achievedPushRate: round(pushed.length / ((lastDone - first) / 1000)),
      schedulerLateMs: lateMs,
      signed: lat.length,
      pushToSignedMs: stats(lat),
      webhookToSignedMs: stats(postToSigned),
      ackMs: stats(acks),
      errors: errors.slice(0, 10),
      errorCount: errors.length,
      loadavg,
      cpu: cpuUsed,
      lost: sig.lost.length,
      moreThanOneSignature: sig.extra,
    };
  } finally {
    await poster.close();
  }
}
