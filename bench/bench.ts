/**
 * signet benchmark on real parts (docker-registry 2.8, Redis, the compiled signet CLI in its own
 * processes, the AWS KMS stand-in speaking the real wire protocol, cosign), all on loopback.
 * Every figure below comes from the same run, on the same machine, side by side:
 *
 *   floor       the registry's own floor: a raw loop writing signet's exact signature manifests
 *               (2 blob uploads + the .sig manifest PUT, no reads) at the best concurrency; plus
 *               signet's full request sequence replayed raw (what the registry allows signet's
 *               request pattern)
 *   throughput  N images pre-pushed (no registry notifications), then the bench POSTs one
 *               distribution event per image to `signet serve`; `signet worker` (another process)
 *               signs: webhook -> queue -> worker -> signature in the registry
 *   latency     live pushes (blobs mounted, manifest PUT) at half the peak rate, each webhook
 *               POSTed as soon as its push returns: push-to-signed p50/p99
 *   soak        steady pushes for --soak seconds (default 600): receiver and worker RSS at
 *               start/middle/end
 *   ack         `signet serve` alone, load from a child process (bench/ack-load.mjs): ack latency
 *               at 1,000 requests/s from an open-loop generator on raw sockets (and the same
 *               generator against a trivial node:http server: the harness floor), and the peak
 *               (events/s accepted) from wrk (else autocannon), with 1 and with 10 events per
 *               request, and with autocannon at 1 event per request for comparison
 *   kms         the throughput phase with an `awskms` key on the AWS KMS stand-in answering each
 *               Sign after 100 ms; Sign calls counted in the stand-in
 *   cost        `signet start`, one single-arch image at a time: key-backend calls and registry
 *               requests per new signature, from /metrics and from the request probe
 *   e2e         what users see: pushes to a registry whose notifications go to `signet start`
 *   cosign      the baseline: a sequential `cosign sign --key` loop
 *
 *   npm run bench                       # the full run (10-minute soak; 17-20 minutes)
 *   npm run bench -- --quick            # smaller sets, 60 s soak (about 5 minutes)
 *   npm run bench -- --phases floor,throughput --cpu-prof
 *
 * Options (flag, or env BENCH_<NAME> with dashes as underscores, e.g. BENCH_SOAK=120):
 *   --quick                  smaller defaults everywhere (explicit options still win)
 *   --phases LIST            comma list of the phases above (default: all)
 *   --images N               throughput images (600; quick 150)
 *   --post-concurrency P     webhook POSTs in flight in the throughput and kms phases (16)
 *   --warmup N               images signed by each fresh signet deployment before it is measured (50)
 *   --kms-images N           kms phase images (300; quick 100)
 *   --kms-delay MS           stand-in delay before each Sign answer (100)
 *   --rate R                 latency and soak push rate, images/s (default: half the measured peak)
 *   --latency-seconds S      length of the latency phase (30; quick 10)
 *   --latency-push KIND      cheap (default): blobs mounted + manifest PUT, as a push whose layers
 *                            the registry has; full: test-kit pushImage (2 blob uploads + manifest,
 *                            new connection per request: the registry spends as much CPU on it as on
 *                            the signature, so on 2 cores half the signing peak saturates the box)
 *   --soak S                 soak length in seconds (600; quick 60)
 *   --soak-rate R            soak push rate (default: --rate)
 *   --ack-seconds S          length of each ack run (10; quick 5)
 *   --ack-rate R             the fixed rate for the ack latency (1000)
 *   --ack-connections C      wrk/autocannon connections at peak (64)
 *   --floor-writes N         signature writes per floor concurrency level (200; quick 100)
 *   --floor-levels LIST      floor concurrency levels (4,8,16,32,64)
 *   --e2e-images N           e2e phase images (200; quick 50)
 *   --concurrency C          e2e concurrent pushes (16)
 *   --cosign-images M        cosign loop images (40; quick 10)
 *   --worker-concurrency W   signet worker.concurrency (64)
 *   --registry-concurrency R signet registries[].maxConcurrency (default: signet's default)
 *   --notify-filter          e2e registry sends no blob or pull events
 *   --pin                    pin the registries to CPU 0 and everything else the bench starts (signet,
 *                            the stand-in, the load generators, the bench) to CPU 1: shows what signet
 *                            gets when it does not take CPU from the registry (Redis is shared, not pinned)
 *   --cpu-prof               profile signet serve + worker (throughput), serve (ack), worker (kms),
 *                            each summarised over its phase only; .cpuprofile files kept next to --out
 *   --no-build               use dist/ as it is (default: npx tsc -p tsconfig.build.json first)
 *   --grace S                seconds without a new signature before the rest count as lost (60)
 *   --timeout S              hard limit for the whole run (default 2400 + soak)
 *   --out FILE               JSON results (default bench/results/latest.json, quick: latest-quick.json)
 *
 * Exit code: 0 when every image got exactly one signature, the cosign samples verified and the
 * stand-in saw one Sign per signature; 1 otherwise; 2 on a setup error or timeout. Missed
 * performance targets are reported in the table, not in the exit code.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { cosignGenerateKeyPair, cosignSign, cosignVerify } from '../test/helpers/cosign.js';
import { pushImage } from '../test/helpers/images.js';
import { freePort } from '../test/helpers/ports.js';
import { killChild, runProcess, spawnTracked } from '../test/helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';
import {
  cpuSeconds,
  CpuMeter,
  deletePrefix,
  diffCounts,
  formatCpu,
  loadAverage,
  log,
  machineInfo,
  mb,
  metricBy,
  metricSum,
  paced,
  pool,
  REDIS_URL,
  redisPid,
  ROOT,
  round,
  RssSampler,
  SetupError,
  sleep,
  stats,
} from './lib/common.js';
import { Oci } from './lib/oci.js';
import { monotonicUs, summarizeProfile, type ProfileSummary } from './lib/profile.js';
import { startSignet, waitsBetween, type SignetProc } from './lib/signet-proc.js';
import { HookPoster, type ImageRef } from './lib/webhook.js';

const HOOK_SECRET = `bench-hook-secret-${randomBytes(8).toString('hex')}`;
const KEY_PASSWORD = `bench-pw-${randomBytes(6).toString('hex')}`;
const PHASES = ['floor', 'throughput', 'latency', 'soak', 'ack', 'kms', 'cost', 'e2e', 'cosign'] as const;
type Phase = (typeof PHASES)[number];

// A closed stdout (`| head`, the parent npm gone on Ctrl-C) must not kill the clean-up.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

// ---------------------------------------------------------------------------------------------
// options

interface Options {
  quick: boolean;
  phases: Set<Phase>;
  images: number;
  postConcurrency: number;
  warmup: number;
  kmsImages: number;
  kmsDelayMs: number;
  rate?: number;
  latencySeconds: number;
  latencyPush: 'cheap' | 'full';
  soakSeconds: number;
  soakRate?: number;
  ackSeconds: number;
  ackRate: number;
  ackConnections: number;
  floorWrites: number;
  floorLevels: number[];
  e2eImages: number;
  concurrency: number;
  cosignImages: number;
  workerConcurrency: number;
  registryConcurrency?: number;
  notifyFilter: boolean;
  pin: boolean;
  cpuProf: boolean;
  noBuild: boolean;
  graceS: number;
  timeoutS: number;
  out: string;
}

function latencyPush(v: string | undefined): 'cheap' | 'full' {
  if (v === undefined || v === 'cheap' || v === 'full') return v ?? 'cheap';
  throw new SetupError(`--latency-push must be cheap or full (got "${v}")`);
}

function parseOptions(argv: string[]): Options {
  const names = [
    'phases', 'images', 'post-concurrency', 'warmup', 'kms-images', 'kms-delay', 'rate', 'latency-seconds', 'latency-push', 'soak', 'soak-rate', 'ack-seconds',
    'ack-rate', 'ack-connections', 'floor-writes', 'floor-levels', 'e2e-images', 'concurrency', 'cosign-images',
    'worker-concurrency', 'registry-concurrency', 'grace', 'timeout', 'out',
  ] as const;
  const flags = ['quick', 'notify-filter', 'pin', 'cpu-prof', 'no-build'] as const;
  const { values } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
      ...Object.fromEntries(flags.map((n) => [n, { type: 'boolean' as const }])),
      help: { type: 'boolean', short: 'h' },
    },
  }) as { values: Record<string, string | boolean | undefined> };
  if (values.help) {
    const src = readFileSync(fileURLToPath(import.meta.url), 'utf8');
    process.stdout.write(`${/\/\*\*([\s\S]*?)\*\//.exec(src)?.[1]?.replace(/^ \* ?/gm, '') ?? ''}\n`);
    process.exit(0);
  }
  const env = (name: string): string | undefined => process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
  const str = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === 'string' ? v : env(name);
  };
  const bool = (name: string): boolean => {
    const v = values[name];
    if (typeof v === 'boolean') return v;
    const e = env(name);
    return e !== undefined && e !== '' && e !== '0' && e.toLowerCase() !== 'false';
  };
  const num = (name: string, def: number | undefined, min: number, integer = true): number | undefined => {
    const s = str(name);
    if (s === undefined) return def;
    const n = Number(s);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) throw new SetupError(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min} (got "${s}")`);
    return n;
  };
  const quick = bool('quick');
  const q = <T>(full: T, small: T): T => (quick ? small : full);
  const phaseList = (str('phases') ?? PHASES.join(',')).split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of phaseList) if (!(PHASES as readonly string[]).includes(p)) throw new SetupError(`--phases: unknown phase "${p}" (phases: ${PHASES.join(', ')})`);
  const levels = (str('floor-levels') ?? '4,8,16,32,64').split(',').map(Number);
  if (levels.some((l) => !Number.isInteger(l) || l < 1)) throw new SetupError('--floor-levels must be a comma list of integers >= 1');
  const soakSeconds = num('soak', q(600, 60), 0)!;
  const rate = num('rate', undefined, 0.1, false);
  const soakRate = num('soak-rate', undefined, 0.1, false);
  const registryConcurrency = num('registry-concurrency', undefined, 1);
  return {
    quick,
    phases: new Set(phaseList as Phase[]),
    images: num('images', q(600, 150), 1)!,
    postConcurrency: num('post-concurrency', 16, 1)!,
    warmup: num('warmup', 50, 0)!,
    kmsImages: num('kms-images', q(300, 100), 1)!,
    kmsDelayMs: num('kms-delay', 100, 0)!,
    ...(rate !== undefined ? { rate } : {}),
    latencySeconds: num('latency-seconds', q(30, 10), 1)!,
    latencyPush: latencyPush(str('latency-push')),
    soakSeconds,
    ...(soakRate !== undefined ? { soakRate } : {}),
    ackSeconds: num('ack-seconds', q(10, 5), 1)!,
    ackRate: num('ack-rate', 1000, 1)!,
    ackConnections: num('ack-connections', 64, 1)!,
    floorWrites: num('floor-writes', q(200, 100), 10)!,
    floorLevels: levels,
    e2eImages: num('e2e-images', q(200, 50), 1)!,
    concurrency: num('concurrency', 16, 1)!,
    cosignImages: num('cosign-images', q(40, 10), 0)!,
    workerConcurrency: num('worker-concurrency', 64, 1)!,
    ...(registryConcurrency !== undefined ? { registryConcurrency } : {}),
    notifyFilter: bool('notify-filter'),
    pin: bool('pin'),
    cpuProf: bool('cpu-prof'),
    noBuild: bool('no-build'),
    graceS: num('grace', 60, 1)!,
    timeoutS: num('timeout', 2400 + soakSeconds, 30)!,
    out: path.resolve(ROOT, str('out') ?? (quick ? 'bench/results/latest-quick.json' : 'bench/results/latest.json')),
  };
}

// ---------------------------------------------------------------------------------------------
// the run's shared state

interface Ctx {
  opts: Options;
  dir: string;
  key: { keyPath: string; pubPath: string };
  r1: RunningRegistry;
  oci: Oci;
  standin?: Standin;
  redisPid: number | undefined;
  prefixes: string[];
  deployments: Set<Deployment>;
  extraRegistries: Set<RunningRegistry>;
  /** true once the run is aborted or out of time */
  stopped(): boolean;
  problems: string[];
}

const refOf = (i: ImageRef): string => `${i.host}/${i.repo}:${i.tag}`;

/** --pin: every thread of `pid` onto `cpu` (taskset -a); a no-op without --pin. */
async function pin(ctx: { opts: Options }, pid: number | undefined, cpu: 0 | 1): Promise<void> {
  if (!ctx.opts.pin || !pid || pid < 0) return;
  const r = await runProcess('taskset', ['-a', '-cp', String(cpu), String(pid)], { timeoutMs: 5000 }).catch((e: Error) => ({ code: -1, stderr: e.message }));
  if (r.code !== 0) throw new SetupError(`--pin: taskset -a -cp ${cpu} ${pid} failed: ${r.stderr}`);
}

async function build(): Promise<void> {
  log('build: npx tsc -p tsconfig.build.json');
  const r = await runProcess('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeoutMs: 300_000 });
  if (r.code !== 0) throw new SetupError(`build failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.stdout}${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// the AWS KMS stand-in, in its own process

interface StandinInfo {
  url: string;
  port: number;
  region: string;
  keyArn: string;
  accessKeyId: string;
  secretAccessKey: string;
  publicKeyPem: string;
}

interface Standin {
  info: StandinInfo;
  pid: number;
  pubPath: string;
  setDelay(ms: number): Promise<void>;
  counts(): Promise<{ counts: Record<string, number>; signServerMs: { p50: number; p99: number } }>;
  stop(): Promise<void>;
}

async function startStandin(dir: string): Promise<Standin> {
  const child: ChildProcess = spawnTracked(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/kms-standin.ts')], {
    cwd: ROOT,
    env: process.env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const waiting = new Map<number, (m: any) => void>();
  const info = await new Promise<StandinInfo>((resolve, reject) => {
    const t = setTimeout(() => reject(new SetupError('the KMS stand-in did not start within 30 s')), 30_000);
    child.on('message', (m: any) => {
      if (m?.ready) {
        clearTimeout(t);
        resolve(m.ready as StandinInfo);
      } else if (typeof m?.id === 'number') {
        waiting.get(m.id)?.(m);
        waiting.delete(m.id);
      }
    });
    child.once('exit', (code) => reject(new SetupError(`the KMS stand-in exited (code ${code})`)));
  });
  const ask = (msg: Record<string, unknown>): Promise<any> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const t = setTimeout(() => reject(new Error('the KMS stand-in did not answer')), 10_000);
      waiting.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      child.send({ ...msg, id });
    });
  const pubPath = path.join(dir, 'kms.pub');
  writeFileSync(pubPath, info.publicKeyPem);
  return {
    info,
    pid: child.pid ?? -1,
    pubPath,
    setDelay: async (ms) => void (await ask({ cmd: 'delay', ms })),
    counts: () => ask({ cmd: 'counts' }),
    stop: async () => {
      if (child.connected) child.disconnect();
      await killChild(child, 5000);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// signet deployments

interface Deployment {
  name: string;
  prefix: string;
  port: number;
  hookUrl: string;
  /** serve or start: answers /healthz, /metrics and the webhooks */
  receiver: SignetProc;
  /** worker or start: logs 'signed' */
  worker?: SignetProc;
  procs: SignetProc[];
  stop(): Promise<void>;
}

interface DeployOptions {
  /** split: `signet serve` + `signet worker`; start: one `signet start`; serve: the receiver alone */
  mode: 'split' | 'start' | 'serve';
  registries: RunningRegistry[];
  keys: ('cosign' | 'kms')[];
  rules: { match: string; keys: string[] }[];
  port?: number;
  cpuProf?: boolean;
  logToFile?: boolean;
  rateLimit?: { requestsPerSecond: number; burst: number };
}

function signetConfig(ctx: Ctx, prefix: string, port: number, o: DeployOptions): string {
  const keyYaml = o.keys.map((k) =>
    k === 'cosign'
      ? `  - { name: cosign, provider: file, path: cosign.key, password: "\${COSIGN_PASSWORD}" }`
      : [
          '  - name: kms',
          '    provider: awskms',
          `    keyId: "${ctx.standin!.info.keyArn}"`,
          `    endpoint: "${ctx.standin!.info.url}"`,
          `    region: ${ctx.standin!.info.region}`,
          '    credentials: { accessKeyId: "${BENCH_AWS_ACCESS_KEY_ID}", secretAccessKey: "${BENCH_AWS_SECRET_ACCESS_KEY}" }',
        ].join('\n'),
  );
  const rc = ctx.opts.registryConcurrency;
  const rl = o.rateLimit ? `\n    rateLimit: { requestsPerSecond: ${o.rateLimit.requestsPerSecond}, burst: ${o.rateLimit.burst} }` : '';
  return `server: { port: ${port}, host: 127.0.0.1 }
redis: { url: "${REDIS_URL}", prefix: ${prefix} }
worker: { concurrency: ${ctx.opts.workerConcurrency} }
registries:
${o.registries.map((r) => `  - host: "${r.host}"\n    insecure: true${rc ? `\n    maxConcurrency: ${rc}` : ''}`).join('\n')}
integrations:
  - name: local
    kind: distribution
    secret: "${HOOK_SECRET}"${rl}
keys:
${keyYaml.join('\n')}
rules:
${o.rules.map((r) => `  - { match: "${r.match}", keys: [${r.keys.join(', ')}], identity: repository }`).join('\n')}
`;
}

async function deploy(ctx: Ctx, name: string, o: DeployOptions): Promise<Deployment> {
  const prefix = `signet-bench-${randomBytes(4).toString('hex')}-${name}`;
  ctx.prefixes.push(prefix);
  const port = o.port ?? (await freePort());
  const configFile = path.join(ctx.dir, `signet-${name}.yaml`);
  writeFileSync(configFile, signetConfig(ctx, prefix, port, o));
  const env = {
    COSIGN_PASSWORD: KEY_PASSWORD,
    ...(ctx.standin ? { BENCH_AWS_ACCESS_KEY_ID: ctx.standin.info.accessKeyId, BENCH_AWS_SECRET_ACCESS_KEY: ctx.standin.info.secretAccessKey } : {}),
  };
  const common = { configFile, dir: ctx.dir, port, env, cpuProf: Boolean(o.cpuProf) };
  const logFile = (role: string) => (o.logToFile ? { logFile: path.join(ctx.dir, `signet-${name}-${role}.log`) } : {});
  const procs: SignetProc[] = [];
  let receiver: SignetProc;
  let worker: SignetProc | undefined;
  if (o.mode === 'start') {
    receiver = worker = startSignet({ ...common, mode: 'start', name: `${name}-start`, ...logFile('start') });
    procs.push(receiver);
  } else {
    receiver = startSignet({ ...common, mode: 'serve', name: `${name}-serve`, ...logFile('serve') });
    procs.push(receiver);
    if (o.mode === 'split') {
      worker = startSignet({ ...common, mode: 'worker', name: `${name}-worker`, ...logFile('worker') });
      procs.push(worker);
    }
  }
  let stopping: Promise<void> | undefined;
  const dep: Deployment = {
    name,
    prefix,
    port,
    hookUrl: `http://127.0.0.1:${port}/hooks/local`,
    receiver,
    ...(worker ? { worker } : {}),
    procs,
    stop: () =>
      (stopping ??= (async () => {
        await Promise.all(procs.map((p) => p.stop()));
        ctx.deployments.delete(dep);
      })()),
  };
  ctx.deployments.add(dep);
  await Promise.all(procs.map((p) => p.ready(60_000)));
  for (const p of procs) await pin(ctx, p.pid, 1);
  return dep;
}

/** Wait until every ref is signed, or `graceS` seconds without a new signature. */
async function waitSigned(ctx: Ctx, worker: SignetProc, refs: readonly string[], label: string): Promise<void> {
  let last = -1;
  let lastProgress = Date.now();
  let lastLog = Date.now();
  for (;;) {
    const n = refs.reduce((a, r) => a + (worker.signed.has(r) ? 1 : 0), 0);
    if (n >= refs.length) return;
    if (n > last) {
      last = n;
      lastProgress = Date.now();
    }
    if (Date.now() - lastProgress > ctx.opts.graceS * 1000) {
      log(`  ${label}: no new signature for ${ctx.opts.graceS} s (${n}/${refs.length}): giving up waiting`);
      return;
    }
    if (worker.exited()) {
      log(`  ${label}: signet ${worker.name} exited (code ${worker.child.exitCode}, signal ${worker.child.signalCode})`);
      return;
    }
    if (ctx.stopped()) return;
    if (Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      log(`  ${label}: signed ${n}/${refs.length}`);
    }
    await sleep(50);
  }
}

/** Exactly one signature layer per image? */
async function checkSignatures(oci: Oci, imgs: readonly ImageRef[]): Promise<{ checked: number; lost: string[]; extra: string[] }> {
  const lost: string[] = [];
  const extra: string[] = [];
  await pool(imgs, 16, async (i) => {
    const n = await oci.sigLayers(i.repo, i.digest).catch(() => -1);
    if (n <= 0) lost.push(refOf(i));
    else if (n > 1) extra.push(`${refOf(i)} (${n} layers)`);
  });
  return { checked: imgs.length, lost, extra };
}

async function verifySample(host: string, imgs: readonly ImageRef[], pubPath: string, k = 2): Promise<{ ref: string; ok: boolean; detail?: string }[]> {
  const pick = [...new Set([0, imgs.length - 1, Math.floor(imgs.length / 2)])].slice(0, k).map((i) => imgs[i]).filter((x): x is ImageRef => !!x);
  const out: { ref: string; ok: boolean; detail?: string }[] = [];
  for (const i of pick) {
    const ref = `${host}/${i.repo}@${i.digest}`;
    const v = await cosignVerify(ref, pubPath, [], { timeoutMs: 60_000 });
    const id = v.payloads[0]?.critical?.identity?.['docker-reference'];
    const dg = v.payloads[0]?.critical?.image?.['docker-manifest-digest'];
    const ok = v.ok && id === `${host}/${i.repo}` && dg === i.digest;
    out.push({ ref, ok, ...(ok ? {} : { detail: `code ${v.code}, identity ${id}, digest ${dg}: ${v.stderr.slice(0, 300)}` }) });
  }
  return out;
}

function requestsOf(probe: Record<string, Record<string, number>>, host: string): Record<string, number> {
  return probe[`http://${host}`] ?? {};
}
const total = (c: Record<string, number>): number => Object.values(c).reduce((a, b) => a + b, 0);

/** Copy a .cpuprofile next to the JSON results (the temp dir goes away); returns its path from the repo root. */
function keepProfile(ctx: Ctx, file: string, name: string): string {
  const copy = path.join(path.dirname(ctx.opts.out), `signet-${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  mkdirSync(path.dirname(copy), { recursive: true });
  copyFileSync(file, copy);
  return path.relative(ROOT, copy);
}

// ---------------------------------------------------------------------------------------------
// phase: the registry's floor

interface FloorRun {
  concurrency: number;
  writes: number;
  seconds: number;
  perSecond: number;
  registryCpuMsPerWrite: number;
}

async function floorRun(ctx: Ctx, concurrency: number, writes: number, label: string, kind: 'write' | 'signet-sequence' | 'signet-verify' = 'write', imgs?: readonly ImageRef[]): Promise<FloorRun> {
  const H = ctx.r1.host;
  const items = Array.from({ length: writes }, (_, i) => i);
  const c0 = cpuSeconds(ctx.r1.pid);
  const t0 = performance.now();
  await pool(
    items,
    concurrency,
    async (i) => {
      if (kind === 'write') {
        const repo = `bench/floor-${label}-${i}`;
        const digest = `sha256:${randomBytes(32).toString('hex')}`;
        await ctx.oci.writeSignature(repo, digest, `${H}/${repo}`);
      } else {
        const img = imgs![i]!;
        await ctx.oci.signetSequence(img.repo, img.digest, img.tag, `${H}/${img.repo}`, { readBack: kind === 'signet-verify' });
      }
    },
    () => ctx.stopped(),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(ctx.r1.pid) - c0;
  return { concurrency, writes, seconds: round(seconds, 2), perSecond: round(writes / seconds), registryCpuMsPerWrite: round((1000 * cpu) / writes, 2) };
}

async function phaseFloor(ctx: Ctx, seqImgs: readonly ImageRef[], seqVerifyImgs: readonly ImageRef[]) {
  log(`floor: raw signature writes (POST+PUT payload, POST+PUT config, PUT .sig), ${ctx.opts.floorWrites} per level, levels ${ctx.opts.floorLevels.join(',')}; load ${loadAverage()}`);
  const loadavg = loadAverage();
  await floorRun(ctx, 8, 30, 'warmup');
  const levels: FloorRun[] = [];
  for (const c of ctx.opts.floorLevels) {
    if (ctx.stopped()) break;
    const r = await floorRun(ctx, c, ctx.opts.floorWrites, `c${c}`);
    levels.push(r);
    log(`  concurrency ${String(c).padStart(3)}: ${r.perSecond} writes/s (registry CPU ${r.registryCpuMsPerWrite} ms/write)`);
  }
  const best = levels.reduce((a, b) => (b.perSecond > a.perSecond ? b : a), levels[0]!);
  const seq = await floorRun(ctx, best.concurrency, seqImgs.length, 'seq', 'signet-sequence', seqImgs);
  const seqVerify = await floorRun(ctx, best.concurrency, seqVerifyImgs.length, 'seqv', 'signet-verify', seqVerifyImgs);
  log(`  best: ${best.perSecond} writes/s at concurrency ${best.concurrency}; signet's 7-request sequence replayed raw: ${seq.perSecond}/s (registry CPU ${seq.registryCpuMsPerWrite} ms/signature)`);
  log(`  the same with the read-back of registries[].verifyWrites (8 requests): ${seqVerify.perSecond}/s (registry CPU ${seqVerify.registryCpuMsPerWrite} ms/signature)`);
  return { loadavg, levels, best, signetSequence: seq, signetSequenceVerify: seqVerify };
}

// ---------------------------------------------------------------------------------------------
// phase: throughput (and the kms phase, which is the same with another key)

async function postAll(ctx: Ctx, dep: Deployment, imgs: readonly ImageRef[], concurrency: number) {
  const poster = new HookPoster(dep.hookUrl, HOOK_SECRET, concurrency);
  const postedAt = new Map<string, number>();
  const acks: number[] = [];
  const errors: string[] = [];
  try {
    await pool(
      imgs,
      concurrency,
      async (img) => {
        try {
          const r = await poster.post([img]);
          acks.push(r.ms);
          postedAt.set(refOf(img), r.at);
          if (r.status !== 202) errors.push(`${refOf(img)}: HTTP ${r.status}`);
        } catch (e) {
          errors.push(`${refOf(img)}: ${(e as Error).message}`);
        }
      },
      () => ctx.stopped(),
    );
  } finally {
    await poster.close();
  }
  return { postedAt, acks, errors };
}

/**
 * A fresh signet runs its first few hundred requests cold (interpreted, then baseline-compiled
 * code: the first webhooks cost the receiver about 3 ms of CPU each, a warm one about 0.5 ms).
 * Each deployment signs `imgs` first, unmeasured.
 */
async function warmUp(ctx: Ctx, dep: Deployment, imgs: readonly ImageRef[] | undefined): Promise<void> {
  if (!imgs?.length) return;
  await postAll(ctx, dep, imgs, Math.min(4, ctx.opts.postConcurrency));
  await waitSigned(ctx, dep.worker!, imgs.map(refOf), `warm-up ${dep.name}`);
}

async function signingRun(ctx: Ctx, dep: Deployment, imgs: readonly ImageRef[], label: string) {
  const worker = dep.worker!;
  const pids = () => ({ serve: dep.receiver.pid, worker: worker.pid, registry: ctx.r1.pid, redis: ctx.redisPid, ...(ctx.standin && label === 'kms' ? { 'kms stand-in': ctx.standin.pid } : {}) });
  const rss = new RssSampler({ receiver: dep.receiver.pid, worker: worker.pid }, 250).start();
  const idle = { receiver: rss.last('receiver'), worker: rss.last('worker') };
  const probe0 = worker.probe();
  const waits0 = worker.waits();
  const loadavg = loadAverage();
  const cpu = new CpuMeter(pids).start();
  const t0 = Date.now();
  const fromUs = monotonicUs();
  const posted = await postAll(ctx, dep, imgs, ctx.opts.postConcurrency);
  const postsDone = Date.now();
  log(`  ${label}: ${imgs.length} webhooks POSTed in ${postsDone - t0} ms (${posted.errors.length} errors), waiting for the signatures`);
  const refs = imgs.map(refOf);
  await waitSigned(ctx, worker, refs, label);
  const cpuUsed = cpu.stop();
  const profileWindow = { fromUs, toUs: monotonicUs() };
  const tEnd = Date.now();
  rss.stop();
  await sleep(1300); // the probe's per-second event-loop entry and its 250 ms flush
  const requests = diffCounts(requestsOf(worker.probe(), ctx.r1.host), requestsOf(probe0, ctx.r1.host));
  const waits = waitsBetween(worker.waits(), waits0, `http://${ctx.r1.host}`, refs.length);
  const times = refs.map((r) => worker.signed.get(r)).filter((t): t is number => t !== undefined).sort((a, b) => a - b);
  const n = times.length;
  const last = times[n - 1] ?? NaN;
  const seconds = (last - t0) / 1000;
  const t10 = times[Math.floor(0.1 * n)] ?? NaN;
  const t90 = times[Math.max(0, Math.ceil(0.9 * n) - 1)] ?? NaN;
  const steady = (Math.ceil(0.9 * n) - Math.floor(0.1 * n) - 1) / ((t90 - t10) / 1000);
  const sig = await checkSignatures(ctx.oci, imgs);
  const present = refs.filter((r) => worker.present.has(r)).length;
  const dup = refs.filter((r) => (worker.signedCount.get(r) ?? 0) > 1);
  return {
    images: imgs.length,
    signed: n,
    seconds: round(seconds, 2),
    imagesPerSecond: round(n / seconds),
    steadyImagesPerSecond: round(steady),
    postPhaseMs: postsDone - t0,
    postErrors: posted.errors.slice(0, 10),
    postErrorCount: posted.errors.length,
    ackMs: stats(posted.acks),
    loadavg,
    cpu: cpuUsed,
    cpuMsPerImage: Object.fromEntries(Object.entries(cpuUsed.cpuSeconds).map(([k, v]) => [k, round((1000 * v) / Math.max(1, n), 1)])),
    rssMB: {
      receiverIdle: mb(idle.receiver),
      workerIdle: mb(idle.worker),
      receiverMax: mb(rss.max('receiver')),
      workerMax: mb(rss.max('worker')),
    },
    registryRequests: { total: total(requests), perSignature: round(total(requests) / Math.max(1, n), 2), byKind: requests },
    /** what the worker waited on the registry: the job's time, as a share of what each job slot had */
    registryWaits: { ...waits, jobSlotMsPerImage: Math.round((1000 * seconds * ctx.opts.workerConcurrency) / Math.max(1, n)) },
    lost: sig.lost.length,
    lostRefs: sig.lost.slice(0, 10),
    moreThanOneSignature: sig.extra,
    signedLogTwice: dup,
    alreadyPresent: present,
    warnings: worker.errors.slice(0, 10),
    runtime: { receiver: dep.receiver.runtimeStats(t0, tEnd), worker: worker.runtimeStats(t0, tEnd) },
    profileWindow,
  };
}

// ---------------------------------------------------------------------------------------------
// phase: latency at half the peak rate, with live pushes

async function phaseLatency(ctx: Ctx, dep: Deployment, rate: number) {
  const count = Math.max(5, Math.round(rate * ctx.opts.latencySeconds));
  const full = ctx.opts.latencyPush === 'full';
  log(
    `latency: ${count} live pushes at ${rate} images/s (${full ? 'test-kit pushImage: 2 blob uploads + manifest' : '2 blob mounts + manifest PUT'}), webhook POSTed when each push returns; load ${loadAverage()}`,
  );
  const worker = dep.worker!;
  const loadavg = loadAverage();
  const poster = new HookPoster(dep.hookUrl, HOOK_SECRET, 64);
  const pushed: { img: ImageRef; startedAt: number; doneAt: number; postedAt: number }[] = [];
  const acks: number[] = [];
  const errors: string[] = [];
  const cpu = new CpuMeter(() => ({ serve: dep.receiver.pid, worker: worker.pid, registry: ctx.r1.pid, redis: ctx.redisPid })).start();
  const tag = `l${randomBytes(3).toString('hex')}`;
  try {
    const { lateMs } = await paced(
      count,
      rate,
      async (i) => {
        const repo = `bench/lat-${tag}-${i}`;
        const startedAt = Date.now();
        try {
          const p = full ? await pushImage(ctx.r1, repo, 'v1') : await ctx.oci.pushCheap(repo, 'v1', `${tag}-${i}`);
          const doneAt = Date.now();
          const img: ImageRef = { host: ctx.r1.host, repo, tag: 'v1', digest: p.digest, size: p.size };
          const r = await poster.post([img]);
          acks.push(r.ms);
          if (r.status !== 202) errors.push(`${repo}: HTTP ${r.status}`);
          pushed.push({ img, startedAt, doneAt, postedAt: r.at });
        } catch (e) {
          errors.push(`${repo}: ${(e as Error).message}`);
        }
      },
      () => ctx.stopped(),
    );
    await waitSigned(ctx, worker, pushed.map((p) => refOf(p.img)), 'latency');
    const cpuUsed = cpu.stop();
    const lat: number[] = [];
    const postToSigned: number[] = [];
    for (const p of pushed) {
      const t = worker.signed.get(refOf(p.img));
      if (t === undefined) continue;
      lat.push(t - p.doneAt);
      postToSigned.push(t - p.postedAt);
    }
    const first = Math.min(...pushed.map((p) => p.startedAt));
    const lastDone = Math.max(...pushed.map((p) => p.doneAt));
    const sig = await checkSignatures(ctx.oci, pushed.map((p) => p.img));
    return {
      rate,
      push: full ? 'full (test-kit pushImage)' : 'cheap (2 blob mounts + manifest PUT)',
      pushes: count,
      pushed: pushed.length,
      achievedPushRate: round(pushed.length / ((lastDone - first) / 1000)),
      schedulerLateMs: lateMs,
      signed: lat.length,
      pushToSignedMs: stats(lat),
      webhookToSignedMs: stats(postToSigned),
      ackMs: stats(acks),
      errors: errors.slice(0, 10),
      errorCount: errors.length,
      loadavg,
      cpu: cpuUsed,
      lost: sig.lost.length,
      moreThanOneSignature: sig.extra,
    };
  } finally {
    await poster.close();
  }
}

// ---------------------------------------------------------------------------------------------
// phase: memory soak

async function phaseSoak(ctx: Ctx, dep: Deployment, rate: number) {
  const seconds = ctx.opts.soakSeconds;
  const count = Math.round(rate * seconds);
  log(`soak: ${seconds} s of steady pushes at ${rate} images/s (${count} images; cheap pushes: 2 blob mounts + manifest PUT, each in its own repository); load ${loadAverage()}`);
  const worker = dep.worker!;
  const loadavg = loadAverage();
  const rss = new RssSampler({ receiver: dep.receiver.pid, worker: worker.pid }, 1000).start();
  const heap: { t: number; receiverHeapMB: number }[] = [];
  const poster = new HookPoster(dep.hookUrl, HOOK_SECRET, 64);
  const pushed: { img: ImageRef; doneAt: number }[] = [];
  const errors: string[] = [];
  const tag = `s${randomBytes(3).toString('hex')}`;
  const cpu = new CpuMeter(() => ({ serve: dep.receiver.pid, worker: worker.pid, registry: ctx.r1.pid, redis: ctx.redisPid })).start();
  const t0 = Date.now();
  const sampleHeap = async (): Promise<void> => {
    try {
      const m = await dep.receiver.metrics();
      heap.push({ t: Date.now(), receiverHeapMB: mb(metricSum(m, 'signet_nodejs_heap_size_used_bytes')) });
    } catch {
      /* a missed sample */
    }
  };
  await sampleHeap();
  const progress = setInterval(() => {
    const signed = pushed.reduce((a, p) => a + (worker.signed.has(refOf(p.img)) ? 1 : 0), 0);
    log(`  soak ${Math.round((Date.now() - t0) / 1000)} s: pushed ${pushed.length}, signed ${signed}, RSS receiver ${mb(rss.last('receiver'))} MB, worker ${mb(rss.last('worker'))} MB, load ${loadAverage()}`);
    void sampleHeap();
  }, 30_000);
  try {
    const { lateMs } = await paced(
      count,
      rate,
      async (i) => {
        const repo = `bench/soak-${tag}-${i}`;
        try {
          const p = await ctx.oci.pushCheap(repo, 'v1', `${tag}-${i}`);
          const doneAt = Date.now();
          const img: ImageRef = { host: ctx.r1.host, repo, tag: 'v1', digest: p.digest, size: p.size };
          const r = await poster.post([img]);
          if (r.status !== 202) errors.push(`${repo}: HTTP ${r.status}`);
          pushed.push({ img, doneAt });
        } catch (e) {
          errors.push(`${repo}: ${(e as Error).message}`);
        }
      },
      () => ctx.stopped(),
    );
    const pushEnd = Date.now();
    await waitSigned(ctx, worker, pushed.map((p) => refOf(p.img)), 'soak');
    await sleep(1300);
    const runtime = { receiver: dep.receiver.runtimeStats(t0, pushEnd), worker: worker.runtimeStats(t0, pushEnd) };
    await sampleHeap();
    clearInterval(progress);
    rss.stop();
    const cpuUsed = cpu.stop();
    const span = pushEnd - t0;
    const at = (f: number) => t0 + f * span;
    const window = (name: string, a: number, b: number) => mb(rss.medianIn(name, at(a), at(b)));
    const rssOf = (name: string) => ({
      first: mb(rss.series.get(name)?.[0]?.rss ?? NaN),
      start: window(name, 0.1, 0.2),
      middle: window(name, 0.45, 0.55),
      end: window(name, 0.9, 1.0),
      max: mb(rss.max(name)),
      slopeMBPerMin: round(rss.slopePerMin(name, at(0.1), at(1.0)) / 2 ** 20, 2),
      growthMB: round(window(name, 0.9, 1.0) - window(name, 0.1, 0.2)),
    });
    const lat: number[] = [];
    for (const p of pushed) {
      const t = worker.signed.get(refOf(p.img));
      if (t !== undefined) lat.push(t - p.doneAt);
    }
    // read back a sample of the signatures (all of them would be a registry load of its own)
    const sample = pushed.length <= 600 ? pushed : pushed.filter((_, i) => i % Math.ceil(pushed.length / 600) === 0);
    const sig = await checkSignatures(ctx.oci, sample.map((p) => p.img));
    const dup = pushed.filter((p) => (worker.signedCount.get(refOf(p.img)) ?? 0) > 1).length;
    return {
      seconds,
      rate,
      pushes: count,
      pushed: pushed.length,
      signed: lat.length,
      schedulerLateMs: lateMs,
      errors: errors.slice(0, 10),
      errorCount: errors.length,
      loadavg,
      cpu: cpuUsed,
      rssMB: { receiver: rssOf('receiver'), worker: rssOf('worker') },
      receiverHeapUsedMB: heap.map((h) => ({ atSecond: Math.round((h.t - t0) / 1000), mb: h.receiverHeapMB })),
      pushToSignedMs: stats(lat),
      signatureCheck: { checked: sig.checked, lost: sig.lost.length, moreThanOne: sig.extra.length },
      signedLogTwice: dup,
      runtime,
    };
  } finally {
    clearInterval(progress);
    rss.stop();
    await poster.close();
  }
}

// ---------------------------------------------------------------------------------------------
// phase: webhook acknowledgement (signet serve alone, load generators in child processes)

/** wrk on PATH (the test kit installs it), for the peak runs; else autocannon is used. */
function wrkPath(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

async function ackLoad(ctx: Ctx, url: string, o: { mode: 'rate' | 'peak'; connections: number; duration: number; rate?: number; eventsPerRequest: number; tagPrefix: string; wrk?: string }) {
  const args = JSON.stringify({ url, secret: HOOK_SECRET, host: ctx.r1.host, ...o });
  const cmd: [string, string[]] = ctx.opts.pin ? ['taskset', ['-c', '1', process.execPath, path.join(ROOT, 'bench/ack-load.mjs'), args]] : [process.execPath, [path.join(ROOT, 'bench/ack-load.mjs'), args]];
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
async function redisSlowlog(prefix: string, since: number): Promise<{ count: number; maxMs: number; thresholdMs: number }> {
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
async function harnessFloor(ctx: Ctx, duration: number) {
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
    const r = await ackLoad(ctx, `http://127.0.0.1:${port}/hooks/local`, { mode: 'rate', connections: 64, duration, rate: ctx.opts.ackRate, eventsPerRequest: 1, tagPrefix: 'trivial' });
    return { ...r, loadavg };
  } finally {
    await killChild(child);
  }
}

async function phaseAck(ctx: Ctx) {
  log(`ack: signet serve alone (no worker: jobs stay queued); load from a child process (open loop on raw sockets at a fixed rate; wrk, else autocannon, at peak); load ${loadAverage()}`);
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
    log(`  harness floor (the same generator against a node:http server that only answers 202): p50 ${floor.latencyMs.p50} / p99 ${floor.latencyMs.p99} / max ${floor.latencyMs.max} ms at ${round(floor.requestsPerSecond)} req/s`);
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

// ---------------------------------------------------------------------------------------------
// phase: cost per signature (signet start, /metrics + probe + stand-in counts)

async function phaseCost(ctx: Ctx, fileImgs: readonly ImageRef[], kmsImgs: readonly ImageRef[]) {
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
    for (const [key, imgs] of [['cosign', fileImgs], ['kms', kmsImgs]] as const) {
      const per: { keyCalls: number; standinSign: number; requests: Record<string, number>; metricRequests: Record<string, number>; registryErrors: Record<string, number>; signatures: number }[] = [];
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
            metricBy(m1.filter((x) => x.labels['registry'] === H), 'signet_registry_requests_total', ['method', 'kind']),
            metricBy(m0.filter((x) => x.labels['registry'] === H), 'signet_registry_requests_total', ['method', 'kind']),
          ),
          registryErrors: diffCounts(metricBy(m1, 'signet_registry_errors_total', ['method', 'status']), metricBy(m0, 'signet_registry_errors_total', ['method', 'status'])),
          signatures: d('signet_signatures_total', { key, outcome: 'signed' }),
        });
      }
      const first = per[0];
      const same = per.every(
        (p) => JSON.stringify(p.requests) === JSON.stringify(first?.requests) && JSON.stringify(p.metricRequests) === JSON.stringify(first?.metricRequests) && p.keyCalls === first?.keyCalls,
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

// ---------------------------------------------------------------------------------------------
// phase: end to end through the registry's own notifications

async function phaseE2e(ctx: Ctx) {
  const N = ctx.opts.e2eImages;
  log(`e2e: ${N} pushes (${ctx.opts.concurrency} at once) to a registry whose notifications go to signet start${ctx.opts.notifyFilter ? ' (blob and pull events filtered)' : ''}; load ${loadAverage()}`);
  const port = await freePort();
  const r2 = await startRegistry({
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${HOOK_SECRET}`] },
    ...(ctx.opts.notifyFilter ? { notifyIgnoredMediaTypes: ['application/octet-stream'], notifyIgnoredActions: ['pull'] } : {}),
  });
  ctx.extraRegistries.add(r2);
  await pin(ctx, r2.pid, 0);
  const oci2 = new Oci(r2.url, 32);
  let dep: Deployment | undefined;
  try {
    dep = await deploy(ctx, 'e2e', { mode: 'start', port, registries: [r2], keys: ['cosign'], rules: [{ match: `${r2.host}/bench/**`, keys: ['cosign'] }] });
    const s = dep.receiver;
    const rss = new RssSampler({ start: s.pid }, 250).start();
    const idle = rss.last('start');
    const probe0 = s.probe();
    const loadavg = loadAverage();
    const cpu = new CpuMeter(() => ({ signet: s.pid, registry: r2.pid, redis: ctx.redisPid })).start();
    const pushed: { img: ImageRef; startedAt: number; doneAt: number }[] = [];
    const errors: string[] = [];
    const t0 = Date.now();
    await pool(
      Array.from({ length: N }, (_, i) => i),
      ctx.opts.concurrency,
      async (i) => {
        const repo = `bench/app-${i}`;
        const startedAt = Date.now();
        try {
          const p = await pushImage(r2, repo, 'v1');
          pushed.push({ img: { host: r2.host, repo, tag: 'v1', digest: p.digest }, startedAt, doneAt: Date.now() });
        } catch (e) {
          errors.push(`${repo}: ${(e as Error).message}`);
        }
      },
      () => ctx.stopped(),
    );
    const pushesDone = Date.now();
    await waitSigned(ctx, s, pushed.map((p) => refOf(p.img)), 'e2e');
    const cpuUsed = cpu.stop();
    rss.stop();
    await sleep(300);
    const lat: number[] = [];
    const toQueued: number[] = [];
    const queuedToSigned: number[] = [];
    let last = 0;
    for (const p of pushed) {
      const ref = refOf(p.img);
      const t = s.signed.get(ref);
      const q = s.queued.get(ref);
      if (q !== undefined) toQueued.push(q - p.doneAt);
      if (q !== undefined && t !== undefined) queuedToSigned.push(t - q);
      if (t === undefined) continue;
      lat.push(t - p.doneAt);
      last = Math.max(last, t);
    }
    const requests = diffCounts(requestsOf(s.probe(), r2.host), requestsOf(probe0, r2.host));
    const sig = await checkSignatures(oci2, pushed.map((p) => p.img));
    const verify = await verifySample(r2.host, pushed.map((p) => p.img), ctx.key.pubPath, 3);
    const m = await s.metrics();
    return {
      images: N,
      pushed: pushed.length,
      pushErrors: errors.slice(0, 10),
      pushPhaseMs: pushesDone - t0,
      signed: lat.length,
      imagesPerSecond: round(lat.length / ((last - t0) / 1000)),
      pushToSignedMs: stats(lat),
      pushToQueuedMs: stats(toQueued),
      queuedToSignedMs: stats(queuedToSigned),
      rssMB: { idle: mb(idle), max: mb(rss.max('start')) },
      loadavg,
      cpu: cpuUsed,
      registryRequestsPerSignature: round(total(requests) / Math.max(1, lat.length), 2),
      registryRequestsByKind: requests,
      webhookEvents: metricBy(m, 'signet_webhook_events_total', ['outcome']),
      lost: sig.lost.length,
      moreThanOneSignature: sig.extra,
      cosignVerify: verify,
    };
  } finally {
    await dep?.stop();
    await oci2.close();
    await r2.stop();
    ctx.extraRegistries.delete(r2);
  }
}

// ---------------------------------------------------------------------------------------------
// phase: the cosign loop

async function phaseCosign(ctx: Ctx, imgs: readonly ImageRef[]) {
  log(`cosign: sequential \`cosign sign --key\` over ${imgs.length} images; load ${loadAverage()}`);
  const loadavg = loadAverage();
  const ms: number[] = [];
  const errors: string[] = [];
  const t0 = Date.now();
  for (const i of imgs) {
    if (ctx.stopped()) break;
    const a = Date.now();
    try {
      await cosignSign(`${i.host}/${i.repo}@${i.digest}`, ctx.key.keyPath, KEY_PASSWORD, [], { timeoutMs: 60_000 });
      ms.push(Date.now() - a);
    } catch (e) {
      errors.push((e as Error).message.slice(0, 300));
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const sig = await checkSignatures(ctx.oci, imgs);
  return { images: imgs.length, signed: ms.length, imagesPerSecond: round(ms.length / seconds, 2), perImageMs: stats(ms), errors, loadavg, lost: sig.lost.length };
}

// ---------------------------------------------------------------------------------------------
// report

interface Row {
  section: string;
  what: string;
  value: string;
  target?: string;
  verdict?: 'met' | 'MISSED' | '-';
}

function printTable(rows: Row[]): void {
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

function markdownTable(rows: Row[]): string {
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

const verdict = (ok: boolean | undefined): 'met' | 'MISSED' | '-' => (ok === undefined ? '-' : ok ? 'met' : 'MISSED');
const pct = (a: number, b: number): number => round((100 * a) / b);

/**
 * What the worker's jobs waited on the registry (the request probe): requests in flight, the
 * waits per image against each job's time in its slot, and the mean wait by request kind.
 */
function waitsText(w: { meanMsByKind: Record<string, number>; msPerImage: number; inFlightMedian: number; inFlightMax: number; jobSlotMsPerImage: number }, slots: number | undefined): string {
  const kinds = Object.entries(w.meanMsByKind).map(([k, v]) => `${k} ${v}`).join(', ');
  return (
    `${w.inFlightMedian} requests in flight (median; max ${w.inFlightMax}${slots ? `, ${slots} job slots` : ''}); ` +
    `${w.msPerImage} ms of each job's ${w.jobSlotMsPerImage} ms in its slot (${pct(w.msPerImage, w.jobSlotMsPerImage)} %) waiting for registry responses; mean ms per request: ${kinds}`
  );
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 2;
  }
  const deadline = Date.now() + opts.timeoutS * 1000;
  let aborted = false;
  const machine = machineInfo();
  const started = new Date().toISOString();
  log(`signet bench${opts.quick ? ' (quick)' : ''}: phases ${[...opts.phases].join(',')}`);
  log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, registry ${machine.registry}, cosign ${machine.cosign}, redis ${machine.redis}, load average ${machine.loadavgAtStart}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'signet-bench-'));
  const ctx: Partial<Ctx> & { prefixes: string[]; deployments: Set<Deployment>; extraRegistries: Set<RunningRegistry>; problems: string[] } = {
    opts,
    dir,
    prefixes: [],
    deployments: new Set(),
    extraRegistries: new Set(),
    problems: [],
    stopped: () => aborted || Date.now() > deadline,
  };

  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      for (const d of [...ctx.deployments]) await d.stop().catch(() => undefined);
      await ctx.standin?.stop().catch(() => undefined);
      await ctx.oci?.close().catch(() => undefined);
      await ctx.r1?.stop().catch(() => undefined);
      for (const r of [...ctx.extraRegistries]) await r.stop().catch(() => undefined);
      let removed = 0;
      for (const p of ctx.prefixes) removed += await deletePrefix(p).catch(() => 0);
      log(`cleanup: signet processes, registries, the KMS stand-in and ${dir} removed; ${removed} Redis key(s) under ${ctx.prefixes.length} prefix(es) deleted`);
      rmSync(dir, { recursive: true, force: true });
    })());
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
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
  }, opts.timeoutS * 1000 + 30_000);
  watchdog.unref();

  const result: Record<string, any> = { date: started, machine, options: { ...opts, phases: [...opts.phases], out: path.relative(ROOT, opts.out) } };
  const has = (p: Phase): boolean => opts.phases.has(p);
  try {
    if (opts.noBuild) {
      if (!existsSync(path.join(ROOT, 'dist/src/cli.js'))) throw new SetupError('--no-build: dist/src/cli.js does not exist');
      log('build: skipped (--no-build), using dist/ as it is');
    } else await build();

    ctx.key = await cosignGenerateKeyPair(dir, KEY_PASSWORD);
    ctx.r1 = await startRegistry({}); // no notifications: the bench is the notifier
    if (opts.pin) {
      await pin(ctx as Ctx, process.pid, 1);
      await pin(ctx as Ctx, ctx.r1.pid, 0);
    }
    ctx.oci = new Oci(ctx.r1.url, 128);
    ctx.redisPid = await redisPid();
    if (has('kms') || has('cost')) {
      ctx.standin = await startStandin(dir);
      await pin(ctx as Ctx, ctx.standin.pid, 1);
    }
    const c = ctx as Ctx;
    const H = c.r1.host;
    log(`registry ${c.r1.url} (no notifications), redis ${REDIS_URL}${c.standin ? `, AWS KMS stand-in ${c.standin.info.url}` : ''}, temp ${dir}`);

    // pre-push every image the measured phases sign (blobs mounted from one base repository)
    const sets: Record<string, ImageRef[]> = {};
    const want: [string, number, boolean][] = [
      ['tp', opts.images, has('throughput')],
      ['warmtp', opts.warmup, has('throughput')],
      ['warmsteady', opts.warmup, (has('latency') || has('soak')) && (opts.cpuProf || !has('throughput'))],
      ['warmkms', opts.warmup, has('kms')],
      ['kms', opts.kmsImages, has('kms')],
      ['cosign', opts.cosignImages, has('cosign')],
      ['cost', 3, has('cost')],
      ['costkms', 3, has('cost')],
      ['seq', opts.floorWrites, has('floor')],
      ['seqverify', opts.floorWrites, has('floor')],
    ];
    const todo = want.filter(([, n, on]) => on && n > 0).flatMap(([name, n]) => Array.from({ length: n }, (_, i) => ({ name, repo: `bench/${name}-${i}` })));
    const t0 = Date.now();
    await pool(
      todo,
      16,
      async (t) => {
        const p = await c.oci.pushCheap(t.repo, 'v1', `${t.repo}-${randomBytes(4).toString('hex')}`);
        (sets[t.name] ??= []).push({ host: H, repo: t.repo, tag: 'v1', digest: p.digest, size: p.size });
      },
      () => c.stopped(),
    );
    for (const s of Object.values(sets)) s.sort((a, b) => Number(a.repo.split('-').pop()) - Number(b.repo.split('-').pop()));
    log(`pre-pushed ${todo.length} images in ${Date.now() - t0} ms`);

    // ---- floor -----------------------------------------------------------------------------
    if (has('floor') && !c.stopped()) result.floor = await phaseFloor(c, sets['seq'] ?? [], sets['seqverify'] ?? []);

    // ---- throughput, latency, soak: one split deployment (serve + worker) ------------------
    let tpDep: Deployment | undefined;
    const splitDeploy = (name: string, cpuProf = false) =>
      deploy(c, name, { mode: 'split', registries: [c.r1], keys: ['cosign'], rules: [{ match: `${H}/bench/**`, keys: ['cosign'] }], cpuProf });
    if (has('throughput') && !c.stopped()) {
      log(`throughput: ${opts.images} pre-pushed images, one distribution event per image POSTed to signet serve (${opts.postConcurrency} in flight), signet worker signs (concurrency ${opts.workerConcurrency}); load ${loadAverage()}`);
      tpDep = await splitDeploy('tp', opts.cpuProf);
      await warmUp(c, tpDep, sets['warmtp']);
      await sleep(500);
      const tp: Record<string, any> = await signingRun(c, tpDep, sets['tp']!, 'throughput');
      tp.verify = await verifySample(H, sets['tp']!, c.key.pubPath, 2);
      result.throughput = tp;
      log(`  => ${tp.imagesPerSecond} images/s (steady ${tp.steadyImagesPerSecond}), ${tp.signed}/${tp.images} signed, RSS max receiver ${tp.rssMB.receiverMax} MB / worker ${tp.rssMB.workerMax} MB; CPU ${formatCpu(tp.cpu)}`);
      log(`  worker's wait on the registry: ${waitsText(tp.registryWaits, opts.workerConcurrency)}`);
      if (opts.cpuProf) {
        await tpDep.stop();
        const profiles: Record<string, ProfileSummary & { file?: string }> = {};
        for (const p of tpDep.procs) {
          const f = p.profileFile();
          if (f) profiles[p.name] = { ...summarizeProfile(f, tp.profileWindow), file: keepProfile(c, f, p.name) };
        }
        result.cpuProfile = profiles;
        tpDep = undefined;
      }
      if (result.floor && !c.stopped()) {
        const after = await floorRun(c, result.floor.best.concurrency, opts.floorWrites, 'after');
        result.floor.after = after;
        log(`  floor again after the throughput phase: ${after.perSecond} writes/s at concurrency ${after.concurrency}`);
      }
    }
    // ---- kms ---------------------------------------------------------------------------------
    // right after throughput: both compare with the floor, before the latency and soak pushes
    // add thousands of repositories to the registry and slow it down
    if (has('kms') && !c.stopped()) {
      log(`kms: ${opts.kmsImages} pre-pushed images, awskms key on the stand-in answering each Sign after ${opts.kmsDelayMs} ms; load ${loadAverage()}`);
      await c.standin!.setDelay(opts.kmsDelayMs);
      const dep = await deploy(c, 'kms', { mode: 'split', registries: [c.r1], keys: ['kms'], rules: [{ match: `${H}/bench/**`, keys: ['kms'] }], cpuProf: opts.cpuProf });
      try {
        await warmUp(c, dep, sets['warmkms']);
        await sleep(500);
        const startup = (await c.standin!.counts()).counts; // GetPublicKey at start-up, Sign of the warm-up
        const k: Record<string, any> = await signingRun(c, dep, sets['kms']!, 'kms');
        const after = await c.standin!.counts();
        const signCalls = (after.counts['Sign'] ?? 0) - (startup['Sign'] ?? 0);
        const written = k.signed - k.lost - k.alreadyPresent;
        k.standin = {
          delayMs: opts.kmsDelayMs,
          getPublicKeyAtStartup: startup['GetPublicKey'] ?? 0,
          signDuringWarmup: startup['Sign'] ?? 0,
          signCalls,
          signaturesWritten: written,
          signCallsPerSignature: round(signCalls / Math.max(1, written), 3),
          serverSignMs: after.signServerMs,
          otherCalls: Object.fromEntries(Object.entries(after.counts).filter(([op]) => op !== 'Sign' && op !== 'GetPublicKey')),
        };
        k.verify = await verifySample(H, sets['kms']!, c.standin!.pubPath, 2);
        result.kms = k;
        log(`  => ${k.imagesPerSecond} images/s (steady ${k.steadyImagesPerSecond}), ${signCalls} Sign calls for ${written} signatures; CPU ${formatCpu(k.cpu)}`);
        log(`  worker's wait on the registry: ${waitsText(k.registryWaits, opts.workerConcurrency)}`);
      } finally {
        await dep.stop();
        await c.standin!.setDelay(0);
      }
      if (opts.cpuProf && result.kms) {
        const f = dep.worker!.profileFile();
        if (f) (result.cpuProfile ??= {})['kms-worker'] = { ...summarizeProfile(f, result.kms.profileWindow), file: keepProfile(c, f, dep.worker!.name) };
      }
    }

    const peak: number | undefined = result.throughput?.imagesPerSecond;
    const halfPeak = opts.rate ?? (peak ? round(peak / 2) : 15);
    if ((has('latency') || has('soak')) && !c.stopped()) {
      if (!tpDep) {
        tpDep = await splitDeploy('steady');
        await warmUp(c, tpDep, sets['warmsteady']);
      }
      if (has('latency') && !c.stopped()) {
        result.latency = await phaseLatency(c, tpDep, halfPeak);
        const l = result.latency;
        log(`  => push-to-signed p50 ${l.pushToSignedMs.p50} / p99 ${l.pushToSignedMs.p99} ms at ${l.achievedPushRate} pushes/s; ack p99 ${l.ackMs.p99} ms`);
      }
      if (has('soak') && opts.soakSeconds > 0 && !c.stopped()) {
        result.soak = await phaseSoak(c, tpDep, opts.soakRate ?? halfPeak);
        const s = result.soak.rssMB;
        log(`  => RSS receiver ${s.receiver.start}/${s.receiver.middle}/${s.receiver.end} MB, worker ${s.worker.start}/${s.worker.middle}/${s.worker.end} MB (start/middle/end)`);
      }
    }
    await tpDep?.stop();

    // ---- ack ---------------------------------------------------------------------------------
    if (has('ack') && !c.stopped()) {
      result.ack = await phaseAck(c);
      if (result.ack.cpuProfile) (result.cpuProfile ??= {})['ack-serve (peak runs)'] = result.ack.cpuProfile;
    }

    // ---- cost ----------------------------------------------------------------------------------
    if (has('cost') && !c.stopped()) result.cost = await phaseCost(c, sets['cost']!, sets['costkms']!);

    // ---- e2e -----------------------------------------------------------------------------------
    if (has('e2e') && !c.stopped()) {
      result.e2e = await phaseE2e(c);
      const e = result.e2e;
      log(`  => ${e.imagesPerSecond} images/s, push-to-signed p50 ${e.pushToSignedMs.p50} / p99 ${e.pushToSignedMs.p99} ms (push->queued p50 ${e.pushToQueuedMs.p50} ms)`);
    }

    // ---- cosign --------------------------------------------------------------------------------
    if (has('cosign') && opts.cosignImages > 0 && !c.stopped()) {
      result.cosign = await phaseCosign(c, sets['cosign']!);
      log(`  => ${result.cosign.imagesPerSecond} images/s (p50 ${result.cosign.perImageMs.p50} ms per image)`);
    }
    if (aborted) return 130;
    result.loadavgAtEnd = loadAverage();

    // ---- report --------------------------------------------------------------------------------
    const rows = buildRows(result, opts);
    result.table = rows;
    printTable(rows);
    if (result.cpuProfile) {
      for (const [name, p] of Object.entries(result.cpuProfile as Record<string, ProfileSummary & { file?: string }>)) {
        log(`cpu profile of ${name} (${round(p.totalMs / 1000, 1)} s${p.window ? ` (${p.window})` : ''}, idle ${p.idlePct}%, busy ${round(p.busyMs / 1000, 2)} s; shares of the busy time, natives charged to their JS caller):`);
        for (const l of p.byPackage) log(`  ${l}`);
        log('  inclusive, by the deepest signet file on the stack (else the outermost package):');
        for (const l of p.byComponent) log(`    ${l}`);
        log('  top functions by self time:');
        for (const l of p.topFunctions.slice(0, 12)) log(`    ${l}`);
        if (p.file) log(`  profile: ${p.file}`);
      }
    }
    const failures = correctness(result);
    result.failures = [...failures, ...c.problems];
    result.markdown = markdownTable(rows);
    mkdirSync(path.dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
    log(`results: ${path.relative(ROOT, opts.out)}`);
    if (result.failures.length) {
      log(`FAILED:\n  ${result.failures.join('\n  ')}`);
      return 1;
    }
    return 0;
  } catch (e) {
    if (aborted) return 130;
    log(`bench error: ${(e as Error).stack ?? String(e)}`);
    for (const d of ctx.deployments) for (const p of d.procs) log(`--- signet ${p.name} stderr ---\n${p.stderr.text()}\n--- stdout (tail) ---\n${p.stdoutTail.text()}`);
    if (ctx.r1) log(`--- registry log ---\n${ctx.r1.logs()}`);
    return 2;
  } finally {
    await cleanup();
    clearTimeout(watchdog);
  }
}

function correctness(r: Record<string, any>): string[] {
  const f: string[] = [];
  for (const name of ['throughput', 'kms', 'latency', 'e2e']) {
    const p = r[name];
    if (!p) continue;
    if (p.lost) f.push(`${name}: ${p.lost} image(s) without a signature`);
    if (p.moreThanOneSignature?.length) f.push(`${name}: ${p.moreThanOneSignature.length} image(s) with more than one signature`);
    if (p.postErrorCount) f.push(`${name}: ${p.postErrorCount} webhook POST(s) not answered 202`);
    if (p.errorCount) f.push(`${name}: ${p.errorCount} push/POST error(s)`);
    for (const v of p.verify ?? p.cosignVerify ?? []) if (!v.ok) f.push(`${name}: cosign verify failed for ${v.ref}: ${v.detail}`);
  }
  if (r.soak && (r.soak.signatureCheck.lost || r.soak.signatureCheck.moreThanOne)) f.push(`soak: ${r.soak.signatureCheck.lost} lost, ${r.soak.signatureCheck.moreThanOne} with >1 signature (sample)`);
  if (r.kms && r.kms.standin.signCalls !== r.kms.standin.signaturesWritten) f.push(`kms: ${r.kms.standin.signCalls} Sign calls for ${r.kms.standin.signaturesWritten} signatures`);
  if (r.cosign?.errors?.length) f.push(`cosign: ${r.cosign.errors.length} cosign sign failure(s)`);
  if (r.ack && Number.isFinite(r.ack.jobsWaiting) && r.ack.jobsWaiting < r.ack.eventsAcceptedMeasured) f.push(`ack: ${r.ack.eventsAcceptedMeasured} events acknowledged but ${r.ack.jobsWaiting} jobs in Redis`);
  return f;
}

function buildRows(r: Record<string, any>, opts: Options): Row[] {
  const rows: Row[] = [];
  const add = (section: string, what: string, value: string, target?: string, ok?: boolean) =>
    rows.push({ section, what, value, ...(target ? { target, verdict: verdict(ok) } : {}) });
  const M = r.machine as ReturnType<typeof machineInfo>;
  add('Machine', 'CPU / cores', `${M.cpu}, ${M.cores} cores`);
  add('Machine', 'node / registry / cosign / redis', `${M.node} / ${M.registry} / ${M.cosign} / ${M.redis}`);
  add('Machine', 'load average (1/5/15 min)', `start ${M.loadavgAtStart}, end ${r.loadavgAtEnd ?? '?'}`);
  if (opts.pin) add('Machine', '--pin', 'registries on CPU 0; signet, the stand-in, the load generators and the bench on CPU 1; Redis and other sessions float');

  const floor = r.floor;
  const floorRate: number | undefined = floor ? Math.max(floor.best.perSecond, floor.after?.perSecond ?? 0) : undefined;
  const cosignRate: number | undefined = r.cosign?.imagesPerSecond;
  const T = 'Throughput';
  if (floor) {
    add(T, 'registry floor: raw signature writes/s', `${floorRate} (best concurrency ${floor.best.concurrency}: ${floor.best.perSecond} before, ${floor.after?.perSecond ?? '-'} after the signet run; registry CPU ${floor.best.registryCpuMsPerWrite} ms/write; load ${floor.loadavg})`);
    add(T, "  signet's request sequence replayed raw", `${floor.signetSequence.perSecond}/s (7 requests, registry CPU ${floor.signetSequence.registryCpuMsPerWrite} ms/signature) = ${pct(floor.signetSequence.perSecond, floorRate!)} % of the floor`);
    if (floor.signetSequenceVerify) {
      add(T, '  same with verifyWrites (read-back)', `${floor.signetSequenceVerify.perSecond}/s (8 requests, registry CPU ${floor.signetSequenceVerify.registryCpuMsPerWrite} ms/signature) = ${pct(floor.signetSequenceVerify.perSecond, floorRate!)} % of the floor`);
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
    if (cosignRate) add(T, '  ratio to the cosign loop', `${round(t.imagesPerSecond / cosignRate, 1)}x`);
    add(T, '  CPU ms per image', Object.entries(t.cpuMsPerImage as Record<string, number>).map(([k, v]) => `${k} ${v}`).join(', '));
    add(T, '  registry requests per signature', `${t.registryRequests.perSignature} (${Object.entries(t.registryRequests.byKind as Record<string, number>).map(([k, v]) => `${k} ${round(v / t.signed, 2)}`).join(', ')})`);
    if (t.registryWaits) add(T, "  worker's wait on the registry", waitsText(t.registryWaits, r.options?.workerConcurrency));
  }
  if (r.cosign) add(T, 'cosign sign --key loop (sequential)', `${r.cosign.imagesPerSecond} images/s (p50 ${r.cosign.perImageMs.p50} ms per image, ${r.cosign.signed}/${r.cosign.images})`);

  const K = 'Slow key backend (AWS KMS stand-in)';
  if (r.kms) {
    const k = r.kms;
    add(K, `signet, awskms key, +${k.standin.delayMs} ms per Sign`, `${k.imagesPerSecond} images/s (steady ${k.steadyImagesPerSecond}; ${k.signed}/${k.images}, load ${k.loadavg})`, '>= 80 % of floor', floorRate ? k.imagesPerSecond >= 0.8 * floorRate : undefined);
    if (floorRate) add(K, '  ratio to the floor', `${pct(k.imagesPerSecond, floorRate)} % (steady ${pct(k.steadyImagesPerSecond, floorRate)} %)`);
    if (k.registryWaits) add(K, "  worker's wait on the registry", waitsText(k.registryWaits, r.options?.workerConcurrency));
    add(K, '  Sign calls per signature (counted in the stand-in)', `${k.standin.signCallsPerSignature} (${k.standin.signCalls} Sign for ${k.standin.signaturesWritten} signatures; GetPublicKey ${k.standin.getPublicKeyAtStartup} at startup)`, 'exactly 1', k.standin.signCalls === k.standin.signaturesWritten);
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
      x.cpu ? `, ${name} CPU ${round((100 * (x.cpu.cpuSeconds['load generator'] ?? 0)) / x.cpu.wallSeconds)} % of a core, serve ${round((100 * (x.cpu.cpuSeconds['serve'] ?? 0)) / x.cpu.wallSeconds)} %` : '';
    if (a.peak) add(L, 'webhook peak, 1 event per request', `${round(a.peak.eventsPerSecond)} events/s accepted (${gen}, ${opts.ackConnections} connections: p50 ${a.peak.latencyMs.p50} / p99 ${a.peak.latencyMs.p99} ms, non-2xx ${a.peak.non2xx}${genCpu(a.peak)})`, '>= 5,000 events/s', a.peak.eventsPerSecond >= 5000);
    if (a.peakAutocannon) add(L, '  the same with autocannon as the generator', `${round(a.peakAutocannon.eventsPerSecond)} events/s accepted (p50 ${a.peakAutocannon.latencyMs.p50} / p99 ${a.peakAutocannon.latencyMs.p99} ms, non-2xx ${a.peakAutocannon.non2xx}${genCpu(a.peakAutocannon, 'autocannon')})`);
    if (a.peakBatch10) add(L, 'webhook peak, 10 events per request', `${round(a.peakBatch10.eventsPerSecond)} events/s accepted (${round(a.peakBatch10.requestsPerSecond)} req/s, p99 ${a.peakBatch10.latencyMs.p99} ms)`, '>= 5,000 events/s', a.peakBatch10.eventsPerSecond >= 5000);
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
    const heap = (x: any) => (x?.heap ? `heapUsed ${x.heap.usedStart} / ${x.heap.usedMiddle} / ${x.heap.usedEnd} MB (heapTotal ${x.heap.totalStart} -> ${x.heap.totalEnd})` : '-');
    add(Mm, '  soak V8 heap: receiver', heap(s.runtime?.receiver));
    add(Mm, '  soak V8 heap: worker', heap(s.runtime?.worker));
    add(Mm, '  soak signed / push-to-signed', `${s.signed}/${s.pushes}, p50 ${s.pushToSignedMs.p50} / p99 ${s.pushToSignedMs.p99} ms (load ${s.loadavg})`);
  }

  const C = 'Cost per new signature (single-arch image)';
  if (r.cost) {
    for (const key of ['cosign', 'kms']) {
      const c = r.cost[key];
      if (!c) continue;
      add(C, `${key === 'kms' ? 'awskms' : 'file'} key: key-backend calls`, `${c.keyBackendCallsPerSignature} (signet_key_sign_seconds_count)${key === 'kms' ? `, ${c.standinSignCallsPerSignature} Sign in the stand-in` : ''}`, 'exactly 1', c.keyBackendCallsPerSignature === 1 && (key !== 'kms' || c.standinSignCallsPerSignature === 1));
      add(
        C,
        `${key === 'kms' ? 'awskms' : 'file'} key: registry requests`,
        `${c.registryRequestsPerSignature} from signet_registry_requests_total (${Object.entries(c.registryRequestsByKind ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}); the probe counted ${c.probeRequestsPerSignature}; errors metric: ${JSON.stringify(c.registryErrorsPerSignature)}${c.identicalForEveryImage ? '' : '; NOT the same for every image'}`,
        '<= 7',
        c.registryRequestsPerSignature <= 7,
      );
    }
    add(C, 'registry metrics signet exports', `${(r.cost.signetRegistryMetrics as string[]).join(', ') || 'none'}`);
  }

  const E = 'End to end through registry notifications (what users see)';
  if (r.e2e) {
    const e = r.e2e;
    add(E, 'signet start, registry notifications', `${e.imagesPerSecond} images/s (${e.signed}/${e.images}, ${opts.concurrency} pushes at once, load ${e.loadavg})`);
    add(E, '  push-to-signed p50 / p99', `${e.pushToSignedMs.p50} / ${e.pushToSignedMs.p99} ms (push->queued ${e.pushToQueuedMs.p50} / ${e.pushToQueuedMs.p99}, queued->signed ${e.queuedToSignedMs.p50} / ${e.queuedToSignedMs.p99})`);
    add(E, '  RSS, requests per signature', `max ${e.rssMB.max} MB (idle ${e.rssMB.idle}); ${e.registryRequestsPerSignature} registry requests per signature`);
  }
  return rows;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  },
);
