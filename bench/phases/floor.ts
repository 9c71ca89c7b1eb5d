/** Phase floor: the registry's own floor (raw signature writes at each concurrency) and signet's request sequence replayed raw. See bench/bench.ts for the whole picture. */
import { randomBytes } from 'node:crypto';
import { cpuSeconds, loadAverage, log, pool, round } from '../lib/common.js';
import type { ImageRef } from '../lib/webhook.js';
import type { Ctx } from '../lib/deploy.js';
import { repoFor } from '../lib/options.js';
// ---------------------------------------------------------------------------------------------
// phase: the registry's floor

export interface FloorRun {
  concurrency: number;
  writes: number;
  seconds: number;
  perSecond: number;
  registryCpuMsPerWrite: number;
}

export async function floorRun(
  ctx: Ctx,
  concurrency: number,
  writes: number,
  label: string,
  kind: 'write' | 'signet-sequence' | 'signet-verify' | 'signet-default' = 'write',
  imgs?: readonly ImageRef[],
): Promise<FloorRun> {
  const H = ctx.r1.host;
  const items = Array.from({ length: writes }, (_, i) => i);
  const c0 = cpuSeconds(ctx.r1.pid);
  const t0 = performance.now();
  await pool(
    items,
    concurrency,
    async (i) => {
      if (kind === 'write') {
        const repo = repoFor(`floor-${label}`, i, ctx.opts.imagesPerRepo);
        const digest = `sha256:${randomBytes(32).toString('hex')}`;
        await ctx.oci.writeSignature(repo, digest, `${H}/${repo}`);
      } else {
        const img = imgs![i]!;
        if (kind === 'signet-default') await ctx.oci.signetDefaultSequence(img.repo, img.digest, img.size ?? 0, img.tag, `${H}/${img.repo}`);
        else await ctx.oci.signetSequence(img.repo, img.digest, img.tag, `${H}/${img.repo}`, { readBack: kind === 'signet-verify' });
      }
    },
    () => ctx.stopped(),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(ctx.r1.pid) - c0;
  return { concurrency, writes, seconds: round(seconds, 2), perSecond: round(writes / seconds), registryCpuMsPerWrite: round((1000 * cpu) / writes, 2) };
}

export async function phaseFloor(ctx: Ctx, seqImgs: readonly ImageRef[], seqVerifyImgs: readonly ImageRef[], seqDefaultImgs: readonly ImageRef[]) {
  log(
    `floor: raw signature writes (POST+PUT payload, POST+PUT a per-signature config, PUT .sig; ${ctx.opts.imagesPerRepo} per repository), ${ctx.opts.floorWrites} per level, levels ${ctx.opts.floorLevels.join(',')}; load ${loadAverage()}`,
  );
  const loadavg = loadAverage();
  await floorRun(ctx, 8, 30, 'warmup');
  const levels: FloorRun[] = [];
  for (const c of ctx.opts.floorLevels) {
    if (ctx.stopped()) break;
    const r = await floorRun(ctx, c, ctx.opts.floorWrites, `c${c}`);
    levels.push(r);
    log(`  concurrency ${String(c).padStart(3)}: ${r.perSecond} writes/s (registry CPU ${r.registryCpuMsPerWrite} ms/write)`);
  }
  const best = levels.reduce((a, b) => (b.perSecond > a.perSecond ? b : a), levels[0]!);
  const seq = await floorRun(ctx, best.concurrency, seqImgs.length, 'seq', 'signet-sequence', seqImgs);
  const seqVerify = await floorRun(ctx, best.concurrency, seqVerifyImgs.length, 'seqv', 'signet-verify', seqVerifyImgs);
  const seqDefault = seqDefaultImgs.length ? await floorRun(ctx, best.concurrency, seqDefaultImgs.length, 'seqd', 'signet-default', seqDefaultImgs) : undefined;
  log(
    `  best: ${best.perSecond} writes/s at concurrency ${best.concurrency}; signet's legacy sequence (5 requests + the .sig config once per repository) replayed raw: ${seq.perSecond}/s (registry CPU ${seq.registryCpuMsPerWrite} ms/signature)`,
  );
  log(
    `  the same with the read-back of registries[].verifyWrites (6 requests): ${seqVerify.perSecond}/s (registry CPU ${seqVerify.registryCpuMsPerWrite} ms/signature)`,
  );
  if (seqDefault)
    log(
      `  the default formats' sequence (10 requests + 2 shared configs once per repository): ${seqDefault.perSecond} images/s (registry CPU ${seqDefault.registryCpuMsPerWrite} ms/image)`,
    );
  return { loadavg, levels, best, signetSequence: seq, signetSequenceVerify: seqVerify, ...(seqDefault ? { signetDefaultSequence: seqDefault } : {}) };
}
