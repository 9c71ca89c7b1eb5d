// Webhook acknowledgement load, run by bench/bench.ts as a child process (a second process, so
// the load generator does not share signet's event loop or the bench's):
//
//   node bench/ack-load.mjs '<json>'
//   json: {mode: 'rate'|'peak', url, secret, host, connections, duration, rate?, eventsPerRequest, tagPrefix}
//
// Every event is a distinct image (repository, tag and digest from a counter), so the receiver's
// dedup never short-cuts the enqueue. Prints one JSON line with the result.
//
// - peak: autocannon, closed loop (each connection sends its next request when the previous one
//   is answered): the most the receiver accepts.
// - rate: an open-loop generator (undici Pool): request i is due at t0 + i/rate whatever the
//   answers do, so latency is measured from the moment each request was due (no coordinated
//   omission). autocannon's own `overallRate` is not used for this: it lets every connection
//   send back to back until the second's quota is spent, then pauses until the next second, so
//   "1,000 requests/s" arrives as a burst at peak speed.
import autocannon from 'autocannon';
import { createHash } from 'node:crypto';
import { Pool } from 'undici';

const o = JSON.parse(process.argv[2] ?? '{}');
const perReq = Math.max(1, Number(o.eventsPerRequest ?? 1));
let n = 0;

function event(i) {
  const digest = `sha256:${createHash('sha256').update(`${o.tagPrefix}-${i}`).digest('hex')}`;
  const repo = `bench/ack-${i % 1000}`;
  return {
    id: `${o.tagPrefix}-${i}`,
    timestamp: new Date().toISOString(),
    action: 'push',
    target: {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: 500,
      digest,
      length: 500,
      repository: repo,
      url: `http://${o.host}/v2/${repo}/manifests/${digest}`,
      tag: `${o.tagPrefix}-${i}`,
    },
    request: { id: `r-${i}`, addr: '127.0.0.1:40000', host: o.host, method: 'PUT', useragent: 'signet-bench-ack' },
    actor: {},
    source: { addr: 'bench:5000', instanceID: 'signet-bench' },
  };
}

function body() {
  const events = [];
  for (let k = 0; k < perReq; k++) events.push(event(n++));
  return JSON.stringify({ events });
}

const headers = { 'content-type': 'application/vnd.docker.distribution.events.v1+json', authorization: `Bearer ${o.secret}` };
const cpu = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
};

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const r2 = (x) => Math.round(x * 100) / 100;

function peak() {
  const instance = autocannon(
    {
      url: o.url,
      connections: o.connections ?? 64,
      duration: o.duration ?? 10,
      timeout: 10,
      requests: [{ method: 'POST', headers, setupRequest: (req) => ({ ...req, body: body() }) }],
    },
    (err, r) => {
      if (err) {
        process.stdout.write(`${JSON.stringify({ error: String(err) })}\n`);
        process.exit(1);
      }
      const lat = r.latency;
      process.stdout.write(
        `${JSON.stringify({
          mode: 'peak',
          generator: 'autocannon (closed loop)',
          duration: r.duration,
          connections: r.connections,
          eventsPerRequest: perReq,
          requests: r.requests.total,
          requestsPerSecond: r.requests.total / r.duration,
          ok2xx: r['2xx'],
          non2xx: r.non2xx,
          errors: r.errors,
          timeouts: r.timeouts,
          statuses: Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count])),
          eventsAccepted: r['2xx'] * perReq,
          eventsPerSecond: (r['2xx'] * perReq) / r.duration,
          cpuSeconds: cpu(),
          latencyMs: { p50: lat.p50, p90: lat.p90, p99: lat.p99, p99_9: lat.p99_9, max: lat.max, mean: lat.average },
        })}\n`,
      );
      process.exit(0);
    },
  );
  process.on('SIGTERM', () => instance.stop());
}

async function rate() {
  const u = new URL(o.url);
  const pool = new Pool(u.origin, { connections: o.connections ?? 64, keepAliveTimeout: 30_000, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const total = Math.round(o.rate * o.duration);
  const gap = 1000 / o.rate;
  const fromDue = [];
  const fromSent = [];
  const statuses = {};
  let errors = 0;
  let maxInFlight = 0;
  let inFlight = 0;
  const pending = new Set();
  const t0 = performance.now() + 20;
  let i = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (i < total && t0 + i * gap <= now) {
        const due = t0 + i * gap;
        i++;
        const b = body();
        const sent = performance.now();
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const p = pool
          .request({ path: `${u.pathname}${u.search}`, method: 'POST', headers, body: b })
          .then(async (r) => {
            await r.body.dump();
            const end = performance.now();
            fromDue.push(end - due);
            fromSent.push(end - sent);
            statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1;
          })
          .catch(() => void errors++)
          .finally(() => {
            inFlight--;
            pending.delete(p);
          });
        pending.add(p);
      }
      if (i < total) setTimeout(tick, Math.max(0, t0 + i * gap - performance.now()));
      else Promise.all([...pending]).then(resolve);
    };
    tick();
  });
  const seconds = (performance.now() - t0) / 1000;
  await pool.close();
  fromDue.sort((a, b) => a - b);
  fromSent.sort((a, b) => a - b);
  const ok = Object.entries(statuses).reduce((a, [s, c]) => a + (s >= 200 && s < 300 ? c : 0), 0);
  const stat = (a) => ({ p50: r2(pct(a, 50)), p90: r2(pct(a, 90)), p99: r2(pct(a, 99)), p99_9: r2(pct(a, 99.9)), max: r2(a[a.length - 1] ?? NaN), mean: r2(a.reduce((x, y) => x + y, 0) / (a.length || 1)) });
  process.stdout.write(
    `${JSON.stringify({
      mode: 'rate',
      generator: 'open loop (undici Pool), latency from the moment each request was due',
      duration: seconds,
      connections: o.connections ?? 64,
      rate: o.rate,
      eventsPerRequest: perReq,
      requests: total,
      requestsPerSecond: total / seconds,
      ok2xx: ok,
      non2xx: total - ok - errors,
      errors,
      timeouts: 0,
      statuses,
      maxInFlight,
      eventsAccepted: ok * perReq,
      eventsPerSecond: (ok * perReq) / seconds,
      cpuSeconds: cpu(),
      latencyMs: stat(fromDue),
      latencyFromSendMs: stat(fromSent),
    })}\n`,
  );
  process.exit(0);
}

if (o.mode === 'rate') await rate();
else peak();
