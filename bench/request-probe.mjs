// Preloaded into the signet process by bench/bench.ts (`node --import ./bench/request-probe.mjs`).
// Counts the HTTP requests signet makes through undici (its registry client), by origin, method
// and kind, from undici's diagnostics channel: signet itself is not modified. The counts are
// written as JSON to $SIGNET_BENCH_PROBE_FILE every 250 ms and at exit.
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';

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
  subscribe('undici:request:create', ({ request }) => {
    const origin = String(request.origin ?? '');
    const key = `${request.method} ${kindOf(request.path)}`;
    const o = (counts[origin] ??= {});
    o[key] = (o[key] ?? 0) + 1;
    dirty = true;
  });
  const flush = () => {
    if (!dirty) return;
    dirty = false;
    try {
      writeFileSync(file, JSON.stringify({ at: Date.now(), counts }));
    } catch {
      /* the bench may have removed its temp dir already */
    }
  };
  setInterval(flush, 250).unref();
  process.on('exit', flush);
}
