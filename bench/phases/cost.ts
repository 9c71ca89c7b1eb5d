/**
 * Phase cost: key-backend calls and registry requests per new image, one image at a time, for
 * each format set, on distribution 2.8 (no referrers API; single-POST uploads answered 202) and
 * on the in-memory OCI registry of test/helpers/fake-oci.ts with the referrers API and single-POST
 * uploads; a repository's first image (its shared configs uploaded) and the next ones. Counted
 * from /metrics (signet_registry_requests_total, signet_key_sign_seconds_count) and the request
 * probe; Sign calls also in the AWS KMS stand-in. See bench/bench.ts for the whole picture.
 */
import type { RunningRegistry } from '../../test/helpers/registry.js';
import { startFakeOci } from '../../test/helpers/fake-oci.js';
import { diffCounts, log, metricBy, metricSum, sleep } from '../lib/common.js';
import { HookPoster, type ImageRef } from '../lib/webhook.js';
import { HOOK_SECRET } from '../lib/options.js';
import { Oci } from '../lib/oci.js';
import { type Ctx, refOf, deploy, waitSigned, requestsOf, total } from '../lib/deploy.js';

/** What the cost phase measures: (registry, formats, key) cases, each a repository of IMAGES images. */
const IMAGES = 3;
type Where = 'distribution' | 'referrers-api';
interface Case {
  name: string;
  where: Where;
  formats?: string[];
  key: 'cosign' | 'kms';
}
const CASES: Case[] = [
  { name: 'legacy', where: 'distribution', formats: ['legacy'], key: 'cosign' },
  { name: 'bundle', where: 'distribution', formats: ['bundle'], key: 'cosign' },
  { name: 'default', where: 'distribution', key: 'cosign' },
  { name: 'kms', where: 'distribution', formats: ['legacy'], key: 'kms' },
  { name: 'legacy', where: 'referrers-api', formats: ['legacy'], key: 'cosign' },
  { name: 'bundle', where: 'referrers-api', formats: ['bundle'], key: 'cosign' },
  { name: 'default', where: 'referrers-api', key: 'cosign' },
];

export interface ImageCost {
  keyCalls: number;
  standinSign: number;
  /** signet_registry_requests_total by "METHOD/kind" */
  requests: Record<string, number>;
  /** the probe's count, by its kinds */
  probe: Record<string, number>;
  errors: Record<string, number>;
}

export async function phaseCost(ctx: Ctx) {
  log(
    `cost: signet start, ${IMAGES} single-arch images per (registry, formats, key), one at a time: distribution 2.8, and an in-memory registry with the referrers API and single-POST uploads`,
  );
  await ctx.standin!.setDelay(0);
  const fake = await startFakeOci();
  fake.singlePost = true;
  fake.referrersApi = true;
  const fakeOci = new Oci(`http://${fake.host}`, 16);
  const H = ctx.r1.host;
  const F = fake.host;
  const hostOf = (w: Where) => (w === 'distribution' ? H : F);
  const ociOf = (w: Where) => (w === 'distribution' ? ctx.oci : fakeOci);
  const dep = await deploy(ctx, 'cost', {
    mode: 'start',
    registries: [ctx.r1, { host: F } as RunningRegistry],
    keys: ['cosign', 'kms'],
    rules: [
      ...CASES.map((c) => ({ match: `${hostOf(c.where)}/bench/cost-${c.name}-*`, keys: [c.key], ...(c.formats ? { formats: c.formats } : {}) })),
      { match: `${H}/bench/**`, keys: ['cosign'] },
      { match: `${F}/bench/**`, keys: ['cosign'] },
    ],
  });
  const poster = new HookPoster(dep.hookUrl, HOOK_SECRET, 1);
  const one = async (img: ImageRef, key: string): Promise<ImageCost> => {
    const host = img.host;
    const m0 = await dep.receiver.metrics();
    const p0 = requestsOf(dep.receiver.probe(), host);
    const s0 = (await ctx.standin!.counts()).counts['Sign'] ?? 0;
    const r = await poster.post([img]);
    if (r.status !== 202) ctx.problems.push(`cost: ${refOf(img)} webhook answered ${r.status}`);
    await waitSigned(ctx, dep.worker!, [refOf(img)], 'cost');
    await sleep(400); // the probe flushes every 250 ms
    const m1 = await dep.receiver.metrics();
    const p1 = requestsOf(dep.receiver.probe(), host);
    const s1 = (await ctx.standin!.counts()).counts['Sign'] ?? 0;
    const on = (m: typeof m0) => m.filter((x) => x.labels['registry'] === host);
    return {
      keyCalls: metricSum(m1, 'signet_key_sign_seconds_count', { key }) - metricSum(m0, 'signet_key_sign_seconds_count', { key }),
      standinSign: s1 - s0,
      requests: diffCounts(
        metricBy(on(m1), 'signet_registry_requests_total', ['method', 'kind']),
        metricBy(on(m0), 'signet_registry_requests_total', ['method', 'kind']),
      ),
      probe: diffCounts(p1, p0),
      errors: diffCounts(
        metricBy(on(m1), 'signet_registry_errors_total', ['method', 'status']),
        metricBy(on(m0), 'signet_registry_errors_total', ['method', 'status']),
      ),
    };
  };
  const push = async (w: Where, repo: string, i: number): Promise<ImageRef> => {
    const p = await ociOf(w).pushCheap(repo, `v${i}`, `${repo}-${i}-${Date.now()}`);
    return { host: hostOf(w), repo, tag: `v${i}`, digest: p.digest, size: p.size };
  };
  try {
    // one image per registry first, unmeasured: the per-registry probes (referrers API, single POST) are then behind
    for (const w of ['distribution', 'referrers-api'] as const) await one(await push(w, 'bench/cost-warm-0', 0), 'cosign');
    const cases: Record<string, unknown>[] = [];
    for (const c of CASES) {
      if (ctx.stopped()) break;
      const repo = `bench/cost-${c.name}-0`;
      const per: ImageCost[] = [];
      for (let i = 0; i < IMAGES; i++) per.push(await one(await push(c.where, repo, i), c.key));
      const next = per.slice(1);
      const same = next.every((p) => JSON.stringify(p.requests) === JSON.stringify(next[0]?.requests) && p.keyCalls === next[0]?.keyCalls);
      const formats = c.formats?.join(', ') ?? 'legacy, bundle (default)';
      cases.push({
        registry: c.where === 'distribution' ? 'distribution 2.8: no referrers API, single POST answered 202' : 'in memory: referrers API, single-POST uploads',
        where: c.where,
        formats,
        key: c.key === 'kms' ? 'awskms (stand-in)' : 'file',
        firstInRepository: { registryRequests: total(per[0]!.requests), byKind: per[0]!.requests, keyCalls: per[0]!.keyCalls },
        next: {
          registryRequests: next[0] ? total(next[0].requests) : NaN,
          byKind: next[0]?.requests,
          probeRequests: next[0] ? total(next[0].probe) : NaN,
          probeByKind: next[0]?.probe,
          keyCalls: next[0]?.keyCalls,
          standinSign: c.key === 'kms' ? next[0]?.standinSign : undefined,
          errors: next[0]?.errors,
        },
        identicalAfterTheFirst: same,
      });
      const n = next[0];
      log(
        `  ${c.where} [${formats}] ${c.key}: first in its repository ${total(per[0]!.requests)} requests, then ${n ? total(n.requests) : '?'} (${JSON.stringify(n?.requests)}); ${n?.keyCalls} key calls${same ? '' : '; NOT the same for every image'}`,
      );
    }
    const m = await dep.receiver.metrics();
    return { images: IMAGES, cases, signetRegistryMetrics: [...new Set(m.filter((s) => /registry/.test(s.name)).map((s) => s.name))] };
  } finally {
    await poster.close();
    await dep.stop();
    await fakeOci.close();
    await fake.stop();
  }
}
