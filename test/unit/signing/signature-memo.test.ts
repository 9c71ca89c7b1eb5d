import { createHash, generateKeyPairSync, sign as cryptoSign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { KeyProvider } from '../../../src/kms/types.js';
import { SigningKey } from '../../../src/kms/signing-key.js';
import { SignatureMemo } from '../../../src/signing/signature-memo.js';

/** A real P-256 key that counts its sign calls and can be told to fail the next ones. */
function countingKey(name = 'k') {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = {
    name,
    calls: 0,
    failNext: 0,
    publicKeyPem: async () => publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    async sign(_digest: Buffer, payload?: Buffer): Promise<Buffer> {
      key.calls++;
      await new Promise((r) => setTimeout(r, 5));
      if (key.failNext > 0) {
        key.failNext--;
        throw new Error('backend unavailable');
      }
      return cryptoSign('sha256', payload!, privateKey);
    },
    verify: (payload: Buffer, sig: Buffer) => verify('sha256', payload, publicKey, sig),
  };
  return key satisfies KeyProvider;
}
const digestOf = (b: Buffer) => createHash('sha256').update(b).digest();

describe('signature memo: one key call per signed digest within its time', () => {
  it('a second request for the same digest gets the same signature without a key call', async () => {
    const memo = new SignatureMemo();
    const key = countingKey();
    const payload = Buffer.from('{"critical":{}}');
    const a = await memo.sign(digestOf(payload), () => key.sign(digestOf(payload), payload));
    const b = await memo.sign(digestOf(payload), () => key.sign(digestOf(payload), payload));
    expect(key.calls).toBe(1);
    expect(b.equals(a)).toBe(true);
    expect(key.verify(payload, a)).toBe(true);
    // another payload is signed on its own
    const other = Buffer.from('{"critical":{"x":1}}');
    expect(key.verify(other, await memo.sign(digestOf(other), () => key.sign(digestOf(other), other)))).toBe(true);
    expect(key.calls).toBe(2);
  });

  it('concurrent requests share one call', async () => {
    const memo = new SignatureMemo();
    const key = countingKey();
    const payload = Buffer.from('p');
    const sigs = await Promise.all(Array.from({ length: 8 }, () => memo.sign(digestOf(payload), () => key.sign(digestOf(payload), payload))));
    expect(key.calls).toBe(1);
    expect(new Set(sigs.map((s) => s.toString('hex'))).size).toBe(1);
  });

  it('each key value has its own memo: a key reloaded under the same name signs for itself', async () => {
    const first = countingKey('k');
    const reloaded = countingKey('k');
    const a = new SigningKey(first, await first.publicKeyPem());
    const b = new SigningKey(reloaded, await reloaded.publicKeyPem());
    const payload = Buffer.from('p');
    await a.sign(payload);
    const sig = await b.sign(payload);
    expect(reloaded.calls).toBe(1);
    expect(reloaded.verify(payload, sig)).toBe(true);
    expect(first.verify(payload, sig)).toBe(false);
    // and the value's own memo answers its second request
    await a.sign(payload);
    expect(first.calls).toBe(1);
  });

  it('a failed call is not kept: the next request asks the backend again', async () => {
    const memo = new SignatureMemo();
    const key = countingKey();
    key.failNext = 1;
    const payload = Buffer.from('p');
    await expect(memo.sign(digestOf(payload), () => key.sign(digestOf(payload), payload))).rejects.toThrow('backend unavailable');
    const sig = await memo.sign(digestOf(payload), () => key.sign(digestOf(payload), payload));
    expect(key.calls).toBe(2);
    expect(key.verify(payload, sig)).toBe(true);
  });

  it('entries expire after the TTL, and the oldest go first beyond maxEntries', async () => {
    let now = 1_000_000;
    const memo = new SignatureMemo({ ttlMs: 60_000, maxEntries: 2, now: () => now });
    const key = countingKey();
    const p = (s: string) => Buffer.from(s);
    await memo.sign(digestOf(p('a')), () => key.sign(digestOf(p('a')), p('a')));
    now += 59_999;
    await memo.sign(digestOf(p('a')), () => key.sign(digestOf(p('a')), p('a')));
    expect(key.calls).toBe(1);
    now += 1;
    await memo.sign(digestOf(p('a')), () => key.sign(digestOf(p('a')), p('a'))); // expired: signed again, kept anew
    expect(key.calls).toBe(2);
    await memo.sign(digestOf(p('b')), () => key.sign(digestOf(p('b')), p('b')));
    await memo.sign(digestOf(p('c')), () => key.sign(digestOf(p('c')), p('c'))); // 'a' is the oldest and goes
    expect(key.calls).toBe(4);
    await memo.sign(digestOf(p('c')), () => key.sign(digestOf(p('c')), p('c')));
    await memo.sign(digestOf(p('b')), () => key.sign(digestOf(p('b')), p('b')));
    expect(key.calls).toBe(4);
    await memo.sign(digestOf(p('a')), () => key.sign(digestOf(p('a')), p('a')));
    expect(key.calls).toBe(5);
  });
});
