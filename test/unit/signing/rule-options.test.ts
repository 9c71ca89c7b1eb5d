import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';

const cfg = (rule: string, env: NodeJS.ProcessEnv = {}) =>
  parseConfigText(`registries: [{ host: "r:5000" }]\nkeys: [{ name: k, provider: file, path: k.pem }]\nrules:\n  - ${rule}\n`, 'c.yaml', env);
const problems = (rule: string, env: NodeJS.ProcessEnv = {}): string => {
  try {
    cfg(rule, env);
    return '';
  } catch (err) {
    return (err as Error).message;
  }
};

describe('rule formats / rekor options', () => {
  it('defaults: legacy only, no Rekor; rekor.required defaults to true, timeout 10 s', () => {
    const plain = cfg('{ match: "r:5000/**", keys: [k] }').config.rules[0]!;
    expect(plain.formats).toBeUndefined();
    expect(plain.rekor).toBeUndefined();
    const r = cfg('{ match: "r:5000/**", keys: [k], formats: [bundle, legacy], rekor: { url: "https://rekor.sigstore.dev" } }').config.rules[0]!;
    expect(r.formats).toEqual(['bundle', 'legacy']);
    expect(r.rekor).toEqual({ url: 'https://rekor.sigstore.dev', required: true, timeoutMs: 10000 });
  });
  it('refuses unknown or repeated formats, an empty list, and bad Rekor URLs', () => {
    expect(problems('{ match: "r:5000/**", keys: [k], formats: [legacy, cosign] }')).toMatch(/rules\[0\]\.formats\[1\]/);
    expect(problems('{ match: "r:5000/**", keys: [k], formats: [legacy, legacy] }')).toMatch(/listed twice/);
    expect(problems('{ match: "r:5000/**", keys: [k], formats: [] }')).toMatch(/at least one format/);
    expect(problems('{ match: "r:5000/**", keys: [k], rekor: { url: "rekor.example" } }')).toMatch(/rekor\.url: must be an http\(s\) URL/);
    expect(problems('{ match: "r:5000/**", keys: [k], rekor: { url: "https://u:p@rekor.example" } }')).toMatch(/credentials/);
    expect(problems('{ match: "r:5000/**", keys: [k], rekor: { url: "https://rekor.example", required: maybe } }')).toMatch(/rekor\.required/);
    expect(problems('{ match: "r:5000/**", keys: [k], rekor: { url: "https://rekor.example", api: v2 } }')).toMatch(
      /rules\[0\]\.rekor\.api: unknown field "api"/,
    );
  });
  it('rekor.publicKey must be an ECDSA PEM (cosign and containers/image check SETs only with ECDSA)', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const rule = '{ match: "r:5000/**", keys: [k], rekor: { url: "https://rekor.example", publicKey: "${PUB}" } }';
    expect(cfg(rule, { PUB: ec }).config.rules[0]!.rekor!.publicKey).toBe(ec);
    expect(problems(rule, { PUB: rsa })).toMatch(/must be ECDSA/);
    expect(problems(rule, { PUB: 'nope' })).toMatch(/not a PEM public key/);
  });
});
