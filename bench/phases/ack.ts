/** Phase ack: `signet serve` alone under an open-loop generator (ack latency at a fixed rate) and at peak (wrk, else autocannon), beside the harness floor. See bench/bench.ts for the whole picture. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Redis } from 'ioredis';
import { killChild, runProcess, spawnTracked } from '../../test/helpers/proc.js';
import { CpuMeter, deletePrefix, formatCpu, loadAverage, log, mb, REDIS_URL, ROOT, round, RssSampler, SetupError, sleep } from '../lib/common.js';
import { monotonicUs, summarizeProfile } from '../lib/profile.js';
import { HOOK_SECRET } from '../lib/options.js';
import { type Ctx, deploy, keepProfile } from '../lib/deploy.js';
// ---------------------------------------------------------------------------------------------
// phase: webhook acknowledgement (signet serve alone, load generators in child processes)

/** wrk on PATH (the test kit installs it), for the peak runs; else autocannon is used. */
export function wrkPath(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

export async function ackLoad(
  ctx: Ctx,
  url: string,
  o: { mode: 'rate' | 'peak'; connections: number; duration: number; rate?: number; eventsPerRequest: number; tagPrefix: string; wrk?: string },
) {
  const args = JSON.stringify({ url, secret: HOOK_SECRET, host: ctx.r1.host, ...o });
  const cmd: [string, string[]] = ctx.opts.pin
    ? ['taskset', ['-c', '1', process.execPath, path.join(ROOT, 'bench/ack-load.mjs'), args]]
    : [process.execPath, [path.join(ROOT, 'bench/ack-load.mjs'), args]];
  const r = await runProcess(cmd[0], cmd[1], { cwd: ROOT, timeoutMs: (o.duration + 60) * 1000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as {
      duration: number;
      requests: number;
      requestsPerSecond: number;
      ok2xx: number;
      non2xx: number;
      errors: number;
      timeouts: number;
      cpuSeconds: number;
      statuses: Record<string, number>;
      eventsAccepted: number;
      eventsPerSecond: number;
      latencyMs: { p50: number; p90: number; p99: number; p99_9: number; max: number; mean: number };
      latencyFromSendMs?: { p50: number; p90: number; p99: number; p99_9: number; max: number; mean: number };
      maxInFlight?: number;
      generator: string;
      error?: string;
    };
  } catch {
    throw new Error(`bench/ack-load.mjs gave no result (code ${r.code}): ${r.stderr.slice(0, 500)} ${r.stdout.slice(0, 500)}`);
  }
}

/**
 * Redis's own slow log (commands slower than slowlog-log-slower-than, 10 ms by default) entries of
 * this prefix since `since`: time Redis itself spent on one of our commands (the box is shared).
 */
export async function redisSlowlog(prefix: string, since: number): Promise<{ count: number; maxMs: number; thresholdMs: number }> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    const cfg = (await r.config('GET', 'slowlog-log-slower-than')) as string[];
    const entries = (await r.call('SLOWLOG', 'GET', '128')) as [number, number, number, string[]][];
    const ours = entries.filter((e) => e[1] * 1000 >= since - 1000 && e[3].some((a) => String(a).startsWith(prefix)));
    return { count: ours.length, maxMs: round(Math.max(0, ...ours.map((e) => e[2] / 1000)), 1), thresholdMs: round(Number(cfg[1]) / 1000, 1) };
  } catch {
    return { count: NaN, maxMs: NaN, thresholdMs: NaN };
  } finally {
    r.disconnect();
  }
}

/**
 * The generator against bench/trivial-hook.mjs (node:http answering 202, nothing else) at the same
 * rate: what the generator, node's HTTP stack and the shared cores cost before signet does anything.
 */
export async function harnessFloor(ctx: Ctx, duration: number) {
  const child = spawnTracked(process.execPath, [path.join(ROOT, 'bench/trivial-hook.mjs')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new SetupError('bench/trivial-hook.mjs did not start in 10 s')), 10_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^(\d+)\n/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code) => reject(new SetupError(`bench/trivial-hook.mjs exited (${code})`)));
    });
    const loadavg = loadAverage();
    const r = await ackLoad(ctx, `http://127.0.0.1:${port}/hooks/local`, {
      mode: 'rate',
      connections: 64,
      duration,
      rate: ctx.opts.ackRate,
      eventsPerRequest: 1,
      tagPrefix: 'trivial',
    });
    return { ...r, loadavg };
  } finally {
    await killChild(child);
  }
}

export async function phaseAck(ctx: Ctx) {
  log(
    `ack: signet serve alone (no worker: jobs stay queued); load from a child process (open loop on raw sockets at a fixed rate; wrk, else autocannon, at peak); load ${loadAverage()}`,
  );
  const dep = await deploy(ctx, 'ack', {
    mode: 'serve',
    registries: [ctx.r1],
    keys: ['cosign'],
    rules: [{ match: `${ctx.r1.host}/bench/**`, keys: ['cosign'] }],
    logToFile: true,
    // the default per-integration limit (2,000 requests/s, burst 5,000) would answer 429 at peak
    rateLimit: { requestsPerSecond: 1_000_000, burst: 1_000_000 },
    cpuProf: ctx.opts.cpuProf,
  });
  const rss = new RssSampler({ receiver: dep.receiver.pid }, 250).start();
  const runs: Record<string, unknown> = {};
  const D = ctx.opts.ackSeconds;
  const pidsOf = () => ({ serve: dep.receiver.pid, redis: ctx.redisPid });
  try {
    const fromUs = monotonicUs();
    // warm-up: the receiver's first few thousand requests run cold code
    const warm = await ackLoad(ctx, dep.hookUrl, { mode: 'rate', connections: 16, duration: 4, rate: 500, eventsPerRequest: 1, tagPrefix: 'warm' });
    const floor = await harnessFloor(ctx, D);
    log(
      `  harness floor (the same generator against a node:http server that only answers 202): p50 ${floor.latencyMs.p50} / p99 ${floor.latencyMs.p99} / max ${floor.latencyMs.max} ms at ${round(floor.requestsPerSecond)} req/s`,
    );
    const wrk = wrkPath();
    type Plan = [string, { mode: 'rate' | 'peak'; connections: number; rate?: number; eventsPerRequest: number; wrk?: string }];
    const plan: Plan[] = [
      [`rate${ctx.opts.ackRate}`, { mode: 'rate', connections: 64, rate: ctx.opts.ackRate, eventsPerRequest: 1 }],
      ['peak', { mode: 'peak', connections: ctx.opts.ackConnections, eventsPerRequest: 1, ...(wrk ? { wrk } : {}) }],
      ['peakBatch10', { mode: 'peak', connections: ctx.opts.ackConnections, eventsPerRequest: 10, ...(wrk ? { wrk } : {}) }],
      // the same peak with autocannon (node, ~0.13 ms of CPU per request on these shared cores)
      ...(wrk ? [['peakAutocannon', { mode: 'peak', connections: ctx.opts.ackConnections, eventsPerRequest: 1 }] as Plan] : []),
    ];
    for (const [name, p] of plan) {
      if (ctx.stopped()) break;
      const loadavg = loadAverage();
      const cpu = new CpuMeter(pidsOf).start();
      const t0 = Date.now();
      const r = await ackLoad(ctx, dep.hookUrl, { ...p, duration: D, tagPrefix: name });
      const c = cpu.stop();
      await sleep(1300); // the probe's per-second event-loop entry and its 250 ms flush
      const receiverRuntime = dep.receiver.runtimeStats(t0, Date.now() - 1300);
      const redisSlow = await redisSlowlog(dep.prefix, t0);
      // the load generator reports its own CPU time: take it out of "other processes"
      c.cpuSeconds['load generator'] = round(r.cpuSeconds, 2);
      c.cpuSeconds['other processes'] = round((c.cpuSeconds['other processes'] ?? 0) - r.cpuSeconds, 2);
      runs[name] = { ...r, loadavg, cpu: c, receiverRssMaxMB: mb(rss.max('receiver', t0)), receiverRuntime, redisSlowlog: redisSlow };
      log(
        `  ${name}: ${round(r.requestsPerSecond)} requests/s, ${round(r.eventsPerSecond)} events/s accepted, latency p50 ${r.latencyMs.p50} / p99 ${r.latencyMs.p99} / max ${r.latencyMs.max} ms, non-2xx ${r.non2xx}, errors ${r.errors}; ${formatCpu(c)}`,
      );
      log(
        `    receiver: event-loop utilisation ${receiverRuntime.eluMean}, loop delay p99 ${receiverRuntime.loopDelayP99Median} ms (worst second ${receiverRuntime.loopDelayP99Max}, max ${receiverRuntime.loopDelayMax}), GC pauses >= 10 ms: ${receiverRuntime.gcPauses10ms} (max ${receiverRuntime.gcPauseMaxMs} ms); Redis slowlog: ${redisSlow.count} of our commands over ${redisSlow.thresholdMs} ms (max ${redisSlow.maxMs} ms)`,
      );
    }
    // every 202 must be a job in Redis (the receiver answers only once Redis has the job)
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    let jobs = NaN;
    try {
      await redis.connect();
      jobs = await redis.llen(`${dep.prefix}:sign:wait`);
    } finally {
      redis.disconnect();
    }
    const toUs = monotonicUs();
    const accepted = Object.values(runs).reduce<number>((a, r) => a + ((r as { eventsAccepted?: number }).eventsAccepted ?? 0), warm.eventsAccepted);
    rss.stop();
    await dep.stop();
    const profile = dep.receiver.profileFile();
    return {
      runs,
      harnessFloor: floor,
      peakGenerator: wrk ? 'wrk' : 'autocannon',
      jobsWaiting: jobs,
      eventsAcceptedMeasured: accepted,
      receiverRssMaxMB: mb(rss.max('receiver')),
      ...(profile ? { cpuProfile: { ...summarizeProfile(profile, { fromUs, toUs }), file: keepProfile(ctx, profile, dep.receiver.name) } } : {}),
    };
  } finally {
    rss.stop();
    await dep.stop();
    await deletePrefix(dep.prefix).catch(() => 0);
  }
}
