/**
 * A per-digest mutex in Redis (SET NX PX + compare-and-delete), so two workers never
 * read-modify-write the same .sig manifest at once (cosign#2432). The lease is renewed while held.
 * Keys are `<prefix>:lock:<name>` with the prefix's hash-tag braces dropped, so that on Redis
 * Cluster each lock hashes by its own name (the locks spread over the slots).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ownKeyPrefix } from '../config/redis.js';
import { SignetError } from '../errors.js';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface LockOptions {
  /** Lease length; renewed every third of it while the holder runs. */
  leaseMs?: number;
  /** How long to wait for the lock before giving up (retryable). */
  waitMs?: number;
}

type LockRedis = Pick<Redis, 'set' | 'defineCommand'> & {
  signetLockRelease(key: string, token: string): Promise<number>;
  signetLockRenew(key: string, token: string, leaseMs: string): Promise<number>;
};

export class DigestLock {
  private readonly redis: LockRedis;

  private readonly prefix: string;

  constructor(redis: Pick<Redis, 'set' | 'defineCommand'>, prefix: string) {
    this.prefix = ownKeyPrefix(prefix);
    // EVALSHA: the scripts' text is sent once per connection, not with every release
    if (!('signetLockRelease' in redis)) {
      redis.defineCommand('signetLockRelease', { lua: RELEASE, numberOfKeys: 1 });
      redis.defineCommand('signetLockRenew', { lua: RENEW, numberOfKeys: 1 });
    }
    this.redis = redis as LockRedis;
  }

  async withLock<T>(name: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const leaseMs = opts.leaseMs ?? 30_000;
    const waitMs = opts.waitMs ?? 60_000;
    const key = `${this.prefix}:lock:${name}`;
    const token = randomBytes(16).toString('hex');
    const deadline = Date.now() + waitMs;
    let delay = 5;
    for (;;) {
      const ok = await this.redis.set(key, token, 'PX', leaseMs, 'NX').catch((err: Error) => {
        throw new SignetError('REDIS_UNAVAILABLE', `cannot take the signature lock: ${err.message}`, { cause: err });
      });
      if (ok === 'OK') break;
      if (Date.now() > deadline) {
        throw new SignetError('LOCK_TIMEOUT', `waited ${waitMs} ms for the signature lock on ${name}`);
      }
      await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
      delay = Math.min(delay * 2, 200);
    }
    const timer = setInterval(() => {
      this.redis.signetLockRenew(key, token, String(leaseMs)).catch(() => undefined);
    }, Math.max(50, Math.floor(leaseMs / 3)));
    timer.unref();
    try {
      return await fn();
    } finally {
      clearInterval(timer);
      await this.redis.signetLockRelease(key, token).catch(() => undefined);
    }
  }
}
