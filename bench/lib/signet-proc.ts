/**
 * signet as child processes of the bench: the compiled CLI (`node dist/src/cli.js start|serve|worker`),
 * each with bench/request-probe.mjs preloaded (it counts undici requests by kind), optionally under
 * --cpu-prof, its JSON log parsed line by line (or written to a file when the log volume would
 * make the bench itself the bottleneck).
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { killChild, LineRing, spawnTracked } from '../../test/helpers/proc.js';
import { httpRequest } from '../../test/helpers/http.js';
import { parseMetrics, ROOT, SetupError, sleep, type Sample } from './common.js';

export type SignetMode = 'start' | 'serve' | 'worker';

export interface LogLine {
  msg?: string;
  time?: number;
  level?: number;
  ref?: string;
  [k: string]: unknown;
}

export interface SignetProc {
  mode: SignetMode;
  name: string;
  child: ChildProcess;
  pid: number;
  /** http://127.0.0.1:PORT for start/serve */
  url?: string;
  /** first 'signed' log time per ref (host/repo:tag) */
  signed: Map<string, number>;
  /** number of 'signed' log lines per ref */
  signedCount: Map<string, number>;
  /** refs whose 'signed' line says a signature was already present (nothing written) */
  present: Set<string>;
  /** first 'push queued' log time per ref (host/repo:tag, digest stripped) */
  queued: Map<string, number>;
  /** log lines by message */
  counts: Map<string, number>;
  /** first warnings and errors */
  errors: string[];
  stderr: LineRing;
  stdoutTail: LineRing;
  probeFile: string;
  profDir?: string;
  /** resolves once the process is ready (healthz for start/serve, 'worker started' for worker) */
  ready(timeoutMs: number): Promise<void>;
  /** GET /metrics (start/serve only) */
  metrics(): Promise<Sample[]>;
  /** undici request counts by origin and kind, from the probe file */
  probe(): Record<string, Record<string, number>>;
  /** cumulative waits for responses (by origin and kind) and in-flight samples (by origin), from the probe file */
  waits(): RegistryWaits;
  /** event-loop delay and GC pauses between two Date.now() times, from the probe file */
  runtimeStats(from: number, to: number): RuntimeStats;
  exited(): boolean;
  stop(): Promise<void>;
  /** the .cpuprofile written at exit (after stop()), if --cpu-prof */
  profileFile(): string | undefined;
}

export interface RuntimeStats {
  seconds: number;
  /** event-loop delay, ms: the median and the worst of the per-second p99s, and the worst delay */
  loopDelayP99Median: number;
  loopDelayP99Max: number;
  loopDelayMax: number;
  /** mean event-loop utilisation (0..1) */
  eluMean: number;
  /** GC pauses of 10 ms or more */
  gcPauses10ms: number;
  gcPauseMaxMs: number;
  gcTotals: Record<string, { count: number; totalMs: number; maxMs: number }>;
  /** V8 heap (MB) from the probe: median heapUsed / heapTotal / external in the first, middle and last tenth of the window */
  heap?: { usedStart: number; usedMiddle: number; usedEnd: number; totalStart: number; totalEnd: number; externalStart: number; externalEnd: number };
}

/** What the probe saw of the requests to each origin, cumulative since the process started. */
export interface RegistryWaits {
  /** origin -> "METHOD kind" -> requests answered and the ms waited for their response headers, summed */
  waits: Record<string, Record<string, { n: number; ms: number }>>;
  /** origin -> requests in flight (k) -> how many 50 ms samples saw k */
  inflight: Record<string, Record<string, number>>;
}

interface ProbeFile extends Partial<RegistryWaits> {
  counts?: Record<string, Record<string, number>>;
  loop?: { t: number; p50: number; p99: number; max: number; elu: number; rss?: number; heapUsed?: number; heapTotal?: number; external?: number }[];
  gc?: { byKind: Record<string, { count: number; totalMs: number; maxMs: number }>; long: { t: number; kind: string; ms: number }[] };
}

export function runtimeStatsOf(raw: ProbeFile, from: number, to: number): RuntimeStats {
  const loop = (raw.loop ?? []).filter((l) => l.t > from && l.t <= to + 1000);
  const p99s = loop.map((l) => l.p99).sort((a, b) => a - b);
  const long = (raw.gc?.long ?? []).filter((g) => g.t >= from && g.t <= to);
  const med = (a: number[]): number => {
    const x = a.filter(Number.isFinite).sort((p, q) => p - q);
    return x[Math.floor(x.length / 2)] ?? NaN;
  };
  const part = (a: number, b: number) => loop.filter((l) => l.t >= from + a * (to - from) && l.t <= from + b * (to - from));
  const h = (a: number, b: number, k: 'heapUsed' | 'heapTotal' | 'external') => med(part(a, b).map((l) => l[k] ?? NaN));
  return {
    heap: {
      usedStart: h(0.1, 0.2, 'heapUsed'),
      usedMiddle: h(0.45, 0.55, 'heapUsed'),
      usedEnd: h(0.9, 1, 'heapUsed'),
      totalStart: h(0.1, 0.2, 'heapTotal'),
      totalEnd: h(0.9, 1, 'heapTotal'),
      externalStart: h(0.1, 0.2, 'external'),
      externalEnd: h(0.9, 1, 'external'),
    },
    seconds: loop.length,
    loopDelayP99Median: p99s[Math.floor(p99s.length / 2)] ?? NaN,
    loopDelayP99Max: p99s[p99s.length - 1] ?? NaN,
    loopDelayMax: loop.length ? Math.max(...loop.map((l) => l.max)) : NaN,
    eluMean: loop.length ? Math.round((1000 * loop.reduce((a, l) => a + l.elu, 0)) / loop.length) / 1000 : NaN,
    gcPauses10ms: long.length,
    gcPauseMaxMs: long.length ? Math.max(...long.map((g) => g.ms)) : 0,
    gcTotals: raw.gc?.byKind ?? {},
  };
}

export interface StartSignetOptions {
  mode: SignetMode;
  name: string;
  configFile: string;
  dir: string;
  port?: number;
  env?: NodeJS.ProcessEnv;
  cpuProf?: boolean;
  /** write stdout (the JSON log) to this file instead of parsing it */
  logFile?: string;
}

export function startSignet(o: StartSignetOptions): SignetProc {
  const probeFile = path.join(o.dir, `probe-${o.name}.json`);
  const profDir = o.cpuProf ? path.join(o.dir, `prof-${o.name}`) : undefined;
  const nodeArgs = [
    ...shippedNodeFlags(),
    ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
    '--import',
    path.join(ROOT, 'bench/request-probe.mjs'),
    path.join(ROOT, 'dist/src/cli.js'),
    o.mode,
    '--config',
    o.configFile,
  ];
  const logFd = o.logFile ? openSync(o.logFile, 'a') : undefined;
  const child = spawnTracked(process.execPath, nodeArgs, {
    cwd: o.dir,
    env: { ...process.env, SIGNET_LOG_LEVEL: 'info', SIGNET_BENCH_PROBE_FILE: probeFile, ...o.env },
    stdio: ['ignore', logFd ?? 'pipe', 'pipe'],
  });
  if (logFd !== undefined) closeSync(logFd);
  let workerStarted = false;
  const readProbe = (): ProbeFile => {
    try {
      return JSON.parse(readFileSync(probeFile, 'utf8')) as ProbeFile;
    } catch {
      return {};
    }
  };
  const s: SignetProc = {
    mode: o.mode,
    name: o.name,
    child,
    pid: child.pid ?? -1,
    ...(o.port !== undefined && o.mode !== 'worker' ? { url: `http://127.0.0.1:${o.port}` } : {}),
    signed: new Map(),
    signedCount: new Map(),
    present: new Set(),
    queued: new Map(),
    counts: new Map(),
    errors: [],
    stderr: new LineRing(200),
    stdoutTail: new LineRing(50),
    probeFile,
    ...(profDir ? { profDir } : {}),
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop: () => killChild(child, 20_000),
    async ready(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < deadline) {
        if (s.exited()) {
          throw new SetupError(
            `signet ${o.mode} (${o.name}) exited during start-up (code ${child.exitCode}, signal ${child.signalCode}):\n${s.stderr.text()}\n${s.stdoutTail.text()}`,
          );
        }
        if (o.mode === 'worker') {
          if (workerStarted || (o.logFile && existsSync(o.logFile) && readFileSync(o.logFile, 'utf8').includes('"worker started"'))) return;
          last = 'no "worker started" log line yet';
        } else {
          try {
            const r = await httpRequest(`${s.url}/healthz`, { timeoutMs: 1000 });
            if (r.status === 200) return;
            last = `HTTP ${r.status}`;
          } catch (e) {
            last = (e as Error).message;
          }
        }
        await sleep(100);
      }
      throw new SetupError(`signet ${o.mode} (${o.name}) not ready within ${timeoutMs} ms (${last}):\n${s.stderr.text()}\n${s.stdoutTail.text()}`);
    },
    async metrics() {
      if (!s.url) return [];
      const r = await httpRequest(`${s.url}/metrics`, { timeoutMs: 10_000 });
      return parseMetrics(r.body.toString('utf8'));
    },
    probe() {
      return readProbe().counts ?? {};
    },
    waits() {
      const p = readProbe();
      return { waits: p.waits ?? {}, inflight: p.inflight ?? {} };
    },
    runtimeStats(from, to) {
      return runtimeStatsOf(readProbe(), from, to);
    },
    profileFile() {
      if (!profDir || !existsSync(profDir)) return undefined;
      const f = readdirSync(profDir).find((n) => n.endsWith('.cpuprofile'));
      return f ? path.join(profDir, f) : undefined;
    },
  };
  s.stderr.attach(child.stderr);
  if (!child.stdout) return s;
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      s.stdoutTail.push(line);
      let j: LogLine;
      try {
        j = JSON.parse(line) as LogLine;
      } catch {
        s.counts.set('(not json)', (s.counts.get('(not json)') ?? 0) + 1);
        continue;
      }
      const msg = String(j.msg ?? '');
      const time = typeof j.time === 'number' ? j.time : Date.now();
      s.counts.set(msg, (s.counts.get(msg) ?? 0) + 1);
      if (msg === 'signed' && typeof j.ref === 'string') {
        if (!s.signed.has(j.ref)) s.signed.set(j.ref, time);
        s.signedCount.set(j.ref, (s.signedCount.get(j.ref) ?? 0) + 1);
        const sigs = Array.isArray(j.signatures) ? j.signatures.map(String) : [];
        if (sigs.length && sigs.every((x) => x.endsWith(' present'))) s.present.add(j.ref);
      } else if (msg === 'push queued' && Array.isArray(j.queued)) {
        for (const q of j.queued) {
          const ref = String(q).replace(/@sha256:[0-9a-f]{64}$/, '');
          if (!s.queued.has(ref)) s.queued.set(ref, time);
        }
      } else if (msg === 'worker started') {
        workerStarted = true;
      } else if ((j.level ?? 0) >= 40 && s.errors.length < 50) {
        s.errors.push(`${msg}${j.ref ? ` ${j.ref}` : ''}${j.err ? `: ${String(j.err)}` : ''}`);
      }
    }
  });
  return s;
}

/**
 * The node flags signet ships with (package.json's start script; the Dockerfile and the CLI's
 * shebang carry the same, test/unit/deploy/compose-docker.test.ts checks it), so the bench
 * measures signet as it runs.
 */
function shippedNodeFlags(): string[] {
  // an experiment: BENCH_NODE_FLAGS replaces them (e.g. BENCH_NODE_FLAGS="--max-semi-space-size=8")
  const override = process.env['BENCH_NODE_FLAGS'];
  if (override !== undefined) return override.split(/\s+/).filter(Boolean);
  const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['start'] ?? '';
  const m = /^node\s+(.*?)\s*dist\/src\/cli\.js/.exec(start);
  return m?.[1] ? m[1].split(/\s+/) : [];
}

export interface RegistryWaitSummary {
  /** mean ms from a request's creation to its response headers, by "METHOD kind" */
  meanMsByKind: Record<string, number>;
  /** all the waits between the two snapshots, summed, per signed image */
  msPerImage: number;
  /** requests in flight to the registry, over the 50 ms samples between the two snapshots */
  inFlightMedian: number;
  inFlightMax: number;
}

/** What a signet process waited on one registry (`origin`) between two probe snapshots. */
export function waitsBetween(after: RegistryWaits, before: RegistryWaits, origin: string, images: number): RegistryWaitSummary {
  const meanMsByKind: Record<string, number> = {};
  let ms = 0;
  for (const [kind, w] of Object.entries(after.waits[origin] ?? {})) {
    const b = before.waits[origin]?.[kind] ?? { n: 0, ms: 0 };
    const n = w.n - b.n;
    if (n <= 0) continue;
    meanMsByKind[kind] = Math.round((10 * (w.ms - b.ms)) / n) / 10;
    ms += w.ms - b.ms;
  }
  const samples: [number, number][] = Object.entries(after.inflight[origin] ?? {})
    .map(([k, c]): [number, number] => [Number(k), c - (before.inflight[origin]?.[k] ?? 0)])
    .filter(([, c]) => c > 0)
    .sort((a, b) => a[0] - b[0]);
  const count = samples.reduce((a, [, c]) => a + c, 0);
  let seen = 0;
  let median = NaN;
  for (const [k, c] of samples) {
    seen += c;
    if (seen * 2 >= count) {
      median = k;
      break;
    }
  }
  return {
    meanMsByKind,
    msPerImage: Math.round(ms / Math.max(1, images)),
    inFlightMedian: median,
    inFlightMax: samples.length ? samples[samples.length - 1]![0] : NaN,
  };
}
