/** The results table (terminal and markdown) and the correctness checks behind the exit code. See bench/bench.ts for the whole picture. */
import { log, type machineInfo, round } from './common.js';
import type { Options } from './options.js';
// ---------------------------------------------------------------------------------------------
// report

export interface Row {
  section: string;
  what: string;
  value: string;
  target?: string;
  verdict?: 'met' | 'MISSED' | '-';
}

export function printTable(rows: Row[]): void {
  const w1 = Math.max(...rows.map((r) => r.what.length));
  const w2 = Math.min(70, Math.max(...rows.map((r) => r.value.length)));
  let section = '';
  log('');
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section;
      log(`\n${section}`);
      log(`${'-'.repeat(w1 + w2 + 30)}`);
    }
    log(`${r.what.padEnd(w1)}  ${r.value.padEnd(w2)}  ${r.target ? `${r.target} -> ${r.verdict}` : ''}`);
  }
  log('');
}

export function markdownTable(rows: Row[]): string {
  const out = ['| | figure | target |', '|---|---|---|'];
  let section = '';
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section;
      out.push(`| **${section}** | | |`);
    }
    out.push(`| ${r.what} | ${r.value.replace(/\|/g, '\\|')} | ${r.target ? `${r.target}: **${r.verdict}**` : ''} |`);
  }
  return out.join('\n');
}

export const verdict = (ok: boolean | undefined): 'met' | 'MISSED' | '-' => (ok === undefined ? '-' : ok ? 'met' : 'MISSED');
export const pct = (a: number, b: number): number => round((100 * a) / b);

/**
 * What the worker's jobs waited on the registry (the request probe): requests in flight, the
 * waits per image against each job's time in its slot, and the mean wait by request kind.
 */
export function waitsText(
  w: { meanMsByKind: Record<string, number>; msPerImage: number; inFlightMedian: number; inFlightMax: number; jobSlotMsPerImage: number },
  slots: number | undefined,
): string {
  const kinds = Object.entries(w.meanMsByKind)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return (
    `${w.inFlightMedian} requests in flight (median; max ${w.inFlightMax}${slots ? `, ${slots} job slots` : ''}); ` +
    `${w.msPerImage} ms of each job's ${w.jobSlotMsPerImage} ms in its slot (${pct(w.msPerImage, w.jobSlotMsPerImage)} %) waiting for registry responses; mean ms per request: ${kinds}`
  );
}

export function correctness(r: Record<string, any>): string[] {
  const f: string[] = [];
  for (const name of ['throughput', 'default', 'kms', 'latency', 'e2e']) {
    const p = r[name];
    if (!p) continue;
    if (p.lost) f.push(`${name}: ${p.lost} image(s) without a signature`);
    if (p.moreThanOneSignature?.length) f.push(`${name}: ${p.moreThanOneSignature.length} image(s) with more than one signature`);
    if (p.postErrorCount) f.push(`${name}: ${p.postErrorCount} webhook POST(s) not answered 202`);
    if (p.errorCount) f.push(`${name}: ${p.errorCount} push/POST error(s)`);
    for (const v of p.verify ?? p.cosignVerify ?? []) if (!v.ok) f.push(`${name}: cosign verify failed for ${v.ref}: ${v.detail}`);
  }
  if (r.soak && (r.soak.signatureCheck.lost || r.soak.signatureCheck.moreThanOne))
    f.push(`soak: ${r.soak.signatureCheck.lost} lost, ${r.soak.signatureCheck.moreThanOne} with >1 signature (sample)`);
  if (r.kms && r.kms.standin.signCalls !== r.kms.standin.signaturesWritten)
    f.push(`kms: ${r.kms.standin.signCalls} Sign calls for ${r.kms.standin.signaturesWritten} signatures`);
  if (r.cosign?.errors?.length) f.push(`cosign: ${r.cosign.errors.length} cosign sign failure(s)`);
  if (r.cosign3?.errors?.length) f.push(`cosign3: ${r.cosign3.errors.length} cosign 3.1 sign failure(s): ${r.cosign3.errors[0]}`);
  if (r.ack && Number.isFinite(r.ack.jobsWaiting) && r.ack.jobsWaiting < r.ack.eventsAcceptedMeasured)
    f.push(`ack: ${r.ack.eventsAcceptedMeasured} events acknowledged but ${r.ack.jobsWaiting} jobs in Redis`);
  return f;
}

export function buildRows(r: Record<string, any>, opts: Options): Row[] {
  const rows: Row[] = [];
  const add = (section: string, what: string, value: string, target?: string, ok?: boolean) =>
    rows.push({ section, what, value, ...(target ? { target, verdict: verdict(ok) } : {}) });
  const M = r.machine as ReturnType<typeof machineInfo>;
  add('Machine', 'CPU / cores', `${M.cpu}, ${M.cores} cores`);
  add('Machine', 'node / registry / cosign / redis', `${M.node} / ${M.registry} / ${M.cosign} / ${M.redis}`);
  add('Machine', 'load average (1/5/15 min)', `start ${M.loadavgAtStart}, end ${r.loadavgAtEnd ?? '?'}`);
  if (opts.pin)
    add('Machine', '--pin', 'registries on CPU 0; signet, the stand-in, the load generators and the bench on CPU 1; Redis and other sessions float');

  const floor = r.floor;
  const floorRate: number | undefined = floor ? Math.max(floor.best.perSecond, floor.after?.perSecond ?? 0) : undefined;
  const cosignRate: number | undefined = r.cosign?.imagesPerSecond;
  const cosign3Rate: number | undefined = r.cosign3?.imagesPerSecond;
  const replayRate: number | undefined = floor?.signetSequence?.perSecond;
  const defaultReplayRate: number | undefined = floor?.signetDefaultSequence?.perSecond;
  const T = 'Throughput, legacy .sig only (formats: [legacy])';
  if (floor) {
    add(
      T,
      'registry floor: raw signature writes/s (5 writes, no reads)',
      `${floorRate} (best concurrency ${floor.best.concurrency}: ${floor.best.perSecond} before, ${floor.after?.perSecond ?? '-'} after the signet run; registry CPU ${floor.best.registryCpuMsPerWrite} ms/write; load ${floor.loadavg})`,
    );
    add(
      T,
      "  signet's request sequence replayed raw",
      `${floor.signetSequence.perSecond}/s (5 requests, the .sig config once per repository; registry CPU ${floor.signetSequence.registryCpuMsPerWrite} ms/signature) = ${pct(floor.signetSequence.perSecond, floorRate!)} % of the floor`,
    );
    if (floor.signetSequenceVerify) {
      add(
        T,
        '  same with verifyWrites (read-back)',
        `${floor.signetSequenceVerify.perSecond}/s (6 requests, registry CPU ${floor.signetSequenceVerify.registryCpuMsPerWrite} ms/signature) = ${pct(floor.signetSequenceVerify.perSecond, floorRate!)} % of the floor`,
      );
    }
  }
  if (r.throughput) {
    const t = r.throughput;
    add(
      T,
      'signet webhook->queue->worker->signature',
      `${t.imagesPerSecond} images/s (steady ${t.steadyImagesPerSecond}; ${t.signed}/${t.images} in ${t.seconds} s, serve + worker, load ${t.loadavg})`,
      '>= 85 % of floor',
      floorRate ? t.imagesPerSecond >= 0.85 * floorRate : undefined,
    );
    if (floorRate) add(T, '  ratio to the floor', `${pct(t.imagesPerSecond, floorRate)} % (steady ${pct(t.steadyImagesPerSecond, floorRate)} %)`);
    if (replayRate)
      add(
        T,
        '  ratio to its sequence replayed raw',
        `${pct(t.imagesPerSecond, replayRate)} % (steady ${pct(t.steadyImagesPerSecond, replayRate)} %)`,
        '>= 95 %',
        t.imagesPerSecond >= 0.95 * replayRate,
      );
    if (cosignRate) add(T, '  ratio to the cosign 2.5 loop', `${round(t.imagesPerSecond / cosignRate, 1)}x`);
    add(
      T,
      '  CPU ms per image',
      Object.entries(t.cpuMsPerImage as Record<string, number>)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    );
    add(
      T,
      '  registry requests per signature',
      `${t.registryRequests.perSignature} (${Object.entries(t.registryRequests.byKind as Record<string, number>)
        .map(([k, v]) => `${k} ${round(v / t.signed, 2)}`)
        .join(', ')}; ${opts.imagesPerRepo} images per repository)`,
    );
    if (t.registryWaits) add(T, "  worker's wait on the registry", waitsText(t.registryWaits, r.options?.workerConcurrency));
  }
  if (r.cosign)
    add(
      T,
      'cosign 2.5 sign --key loop (sequential, the .sig)',
      `${r.cosign.imagesPerSecond} images/s (p50 ${r.cosign.perImageMs.p50} ms per image, ${r.cosign.signed}/${r.cosign.images})`,
    );

  const D = 'Throughput, default formats ([legacy, bundle]; no referrers API: fallback index)';
  if (floor?.signetDefaultSequence)
    add(
      D,
      "signet's default sequence replayed raw",
      `${defaultReplayRate} images/s (10 requests, 2 shared configs once per repository; registry CPU ${floor.signetDefaultSequence.registryCpuMsPerWrite} ms/image)`,
    );
  if (r.default) {
    const d = r.default;
    add(
      D,
      'signet webhook->queue->worker->signatures',
      `${d.imagesPerSecond} images/s (steady ${d.steadyImagesPerSecond}; ${d.signed}/${d.images} in ${d.seconds} s, load ${d.loadavg})`,
    );
    if (defaultReplayRate)
      add(
        D,
        '  ratio to its sequence replayed raw',
        `${pct(d.imagesPerSecond, defaultReplayRate)} % (steady ${pct(d.steadyImagesPerSecond, defaultReplayRate)} %)`,
        '>= 90 %',
        d.imagesPerSecond >= 0.9 * defaultReplayRate,
      );
    if (cosign3Rate)
      add(
        D,
        '  ratio to the cosign 3.1 loop writing the same formats',
        `${round(d.imagesPerSecond / cosign3Rate, 1)}x`,
        '>= 20x',
        d.imagesPerSecond >= 20 * cosign3Rate,
      );
    add(
      D,
      '  registry requests per image',
      `${d.registryRequests.perSignature} (${Object.entries(d.registryRequests.byKind as Record<string, number>)
        .map(([k, v]) => `${k} ${round(v / d.signed, 2)}`)
        .join(', ')})`,
    );
    add(
      D,
      '  CPU ms per image',
      Object.entries(d.cpuMsPerImage as Record<string, number>)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    );
    if (d.registryWaits) add(D, "  worker's wait on the registry", waitsText(d.registryWaits, r.options?.workerConcurrency));
    add(
      D,
      '  RSS max, receiver / worker',
      `${d.rssMB.receiverMax} / ${d.rssMB.workerMax} MB`,
      '< 150 MB',
      d.rssMB.receiverMax < 150 && d.rssMB.workerMax < 150,
    );
  }
  if (r.cosign3)
    add(
      D,
      'cosign 3.1 sign --key loop (sequential, the .sig and the bundle: 2 runs per image)',
      `${r.cosign3.imagesPerSecond} images/s (p50 ${r.cosign3.perImageMs.p50} ms per image, ${r.cosign3.signed}/${r.cosign3.images})`,
    );

  const K = 'Slow key backend (AWS KMS stand-in)';
  if (r.kms) {
    const k = r.kms;
    add(
      K,
      `signet, awskms key, +${k.standin.delayMs} ms per Sign`,
      `${k.imagesPerSecond} images/s (steady ${k.steadyImagesPerSecond}; ${k.signed}/${k.images}, load ${k.loadavg})`,
      '>= 80 % of floor',
      floorRate ? k.imagesPerSecond >= 0.8 * floorRate : undefined,
    );
    if (floorRate) add(K, '  ratio to the floor', `${pct(k.imagesPerSecond, floorRate)} % (steady ${pct(k.steadyImagesPerSecond, floorRate)} %)`);
    if (k.registryWaits) add(K, "  worker's wait on the registry", waitsText(k.registryWaits, r.options?.workerConcurrency));
    add(
      K,
      '  Sign calls per signature (counted in the stand-in)',
      `${k.standin.signCallsPerSignature} (${k.standin.signCalls} Sign for ${k.standin.signaturesWritten} signatures; GetPublicKey ${k.standin.getPublicKeyAtStartup} at startup)`,
      'exactly 1',
      k.standin.signCalls === k.standin.signaturesWritten,
    );
  }

  const L = 'Latency';
  if (r.latency) {
    const l = r.latency;
    add(
      L,
      `push-to-signed at ${l.rate}/s (half the peak)`,
      `p50 ${l.pushToSignedMs.p50} ms, p99 ${l.pushToSignedMs.p99} ms (max ${l.pushToSignedMs.max}; ${l.signed} ${String(l.push ?? '').split(' ')[0]} live pushes at ${l.achievedPushRate}/s; webhook->signed p50 ${l.webhookToSignedMs.p50} / p99 ${l.webhookToSignedMs.p99}; load ${l.loadavg})`,
    );
  }
  if (r.ack) {
    const a = r.ack.runs;
    const fixed = a[`rate${opts.ackRate}`];
    if (fixed) {
      add(
        L,
        `webhook ack at ${opts.ackRate} requests/s (open loop)`,
        `p50 ${fixed.latencyMs.p50} ms, p99 ${fixed.latencyMs.p99} ms, max ${fixed.latencyMs.max} ms (${round(fixed.requestsPerSecond)} req/s, non-2xx ${fixed.non2xx}, serve CPU ${round((100 * fixed.cpu.cpuSeconds.serve) / fixed.cpu.wallSeconds)} % of a core, load ${fixed.loadavg})`,
        'p99 < 10 ms',
        fixed.latencyMs.p99 < 10,
      );
      const hf = r.ack.harnessFloor;
      if (hf) {
        add(
          L,
          '  harness floor: the same generator, node:http answering 202',
          `p50 ${hf.latencyMs.p50} ms, p99 ${hf.latencyMs.p99} ms, max ${hf.latencyMs.max} ms (${round(hf.requestsPerSecond)} req/s, generator CPU ${round((100 * hf.cpuSeconds) / hf.duration)} % of a core, load ${hf.loadavg})`,
        );
      }
      const rt = fixed.receiverRuntime;
      if (rt) {
        add(
          L,
          '  receiver event loop at that rate',
          `utilisation ${rt.eluMean}, loop delay p99 ${rt.loopDelayP99Median} ms (worst second ${rt.loopDelayP99Max}, max ${rt.loopDelayMax}); GC pauses >= 10 ms: ${rt.gcPauses10ms} (max ${rt.gcPauseMaxMs} ms); Redis slowlog: ${fixed.redisSlowlog?.count} adds over ${fixed.redisSlowlog?.thresholdMs} ms (max ${fixed.redisSlowlog?.maxMs})`,
        );
      }
    }
    const gen = r.ack.peakGenerator ?? 'autocannon';
    const genCpu = (x: { cpu?: { cpuSeconds: Record<string, number>; wallSeconds: number } }, name = gen): string =>
      x.cpu
        ? `, ${name} CPU ${round((100 * (x.cpu.cpuSeconds['load generator'] ?? 0)) / x.cpu.wallSeconds)} % of a core, serve ${round((100 * (x.cpu.cpuSeconds['serve'] ?? 0)) / x.cpu.wallSeconds)} %`
        : '';
    if (a.peak)
      add(
        L,
        'webhook peak, 1 event per request',
        `${round(a.peak.eventsPerSecond)} events/s accepted (${gen}, ${opts.ackConnections} connections: p50 ${a.peak.latencyMs.p50} / p99 ${a.peak.latencyMs.p99} ms, non-2xx ${a.peak.non2xx}${genCpu(a.peak)})`,
        '>= 5,000 events/s',
        a.peak.eventsPerSecond >= 5000,
      );
    if (a.peakAutocannon)
      add(
        L,
        '  the same with autocannon as the generator',
        `${round(a.peakAutocannon.eventsPerSecond)} events/s accepted (p50 ${a.peakAutocannon.latencyMs.p50} / p99 ${a.peakAutocannon.latencyMs.p99} ms, non-2xx ${a.peakAutocannon.non2xx}${genCpu(a.peakAutocannon, 'autocannon')})`,
      );
    if (a.peakBatch10)
      add(
        L,
        'webhook peak, 10 events per request',
        `${round(a.peakBatch10.eventsPerSecond)} events/s accepted (${round(a.peakBatch10.requestsPerSecond)} req/s, p99 ${a.peakBatch10.latencyMs.p99} ms)`,
        '>= 5,000 events/s',
        a.peakBatch10.eventsPerSecond >= 5000,
      );
    add(L, '  events acknowledged / jobs in Redis', `${r.ack.eventsAcceptedMeasured} / ${r.ack.jobsWaiting} (incl. warm-up)`);
  }

  const Mm = 'Memory (RSS)';
  if (r.throughput) {
    const t = r.throughput.rssMB;
    add(Mm, 'receiver (signet serve) during throughput', `max ${t.receiverMax} MB (idle ${t.receiverIdle})`, '< 150 MB', t.receiverMax < 150);
    add(Mm, 'worker (signet worker) during throughput', `max ${t.workerMax} MB (idle ${t.workerIdle})`, '< 150 MB', t.workerMax < 150);
    if (r.soak) {
      add(Mm, 'receiver during the soak (steady pushes)', `max ${r.soak.rssMB.receiver.max} MB`, '< 150 MB', r.soak.rssMB.receiver.max < 150);
      add(Mm, 'worker during the soak (steady pushes)', `max ${r.soak.rssMB.worker.max} MB`, '< 150 MB', r.soak.rssMB.worker.max < 150);
    }
  }
  if (r.soak) {
    const s = r.soak;
    // a soak shorter than 5 minutes mostly shows the heap settling: no verdict
    const grow = (x: { growthMB: number; slopeMBPerMin: number }) => (s.seconds >= 300 ? x.growthMB < 10 && x.slopeMBPerMin < 1 : undefined);
    const fmt = (x: any) => `${x.start} / ${x.middle} / ${x.end} MB (first ${x.first}, max ${x.max}; slope ${x.slopeMBPerMin} MB/min)`;
    const target = s.seconds >= 300 ? 'no growth' : 'no growth (judged on >= 300 s)';
    add(Mm, `soak ${s.seconds} s at ${s.rate}/s: receiver start/mid/end`, fmt(s.rssMB.receiver), target, grow(s.rssMB.receiver));
    add(Mm, 'soak: worker start/mid/end', fmt(s.rssMB.worker), target, grow(s.rssMB.worker));
    const heap = (x: any) =>
      x?.heap ? `heapUsed ${x.heap.usedStart} / ${x.heap.usedMiddle} / ${x.heap.usedEnd} MB (heapTotal ${x.heap.totalStart} -> ${x.heap.totalEnd})` : '-';
    add(Mm, '  soak V8 heap: receiver', heap(s.runtime?.receiver));
    add(Mm, '  soak V8 heap: worker', heap(s.runtime?.worker));
    add(Mm, '  soak signed / push-to-signed', `${s.signed}/${s.pushes}, p50 ${s.pushToSignedMs.p50} / p99 ${s.pushToSignedMs.p99} ms (load ${s.loadavg})`);
  }

  const C = 'Cost per new image (single-arch), by format set';
  if (r.cost) {
    const kinds = (o: Record<string, number> | undefined) =>
      Object.entries(o ?? {})
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    for (const c of r.cost.cases as any[]) {
      const legacyOnly = c.formats === 'legacy';
      const keyCalls = legacyOnly || c.formats === 'bundle' ? 1 : 2;
      add(
        C,
        `${c.where === 'distribution' ? 'distribution 2.8' : 'referrers API + single POST'}: [${c.formats}], ${c.key} key`,
        `${c.next.registryRequests} requests (${kinds(c.next.byKind)}; probe ${c.next.probeRequests}), ${c.next.keyCalls} key call(s)${c.next.standinSign !== undefined ? ` (${c.next.standinSign} Sign in the stand-in)` : ''}; a repository's first image ${c.firstInRepository.registryRequests}${c.identicalAfterTheFirst ? '' : '; NOT the same for every image'}${Object.keys(c.next.errors ?? {}).length ? `; errors ${JSON.stringify(c.next.errors)}` : ''}`,
        legacyOnly && c.where === 'distribution' ? `<= 5 requests, ${keyCalls} key call` : `${keyCalls} key call(s)`,
        (legacyOnly && c.where === 'distribution' ? c.next.registryRequests <= 5 : true) &&
          c.next.keyCalls === keyCalls &&
          (c.next.standinSign === undefined || c.next.standinSign === keyCalls),
      );
    }
    add(C, 'registry metrics signet exports', `${(r.cost.signetRegistryMetrics as string[]).join(', ') || 'none'}`);
  }

  const E = 'End to end through registry notifications (what users see)';
  if (r.e2e) {
    const e = r.e2e;
    add(
      E,
      'signet start, registry notifications',
      `${e.imagesPerSecond} images/s (${e.signed}/${e.images}, ${opts.concurrency} pushes at once, load ${e.loadavg})`,
    );
    add(
      E,
      '  push-to-signed p50 / p99',
      `${e.pushToSignedMs.p50} / ${e.pushToSignedMs.p99} ms (push->queued ${e.pushToQueuedMs.p50} / ${e.pushToQueuedMs.p99}, queued->signed ${e.queuedToSignedMs.p50} / ${e.queuedToSignedMs.p99})`,
    );
    add(E, '  RSS, requests per signature', `max ${e.rssMB.max} MB (idle ${e.rssMB.idle}); ${e.registryRequestsPerSignature} registry requests per signature`);
  }
  return rows;
}
