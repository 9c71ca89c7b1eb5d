/** Phase cosign: the baseline, a sequential `cosign sign --key` loop. See bench/bench.ts for the whole picture. */
import { cosignSign } from '../../test/helpers/cosign.js';
import { loadAverage, log, round, stats } from '../lib/common.js';
import type { ImageRef } from '../lib/webhook.js';
import { KEY_PASSWORD } from '../lib/options.js';
import { type Ctx, checkSignatures } from '../lib/deploy.js';
// ---------------------------------------------------------------------------------------------
// phase: the cosign loop

export async function phaseCosign(ctx: Ctx, imgs: readonly ImageRef[]) {
  log(`cosign: sequential \`cosign sign --key\` over ${imgs.length} images; load ${loadAverage()}`);
  const loadavg = loadAverage();
  const ms: number[] = [];
  const errors: string[] = [];
  const t0 = Date.now();
  for (const i of imgs) {
    if (ctx.stopped()) break;
    const a = Date.now();
    try {
      await cosignSign(`${i.host}/${i.repo}@${i.digest}`, ctx.key.keyPath, KEY_PASSWORD, [], { timeoutMs: 60_000 });
      ms.push(Date.now() - a);
    } catch (e) {
      errors.push((e as Error).message.slice(0, 300));
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const sig = await checkSignatures(ctx.oci, imgs);
  return {
    images: imgs.length,
    signed: ms.length,
    imagesPerSecond: round(ms.length / seconds, 2),
    perImageMs: stats(ms),
    errors,
    loadavg,
    lost: sig.lost.length,
  };
}
