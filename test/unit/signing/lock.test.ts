/**
 * DigestLock (src/signing/lock.ts) against the real Redis: one holder at a time, the
 * "held recently" mark the signing lock leaves (and storage locks do not), LOCK_TIMEOUT.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { DigestLock, signingLockName, type LockHeld } from '../../../src/signing/lock.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../../helpers/signet.js';

const prefix = uniquePrefix();
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const lock = new DigestLock(redis, prefix);

afterAll(async () => {
  await deletePrefix(prefix);
  redis.disconnect();
});

describe('DigestLock', () => {
  it('one holder at a time: 20 concurrent holders of one name never overlap', async () => {
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        lock.withLock('one', async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
  });

  it('the first holder of a name is told "not recent"; a waiter, and the next holder within markMs, are told "recent"', async () => {
    const name = signingLockName('reg.example/team/app', 'sha256:' + 'a'.repeat(64));
    const seen: LockHeld[] = [];
    let release!: () => void;
    const first = lock.withLock(name, (h) => (seen.push(h), new Promise<void>((r) => (release = r))), { markMs: 60_000 });
    await new Promise((r) => setTimeout(r, 20));
    const second = lock.withLock(name, async (h) => void seen.push(h), { markMs: 60_000 });
    await new Promise((r) => setTimeout(r, 20));
    release();
    await Promise.all([first, second]);
    // a later holder, no one waiting: the mark says it was held a moment ago
    await lock.withLock(name, async (h) => void seen.push(h), { markMs: 60_000 });
    expect(seen.map((h) => h.recent)).toEqual([false, true, true]);
    expect(await redis.get(`${prefix}:lock:${name}`)).toBe('~');
    expect(await redis.pttl(`${prefix}:lock:${name}`)).toBeGreaterThan(0);
  });

  it('without markMs the key is deleted on release (storage locks leave nothing behind)', async () => {
    let held: LockHeld | undefined;
    await lock.withLock('storage', async (h) => void (held = h));
    expect(held?.recent).toBe(false);
    expect(await redis.exists(`${prefix}:lock:storage`)).toBe(0);
  });

  it('a lock held by someone else past waitMs: LOCK_TIMEOUT (retryable)', async () => {
    await redis.set(`${prefix}:lock:busy`, 'someone-else', 'PX', 10_000);
    await expect(lock.withLock('busy', async () => 1, { waitMs: 100 })).rejects.toMatchObject({ code: 'LOCK_TIMEOUT', retryable: true });
  });
});
