/** Phase cosign: the baselines, sequential `cosign sign --key` loops (cosign 2.5: the .sig; cosign 3.1: the .sig and the bundle). See bench/bench.ts for the whole picture. */
import path from 'node:path';
import { COSIGN3_BIN, cosignSign, runCosign } from '../../test/helpers/cosign.js';
import { loadAverage, log, round, stats } from '../lib/common.js';
import type { ImageRef } from '../lib/webhook.js';
import { KEY_PASSWORD } from '../lib/options.js';
import { type Ctx, checkSignatures } from '../lib/deploy.js';
// ---------------------------------------------------------------------------------------------
// phase: the cosign loops

/** One image at a time through `signOne`: images/s, time per image, failures, and the .sig check. */
async function signLoop(ctx: Ctx, imgs: readonly ImageRef[], signOne: (ref: string) => Promise<void>) {
  const loadavg = loadAverage();
  const ms: number[] = [];
  const errors: string[] = [];
  const t0 = Date.now();
  for (const i of imgs) {
    if (ctx.stopped()) break;
    const a = Date.now();
    try {
      await signOne(`${i.host}/${i.repo}@${i.digest}`);
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

export async function phaseCosign(ctx: Ctx, imgs: readonly ImageRef[]) {
  log(`cosign: sequential \`cosign sign --key\` over ${imgs.length} images; load ${loadAverage()}`);
  return signLoop(ctx, imgs, async (ref) => void (await cosignSign(ref, ctx.key.keyPath, KEY_PASSWORD, [], { timeoutMs: 60_000 })));
}

/**
 * cosign 3.1 writing what signet's default formats write, one image at a time: the legacy .sig
 * (`--new-bundle-format=false --use-signing-config=false --tlog-upload=false`) and a sigstore
 * bundle referrer (the default in 3.x, with a signing config that names no Rekor, TSA or Fulcio),
 * two `cosign sign` runs per image, as a CI job would have to run it to write both.
 */
export async function phaseCosign3(ctx: Ctx, imgs: readonly ImageRef[], dir: string) {
  log(`cosign3: sequential cosign 3.1 sign over ${imgs.length} images, the .sig and the bundle (two runs per image); load ${loadAverage()}`);
  const bin = COSIGN3_BIN();
  const sc = path.join(dir, 'cosign3-signing-config.json');
  const made = await runCosign(
    ['signing-config', 'create', '--no-default-fulcio', '--no-default-rekor', '--no-default-tsa', '--no-default-oidc', `--out=${sc}`],
    {
      bin,
      timeoutMs: 60_000,
    },
  );
  if (made.code !== 0) throw new Error(`cosign 3.1 signing-config create failed: ${made.stderr.slice(0, 300)}`);
  return signLoop(ctx, imgs, async (ref) => {
    for (const args of [['--new-bundle-format=false', '--use-signing-config=false', '--tlog-upload=false'], [`--signing-config=${sc}`]]) {
      const r = await runCosign(['sign', `--key=${ctx.key.keyPath}`, '--allow-http-registry=true', '-y', ...args, ref], {
        bin,
        env: { COSIGN_PASSWORD: KEY_PASSWORD },
        timeoutMs: 60_000,
      });
      if (r.code !== 0) throw new Error(`cosign 3.1 sign ${args.join(' ')} failed (code ${r.code}): ${r.stderr.slice(-300)}`);
    }
  });
}
