/**
 * GET /readyz: ready only when Redis, every key and every registry answer. Redis: PING on the
 * receiver's fail-fast connection, then what would lose data (src/queue/redis-health.ts: an
 * evicting maxmemory-policy makes Redis "down"; persistence off is a warning; a Redis that lost
 * its data is reported under checks.redis.dataLoss without making signet unready, since new
 * pushes are safe again and the lost ones need `signet backfill`). Keys: `publicKeyPem()`
 * (providers cache it, so this is cheap once the backend has answered). Registries: `GET /v2/` without credentials, where any HTTP
 * answer, 401 included, means up; refused connections, TLS failures and timeouts mean down.
 * All checks run at once, each bounded by a short timeout; concurrent probes share one run.
 * (`GET /healthz` stays a liveness check that touches nothing.)
 */
import type { Request, Response } from 'express';
import type { DataLoss, RedisHealth } from '../queue/redis-health.js';
import { isSignetError } from '../errors.js';
import type { KeyProvider } from '../kms/types.js';
import { redactText } from '../log.js';
import type { RegistryDirectory } from '../registry/directory.js';

export interface CheckResult {
  ok: boolean;
  /** How long the check took. */
  ms: number;
  /** The registry's HTTP status (any status counts as up). */
  status?: number;
  /** Why it is down. */
  error?: string;
  /** Redis: what could lose data without making it down (persistence off). */
  warnings?: string[];
  /** Redis: it lost its data while signet ran (run `signet backfill`). */
  dataLoss?: DataLoss;
}

export interface ReadinessReport {
  status: 'ready' | 'not ready';
  /** What is down: `redis`, `key:<name>`, `registry:<host>`. */
  down: string[];
  checks: {
    redis: CheckResult;
    keys: Record<string, CheckResult>;
    registries: Record<string, CheckResult>;
  };
}

export interface ReadinessDeps {
  /** A connection that fails fast while Redis is away (the receiver's producer connection). */
  redis: { ping(): Promise<string>; readonly status: string };
  /** Eviction policy, persistence, lost data (src/queue/redis-health.ts). */
  redisHealth?: Pick<RedisHealth, 'check'>;
  keys: ReadonlyMap<string, Pick<KeyProvider, 'publicKeyPem'>>;
  registries: Pick<RegistryDirectory, 'all'>;
  /** Whether each registry takes signet's credentials (src/health/registry-check.ts: cached, re-checked every 60 s). */
  access?: { verify(host: string): Promise<void> };
  /** Per-check timeout; default 2000 ms. */
  timeoutMs?: number;
}

export class Readiness {
  private inflight: Promise<ReadinessReport> | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly deps: ReadinessDeps) {
    this.timeoutMs = deps.timeoutMs ?? 2000;
  }

  /** Runs every check (or joins the run in progress). */
  check(): Promise<ReadinessReport> {
    this.inflight ??= this.run().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async run(): Promise<ReadinessReport> {
    const ms = this.timeoutMs;
    const [redis, keys, registries] = await Promise.all([
      timed(ms, async () => {
        const { redis } = this.deps;
        if (redis.status !== 'ready') throw new Error(`not connected (${redis.status})`);
        const pong = await redis.ping();
        if (pong !== 'PONG') throw new Error(`PING answered ${String(pong).slice(0, 50)}`);
        if (!this.deps.redisHealth) return {};
        const h = await this.deps.redisHealth.check();
        if (h.problems.length) throw new Error(`REDIS_MISCONFIGURED: ${h.problems.join('; ')}`);
        return { ...(h.warnings.length ? { warnings: h.warnings } : {}), ...(h.dataLoss ? { dataLoss: h.dataLoss } : {}) };
      }),
      Promise.all([...this.deps.keys].map(async ([name, k]) => [name, await timed(ms, async () => (await k.publicKeyPem(), {}))] as const)),
      Promise.all(
        this.deps.registries.all.map(
          async (r) =>
            [
              r.config.host,
              await timed(ms, async () => {
                const status = await r.client.ping(ms);
                await this.deps.access?.verify(r.config.host); // wrong credentials: REGISTRY_AUTH_FAILED
                return { status };
              }),
            ] as const,
        ),
      ),
    ]);
    const down = [
      ...(redis.ok ? [] : ['redis']),
      ...keys.filter(([, c]) => !c.ok).map(([n]) => `key:${n}`),
      ...registries.filter(([, c]) => !c.ok).map(([h]) => `registry:${h}`),
    ];
    return {
      status: down.length ? 'not ready' : 'ready',
      down,
      checks: { redis, keys: Object.fromEntries(keys), registries: Object.fromEntries(registries) },
    };
  }
}

/** Express handler: 200 with the report when ready, 503 with it when not. */
export function readinessHandler(readiness: Readiness) {
  return async (_req: Request, res: Response): Promise<void> => {
    const report = await readiness.check();
    res
      .status(report.down.length ? 503 : 200)
      .set('cache-control', 'no-store')
      .json(report);
  };
}

async function timed(timeoutMs: number, fn: () => Promise<Omit<CheckResult, 'ok' | 'ms'>>): Promise<CheckResult> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const extra = await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' })), timeoutMs);
      }),
    ]);
    return { ok: true, ms: elapsed(start), ...extra };
  } catch (err) {
    return { ok: false, ms: elapsed(start), error: reason(err, timeoutMs) };
  } finally {
    clearTimeout(timer);
  }
}

function elapsed(start: number): number {
  return Math.round((performance.now() - start) * 10) / 10;
}

/** A short, secret-free reason: a SignetError's code and message, a system error's code, or the message. */
function reason(err: unknown, timeoutMs: number): string {
  const e = err as { code?: unknown; name?: string; message?: string; cause?: { code?: unknown } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || e?.code === 'TIMEOUT' || e?.code === 'UND_ERR_HEADERS_TIMEOUT') {
    return `no answer within ${timeoutMs} ms`;
  }
  let text: string;
  if (isSignetError(err)) text = `${err.code}: ${err.message}`;
  else if (typeof e?.code === 'string') text = `${e.code}${e.message && !e.message.includes(e.code) ? ` (${e.message})` : ''}`;
  else if (typeof e?.cause?.code === 'string') text = e.cause.code;
  else text = e?.message ?? String(err);
  return redactText(text).slice(0, 200);
}
