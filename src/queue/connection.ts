/** Redis connections for the queue, with the settings BullMQ wants for each role. */
import { Redis, type RedisOptions } from 'ioredis';
import { SignetError } from '../errors.js';

export type RedisRole = 'producer' | 'worker' | 'lock';

export function createRedis(url: string, role: RedisRole): Redis {
  const opts: RedisOptions =
    role === 'producer'
      ? // Fail fast so the receiver can answer 503 and the registry retries.
        { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: false }
      : role === 'lock'
        ? // Locks and status records from many concurrent jobs: commands issued in the same tick go out in one write.
          { maxRetriesPerRequest: null, connectTimeout: 5000, enableAutoPipelining: true }
        : { maxRetriesPerRequest: null, connectTimeout: 5000 };
  const r = new Redis(url, { ...opts, retryStrategy: (n) => Math.min(n * 200, 2000) });
  r.on('error', () => undefined); // surfaced where commands fail; avoid unhandled 'error' events
  return r;
}

/** One-shot reachability check used at startup: a clear line when Redis is not there. */
export async function checkRedis(url: string, timeoutMs = 3000): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  let lastError: { code?: string; message?: string } | undefined;
  r.on('error', (e) => (lastError = e));
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    const e = lastError ?? (err as { code?: string; message?: string });
    const reason = e.code ?? e.message;
    throw new SignetError(
      'REDIS_UNAVAILABLE',
      `cannot reach Redis at ${safeUrl(url)} (${reason}); start one with "redis-server --daemonize yes" (or "docker run -d -p 6379:6379 redis:7") or set redis.url in the config`,
      { cause: err },
    );
  } finally {
    r.disconnect();
  }
}

/** The URL without its password, for messages. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'redis://(invalid url)';
  }
}
