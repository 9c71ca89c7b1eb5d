/** The format map and what it asks of keys at startup (src/formats/index.ts). */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../../src/config/schema.js';
import { checkRuleKeys, FORMATS, formatsFor } from '../../../src/formats/index.js';
import { SigningKey } from '../../../src/kms/signing-key.js';
import type { KeyProvider } from '../../../src/kms/types.js';
import { FORMAT_NAMES } from '../../../src/signing/plan.js';

/** An RSA key whose backend says which paddings it signs (a GCP key version, a PKCS#11 key restricted to PSS). */
function rsaKey(name: string, paddings: readonly ('pkcs1v15' | 'pss')[]): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const backend: KeyProvider & { paddings(): Promise<readonly ('pkcs1v15' | 'pss')[]> } = {
    name,
    publicKeyPem: async () => pem,
    sign: async (_d, payload) => sign('sha256', payload!, privateKey),
    paddings: async () => paddings,
  };
  return new SigningKey(backend, pem);
}
const rule = (keys: string[], formats?: RuleConfig['formats']) => ({ keys, ...(formats ? { formats } : {}) });

describe('formats', () => {
  it('every configurable name has a module, and the map writes legacy first', () => {
    expect(Object.keys(FORMATS).sort()).toEqual([...FORMAT_NAMES].sort());
    for (const [name, f] of Object.entries(FORMATS)) expect(f.name).toBe(name);
    expect(formatsFor(['bundle', 'legacy']).map((f) => f.name)).toEqual(['legacy', 'bundle']);
  });

  it('checkRuleKeys: a PSS-only RSA key under a cosign format is refused at startup, naming the key; PKCS#1 keys pass', async () => {
    const keys = new Map([
      ['pss-only', rsaKey('pss-only', ['pss'])],
      ['pkcs1', rsaKey('pkcs1', ['pkcs1v15'])],
    ]);
    await expect(checkRuleKeys([rule(['pkcs1'])], keys)).resolves.toBeUndefined();
    await expect(checkRuleKeys([rule(['pkcs1']), rule(['pss-only'], ['bundle'])], keys)).rejects.toMatchObject({
      code: 'KEY_INVALID',
      message: expect.stringContaining('pss-only'),
    });
  });
});
