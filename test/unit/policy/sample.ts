/**
 * A config exercising every translation: two keys (RSA and P-256), a two-key rule, identity
 * repository, braces, a nested namespace ahead of its parent, a *.domain host, Docker Hub.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { PolicyInput, PolicyKey } from '../../../src/policy/index.js';

function key(name: string, kind: 'rsa' | 'ec'): PolicyKey {
  const { publicKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { name, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export function sampleKeys(): Record<'rsa' | 'p256' | 'security', PolicyKey> {
  return { rsa: key('rsa', 'rsa'), p256: key('p256', 'ec'), security: key('security', 'ec') };
}

export function sampleInput(k = sampleKeys(), extra: Partial<PolicyInput> = {}): PolicyInput {
  return {
    rules: [
      { index: 0, match: 'registry.example.com/team-a/special/**', keys: [k.security], identity: 'tag' },
      { index: 1, match: 'registry.example.com/team-a/**', keys: [k.rsa, k.p256], identity: 'tag' },
      { index: 2, match: 'registry.example.com/{team-b,team-c}/**', keys: [k.p256], identity: 'repository' },
      { index: 3, match: '127.0.0.1:5000/app', keys: [k.rsa], identity: 'tag' },
      { index: 4, match: 'localhost:5000/tools/*', keys: [k.p256], identity: 'tag' },
      { index: 5, match: '*.corp.example.net/**', keys: [k.security, k.p256], identity: 'repository' },
      { index: 6, match: 'docker.io/myorg/**', keys: [k.p256], identity: 'tag' },
    ],
    ...extra,
  };
}
