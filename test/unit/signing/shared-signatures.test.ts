/**
 * RedisSignatures (src/signing/shared-signatures.ts) and the Signer that uses it, against the
 * real Redis: two key objects for one key pair (two worker processes) call the backend once for
 * one payload; a record that does not verify (other key, other payload, bytes written by
 * someone else) is never used.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisSignatures, verifies } from '../../../src/signing/shared-signatures.js';
import { Signer } from '../../../src/signing/signer.js';
import { testKey } from '../../helpers/signing-keys.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../../helpers/signet.js';

const prefix = uniquePrefix();
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const shared = new RedisSignatures(redis, prefix);

afterAll(async () => {
  await deletePrefix(prefix);
  redis.disconnect();
});

describe('signatures shared between workers', () => {
  it("a second worker (its own key object and memo) reuses the first one's signature: one backend call", async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const [inA, inB] = [testKey('k', { pair }), testKey('k', { pair })];
    const payload = Buffer.from('{"critical":{"image":{"docker-manifest-digest":"sha256:1"}}}');
    const a = await new Signer(inA, {}, shared).sign(payload);
    const b = await new Signer(inB, {}, shared).sign(payload);
    expect(b.equals(a)).toBe(true);
    expect(inA.signs + inB.signs).toBe(1);
    // another payload is another signature
    await new Signer(inB, {}, shared).sign(Buffer.from('other'));
    expect(inB.signs).toBe(1);
  });

  it('never returns a signature by another key, nor bytes that do not verify', async () => {
    const k = testKey('k');
    const other = testKey('k'); // same name, another key pair (a key replaced under its name)
    const payload = Buffer.from('payload-' + randomBytes(4).toString('hex'));
    await shared.keep(other, payload, undefined, await other.sign(payload));
    expect(await shared.find(k, payload)).toBeUndefined();
    // someone writes garbage under the record's key: not used, the key signs
    const sig = await k.sign(payload);
    await shared.keep(k, payload, undefined, sig);
    const [key] = await redis.keys(`${prefix}:signature:${k.keyId.slice(7)}:*`);
    await redis.set(key!, randomBytes(70).toString('base64'));
    expect(await shared.find(k, payload)).toBeUndefined();
    expect(verifies(k, payload, sig)).toBe(true);
    expect(verifies(k, Buffer.from('else'), sig)).toBe(false);
  });

  it('Redis away: signing goes on without it', async () => {
    const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    down.on('error', () => undefined);
    const k = testKey('k');
    const sig = await new Signer(k, {}, new RedisSignatures(down, prefix)).sign(Buffer.from('x'));
    expect(verifies(k, Buffer.from('x'), sig)).toBe(true);
    expect(k.signs).toBe(1);
    down.disconnect();
  });
});
