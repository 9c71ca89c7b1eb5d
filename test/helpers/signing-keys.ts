/**
 * Unit-test stand-ins for the signing flow: an in-process P-256 key provider that counts its
 * signatures and exposes its key pair, a lock that just runs the function, and a digest of a string.
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import type { KeyProvider } from '../../src/kms/types.js';
import type { DigestLock } from '../../src/signing/lock.js';

const newPair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

export type TestKey = KeyProvider & { signs: number; raw: ReturnType<typeof newPair> };

/** A key provider named `name` signing with a fresh P-256 key; `signs` counts its sign() calls. */
export function testKey(name: string): TestKey {
  const pair = newPair();
  const k: TestKey = {
    name,
    signs: 0,
    raw: pair,
    publicKeyPem: async () => pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    sign: async (_d: Buffer, payload?: Buffer) => (k.signs++, sign('sha256', payload!, pair.privateKey)),
  };
  return k;
}

/** A DigestLock that takes no lock. */
export const noLock = { withLock: <T>(_n: string, fn: () => Promise<T>) => fn() } as unknown as DigestLock;

export const digestOf = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
