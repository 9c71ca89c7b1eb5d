/** The run context and what every phase deploys: the KMS stand-in, signet deployments (receiver + worker processes on their own Redis prefix), waiting for signatures, and checking them. See bench/bench.ts for the whole picture. */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cosignVerify } from '../../test/helpers/cosign.js';
import { freePort } from '../../test/helpers/ports.js';
import { killChild, runProcess, spawnTracked } from '../../test/helpers/proc.js';
import type { RunningRegistry } from '../../test/helpers/registry.js';
import { log, pool, REDIS_URL, ROOT, SetupError, sleep } from './common.js';
import type { Oci } from './oci.js';
import { startSignet, type SignetProc } from './signet-proc.js';
import type { ImageRef } from './webhook.js';
import { HOOK_SECRET, KEY_PASSWORD, type Options } from './options.js';
// ---------------------------------------------------------------------------------------------
// the run's shared state

export interface Ctx {
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

export const refOf = (i: ImageRef): string => `${i.host}/${i.repo}:${i.tag}`;

/** --pin: every thread of `pid` onto `cpu` (taskset -a); a no-op without --pin. */
export async function pin(ctx: { opts: Options }, pid: number | undefined, cpu: 0 | 1): Promise<void> {
  if (!ctx.opts.pin || !pid || pid < 0) return;
  const r = await runProcess('taskset', ['-a', '-cp', String(cpu), String(pid)], { timeoutMs: 5000 }).catch((e: Error) => ({ code: -1, stderr: e.message }));
  if (r.code !== 0) throw new SetupError(`--pin: taskset -a -cp ${cpu} ${pid} failed: ${r.stderr}`);
}

export async function build(): Promise<void> {
  log('build: npx tsc -p tsconfig.build.json');
  const r = await runProcess('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeoutMs: 300_000 });
  if (r.code !== 0) throw new SetupError(`build failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.stdout}${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// the AWS KMS stand-in, in its own process

export interface StandinInfo {
  url: string;
  port: number;
  region: string;
  keyArn: string;
  accessKeyId: string;
  secretAccessKey: string;
  publicKeyPem: string;
}

export interface Standin {
  info: StandinInfo;
  pid: number;
  pubPath: string;
  setDelay(ms: number): Promise<void>;
  counts(): Promise<{ counts: Record<string, number>; signServerMs: { p50: number; p99: number } }>;
  stop(): Promise<void>;
}

export async function startStandin(dir: string): Promise<Standin> {
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

export interface Deployment {
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

export interface DeployOptions {
  /** split: `signet serve` + `signet worker`; start: one `signet start`; serve: the receiver alone */
  mode: 'split' | 'start' | 'serve';
  registries: RunningRegistry[];
  keys: ('cosign' | 'kms')[];
  /** formats: omitted = signet's default ([legacy, bundle]). */
  rules: { match: string; keys: string[]; formats?: string[] }[];
  port?: number;
  cpuProf?: boolean;
  logToFile?: boolean;
  rateLimit?: { requestsPerSecond: number; burst: number };
}

export function signetConfig(ctx: Ctx, prefix: string, port: number, o: DeployOptions): string {
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
${o.rules.map((r) => `  - { match: "${r.match}", keys: [${r.keys.join(', ')}], identity: repository${r.formats ? `, formats: [${r.formats.join(', ')}]` : ''} }`).join('\n')}
`;
}

export async function deploy(ctx: Ctx, name: string, o: DeployOptions): Promise<Deployment> {
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
export async function waitSigned(ctx: Ctx, worker: SignetProc, refs: readonly string[], label: string): Promise<void> {
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
export async function checkSignatures(oci: Oci, imgs: readonly ImageRef[]): Promise<{ checked: number; lost: string[]; extra: string[] }> {
  const lost: string[] = [];
  const extra: string[] = [];
  await pool(imgs, 16, async (i) => {
    const n = await oci.sigLayers(i.repo, i.digest).catch(() => -1);
    if (n <= 0) lost.push(refOf(i));
    else if (n > 1) extra.push(`${refOf(i)} (${n} layers)`);
  });
  return { checked: imgs.length, lost, extra };
}

/** `cosign verify` (2.5, the .sig; or `bin`, e.g. cosign 3.1, which reads the bundle first) of up to `k` images: first, last, middle. */
export async function verifySample(
  host: string,
  imgs: readonly ImageRef[],
  pubPath: string,
  k = 2,
  bin?: string,
): Promise<{ ref: string; ok: boolean; detail?: string }[]> {
  const pick = [...new Set([0, imgs.length - 1, Math.floor(imgs.length / 2)])]
    .slice(0, k)
    .map((i) => imgs[i])
    .filter((x): x is ImageRef => !!x);
  const out: { ref: string; ok: boolean; detail?: string }[] = [];
  for (const i of pick) {
    const ref = `${host}/${i.repo}@${i.digest}`;
    const v = await cosignVerify(ref, pubPath, [], { timeoutMs: 60_000, ...(bin ? { bin } : {}) });
    const id = v.payloads[0]?.critical?.identity?.['docker-reference'];
    const dg = v.payloads[0]?.critical?.image?.['docker-manifest-digest'];
    // the .sig's payload names the repository (identity: repository); cosign 3 prints a bundle's subject as the image reference
    const ok = v.ok && (id === `${host}/${i.repo}` || (bin !== undefined && id === `${host}/${i.repo}@${i.digest}`)) && dg === i.digest;
    out.push({ ref: bin ? `${ref} (${bin})` : ref, ok, ...(ok ? {} : { detail: `code ${v.code}, identity ${id}, digest ${dg}: ${v.stderr.slice(0, 300)}` }) });
  }
  return out;
}

export function requestsOf(probe: Record<string, Record<string, number>>, host: string): Record<string, number> {
  return probe[`http://${host}`] ?? {};
}
export const total = (c: Record<string, number>): number => Object.values(c).reduce((a, b) => a + b, 0);

/** Copy a .cpuprofile next to the JSON results (the temp dir goes away); returns its path from the repo root. */
export function keepProfile(ctx: Ctx, file: string, name: string): string {
  const copy = path.join(path.dirname(ctx.opts.out), `signet-${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  mkdirSync(path.dirname(copy), { recursive: true });
  copyFileSync(file, copy);
  return path.relative(ROOT, copy);
}
