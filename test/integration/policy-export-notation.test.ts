/**
 * `signet policy export --for notation` against the real `notation` 1.3 CLI: the exported
 * trustpolicy.json imports (`notation policy import` / `policy show`), the exported trust store
 * layout is what `notation cert list` reads, and `notation verify` accepts images signed (by
 * `notation sign`, with a key whose certificate a test CA issued from signet's own CSR) under
 * the exported policy, by exact scope and by the global scope, P-256 and RSA-2048; a wrong
 * trusted identity and a wrong root are refused. Each notation call gets its own XDG_CONFIG_HOME.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDocuments } from '../../src/policy/index.js';
import type { PolicyRule } from '../../src/policy/index.js';
import { notationExporter } from '../../src/policy/verifiers/notation.js';
import { tempDir } from '../helpers/cosign.js';
import { pushImage } from '../helpers/images.js';
import { issuedKey, opensslRoot, type IssuedKey, type TestCa } from '../helpers/notation-pki.js';
import { runProcess } from '../helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

const NOTATION = '/opt/sid-tools/usr/bin/notation';

let tmp: { dir: string; remove: () => void };
let reg: RunningRegistry;
let ca: TestCa;
let otherCa: TestCa;
let ec: IssuedKey;
let rsa: IssuedKey;
let exported: string;

/** A notation config home: the exported files (or `files` replacing them) and a signing key. */
function home(name: string, opts: { policy?: unknown; store?: string; key?: IssuedKey } = {}): string {
  const xdg = path.join(tmp.dir, 'homes', name);
  const cfg = path.join(xdg, 'notation');
  mkdirSync(cfg, { recursive: true });
  cpSync(opts.store ?? path.join(exported, 'truststore'), path.join(cfg, 'truststore'), { recursive: true });
  writeFileSync(path.join(cfg, 'trustpolicy.json'), opts.policy ? JSON.stringify(opts.policy) : readFileSync(path.join(exported, 'trustpolicy.json')));
  if (opts.key)
    writeFileSync(
      path.join(cfg, 'signingkeys.json'),
      JSON.stringify({ default: 'k', keys: [{ name: 'k', keyPath: opts.key.keyFile, certPath: opts.key.certFile }] }),
    );
  return xdg;
}

async function notation(xdg: string, ...args: string[]): Promise<{ code: number; out: string }> {
  const r = await runProcess(NOTATION, args, { env: { PATH: process.env.PATH, HOME: xdg, XDG_CONFIG_HOME: xdg }, timeoutMs: 60_000 });
  return { code: r.code ?? -1, out: `${r.stdout}${r.stderr}` };
}

async function signed(repo: string, key: IssuedKey): Promise<string> {
  const img = await pushImage(reg, repo, 'v1');
  const ref = `${reg.host}/${repo}@${img.digest}`;
  const s = await notation(home(`sign-${repo.replace(/\W/g, '-')}`, { key }), 'sign', '--insecure-registry', ref);
  expect(s.code, s.out).toBe(0);
  return ref;
}

const rule = (index: number, match: string, keys: IssuedKey[]): PolicyRule => ({ index, match, keys, identity: 'tag', formats: ['notation'] });

beforeAll(async () => {
  tmp = tempDir('signet-notation-export-');
  reg = await startRegistry();
  ca = await opensslRoot(tmp.dir, 'root', '/C=US/O=Acme/CN=Acme Signing Root');
  otherCa = await opensslRoot(tmp.dir, 'other', '/C=US/O=Acme/CN=Acme Signing Root');
  ec = await issuedKey('ec', ca, 'CN=builder,OU=CI,O=Acme Rockets,L=Seattle,ST=WA,C=US');
  rsa = await issuedKey('rsa', ca, 'CN=release,O=Acme Rockets,ST=WA,C=US', 'rsa');
  const result = notationExporter.export({
    rules: [rule(0, `${reg.host}/{app,tools/cli}`, [ec]), rule(1, `${reg.host}/team/**`, [rsa])],
  });
  exported = path.join(tmp.dir, 'export');
  await writeDocuments(exported, new Map([['notation', result]]), 'yaml');
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  tmp?.remove();
});

describe('notation 1.3 reads the exported trust policy and store', () => {
  it('notation policy import / policy show accept trustpolicy.json as written', async () => {
    const xdg = path.join(tmp.dir, 'homes', 'import');
    mkdirSync(xdg, { recursive: true });
    const imp = await notation(xdg, 'policy', 'import', '--force', path.join(exported, 'trustpolicy.json'));
    expect(imp.code, imp.out).toBe(0);
    const show = await notation(xdg, 'policy', 'show');
    expect(show.code, show.out).toBe(0);
    expect(JSON.parse(show.out.slice(show.out.indexOf('{')))).toEqual(JSON.parse(readFileSync(path.join(exported, 'trustpolicy.json'), 'utf8')));
  });

  it('notation cert list lists the exported store and its root', async () => {
    const policy = JSON.parse(readFileSync(path.join(exported, 'trustpolicy.json'), 'utf8'));
    const store = policy.trustPolicies[0].trustStores[0].slice('ca:'.length);
    const list = await notation(home('certs'), 'cert', 'list');
    expect(list.code, list.out).toBe(0);
    expect(list.out).toMatch(new RegExp(`ca\\s+${store}\\s+acme-signing-root\\.crt`));
    const show = await notation(home('certs'), 'cert', 'show', '--type', 'ca', '--store', store, 'acme-signing-root.crt');
    expect(show.code, show.out).toBe(0);
    expect(show.out).toMatch(/Acme Signing Root/);
  });
});

describe('notation verify under the exported policy', () => {
  it('P-256 by exact scope and RSA-2048 by the global scope verify; notation list shows the signature', async () => {
    const app = await signed('app', ec);
    const v1 = await notation(home('verify'), 'verify', '--insecure-registry', app);
    expect(v1.code, v1.out).toBe(0);
    expect(v1.out).toMatch(/Successfully verified signature/);
    const team = await signed('team/api', rsa);
    const v2 = await notation(home('verify'), 'verify', '--insecure-registry', team);
    expect(v2.code, v2.out).toBe(0);
    const list = await notation(home('verify'), 'list', '--insecure-registry', app);
    expect(list.out).toMatch(/application\/vnd\.cncf\.notary\.signature/);
  });

  it('the exact scope pins its key: the RSA key (another identity) signing tools/cli is refused', async () => {
    const cli = await signed('tools/cli', rsa);
    const v = await notation(home('verify'), 'verify', '-v', '--insecure-registry', cli);
    expect(v.code).not.toBe(0);
    expect(v.out).toMatch(/does not match the X.509 trusted identities/);
  });

  it('a wrong trusted identity is refused', async () => {
    const app = await signed('app-identity', ec);
    const policy = JSON.parse(readFileSync(path.join(exported, 'trustpolicy.json'), 'utf8'));
    policy.trustPolicies[0].registryScopes = [`${reg.host}/app-identity`];
    const ok = await notation(home('identity-ok', { policy }), 'verify', '--insecure-registry', app);
    expect(ok.code, ok.out).toBe(0);
    policy.trustPolicies[0].trustedIdentities = ['x509.subject: C=US, ST=WA, O=Acme Rockets, CN=someone else'];
    const bad = await notation(home('identity-bad', { policy }), 'verify', '-v', '--insecure-registry', app);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/does not match the X.509 trusted identities/);
  });

  it('a wrong root (same name, another key) in the store is refused', async () => {
    const app = await signed('app-root', ec);
    const store = path.join(tmp.dir, 'wrong-store');
    cpSync(path.join(exported, 'truststore'), store, { recursive: true });
    const policy = JSON.parse(readFileSync(path.join(exported, 'trustpolicy.json'), 'utf8'));
    const name = policy.trustPolicies[0].trustStores[0].slice('ca:'.length);
    writeFileSync(path.join(store, 'x509', 'ca', name, 'acme-signing-root.crt'), otherCa.rootPem);
    const v = await notation(home('wrong-root', { store }), 'verify', '-v', '--insecure-registry', app);
    expect(v.code).not.toBe(0);
    expect(v.out).toMatch(/certificate chain does not contain any trusted certificate/);
  });
});
