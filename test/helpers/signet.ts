/**
 * Runs signet in the test process (receiver and/or worker) on a config text, with logs captured
 * as parsed JSON lines, and its own Redis key prefix so tests never see each other's jobs.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { parseConfigText } from '../../src/config/load.js';
import { redisSchema } from '../../src/config/redis.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createRuntime, startService, type Runtime, type Service } from '../../src/runtime.js';
import { tempDir } from './cosign.js';

export const REDIS_URL = process.env.SIGNET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface RunningSignet {
  runtime: Runtime;
  service: Service;
  port: number;
  url: string;
  prefix: string;
  metrics: Metrics;
  logs: Record<string, any>[];
  stop(): Promise<void>;
}

/** A temp directory (signet's `baseDir`) holding a fresh file key. */
export interface KeyDir {
  dir: string;
  /** `k.pub`, the public half, for `cosignVerify`. */
  pub: string;
  remove: () => void;
}

/**
 * A temp directory with a fresh P-256 key: `k.pem` (PKCS#8, mode 0600) for
 * `keys: [{ name: k, provider: file, path: k.pem }]` with `baseDir: dir`, and `k.pub` (SPKI).
 */
export function tempKeyDir(): KeyDir {
  const tmp = tempDir();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const pub = path.join(tmp.dir, 'k.pub');
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { ...tmp, pub };
}

export function uniquePrefix(): string {
  return `signet-test-${randomBytes(4).toString('hex')}`;
}

export async function startSignet(
  yaml: string,
  opts: {
    baseDir: string;
    env?: NodeJS.ProcessEnv;
    roles?: { receiver: boolean; worker: boolean };
    prefix?: string;
    port?: number;
    redisUrl?: string;
    /** A whole `redis:` section (Sentinel, Cluster, ack), parsed as the config would; the prefix is still the test's. */
    redis?: Record<string, unknown>;
  } = { baseDir: '.' },
): Promise<RunningSignet> {
  const prefix = opts.prefix ?? uniquePrefix();
  const loaded = parseConfigText(yaml, 'test.yaml', { SIGNET_TEST_PREFIX: prefix, SIGNET_TEST_PORT: String(opts.port ?? 0), ...process.env, ...opts.env });
  if (opts.redis) loaded.config.redis = redisSchema.parse({ ...opts.redis, prefix });
  else {
    loaded.config.redis.prefix = prefix;
    loaded.config.redis.url = opts.redisUrl ?? REDIS_URL;
  }
  loaded.config.server.port = opts.port ?? 0;
  loaded.config.server.host = '127.0.0.1';
  const logs: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const metrics = new Metrics();
  const runtime = await createRuntime({ ...loaded, baseDir: opts.baseDir }, { logger, metrics });
  const service = await startService(runtime, opts.roles ?? { receiver: true, worker: true });
  const port = service.port ?? 0;
  return {
    runtime,
    service,
    port,
    url: `http://127.0.0.1:${port}`,
    prefix,
    metrics,
    logs,
    async stop() {
      await service.stop();
      if (!opts.redisUrl && !opts.redis) await deletePrefix(prefix);
    },
  };
}

export async function deletePrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Jobs not yet finished in this signet's queue. */
export async function pendingJobs(s: RunningSignet): Promise<number> {
  const q = s.service.queue;
  if (!q) throw new Error('no receiver queue');
  const c = await q.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
  return Object.values(c).reduce((a, b) => a + b, 0);
}

/** Key-backend calls so far (`signet_key_sign_seconds_count`, every key and outcome) in this signet's /metrics registry. */
export async function keySignCalls(s: RunningSignet): Promise<number> {
  const histogram = (await s.metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'signet_key_sign_seconds');
  return (histogram?.values ?? [])
    .filter((v) => (v as { metricName?: string }).metricName === 'signet_key_sign_seconds_count')
    .reduce((a, v) => a + v.value, 0);
}
