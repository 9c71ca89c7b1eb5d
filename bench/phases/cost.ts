/** Phase cost: key-backend calls and registry requests per new signature, one image at a time, from /metrics and the request probe. See bench/bench.ts for the whole picture. */
import { diffCounts, log, metricBy, metricSum, sleep } from '../lib/common.js';
import { HookPoster, type ImageRef } from '../lib/webhook.js';
import { HOOK_SECRET } from '../lib/options.js';
import { type Ctx, refOf, deploy, waitSigned, requestsOf, total } from '../lib/deploy.js';
// ---------------------------------------------------------------------------------------------
// phase: cost per signature (signet start, /metrics + probe + stand-in counts)

export async function phaseCost(ctx: Ctx, fileImgs: readonly ImageRef[], kmsImgs: readonly ImageRef[]) {
  log(`cost: signet start with a file key and an awskms key (stand-in, no delay), ${fileImgs.length} + ${kmsImgs.length} single-arch images one at a time`);
  await ctx.standin!.setDelay(0);
  const H = ctx.r1.host;
  const dep = await deploy(ctx, 'cost', {
    mode: 'start',
    registries: [ctx.r1],
    keys: ['cosign', 'kms'],
    rules: [
      { match: `${H}/bench/costkms-*`, keys: ['kms'] },
      { match: `${H}/bench/**`, keys: ['cosign'] },
    ],
  });
  const poster = new HookPoster(dep.hookUrl, HOOK_SECRET, 1);
  try {
    const out: Record<string, unknown> = {};
    for (const [key, imgs] of [
      ['cosign', fileImgs],
      ['kms', kmsImgs],
    ] as const) {
      const per: {
        keyCalls: number;
        standinSign: number;
        requests: Record<string, number>;
        metricRequests: Record<string, number>;
        registryErrors: Record<string, number>;
        signatures: number;
      }[] = [];
      for (const img of imgs) {
        if (ctx.stopped()) break;
        const m0 = await dep.receiver.metrics();
        const p0 = requestsOf(dep.receiver.probe(), H);
        const s0 = (await ctx.standin!.counts()).counts['Sign'] ?? 0;
        const r = await poster.post([img]);
        if (r.status !== 202) ctx.problems.push(`cost: ${refOf(img)} webhook answered ${r.status}`);
        await waitSigned(ctx, dep.worker!, [refOf(img)], 'cost');
        await sleep(400); // the probe flushes every 250 ms
        const m1 = await dep.receiver.metrics();
        const p1 = requestsOf(dep.receiver.probe(), H);
        const s1 = (await ctx.standin!.counts()).counts['Sign'] ?? 0;
        const d = (name: string, where: Record<string, string> = {}) => metricSum(m1, name, where) - metricSum(m0, name, where);
        per.push({
          keyCalls: d('signet_key_sign_seconds_count', { key }),
          standinSign: s1 - s0,
          requests: diffCounts(p1, p0),
          metricRequests: diffCounts(
            metricBy(
              m1.filter((x) => x.labels['registry'] === H),
              'signet_registry_requests_total',
              ['method', 'kind'],
            ),
            metricBy(
              m0.filter((x) => x.labels['registry'] === H),
              'signet_registry_requests_total',
              ['method', 'kind'],
            ),
          ),
          registryErrors: diffCounts(
            metricBy(m1, 'signet_registry_errors_total', ['method', 'status']),
            metricBy(m0, 'signet_registry_errors_total', ['method', 'status']),
          ),
          signatures: d('signet_signatures_total', { key, outcome: 'signed' }),
        });
      }
      const first = per[0];
      const same = per.every(
        (p) =>
          JSON.stringify(p.requests) === JSON.stringify(first?.requests) &&
          JSON.stringify(p.metricRequests) === JSON.stringify(first?.metricRequests) &&
          p.keyCalls === first?.keyCalls,
      );
      out[key] = {
        images: per.length,
        keyBackendCallsPerSignature: first?.keyCalls,
        standinSignCallsPerSignature: key === 'kms' ? first?.standinSign : undefined,
        signaturesPerImage: first?.signatures,
        registryRequestsPerSignature: first ? total(first.metricRequests) : NaN,
        registryRequestsByKind: first?.metricRequests,
        probeRequestsPerSignature: first ? total(first.requests) : NaN,
        probeRequestsByKind: first?.requests,
        registryErrorsPerSignature: first?.registryErrors,
        identicalForEveryImage: same,
        perImage: per.map((p) => ({ keyCalls: p.keyCalls, standinSign: p.standinSign, requests: total(p.metricRequests), probeRequests: total(p.requests) })),
      };
    }
    const m = await dep.receiver.metrics();
    const registryRequestMetric = [...new Set(m.filter((s) => /registry/.test(s.name)).map((s) => s.name))];
    return { ...out, signetRegistryMetrics: registryRequestMetric };
  } finally {
    await poster.close();
    await dep.stop();
  }
}
