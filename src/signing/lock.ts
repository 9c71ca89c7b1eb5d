/**
 * A per-name mutex in Redis (an acquire script + compare-and-delete), renewed while held. Two
 * kinds of names take it:
 *
 * - storage locks (the legacy writer's .sig, the referrers index): two workers never
 *   read-modify-write the same manifest at once (cosign#2432); taken by a writer called on its
 *   own, while under the pipeline the signing lock of the digest is that exclusion
 *   (UNDER_SIGNING_LOCK);
 * - the signing lock (`signingLockName`: one per repository and manifest digest, taken by the
 *   pipeline around all of a digest's formats): one worker at a time decides what a digest is
 *   missing and signs it, so the key call and the Rekor entry happen once across processes
 *   (see pipeline.ts). It is released with a short "recently held" mark (`markMs`), which the
 *   next holder is told about: a digest signed a moment ago by another worker is not "new",
 *   even if that worker's status record has not landed yet.
 *
 * The acquire script treats a key holding the mark ("~") as free. All key strings are built in
 * `keyOf`, here and nowhere else.
 *
 * Keys are `<prefix>:lock:<name>` with the prefix's hash-tag braces dropped, so that on Redis
 * Cluster each lock hashes by its own name (the locks spread over the slots).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ownKeyPrefix } from '../config/redis.js';
import { SignetError } from '../errors.js';

/** Take the lock if free (absent or only marked); returns 0 (was absent), 1 (was marked: held recently) or nil (held). */
const ACQUIRE = `local v = redis.call('get', KEYS[1])
if v and string.sub(v, 1, 1) ~= '~' then return nil end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
if v then return 1 else return 0 end`;
/** Release when ours: delete, or leave the "held recently" mark for ARGV[2] ms. */
const RELEASE = `if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then return redis.call('set', KEYS[1], '~', 'PX', ARGV[2]) and 1 or 0 end
return redis.call('del', KEYS[1])`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface LockOptions {
  /** Lease length; renewed every third of it while the holder runs. */
  leaseMs?: number;
  /** How long to wait for the lock before giving up (retryable). */
  waitMs?: number;
  /** On release, keep a "held recently" mark for this long (0: delete the key). */
  markMs?: number;
}

/** What the holder learns when it gets the lock. */
export interface LockHeld {
  /** Someone else held it while we waited, or released it within their `markMs`. */
  recent: boolean;
}

type LockRedis = Pick<Redis, 'defineCommand'> & {
  signetLockAcquire(key: string, token: string, leaseMs: string): Promise<number | null>;
  signetLockRelease(key: string, token: string, markMs: string): Promise<number>;
  signetLockRenew(key: string, token: string, leaseMs: string): Promise<number>;
};

/** The signing lock's name for one manifest in one repository (`host/repository`). */
export function signingLockName(repository: string, digest: string): string {
  return `sign:${repository}@${digest}`;
}

/** What a storage writer needs of a lock: run `fn` while no other signet writer holds `name`. */
export type Exclusion = Pick<DigestLock, 'withLock'>;

/**
 * The storage locks of one digest, for a caller that already holds the digest's signing lock
 * (the pipeline): that lock already keeps every other signet writer of the digest's `.sig` and
 * referrers listing out, so the storage writers take no second and third lock (each one an
 * acquire and a release round trip to Redis). Writers called on their own (tests, tools) are
 * given the DigestLock itself.
 */
export const UNDER_SIGNING_LOCK: Exclusion = {
  withLock: <T>(_name: string, fn: (held: LockHeld) => Promise<T>): Promise<T> => fn({ recent: false }),
};

export class DigestLock {
  private readonly redis: LockRedis;

  private readonly prefix: string;

  constructor(redis: Pick<Redis, 'defineCommand'>, prefix: string) {
    this.prefix = ownKeyPrefix(prefix);
    // EVALSHA: the scripts' text is sent once per connection, not with every call
    if (!('signetLockAcquire' in redis)) {
      redis.defineCommand('signetLockAcquire', { lua: ACQUIRE, numberOfKeys: 1 });
      redis.defineCommand('signetLockRelease', { lua: RELEASE, numberOfKeys: 1 });
      redis.defineCommand('signetLockRenew', { lua: RENEW, numberOfKeys: 1 });
    }
    this.redis = redis as LockRedis;
  }

  /** The Redis key of a lock name: the one place key strings are made. */
  private keyOf(name: string): string {
    return `${this.prefix}:lock:${name}`;
  }

  async withLock<T>(name: string, fn: (held: LockHeld) => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const leaseMs = opts.leaseMs ?? 30_000;
    const waitMs = opts.waitMs ?? 60_000;
    const key = this.keyOf(name);
    const token = randomBytes(16).toString('hex');
    const deadline = Date.now() + waitMs;
    let delay = 5;
    let waited = false;
    let got: number | null;
    for (;;) {
      got = await this.redis.signetLockAcquire(key, token, String(leaseMs)).catch((err: Error) => {
        throw new SignetError('REDIS_UNAVAILABLE', `cannot take the signature lock: ${err.message}`, { cause: err });
      });
      if (got !== null) break;
      waited = true;
      if (Date.now() > deadline) {
        throw new SignetError('LOCK_TIMEOUT', `waited ${waitMs} ms for the signature lock on ${name}`);
      }
      await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
      delay = Math.min(delay * 2, 200);
    }
    const timer = setInterval(
      () => {
        this.redis.signetLockRenew(key, token, String(leaseMs)).catch(() => undefined);
      },
      Math.max(50, Math.floor(leaseMs / 3)),
    );
    timer.unref();
    try {
      return await fn({ recent: waited || got === 1 });
    } finally {
      clearInterval(timer);
      await this.redis.signetLockRelease(key, token, String(opts.markMs ?? 0)).catch(() => undefined);
    }
  }
}
