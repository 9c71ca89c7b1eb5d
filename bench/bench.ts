/**
 * signet end-to-end benchmark on real parts: docker-registry (distribution 2.8) with push
 * notifications -> signet (the compiled CLI, its own process) -> signatures written back, checked
 * by reading the registry and by the real `cosign verify`; then a baseline loop of `cosign sign`.
 *
 *   npm run bench                          # 200 images, push concurrency 16, 40 cosign signs
 *   npm run bench -- --images 50           # a quick one
 *   npm run bench -- --worker-concurrency 16 --cpu-prof
 *
 * Options (flag, or env BENCH_<NAME> with dashes as underscores, e.g. BENCH_IMAGES=50):
 *   --images N               images pushed in phase A (default 200)
 *   --concurrency C          concurrent pushes (default 16)
 *   --cosign-images M        images signed by the cosign loop in phase B (default 40; 0 skips it)
 *   --worker-concurrency W   signet worker.concurrency (default 64)
 *   --registry-concurrency R signet registries[].maxConcurrency (default: signet's default)
 *   --notify-filter          registry sends no blob or pull events (ignoredmediatypes/ignore.actions)
 *   --cpu-prof               run signet under --cpu-prof and print a self-time summary
 *   --no-build               use dist/ as it is (default: npx tsc -p tsconfig.build.json first)
 *   --grace S                seconds without progress before unsigned images count as lost (60)
 *   --timeout S              hard limit for the whole run (1800)
 *   --out FILE               JSON results (default bench/results/latest.json)
 *
 * Exit code: 0 when every image got exactly one signature and cosign verified the samples,
 * 1 otherwise, 2 on a setup error or timeout.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { cosignGenerateKeyPair, cosignSign, cosignVerify } from '../test/helpers/cosign.js';
import { httpRequest } from '../test/helpers/http.js';
import { getManifest, pushImage, sigTag } from '../test/helpers/images.js';
import { freePort } from '../test/helpers/ports.js';
import { killChild, LineRing, runProcess, spawnTracked } from '../test/helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REDIS_URL = process.env.SIGNET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const HOOK_SECRET = `bench-hook-secret-${randomBytes(8).toString('hex')}`;
const KEY_PASSWORD = `bench-pw-${randomBytes(6).toString('hex')}`;

// ---------------------------------------------------------------------------------------------
// options

interface Options {
  images: number;
  concurrency: number;
  cosignImages: number;
  workerConcurrency: number;
  registryConcurrency?: number;
  notifyFilter: boolean;
  cpuProf: boolean;
  noBuild: boolean;
  graceS: number;
  timeoutS: number;
  out: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      images: { type: 'string' },
      concurrency: { type: 'string' },
      'cosign-images': { type: 'string' },
      'worker-concurrency': { type: 'string' },
      'registry-concurrency': { type: 'string' },
      'notify-filter': { type: 'boolean' },
      'cpu-prof': { type: 'boolean' },
      'no-build': { type: 'boolean' },
      grace: { type: 'string' },
      timeout: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    const src = readFileSync(fileURLToPath(import.meta.url), 'utf8');
    process.stdout.write(`${/\/\*\*([\s\S]*?)\*\//.exec(src)?.[1]?.replace(/^ \* ?/gm, '') ?? ''}\n`);
    process.exit(0);
  }
  const env = (name: string): string | undefined => process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
  const str = (name: keyof typeof values): string | undefined => {
    const v = values[name];
    return typeof v === 'string' ? v : env(name);
  };
  const bool = (name: keyof typeof values): boolean => {
    const v = values[name];
    if (typeof v === 'boolean') return v;
    const e = env(name);
    return e !== undefined && e !== '' && e !== '0' && e.toLowerCase() !== 'false';
  };
  const int = (name: keyof typeof values, def: number | undefined, min: number): number | undefined => {
    const s = str(name);
    if (s === undefined) return def;
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min} (got "${s}")`);
    return n;
  };
  return {
    images: int('images', 200, 1)!,
    concurrency: int('concurrency', 16, 1)!,
    cosignImages: int('cosign-images', 40, 0)!,
    workerConcurrency: int('worker-concurrency', 64, 1)!,
    ...(int('registry-concurrency', undefined, 1) !== undefined ? { registryConcurrency: int('registry-concurrency', undefined, 1)! } : {}),
    notifyFilter: bool('notify-filter'),
    cpuProf: bool('cpu-prof'),
    noBuild: bool('no-build'),
    graceS: int('grace', 60, 1)!,
    timeoutS: int('timeout', 1800, 10)!,
    out: path.resolve(ROOT, str('out') ?? 'bench/results/latest.json'),
  };
}

// ---------------------------------------------------------------------------------------------
// small utilities

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (line: string): void => void process.stdout.write(`${line}\n`);
// A closed stdout (the parent npm/tsx went away on Ctrl-C, or `| head`) must not kill the clean-up.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const round = (n: number, d = 1): number => (Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : n);

/** Run `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(runners);
}

/**
 * Always compile: tsc emits even when it reports errors, so an mtime check could take a broken
 * emit for an up-to-date build. Other people edit src/ while benches run; a failing build stops
 * the bench rather than measuring something else.
 */
async function build(): Promise<void> {
  log('build: npx tsc -p tsconfig.build.json');
  const r = await runProcess('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeoutMs: 300_000 });
  if (r.code !== 0) throw new SetupError(`build failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.stdout}${r.stderr}`);
}

class SetupError extends Error {}

function versionOf(bin: string, args: string[], pick: (out: string) => string | undefined): string {
  try {
    const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 15_000 });
    return pick(`${r.stdout ?? ''}\n${r.stderr ?? ''}`)?.trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

function machineInfo(): Record<string, string | number> {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const dpkg = (pkg: string): string | undefined =>
    versionOf('dpkg-query', ['-W', '-f=${Version}', pkg], (o) => o.split('\n')[0]) || undefined;
  const registry = versionOf('docker-registry', ['--version'], (o) => /\s(v?\d+\.\d+\.\d+\S*)/.exec(o)?.[1]);
  let cosign = versionOf('cosign', ['version', '--json'], (o) => /"gitVersion":\s*"([^"]+)"/.exec(o)?.[1]);
  if (cosign === 'devel' || cosign === 'unknown') cosign = `${cosign} (deb ${dpkg('cosign') ?? '?'})`;
  const [l1, l5] = loadavg();
  return {
    loadavg: `${l1!.toFixed(2)} ${l5!.toFixed(2)} (1, 5 min, at start)`,
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    registry,
    cosign,
    redis: versionOf('redis-cli', ['-u', REDIS_URL, 'info', 'server'], (o) => /redis_version:(\S+)/.exec(o)?.[1]),
  };
}

async function deletePrefix(prefix: string): Promise<number> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true });
  r.on('error', () => undefined);
  let deleted = 0;
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) deleted += await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return deleted;
}

/** Prometheus text -> [{name, labels, value}] */
function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
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

// ---------------------------------------------------------------------------------------------
// signet as a child process

interface LogLine {
  msg?: string;
  time?: number;
  level?: number;
  ref?: string;
  [k: string]: unknown;
}

interface SignetProc {
  child: ChildProcess;
  pid: number;
  url: string;
  /** first 'signed' log time per ref (host/repo:tag) */
  signed: Map<string, number>;
  /** first 'push queued' log time per ref (host/repo:tag, digest stripped) */
  queued: Map<string, number>;
  /** number of 'signed' log lines per ref */
  signedCount: Map<string, number>;
  counts: Map<string, number>;
  stderr: LineRing;
  stdoutTail: LineRing;
  errors: string[];
  stop(): Promise<void>;
}

function startSignet(configFile: string, port: number, dir: string, opts: { cpuProf: boolean; probeFile: string }): SignetProc {
  const nodeArgs = [
    ...(opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'prof')}`] : []),
    '--import',
    path.join(ROOT, 'bench/request-probe.mjs'),
    path.join(ROOT, 'dist/src/cli.js'),
    'start',
    '--config',
    configFile,
  ];
  const child = spawnTracked(process.execPath, nodeArgs, {
    cwd: dir,
    env: {
      ...process.env,
      SIGNET_LOG_LEVEL: 'info',
      COSIGN_PASSWORD: KEY_PASSWORD,
      SIGNET_BENCH_PROBE_FILE: opts.probeFile,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const s: SignetProc = {
    child,
    pid: child.pid ?? -1,
    url: `http://127.0.0.1:${port}`,
    signed: new Map(),
    queued: new Map(),
    signedCount: new Map(),
    counts: new Map(),
    stderr: new LineRing(200),
    stdoutTail: new LineRing(50),
    errors: [],
    stop: () => killChild(child, 15_000),
  };
  s.stderr.attach(child.stderr);
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
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
      s.counts.set(msg, (s.counts.get(msg) ?? 0) + 1);
      if (msg === 'signed' && typeof j.ref === 'string') {
        if (!s.signed.has(j.ref)) s.signed.set(j.ref, typeof j.time === 'number' ? j.time : Date.now());
        s.signedCount.set(j.ref, (s.signedCount.get(j.ref) ?? 0) + 1);
      } else if (msg === 'push queued' && Array.isArray(j.queued)) {
        for (const q of j.queued) {
          const ref = String(q).replace(/@sha256:[0-9a-f]{64}$/, '');
          if (!s.queued.has(ref)) s.queued.set(ref, typeof j.time === 'number' ? j.time : Date.now());
        }
      } else if ((j.level ?? 0) >= 40 && s.errors.length < 50) {
        s.errors.push(`${msg}${j.ref ? ` ${j.ref}` : ''}${j.err ? `: ${String(j.err)}` : ''}`);
      }
    }
  });
  return s;
}

async function waitHealthy(s: SignetProc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) {
      throw new SetupError(`signet exited during start-up (code ${s.child.exitCode}, signal ${s.child.signalCode}):\n${s.stderr.text()}\n${s.stdoutTail.text()}`);
    }
    try {
      const r = await httpRequest(`${s.url}/healthz`, { timeoutMs: 1000 });
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new SetupError(`signet did not answer /healthz within ${timeoutMs} ms (${last}):\n${s.stderr.text()}\n${s.stdoutTail.text()}`);
}

/** Max VmRSS of a pid, sampled every `everyMs`. */
function rssSampler(pid: number, everyMs = 250): { max(): number; last(): number; samples(): number; stop(): void } {
  let max = 0;
  let last = 0;
  let n = 0;
  const read = (): void => {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) {
        last = Number(m[1]) * 1024;
        max = Math.max(max, last);
        n++;
      }
    } catch {
      /* process gone */
    }
  };
  read();
  const t = setInterval(read, everyMs);
  return { max: () => max, last: () => last, samples: () => n, stop: () => clearInterval(t) };
}

/** CPU seconds (user + system) a pid has used so far, from /proc/<pid>/stat; NaN when unknown. */
function cpuSeconds(pid: number | undefined): number {
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
function machineBusySeconds(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...
    const busy = f.reduce((a, b) => a + b, 0) - (f[3] ?? 0) - (f[4] ?? 0);
    return busy / 100;
  } catch {
    return NaN;
  }
}

async function redisPid(): Promise<number | undefined> {
  const r = await runProcess('redis-cli', ['-u', REDIS_URL, 'info', 'server'], { timeoutMs: 5000 }).catch(() => undefined);
  const m = r ? /process_id:(\d+)/.exec(r.stdout) : null;
  return m ? Number(m[1]) : undefined;
}

function readProbe(file: string): Record<string, Record<string, number>> {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { counts: Record<string, Record<string, number>> }).counts;
  } catch {
    return {};
  }
}

function diffCounts(after: Record<string, number> = {}, before: Record<string, number> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// cpu profile summary

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

function summarizeProfile(file: string): { totalMs: number; idlePct: number; topFunctions: string[]; byPackage: string[] } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; startTime: number; endTime: number };
  const totalMs = (prof.endTime - prof.startTime) / 1000;
  const hits = new Map<number, number>();
  for (const s of prof.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const totalSamples = prof.samples.length || 1;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const rel = (url: string): string => url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
  /** The package or signet file a frame belongs to; undefined for node internals and natives. */
  const ownerOf = (n: ProfileNode): string | undefined => {
    const url = rel(n.callFrame.url);
    if (!url || url.startsWith('node:')) return undefined;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    return pkg ? `node_modules/${pkg}` : url;
  };
  // Self time of natives and node internals goes to the nearest caller in a package or signet
  // file, so "writev" lands on pino, undici, ioredis or express rather than on "(native)".
  const owner = new Map<number, string>();
  const attribute = (id: number): string => {
    const known = owner.get(id);
    if (known) return known;
    const n = byId.get(id)!;
    const fn = n.callFrame.functionName;
    let o = ['(idle)', '(garbage collector)', '(program)', '(root)'].includes(fn) ? fn : ownerOf(n);
    if (!o) {
      const p = parent.get(id);
      o = p !== undefined && byId.get(p)!.callFrame.functionName !== '(root)' ? attribute(p) : 'node internals (no JS caller)';
    }
    owner.set(id, o);
    return o;
  };
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  let idle = 0;
  for (const n of prof.nodes) {
    const h = hits.get(n.id) ?? 0;
    if (!h) continue;
    const fn = n.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') idle += h;
    const url = rel(n.callFrame.url);
    const fnKey = `${fn} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
    byFn.set(fnKey, (byFn.get(fnKey) ?? 0) + h);
    const o = attribute(n.id);
    byPkg.set(o, (byPkg.get(o) ?? 0) + h);
  }
  const pct = (h: number): string => `${((100 * h) / totalSamples).toFixed(1).padStart(5)}%`;
  const top = (m: Map<string, number>, k: number): string[] =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, h]) => `${pct(h)}  ${name}`);
  return { totalMs, idlePct: round((100 * idle) / totalSamples), topFunctions: top(byFn, 20), byPackage: top(byPkg, 15) };
}

// ---------------------------------------------------------------------------------------------
// main

interface Pushed {
  repo: string;
  tag: string;
  ref: string;
  digest: string;
  startedAt: number;
  doneAt: number;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const hardDeadline = Date.now() + opts.timeoutS * 1000;
  let aborted = false;
  const left = (): number => (aborted ? -1 : hardDeadline - Date.now());
  const machine = machineInfo();
  log(`signet bench: ${opts.images} images, push concurrency ${opts.concurrency}, worker concurrency ${opts.workerConcurrency}, cosign baseline ${opts.cosignImages} images`);
  log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, registry ${machine.registry}, cosign ${machine.cosign}, redis ${machine.redis}, load ${machine.loadavg}`);

  const prefix = `signet-bench-${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'signet-bench-'));
  let registry: RunningRegistry | undefined;
  let signet: SignetProc | undefined;
  let rss: ReturnType<typeof rssSampler> | undefined;
  let progress: NodeJS.Timeout | undefined;
  let cleaning: Promise<void> | undefined;

  /** Idempotent: every caller waits for the same clean-up to finish. */
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      if (progress) clearInterval(progress);
      rss?.stop();
      await signet?.stop().catch(() => undefined);
      await registry?.stop().catch(() => undefined);
      try {
        const n = await deletePrefix(prefix);
        log(`cleanup: removed ${n} Redis key(s) under ${prefix}:`);
      } catch (e) {
        log(`cleanup: could not remove Redis keys under ${prefix}: (${(e as Error).message})`);
      }
      rmSync(dir, { recursive: true, force: true });
    })());
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    // Ctrl-C reaches the whole process group (npm, tsx, signet, the registry): keep cleaning up
    // on the first two, give up on the third.
    if (++signals === 1) {
      aborted = true;
      log(`\n${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    } else if (signals >= 3) process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  const watchdog = setTimeout(() => {
    log(`\ntimeout: the run exceeded ${opts.timeoutS} s; cleaning up`);
    aborted = true;
    void cleanup().finally(() => process.exit(2));
  }, opts.timeoutS * 1000 + 5000);
  watchdog.unref();

  try {
    if (opts.noBuild) {
      if (!existsSync(path.join(ROOT, 'dist/src/cli.js'))) throw new SetupError('--no-build: dist/src/cli.js does not exist');
      log('build: skipped (--no-build), using dist/ as it is');
    } else await build();

    // keys: the same cosign.key for signet and the cosign baseline
    const key = await cosignGenerateKeyPair(dir, KEY_PASSWORD);

    const port = await freePort();
    registry = await startRegistry({
      notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
      notifyHeaders: { Authorization: [`Bearer ${HOOK_SECRET}`] },
      ...(opts.notifyFilter ? { notifyIgnoredMediaTypes: ['application/octet-stream'], notifyIgnoredActions: ['pull'] } : {}),
    });
    const H = registry.host;
    const configFile = path.join(dir, 'signet.yaml');
    writeFileSync(
      configFile,
      `server: { port: ${port}, host: 127.0.0.1 }
redis: { url: "${REDIS_URL}", prefix: ${prefix} }
worker: { concurrency: ${opts.workerConcurrency} }
registries:
  - host: "${H}"
    insecure: true${opts.registryConcurrency ? `\n    maxConcurrency: ${opts.registryConcurrency}` : ''}
integrations:
  - name: local
    kind: distribution
    secret: "${HOOK_SECRET}"
keys:
  - { name: cosign, provider: file, path: cosign.key, password: "\${COSIGN_PASSWORD}" }
rules:
  - { match: "${H}/bench/**", keys: [cosign], identity: repository }
`,
    );
    const probeFile = path.join(dir, 'probe.json');
    signet = startSignet(configFile, port, dir, { cpuProf: opts.cpuProf, probeFile });
    await waitHealthy(signet, 30_000);
    rss = rssSampler(signet.pid);
    const idleRss = rss.last();
    log(`signet pid ${signet.pid} on ${signet.url}, registry ${registry.url}, redis prefix ${prefix}`);

    // ---- phase A: push N images, wait for every signature -----------------------------------
    await sleep(300);
    const probeBefore = readProbe(probeFile);
    const rPid = await redisPid();
    const cpuPids = { signet: signet.pid, registry: registry.pid, redis: rPid };
    const cpuBefore = Object.fromEntries(Object.entries(cpuPids).map(([k, p]) => [k, cpuSeconds(p)]));
    const benchCpuBefore = process.cpuUsage();
    const machineBusyBefore = machineBusySeconds();
    const items = Array.from({ length: opts.images }, (_, i) => ({ repo: `bench/app-${i}`, tag: 'v1' }));
    const pushed: Pushed[] = [];
    const pushErrors: string[] = [];
    const signedOf = (): number => pushed.reduce((n, p) => n + (signet!.signed.has(p.ref) ? 1 : 0), 0);
    const s = signet;
    const printProgress = (): void =>
      log(`  pushed ${pushed.length}/${opts.images}, signed ${signedOf()}, signet rss ${round(rss!.last() / 2 ** 20)} MB`);
    progress = setInterval(printProgress, 2000);

    log(`phase A: pushing ${opts.images} images (${opts.concurrency} at once)`);
    const phaseStart = Date.now();
    await pool(items, opts.concurrency, async (it) => {
      if (left() < 0) return;
      const t0 = Date.now();
      try {
        const img = await pushImage(registry!, it.repo, it.tag);
        pushed.push({ ...it, ref: `${H}/${it.repo}:${it.tag}`, digest: img.digest, startedAt: t0, doneAt: Date.now() });
      } catch (e) {
        pushErrors.push(`${it.repo}:${it.tag}: ${(e as Error).message}`);
      }
    });
    const pushesDone = Date.now();
    if (aborted) return 130;
    log(`  all pushes done in ${pushesDone - phaseStart} ms (${round((1000 * pushed.length) / (pushesDone - phaseStart))} pushes/s), ${pushErrors.length} push error(s)`);

    // wait: until everything is signed, or `grace` seconds without any new signature
    let lastProgress = pushesDone;
    let lastSigned = signedOf();
    while (lastSigned < pushed.length && left() > 0) {
      await sleep(100);
      const now = signedOf();
      if (now > lastSigned) {
        lastSigned = now;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > opts.graceS * 1000) {
        log(`  no new signature for ${opts.graceS} s: giving up waiting`);
        break;
      }
      if (s.child.exitCode !== null || s.child.signalCode !== null) {
        log(`  signet exited (code ${s.child.exitCode}, signal ${s.child.signalCode})`);
        break;
      }
    }
    clearInterval(progress);
    progress = undefined;
    if (aborted) return 130;
    printProgress();
    const phaseWall = (Date.now() - phaseStart) / 1000;
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const cpuUsed: Record<string, number> = Object.fromEntries(
      Object.entries(cpuPids).map(([k, p]) => [k, round(cpuSeconds(p) - (cpuBefore[k] ?? NaN), 2)]),
    );
    cpuUsed['bench (pusher)'] = round((benchCpu.user + benchCpu.system) / 1e6, 2);
    const machineBusy = machineBusySeconds() - machineBusyBefore;
    cpuUsed['other processes'] = round(machineBusy - Object.values(cpuUsed).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0), 2);
    const rssMax = rss.max();
    const rssSamples = rss.samples();
    rss.stop();

    const latencies: number[] = [];
    const toQueued: number[] = [];
    const queuedToSigned: number[] = [];
    let lastSignedAt = 0;
    for (const p of pushed) {
      const t = s.signed.get(p.ref);
      const q = s.queued.get(p.ref);
      if (q !== undefined) toQueued.push(q - p.doneAt);
      if (q !== undefined && t !== undefined) queuedToSigned.push(t - q);
      if (t === undefined) continue;
      latencies.push(t - p.doneAt);
      lastSignedAt = Math.max(lastSignedAt, t);
    }
    latencies.sort((a, b) => a - b);
    toQueued.sort((a, b) => a - b);
    queuedToSigned.sort((a, b) => a - b);
    const pstats = (a: number[]) => ({ p50: percentile(a, 50), p90: percentile(a, 90), p99: percentile(a, 99), max: a[a.length - 1] ?? NaN });
    const firstPushStart = Math.min(...pushed.map((p) => p.startedAt));
    const signetSeconds = (lastSignedAt - firstPushStart) / 1000;
    const signetRate = latencies.length / signetSeconds;

    // the registry's view: exactly one signature layer per image
    await sleep(500); // let in-flight notifications of the last .sig pushes settle (not required)
    const sigLayers = new Map<string, number>();
    await pool(pushed, 16, async (p) => {
      const m = await getManifest(registry!, p.repo, sigTag(p.digest));
      sigLayers.set(p.ref, m.status === 200 ? ((JSON.parse(m.body.toString('utf8')) as { layers?: unknown[] }).layers ?? []).length : 0);
    });
    const lost = pushed.filter((p) => (sigLayers.get(p.ref) ?? 0) === 0);
    const extra = pushed.filter((p) => (sigLayers.get(p.ref) ?? 0) > 1);
    const signedTwice = pushed.filter((p) => (s.signedCount.get(p.ref) ?? 0) > 1);
    const signedNoLog = pushed.filter((p) => (sigLayers.get(p.ref) ?? 0) > 0 && !s.signed.has(p.ref));

    // cosign verify a sample of 3
    const withSig = pushed.filter((p) => (sigLayers.get(p.ref) ?? 0) > 0);
    const sample = [...new Set([0, Math.floor(withSig.length / 2), withSig.length - 1])].map((i) => withSig[i]).filter((p): p is Pushed => !!p);
    const verifications: { ref: string; ok: boolean; detail?: string }[] = [];
    for (const p of sample) {
      const ref = `${H}/${p.repo}@${p.digest}`;
      const v = await cosignVerify(ref, key.pubPath, [], { timeoutMs: 60_000 });
      const id = v.payloads[0]?.critical?.identity?.['docker-reference'];
      const dg = v.payloads[0]?.critical?.image?.['docker-manifest-digest'];
      const ok = v.ok && id === `${H}/${p.repo}` && dg === p.digest;
      verifications.push({ ref, ok, ...(ok ? {} : { detail: `code ${v.code}, identity ${id}, digest ${dg}: ${v.stderr.slice(0, 500)}` }) });
    }

    // metrics and request counts
    let metricsText = '';
    try {
      metricsText = (await httpRequest(`${s.url}/metrics`, { timeoutMs: 5000 })).body.toString('utf8');
    } catch (e) {
      log(`  could not read /metrics: ${(e as Error).message}`);
    }
    const metrics = parseMetrics(metricsText);
    const byLabel = (name: string, label: string): Record<string, number> =>
      Object.fromEntries(metrics.filter((m) => m.name === name).map((m) => [m.labels[label] ?? '', m.value]));
    const jobsTotal = byLabel('signet_jobs_total', 'outcome');
    const signaturesTotal = byLabel('signet_signatures_total', 'outcome');
    const webhookEvents = byLabel('signet_webhook_events_total', 'outcome');
    const registryMetric = metrics.filter((m) => /registry.*request|request.*registry/.test(m.name));
    const p2sSum = metrics.find((m) => m.name === 'signet_push_to_signed_seconds_sum')?.value;
    const p2sCount = metrics.find((m) => m.name === 'signet_push_to_signed_seconds_count')?.value;
    await sleep(300); // the probe flushes every 250 ms
    const probeAfter = readProbe(probeFile);
    const origin = `http://${H}`;
    const requests = diffCounts(probeAfter[origin], probeBefore[origin]);
    const requestTotal = Object.values(requests).reduce((a, b) => a + b, 0);
    const signaturesWritten = signaturesTotal['signed'] ?? withSig.length;
    const otherOrigins = Object.keys(probeAfter).filter((o) => o !== origin);

    // stop signet (writes the cpu profile) before the baseline so it does not share the CPUs
    await s.stop();
    let profile: ReturnType<typeof summarizeProfile> | undefined;
    let profileCopy: string | undefined;
    if (opts.cpuProf) {
      const pdir = path.join(dir, 'prof');
      const f = existsSync(pdir) ? readdirSync(pdir).find((n) => n.endsWith('.cpuprofile')) : undefined;
      if (f) {
        profile = summarizeProfile(path.join(pdir, f));
        mkdirSync(path.dirname(opts.out), { recursive: true });
        profileCopy = path.join(path.dirname(opts.out), `signet-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
        copyFileSync(path.join(pdir, f), profileCopy);
      } else log('  no cpu profile was written');
    }

    // ---- phase B: the cosign loop baseline ----------------------------------------------------
    const M = Math.min(opts.cosignImages, pushed.length);
    let cosignRate = NaN;
    let cosignMs: number[] = [];
    const cosignErrors: string[] = [];
    if (M > 0) {
      log(`phase B: cosign sign loop over ${M} images (sequential)`);
      const t0 = Date.now();
      for (let i = 0; i < M && left() > 0; i++) {
        const p = pushed[i]!;
        const a = Date.now();
        try {
          await cosignSign(`${H}/${p.repo}@${p.digest}`, key.keyPath, KEY_PASSWORD, [], { timeoutMs: 60_000 });
          cosignMs.push(Date.now() - a);
        } catch (e) {
          cosignErrors.push((e as Error).message.slice(0, 300));
        }
        if ((i + 1) % 10 === 0) log(`  cosign signed ${i + 1}/${M}`);
      }
      if (aborted) return 130;
      const secs = (Date.now() - t0) / 1000;
      cosignRate = cosignMs.length / secs;
      cosignMs = cosignMs.sort((a, b) => a - b);
    }

    // ---- report ----------------------------------------------------------------------------
    const verifyOk = verifications.length > 0 && verifications.every((v) => v.ok);
    const result = {
      date: new Date().toISOString(),
      machine,
      options: { ...opts, out: path.relative(ROOT, opts.out) },
      signet: {
        images: opts.images,
        pushed: pushed.length,
        pushErrors,
        pushPhaseMs: pushesDone - phaseStart,
        signed: latencies.length,
        imagesPerSecond: round(signetRate, 2),
        wallSeconds: round(signetSeconds, 2),
        pushToSignedMs: {
          p50: percentile(latencies, 50),
          p90: percentile(latencies, 90),
          p99: percentile(latencies, 99),
          max: latencies[latencies.length - 1] ?? NaN,
        },
        phaseWallSeconds: round(phaseWall, 2),
        cpuSecondsInPhaseA: cpuUsed,
        /** push completed -> signet logged 'push queued' (registry notification delivery + receiver) */
        pushToQueuedMs: pstats(toQueued),
        /** 'push queued' -> 'signed' (queue wait + signing pipeline) */
        queuedToSignedMs: pstats(queuedToSigned),
        rssMaxMB: round(rssMax / 2 ** 20),
        rssIdleMB: round(idleRss / 2 ** 20),
        rssSamples,
        lostEvents: lost.length,
        lost: lost.slice(0, 20).map((p) => p.ref),
        moreThanOneSignature: extra.map((p) => `${p.ref} (${sigLayers.get(p.ref)} layers)`),
        signedLogTwice: signedTwice.map((p) => p.ref),
        signatureWithoutSignedLog: signedNoLog.map((p) => p.ref),
        cosignVerify: verifications,
        logCounts: Object.fromEntries([...s.counts.entries()].sort((a, b) => b[1] - a[1])),
        warningsAndErrors: s.errors,
      },
      metrics: {
        jobsTotal,
        signaturesTotal,
        webhookEvents,
        pushToSignedSecondsAvg: p2sSum !== undefined && p2sCount ? round(p2sSum / p2sCount, 3) : undefined,
        registryRequestMetric: registryMetric.length ? registryMetric : 'none: signet exports no registry request counter (RegistryDirectory.requestCount() exists but is not a metric)',
      },
      registryRequests: {
        source: 'undici diagnostics channel in the signet process (bench/request-probe.mjs)',
        total: requestTotal,
        perSignature: signaturesWritten ? round(requestTotal / signaturesWritten, 2) : NaN,
        byKind: requests,
        ...(otherOrigins.length ? { otherOrigins } : {}),
      },
      cosign: {
        images: M,
        signed: cosignMs.length,
        imagesPerSecond: round(cosignRate, 2),
        perImageMs: { p50: percentile(cosignMs, 50), p99: percentile(cosignMs, 99) },
        errors: cosignErrors,
      },
      ratioSignetToCosign: round(signetRate / cosignRate, 1),
      ...(profile ? { cpuProfile: { file: profileCopy ? path.relative(ROOT, profileCopy) : undefined, ...profile } } : {}),
    };

    const rows: [string, string][] = [
      ['machine', `${machine.cpu}, ${machine.cores} cores`],
      ['node / registry / cosign', `${machine.node} / ${machine.registry} / ${machine.cosign}`],
      ['images (N) / push conc. / worker conc.', `${opts.images} / ${opts.concurrency} / ${opts.workerConcurrency}`],
      ['signet images/s', `${result.signet.imagesPerSecond} (${latencies.length} signed in ${round(signetSeconds, 2)} s)`],
      ['push-to-signed p50 / p99 ms', `${result.signet.pushToSignedMs.p50} / ${result.signet.pushToSignedMs.p99} (max ${result.signet.pushToSignedMs.max})`],
      ['  of which push->queued p50 / p99 ms', `${percentile(toQueued, 50)} / ${percentile(toQueued, 99)} (registry notification + receiver)`],
      ['  of which queued->signed p50 / p99 ms', `${percentile(queuedToSigned, 50)} / ${percentile(queuedToSigned, 99)} (queue + pipeline)`],
      ['cosign loop images/s', M > 0 ? `${result.cosign.imagesPerSecond} (${cosignMs.length}/${M}, p50 ${result.cosign.perImageMs.p50} ms per image)` : 'skipped'],
      ['ratio signet / cosign', M > 0 ? `${result.ratioSignetToCosign}x` : '-'],
      ['signet max RSS MB', `${result.signet.rssMaxMB} (idle ${result.signet.rssIdleMB})`],
      ['lost events', `${lost.length}`],
      ['images with >1 signature', `${extra.length}`],
      ['cosign verify sample', `${verifications.filter((v) => v.ok).length}/${verifications.length} ok`],
      ['signet_jobs_total', JSON.stringify(jobsTotal)],
      ['webhook events (so far)', `${JSON.stringify(webhookEvents)} (incl. pull events of the checks above)`],
      ['load average at start', String(machine.loadavg)],
      ['CPU s in phase A', `${Object.entries(cpuUsed).map(([k, v]) => `${k} ${v}`).join(', ')} (wall ${round(phaseWall, 1)} s, ${machine.cores} cores)`],
      [
        'registry requests / signature',
        `${result.registryRequests.perSignature} (${requestTotal} requests, counted by bench/request-probe.mjs; ${
          registryMetric.length ? `signet metric: ${registryMetric.map((m) => `${m.name}${JSON.stringify(m.labels)}=${m.value}`).join(', ')}` : 'signet has no metric for it'
        })`,
      ],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    log('');
    log(`${'-'.repeat(w + 2)}+${'-'.repeat(60)}`);
    for (const [k, v] of rows) log(`${k.padEnd(w)}  | ${v}`);
    log(`${'-'.repeat(w + 2)}+${'-'.repeat(60)}`);
    log(`registry requests by kind: ${JSON.stringify(requests)}`);
    if (s.errors.length) log(`signet warnings/errors (first ${Math.min(5, s.errors.length)}): ${s.errors.slice(0, 5).join(' | ')}`);
    if (pushErrors.length) log(`push errors (first 3): ${pushErrors.slice(0, 3).join(' | ')}`);
    for (const v of verifications.filter((x) => !x.ok)) log(`cosign verify FAILED ${v.ref}: ${v.detail}`);
    if (profile) {
      log(`\nsignet cpu profile (${round(profile.totalMs / 1000, 1)} s, idle ${profile.idlePct}%), self time by package or signet file (natives charged to their JS caller):`);
      for (const l of profile.byPackage) log(`  ${l}`);
      log('top functions by self time:');
      for (const l of profile.topFunctions) log(`  ${l}`);
      if (profileCopy) log(`profile: ${path.relative(ROOT, profileCopy)}`);
    }
    mkdirSync(path.dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
    log(`results: ${path.relative(ROOT, opts.out)}`);

    const failed = lost.length > 0 || extra.length > 0 || !verifyOk || pushErrors.length > 0 || cosignErrors.length > 0;
    if (failed) log('FAILED: lost events, duplicate signatures, push errors, cosign errors or a failed verification (see above)');
    return failed ? 1 : 0;
  } catch (e) {
    if (aborted) return 130;
    log(`bench error: ${(e as Error).stack ?? String(e)}`);
    if (signet) log(`--- signet stderr ---\n${signet.stderr.text()}\n--- signet stdout (tail) ---\n${signet.stdoutTail.text()}`);
    if (registry) log(`--- registry log ---\n${registry.logs()}`);
    return 2;
  } finally {
    await cleanup();
    clearTimeout(watchdog);
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  },
);
