/**
 * Small utilities shared by the bench phases: statistics, a bounded pool, /proc readers (RSS,
 * CPU seconds, machine busy time), Redis clean-up by prefix, a Prometheus text parser.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { runProcess } from '../../test/helpers/proc.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const REDIS_URL = process.env.SIGNET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export class SetupError extends Error {}

export const sleep = (ms: number): Promise<void> => new Promise<void>((r) => setTimeout(r, ms));
export const log = (line: string): void => void process.stdout.write(`${line}\n`);

export const round = (n: number, d = 1): number => (Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : n);
export const mb = (bytes: number): number => round(bytes / 2 ** 20);

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface Stats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function stats(values: readonly number[]): Stats {
  const a = [...values].sort((x, y) => x - y);
  return { n: a.length, p50: round(percentile(a, 50)), p90: round(percentile(a, 90)), p99: round(percentile(a, 99)), max: round(a[a.length - 1] ?? NaN) };
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

/** Run `fn` over `items` with at most `limit` at once; stops taking items when `stop()` is true. */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length && !stop()) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(runners);
}

/**
 * Open-loop schedule: call `fn(i)` at `rate` per second for `count` calls (not waiting for the
 * previous ones), resolves when all have settled. Returns how late the last start was, in ms.
 */
export async function paced(count: number, rate: number, fn: (i: number) => Promise<void>, stop: () => boolean = () => false): Promise<{ lateMs: number }> {
  const t0 = performance.now();
  const running: Promise<void>[] = [];
  let lateMs = 0;
  for (let i = 0; i < count && !stop(); i++) {
    const due = t0 + (1000 * i) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    lateMs = Math.max(0, performance.now() - due);
    running.push(fn(i).catch(() => undefined));
  }
  await Promise.all(running);
  return { lateMs: round(lateMs) };
}

// ---------------------------------------------------------------------------------------------
// /proc

/** VmRSS of a pid in bytes; NaN when it is gone. */
export function rssOf(pid: number | undefined): number {
  if (!pid || pid < 0) return NaN;
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system) a pid has used so far; NaN when unknown. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid || pid < 0) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const busy = f.reduce((a, b) => a + b, 0) - (f[3] ?? 0) - (f[4] ?? 0); // minus idle, iowait
    return busy / 100;
  } catch {
    return NaN;
  }
}

export function loadAverage(): string {
  const [l1, l5, l15] = loadavg();
  return `${l1!.toFixed(2)} ${l5!.toFixed(2)} ${l15!.toFixed(2)}`;
}

/**
 * CPU seconds used by named processes between start() and stop(), plus this bench process and
 * everything else on the machine ("other processes": other sessions' tests and builds).
 */
export class CpuMeter {
  private before: Record<string, number> = {};
  private benchBefore = process.cpuUsage();
  private machineBefore = 0;
  private t0 = 0;
  constructor(private readonly pids: () => Record<string, number | undefined>) {}

  start(): this {
    this.before = Object.fromEntries(Object.entries(this.pids()).map(([k, p]) => [k, cpuSeconds(p)]));
    this.benchBefore = process.cpuUsage();
    this.machineBefore = machineBusySeconds();
    this.t0 = Date.now();
    return this;
  }

  stop(): { wallSeconds: number; cpuSeconds: Record<string, number>; busyPct: number } {
    const out: Record<string, number> = {};
    for (const [k, p] of Object.entries(this.pids())) out[k] = round(cpuSeconds(p) - (this.before[k] ?? NaN), 2);
    const b = process.cpuUsage(this.benchBefore);
    out['bench'] = round((b.user + b.system) / 1e6, 2);
    const busy = machineBusySeconds() - this.machineBefore;
    out['other processes'] = round(busy - Object.values(out).reduce((a, v) => a + (Number.isFinite(v) ? v : 0), 0), 2);
    const wall = (Date.now() - this.t0) / 1000;
    return { wallSeconds: round(wall, 2), cpuSeconds: out, busyPct: round((100 * busy) / (wall * cpus().length)) };
  }
}

export function formatCpu(c: { wallSeconds: number; cpuSeconds: Record<string, number> }): string {
  return `${Object.entries(c.cpuSeconds)
    .filter(([, v]) => Number.isFinite(v))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')} (wall ${c.wallSeconds} s)`;
}

/** Samples the RSS of named pids every `everyMs`; keeps (t, rss) series. */
export class RssSampler {
  readonly series = new Map<string, { t: number; rss: number }[]>();
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly pids: Record<string, number | undefined>,
    private readonly everyMs = 250,
  ) {}

  start(): this {
    const read = (): void => {
      const t = Date.now();
      for (const [k, p] of Object.entries(this.pids)) {
        const rss = rssOf(p);
        if (!Number.isFinite(rss)) continue;
        let s = this.series.get(k);
        if (!s) this.series.set(k, (s = []));
        s.push({ t, rss });
      }
    };
    read();
    this.timer = setInterval(read, this.everyMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  max(name: string, from = 0, to = Infinity): number {
    const v = (this.series.get(name) ?? []).filter((s) => s.t >= from && s.t <= to).map((s) => s.rss);
    return v.length ? Math.max(...v) : NaN;
  }

  last(name: string): number {
    const s = this.series.get(name);
    return s?.[s.length - 1]?.rss ?? NaN;
  }

  /** Median RSS within [from, to]. */
  medianIn(name: string, from: number, to: number): number {
    return median((this.series.get(name) ?? []).filter((s) => s.t >= from && s.t <= to).map((s) => s.rss));
  }

  /** Least-squares slope of RSS over time within [from, to], in bytes per minute. */
  slopePerMin(name: string, from: number, to: number): number {
    const pts = (this.series.get(name) ?? []).filter((s) => s.t >= from && s.t <= to);
    if (pts.length < 3) return NaN;
    const n = pts.length;
    const mx = pts.reduce((a, p) => a + p.t, 0) / n;
    const my = pts.reduce((a, p) => a + p.rss, 0) / n;
    let num = 0;
    let den = 0;
    for (const p of pts) {
      num += (p.t - mx) * (p.rss - my);
      den += (p.t - mx) ** 2;
    }
    return den ? (num / den) * 60_000 : NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// machine

function versionOf(bin: string, args: string[], pick: (out: string) => string | undefined): string {
  try {
    const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 15_000 });
    return pick(`${r.stdout ?? ''}\n${r.stderr ?? ''}`)?.trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  node: string;
  registry: string;
  cosign: string;
  redis: string;
  loadavgAtStart: string;
}

export function machineInfo(): MachineInfo {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const dpkg = (pkg: string): string | undefined => versionOf('dpkg-query', ['-W', '-f=${Version}', pkg], (o) => o.split('\n')[0]) || undefined;
  let cosign = versionOf('cosign', ['version', '--json'], (o) => /"gitVersion":\s*"([^"]+)"/.exec(o)?.[1]);
  if (cosign === 'devel' || cosign === 'unknown') cosign = `${cosign} (deb ${dpkg('cosign') ?? '?'})`;
  return {
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    registry: versionOf('docker-registry', ['--version'], (o) => /\s(v?\d+\.\d+\.\d+\S*)/.exec(o)?.[1]),
    cosign,
    redis: versionOf('redis-cli', ['-u', REDIS_URL, 'info', 'server'], (o) => /redis_version:(\S+)/.exec(o)?.[1]),
    loadavgAtStart: loadAverage(),
  };
}

export async function redisPid(): Promise<number | undefined> {
  const r = await runProcess('redis-cli', ['-u', REDIS_URL, 'info', 'server'], { timeoutMs: 5000 }).catch(() => undefined);
  const m = r ? /process_id:(\d+)/.exec(r.stdout) : null;
  return m ? Number(m[1]) : undefined;
}

/** Deletes every key under `<prefix>:`; returns how many. */
export async function deletePrefix(prefix: string): Promise<number> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true });
  r.on('error', () => undefined);
  let deleted = 0;
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
      cursor = next;
      if (keys.length) deleted += await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return deleted;
}

// ---------------------------------------------------------------------------------------------
// Prometheus text

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of a metric's samples whose labels include `where`. */
export function metricSum(samples: readonly Sample[], name: string, where: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** The samples of `name` keyed by the given label(s), joined with '/'. */
export function metricBy(samples: readonly Sample[], name: string, labels: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name) continue;
    const k = labels.map((l) => s.labels[l] ?? '').join('/');
    out[k] = (out[k] ?? 0) + s.value;
  }
  return out;
}

export function diffCounts(after: Record<string, number> = {}, before: Record<string, number> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) !== 0) out[k] = round(v - (before[k] ?? 0), 3);
  return out;
}
