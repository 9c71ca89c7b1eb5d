/** The bench options (flags and BENCH_* env), the phases, and the secrets one run uses. See bench/bench.ts for the whole picture. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ROOT, SetupError } from './common.js';
export const HOOK_SECRET = `bench-hook-secret-${randomBytes(8).toString('hex')}`;
export const KEY_PASSWORD = `bench-pw-${randomBytes(6).toString('hex')}`;
export const PHASES = ['floor', 'throughput', 'default', 'latency', 'soak', 'ack', 'kms', 'cost', 'e2e', 'cosign'] as const;
export type Phase = (typeof PHASES)[number];

// ---------------------------------------------------------------------------------------------
// options

export interface Options {
  quick: boolean;
  phases: Set<Phase>;
  images: number;
  imagesPerRepo: number;
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

export function latencyPush(v: string | undefined): 'cheap' | 'full' {
  if (v === undefined || v === 'cheap' || v === 'full') return v ?? 'cheap';
  throw new SetupError(`--latency-push must be cheap or full (got "${v}")`);
}

export function parseOptions(argv: string[]): Options {
  const names = [
    'phases',
    'images',
    'images-per-repo',
    'post-concurrency',
    'warmup',
    'kms-images',
    'kms-delay',
    'rate',
    'latency-seconds',
    'latency-push',
    'soak',
    'soak-rate',
    'ack-seconds',
    'ack-rate',
    'ack-connections',
    'floor-writes',
    'floor-levels',
    'e2e-images',
    'concurrency',
    'cosign-images',
    'worker-concurrency',
    'registry-concurrency',
    'grace',
    'timeout',
    'out',
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
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min)
      throw new SetupError(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min} (got "${s}")`);
    return n;
  };
  const quick = bool('quick');
  const q = <T>(full: T, small: T): T => (quick ? small : full);
  const phaseList = (str('phases') ?? PHASES.join(','))
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of phaseList)
    if (!(PHASES as readonly string[]).includes(p)) throw new SetupError(`--phases: unknown phase "${p}" (phases: ${PHASES.join(', ')})`);
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
    imagesPerRepo: num('images-per-repo', 10, 1)!,
    postConcurrency: num('post-concurrency', 16, 1)!,
    warmup: num('warmup', 50, 0)!,
    kmsImages: num('kms-images', q(600, 100), 1)!,
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

/**
 * The repository of the `i`-th image of a set: images come `perRepo` to a repository
 * (`bench/<prefix>-<i / perRepo>`), as CI pushes one repository again and again, so the
 * shared blobs of a repository (the `.sig` config, the referrers' empty config) cost their
 * upload once per repository, not once per image.
 */
export const repoFor = (prefix: string, i: number, perRepo: number): string => `bench/${prefix}-${Math.floor(i / perRepo)}`;
