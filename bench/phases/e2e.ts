/** Phase e2e: pushes to a registry whose notifications go to `signet start` (what users see). See bench/bench.ts for the whole picture. */
import { pushImage } from '../../test/helpers/images.js';
import { freePort } from '../../test/helpers/ports.js';
import { startRegistry } from '../../test/helpers/registry.js';
import { CpuMeter, diffCounts, loadAverage, log, mb, metricBy, pool, round, RssSampler, sleep, stats } from '../lib/common.js';
import { Oci } from '../lib/oci.js';
import type { ImageRef } from '../lib/webhook.js';
import { HOOK_SECRET } from '../lib/options.js';
import { type Ctx, refOf, pin, type Deployment, deploy, waitSigned, checkSignatures, verifySample, requestsOf, total } from '../lib/deploy.js';
// ---------------------------------------------------------------------------------------------
// phase: end to end through the registry's own notifications

export async function phaseE2e(ctx: Ctx) {
  const N = ctx.opts.e2eImages;
  log(
    `e2e: ${N} pushes (${ctx.opts.concurrency} at once) to a registry whose notifications go to signet start${ctx.opts.notifyFilter ? ' (blob and pull events filtered)' : ''}; load ${loadAverage()}`,
  );
  const port = await freePort();
  const r2 = await startRegistry({
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${HOOK_SECRET}`] },
    ...(ctx.opts.notifyFilter ? { notifyIgnoredMediaTypes: ['application/octet-stream'], notifyIgnoredActions: ['pull'] } : {}),
  });
  ctx.extraRegistries.add(r2);
  await pin(ctx, r2.pid, 0);
  const oci2 = new Oci(r2.url, 32);
  let dep: Deployment | undefined;
  try {
    dep = await deploy(ctx, 'e2e', { mode: 'start', port, registries: [r2], keys: ['cosign'], rules: [{ match: `${r2.host}/bench/**`, keys: ['cosign'] }] });
    const s = dep.receiver;
    const rss = new RssSampler({ start: s.pid }, 250).start();
    const idle = rss.last('start');
    const probe0 = s.probe();
    const loadavg = loadAverage();
    const cpu = new CpuMeter(() => ({ signet: s.pid, registry: r2.pid, redis: ctx.redisPid })).start();
    const pushed: { img: ImageRef; startedAt: number; doneAt: number }[] = [];
    const errors: string[] = [];
    const t0 = Date.now();
    await pool(
      Array.from({ length: N }, (_, i) => i),
      ctx.opts.concurrency,
      async (i) => {
        const repo = `bench/app-${i}`;
        const startedAt = Date.now();
        try {
          const p = await pushImage(r2, repo, 'v1');
          pushed.push({ img: { host: r2.host, repo, tag: 'v1', digest: p.digest }, startedAt, doneAt: Date.now() });
        } catch (e) {
          errors.push(`${repo}: ${(e as Error).message}`);
        }
      },
      () => ctx.stopped(),
    );
    const pushesDone = Date.now();
    await waitSigned(
      ctx,
      s,
      pushed.map((p) => refOf(p.img)),
      'e2e',
    );
    const cpuUsed = cpu.stop();
    rss.stop();
    await sleep(300);
    const lat: number[] = [];
    const toQueued: number[] = [];
    const queuedToSigned: number[] = [];
    let last = 0;
    for (const p of pushed) {
      const ref = refOf(p.img);
      const t = s.signed.get(ref);
      const q = s.queued.get(ref);
      if (q !== undefined) toQueued.push(q - p.doneAt);
      if (q !== undefined && t !== undefined) queuedToSigned.push(t - q);
      if (t === undefined) continue;
      lat.push(t - p.doneAt);
      last = Math.max(last, t);
    }
    const requests = diffCounts(requestsOf(s.probe(), r2.host), requestsOf(probe0, r2.host));
    const sig = await checkSignatures(
      oci2,
      pushed.map((p) => p.img),
    );
    const verify = await verifySample(
      r2.host,
      pushed.map((p) => p.img),
      ctx.key.pubPath,
      3,
    );
    const m = await s.metrics();
    return {
      images: N,
      pushed: pushed.length,
      pushErrors: errors.slice(0, 10),
      pushPhaseMs: pushesDone - t0,
      signed: lat.length,
      imagesPerSecond: round(lat.length / ((last - t0) / 1000)),
      pushToSignedMs: stats(lat),
      pushToQueuedMs: stats(toQueued),
      queuedToSignedMs: stats(queuedToSigned),
      rssMB: { idle: mb(idle), max: mb(rss.max('start')) },
      loadavg,
      cpu: cpuUsed,
      registryRequestsPerSignature: round(total(requests) / Math.max(1, lat.length), 2),
      registryRequestsByKind: requests,
      webhookEvents: metricBy(m, 'signet_webhook_events_total', ['outcome']),
      lost: sig.lost.length,
      moreThanOneSignature: sig.extra,
      cosignVerify: verify,
    };
  } finally {
    await dep?.stop();
    await oci2.close();
    await r2.stop();
    ctx.extraRegistries.delete(r2);
  }
}
