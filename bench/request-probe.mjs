// Preloaded into the signet processes by bench/bench.ts (`node --import ./bench/request-probe.mjs`);
// signet itself is not modified. Written as JSON to $SIGNET_BENCH_PROBE_FILE every 250 ms and at exit:
//
// - counts: the HTTP requests signet makes through undici (its registry client), by origin and
//   "METHOD kind", from undici's diagnostics channel (signet exports no request counter).
// - waits: per origin and "METHOD kind", {n, ms}: how long signet waited for each response's
//   headers (from the request's creation), summed; and inflight: per origin, how many 50 ms
//   samples saw k requests in flight ({k: samples}). Both cumulative: the bench diffs them.
// - loop: one entry per second {t, p50, p99, max} of the event-loop delay (ms, perf_hooks
//   monitorEventLoopDelay at 2 ms resolution), {elu}: the event-loop utilisation of that second,
//   and process.memoryUsage() in MB {rss, heapUsed, heapTotal, external}.
// - gc: pauses by kind (count, total and max ms), and every pause of 10 ms or more {t, kind, ms}.
import { subscribe } from 'node:diagnostics_channel';
import { renameSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';

const file = process.env.SIGNET_BENCH_PROBE_FILE;
if (file) {
  /** origin -> "METHOD kind" -> count */
  const counts = {};
  let dirty = true;
  const kindOf = (p) => {
    const path = String(p ?? '').split('?')[0];
    if (/\/blobs\/uploads\/[^/]+$/.test(path)) return 'upload-put';
    if (/\/blobs\/uploads\/?$/.test(path)) return 'upload-start';
    if (path.includes('/blobs/')) return 'blob';
    if (/\/manifests\/sha256-[0-9a-f]{64}\.(sig|att|sbom)$/.test(path)) return 'sig-manifest';
    if (path.includes('/manifests/')) return 'manifest';
    if (path.includes('/referrers/')) return 'referrers';
    return 'other';
  };
  /** origin -> "METHOD kind" -> {n, ms} */
  const waits = {};
  /** origin -> requests in flight now; origin -> k -> 50 ms samples that saw k in flight */
  const inFlightNow = {};
  const inflight = {};
  /** request -> [origin, key, created at] */
  const open = new WeakMap();
  subscribe('undici:request:create', ({ request }) => {
    const origin = String(request.origin ?? '');
    const key = `${request.method} ${kindOf(request.path)}`;
    const o = (counts[origin] ??= {});
    o[key] = (o[key] ?? 0) + 1;
    open.set(request, [origin, key, performance.now()]);
    inFlightNow[origin] = (inFlightNow[origin] ?? 0) + 1;
    dirty = true;
  });
  const answered = ({ request }) => {
    const o = open.get(request);
    if (!o) return;
    open.delete(request);
    const [origin, key, t0] = o;
    inFlightNow[origin]--;
    const w = ((waits[origin] ??= {})[key] ??= { n: 0, ms: 0 });
    w.n++;
    w.ms += performance.now() - t0;
  };
  subscribe('undici:request:headers', answered);
  subscribe('undici:request:error', answered);
  setInterval(() => {
    for (const [origin, k] of Object.entries(inFlightNow)) {
      const h = (inflight[origin] ??= {});
      h[k] = (h[k] ?? 0) + 1;
    }
  }, 50).unref();

  const MAX_SERIES = 1800;
  const loop = [];
  const h = monitorEventLoopDelay({ resolution: 2 });
  h.enable();
  let elu = performance.eventLoopUtilization();
  setInterval(() => {
    const now = performance.eventLoopUtilization();
    const d = performance.eventLoopUtilization(now, elu);
    elu = now;
    const ms = (ns) => Math.round(ns / 1e4) / 100;
    const m = process.memoryUsage();
    const MB = (b) => Math.round(b / 104857.6) / 10;
    loop.push({
      t: Date.now(),
      p50: ms(h.percentile(50)),
      p99: ms(h.percentile(99)),
      max: ms(h.max),
      elu: Math.round(d.utilization * 1000) / 1000,
      rss: MB(m.rss),
      heapUsed: MB(m.heapUsed),
      heapTotal: MB(m.heapTotal),
      external: MB(m.external),
    });
    if (loop.length > MAX_SERIES) loop.splice(0, loop.length - MAX_SERIES);
    h.reset();
    dirty = true;
  }, 1000).unref();

  const KINDS = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
  const gc = { byKind: {}, long: [] };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = KINDS[e.detail?.kind ?? e.kind] ?? String(e.detail?.kind ?? e.kind);
      const k = (gc.byKind[kind] ??= { count: 0, totalMs: 0, maxMs: 0 });
      k.count++;
      k.totalMs = Math.round((k.totalMs + e.duration) * 100) / 100;
      k.maxMs = Math.max(k.maxMs, Math.round(e.duration * 100) / 100);
      if (e.duration >= 10 && gc.long.length < 2000)
        gc.long.push({ t: Math.round(performance.timeOrigin + e.startTime), kind, ms: Math.round(e.duration * 100) / 100 });
    }
    dirty = true;
  }).observe({ entryTypes: ['gc'] });

  const flush = () => {
    if (!dirty) return;
    dirty = false;
    try {
      // write then rename: the bench never reads a half-written file
      writeFileSync(`${file}.tmp`, JSON.stringify({ at: Date.now(), counts, waits, inflight, loop, gc }));
      renameSync(`${file}.tmp`, file);
    } catch {
      /* the bench may have removed its temp dir already */
    }
  };
  setInterval(flush, 250).unref();
  process.on('exit', flush);
}
