/**
 * `signet policy export` through the real command line entry (src/cli.ts main), on a config
 * with file keys: usage errors, stdout streams, --out files, namespaces.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli.js';
import { tempDir } from '../../helpers/cosign.js';

let tmp: { dir: string; remove: () => void };
let config: string;
const pub: Record<string, string> = {};

beforeAll(() => {
  tmp = tempDir();
  for (const [name, kind] of [
    ['rsa', 'rsa'],
    ['p256', 'ec'],
  ] as const) {
    const { privateKey, publicKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(path.join(tmp.dir, `${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    pub[name] = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }
  config = path.join(tmp.dir, 'signet.yaml');
  writeFileSync(
    config,
    `registries:
  - { host: registry.example.com }
keys:
  - { name: rsa, provider: file, path: rsa.pem }
  - { name: p256, provider: file, path: p256.pem }
  - { name: unused, provider: file, path: does-not-exist.pem }
rules:
  - { match: "registry.example.com/prod/**", keys: [rsa, p256] }
  - { match: "registry.example.com/dev/**", keys: [p256], identity: repository }
`,
  );
});
afterAll(() => tmp?.remove());

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ['--config', config, 'policy', 'export', ...args],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('signet policy export', () => {
  it('an unknown or missing --for is a usage error that lists the verifiers', async () => {
    const bad = await run('--for', 'gatekeeper');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown verifier "gatekeeper" for --for: use kyverno, policy-controller, openshift, containers, cosign-webhook/);
    expect((await run()).err).toMatch(/--for is required/);
    expect((await run('--for', 'kyverno', '--format', 'xml')).code).toBe(2);
    const mistyped = await main(
      ['--config', config, 'policy', 'exprt'],
      () => {},
      () => {},
    );
    expect(mistyped).toBe(2);
  });

  it('kyverno to stdout: a two-key rule has one attestor per key (keys that are not used are not opened)', async () => {
    const r = await run('--for', 'kyverno');
    expect(r.code, r.err).toBe(0);
    const docs = parseAllDocuments(r.out).map((d) => d.toJS());
    expect(docs).toHaveLength(1);
    const [prod, dev] = docs[0].spec.rules;
    expect(prod.verifyImages[0].attestors.map((a: any) => a.entries[0].keys.publicKeys)).toEqual([pub['rsa'], pub['p256']]);
    expect(dev.verifyImages[0].imageReferences).toEqual(['registry.example.com/dev:*', 'registry.example.com/dev@*', 'registry.example.com/dev/*']);
  });

  it('--format json on stdout: a v1 List of ClusterImagePolicies', async () => {
    const r = await run('--for', 'policy-controller', '--format', 'json');
    expect(r.code, r.err).toBe(0);
    const list = JSON.parse(r.out);
    expect(list.kind).toBe('List');
    expect(list.items.map((i: any) => i.metadata.name)).toEqual(['signet-rule-0-rsa', 'signet-rule-0-p256', 'signet-rule-1-p256']);
  });

  it('--for all --out DIR: one file per object in a folder per verifier, paths on stdout, notes on stderr', async () => {
    const out = path.join(tmp.dir, 'out');
    const r = await run('--for', 'all', '--out', out, '--namespace', 'team-a', '--namespace', 'team-b');
    expect(r.code, r.err).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['containers', 'cosign', 'cosign-webhook', 'kyverno', 'openshift', 'policy-controller']);
    expect(readdirSync(path.join(out, 'cosign')).sort()).toEqual(['README.md', 'p256.pub', 'rsa.pub', 'trusted_root.json']);
    expect(readdirSync(path.join(out, 'cosign-webhook')).sort()).toEqual(['cosignkey-team-a.yaml', 'cosignkey-team-b.yaml']);
    expect(readdirSync(path.join(out, 'openshift'))).toHaveLength(6); // 3 (rule, key) pairs x 2 namespaces
    const policy = JSON.parse(readFileSync(path.join(out, 'containers', 'policy.json'), 'utf8'));
    expect(Object.keys(policy.transports.docker).sort()).toEqual(['registry.example.com/dev', 'registry.example.com/prod']);
    const regd = parse(readFileSync(path.join(out, 'containers', 'registries.d', 'signet.yaml'), 'utf8'));
    expect(regd.docker['registry.example.com/prod']).toEqual({ 'use-sigstore-attachments': true });
    expect(r.out.split('\n').every((f) => existsSync(f))).toBe(true);
    expect(r.err).toMatch(/^note: cosign-webhook: cannot require two signatures/m);
  });

  it('a single verifier with --out writes straight into DIR', async () => {
    const out = path.join(tmp.dir, 'single');
    const r = await run('--for', 'openshift', '--out', out, '--format', 'json');
    expect(r.code, r.err).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      'clusterimagepolicy-signet-rule-0-p256.json',
      'clusterimagepolicy-signet-rule-0-rsa.json',
      'clusterimagepolicy-signet-rule-1-p256.json',
    ]);
  });

  it('an invalid namespace is refused', async () => {
    const r = await run('--for', 'cosign-webhook', '--namespace', 'Team_A');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--namespace "Team_A" is not a valid Kubernetes namespace name/);
  });
});
