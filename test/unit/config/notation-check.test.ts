/** `signet config check`: a rule writing the notation format with a key that has no certificate is a config error at that key's path. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../../src/config/load.js';

const config = (formats: string) => `
redis: { url: redis://127.0.0.1:6379, prefix: signet }
registries: [{ host: 127.0.0.1:5000, insecure: true }]
keys:
  - { name: bare, provider: file, path: ./bare.pem }
  - { name: certified, provider: file, path: ./c.pem, certificate: ./c.crt, chain: ./chain.pem }
rules:
  - { match: "127.0.0.1:5000/a/**", keys: [certified, bare], formats: ${formats} }
  - { match: "127.0.0.1:5000/**", keys: [bare] }
`;

function problemsOf(text: string) {
  try {
    parseConfigText(text, 'signet.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => ({ path: p.path.map(String).join('.'), message: p.message }));
  }
  return [];
}

describe('notation keys need certificates', () => {
  it("names the rule's key without a certificate", () => {
    expect(problemsOf(config('[legacy, notation]'))).toEqual([
      { path: 'rules.0.keys.1', message: 'key "bare" has no certificate: the notation format needs keys[].certificate (and chain)' },
    ]);
  });
  it('other formats do not need one', () => {
    expect(problemsOf(config('[legacy, bundle]'))).toEqual([]);
  });
});
