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
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

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

/**
 * The open-loop generator: raw keep-alive sockets and requests built before the clock starts, so
 * that what is measured is the receiver and not the generator (an undici Pool here cost ~0.35 ms
 * of CPU per request and added its own GC pauses to the tail). Request i is due at t0 + i/rate;
 * it goes out on an idle connection (a new one is opened when none is idle, up to
 * `connections`, then it waits for one: that wait counts, from the moment it was due).
 */
async function rate() {
  const u = new URL(o.url);
  const total = Math.round(o.rate * o.duration);
  const gap = 1000 / o.rate;
  const maxConns = o.connections ?? 64;
  const head = `POST ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\ncontent-type: ${headers['content-type']}\r\nauthorization: ${headers.authorization}\r\n`;
  const requests = new Array(total);
  for (let i = 0; i < total; i++) {
    const b = Buffer.from(body());
    requests[i] = Buffer.concat([Buffer.from(`${head}content-length: ${b.length}\r\n\r\n`), b]);
  }
  const fromDue = new Float64Array(total);
  const fromSent = new Float64Array(total);
  const statuses = {};
  let done = 0;
  let errors = 0;
  let maxInFlight = 0;
  let inFlight = 0;
  let opened = 0;
  const idle = [];
  const backlog = []; // due requests waiting for a connection
  let finish;
  const finished = new Promise((r) => (finish = r));
  const complete = () => {
    if (++done === total) finish();
  };

  function connection() {
    opened++;
    const sock = net.connect({ host: u.hostname, port: Number(u.port || 80), noDelay: true });
    const c = { sock, buf: Buffer.alloc(0), cur: -1, due: 0, sent: 0 };
    sock.on('connect', () => release(c));
    sock.on('data', (d) => {
      c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
      for (;;) {
        const end = c.buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const headText = c.buf.subarray(0, end).toString('latin1');
        const status = Number(headText.slice(9, 12));
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
        if (!m) {
          // the receiver always sends a length; anything else is an error of this run
          errors++;
          sock.destroy();
          return;
        }
        const len = end + 4 + Number(m[1]);
        if (c.buf.length < len) return;
        c.buf = c.buf.subarray(len);
        const now = performance.now();
        const i = c.cur;
        fromDue[i] = now - c.due;
        fromSent[i] = now - c.sent;
        statuses[status] = (statuses[status] ?? 0) + 1;
        inFlight--;
        c.cur = -1;
        complete();
        release(c);
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (c.cur >= 0) {
        errors++;
        inFlight--;
        c.cur = -1;
        complete();
      }
      const k = idle.indexOf(c);
      if (k >= 0) idle.splice(k, 1);
      opened--;
    });
    return c;
  }
  function send(c, i, due) {
    c.cur = i;
    c.due = due;
    c.sent = performance.now();
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    c.sock.write(requests[i]);
    requests[i] = undefined;
  }
  function release(c) {
    const next = backlog.shift();
    if (next) send(c, next[0], next[1]);
    else idle.push(c);
  }
  function dispatch(i, due) {
    const c = idle.pop();
    if (c) return send(c, i, due);
    backlog.push([i, due]);
    if (opened < maxConns) connection();
  }

  // a few connections up front, as a registry keeps them
  for (let k = 0; k < Math.min(8, maxConns); k++) connection();
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now() + 20;
  let i = 0;
  const tick = () => {
    const now = performance.now();
    while (i < total && t0 + i * gap <= now) {
      dispatch(i, t0 + i * gap);
      i++;
    }
    if (i < total) setTimeout(tick, Math.max(0, t0 + i * gap - performance.now()));
  };
  tick();
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  for (const c of idle) c.sock.destroy();
  const sorted = (a) => Array.from(a).sort((x, y) => x - y);
  const due = sorted(fromDue);
  const sent = sorted(fromSent);
  const ok = Object.entries(statuses).reduce((a, [s, c]) => a + (s >= 200 && s < 300 ? c : 0), 0);
  const stat = (a) => ({
    p50: r2(pct(a, 50)),
    p90: r2(pct(a, 90)),
    p99: r2(pct(a, 99)),
    p99_9: r2(pct(a, 99.9)),
    max: r2(a[a.length - 1] ?? NaN),
    mean: r2(a.reduce((x, y) => x + y, 0) / (a.length || 1)),
  });
  process.stdout.write(
    `${JSON.stringify({
      mode: 'rate',
      generator: 'open loop (raw keep-alive sockets, requests built before the clock starts), latency from the moment each request was due',
      duration: seconds,
      connections: maxConns,
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
      latencyMs: stat(due),
      latencyFromSendMs: stat(sent),
    })}\n`,
  );
  process.exit(0);
}

/**
 * Peak with wrk (C, closed loop, one thread): a Lua script makes each request a distinct image
 * and prints the result as JSON from wrk's `done` hook. wrk counts answers >= 400 as status errors.
 */
function peakWrk() {
  const dir = mkdtempSync(path.join(tmpdir(), 'signet-wrk-'));
  const script = path.join(dir, 'events.lua');
  const hex = createHash('sha256').update(o.tagPrefix).digest('hex').slice(0, 48);
  const repos = JSON.stringify(o.host);
  writeFileSync(
    script,
    `
local n = 0
local per = ${perReq}
local prefix = ${JSON.stringify(o.tagPrefix)}
wrk.method = "POST"
wrk.headers["content-type"] = ${JSON.stringify(headers['content-type'])}
wrk.headers["authorization"] = ${JSON.stringify(headers.authorization)}
local function event(i)
  local digest = "sha256:${hex}" .. string.format("%016d", i)
  local repo = "bench/ack-" .. (i % 1000)
  local tag = prefix .. "-" .. i
  return '{"id":"' .. tag .. '","timestamp":"2026-01-01T00:00:00Z","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":500,"digest":"' .. digest ..
    '","length":500,"repository":"' .. repo .. '","url":"http://' .. ${repos} .. '/v2/' .. repo .. '/manifests/' .. digest .. '","tag":"' .. tag ..
    '"},"request":{"id":"r-' .. i .. '","addr":"127.0.0.1:40000","host":"' .. ${repos} .. '","method":"PUT","useragent":"signet-bench-ack"},"actor":{},"source":{"addr":"bench:5000","instanceID":"signet-bench"}}'
end
request = function()
  local parts = {}
  for k = 1, per do
    parts[k] = event(n)
    n = n + 1
  end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end
local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%f,"p90":%f,"p99":%f,"p999":%f,"max":%f,"mean":%f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000, latency.mean / 1000))
end
`,
  );
  const conns = o.connections ?? 64;
  const child = spawn(o.wrk, ['-t1', `-c${conns}`, `-d${o.duration ?? 10}s`, '--timeout', '10s', '-s', script, o.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  process.on('SIGTERM', () => child.kill('SIGINT'));
  child.on('close', (code) => {
    rmSync(dir, { recursive: true, force: true });
    const line = out.split('\n').find((l) => l.startsWith('WRK '));
    if (!line) {
      process.stdout.write(`${JSON.stringify({ error: `wrk exited ${code}: ${(err || out).slice(0, 400)}` })}\n`);
      process.exit(1);
    }
    const w = JSON.parse(line.slice(4));
    const duration = w.durationUs / 1e6;
    const ok = w.requests - w.status;
    // wrk's CPU time is this process's children's (it was waited for)
    const self = cpu();
    process.stdout.write(
      `${JSON.stringify({
        mode: 'peak',
        generator: 'wrk 4 (C, closed loop, 1 thread, Lua body per request)',
        duration,
        connections: conns,
        eventsPerRequest: perReq,
        requests: w.requests,
        requestsPerSecond: w.requests / duration,
        ok2xx: ok,
        non2xx: w.status,
        errors: w.connect + w.read + w.write,
        timeouts: w.timeout,
        statuses: {},
        eventsAccepted: ok * perReq,
        eventsPerSecond: (ok * perReq) / duration,
        cpuSeconds: self + childCpuSeconds(),
        latencyMs: { p50: r2(w.p50), p90: r2(w.p90), p99: r2(w.p99), p99_9: r2(w.p999), max: r2(w.max), mean: r2(w.mean) },
      })}\n`,
    );
    process.exit(0);
  });
}

/** CPU seconds of waited-for children (getrusage RUSAGE_CHILDREN), read from /proc/self/stat (fields cutime, cstime). */
function childCpuSeconds() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const tck = 100; // USER_HZ on Linux
    return (Number(f[13]) + Number(f[14])) / tck;
  } catch {
    return 0;
  }
}

if (o.mode === 'rate') await rate();
else if (o.wrk) peakWrk();
else peak();
