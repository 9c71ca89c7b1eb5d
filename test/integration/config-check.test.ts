/**
 * `signet config check` end to end (src/config/check.ts): the README's sample config passes;
 * one run reports schema, cross-reference and key problems together with their lines; the
 * registries' credentials are tried against real registries (htpasswd and token auth) and wrong
 * ones are reported as REGISTRY_AUTH_FAILED at registries[i].credentials, without the secret.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { signetArgv, ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/cosign.js';
import { issueSignerChain } from '../helpers/pki.js';
import { runProcess } from '../helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startAwsKmsStandin, type AwsKmsStandin } from '../helpers/standins/aws-kms.js';

let tmp: { dir: string; remove: () => void };
beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => tmp?.remove());

async function check(file: string, ...flags: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ['config', 'check', '-c', file, ...flags],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function writeKey(name: string): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const file = path.join(tmp.dir, name);
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return file;
}

/** The first ```yaml block under "## Configuration" in README.md. */
function readmeSample(): string {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  const m = /```yaml\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('no yaml block under ## Configuration in README.md');
  return m[1]!;
}

describe('the README sample config', () => {
  let aws: AwsKmsStandin | undefined;
  afterAll(async () => aws?.close());

  it('passes config check (keys opened: files, an encrypted one, an AWS KMS key with its certificate)', async () => {
    const dir = path.join(tmp.dir, 'readme');
    mkdirSync(path.join(dir, 'keys'), { recursive: true });
    mkdirSync(path.join(dir, 'pki'), { recursive: true });
    const sample = readmeSample();
    expect(sample).toContain('registries:');
    writeFileSync(path.join(dir, 'signet.yaml'), sample);
    const dev = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(path.join(dir, 'keys/dev.key'), dev.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }));
    writeFileSync(path.join(dir, 'keys/security.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }));
    aws = await startAwsKmsStandin();
    const release = aws.addKey({ keySpec: 'ECC_NIST_P256', alias: 'alias/signet-release' });
    const { certificate, chain } = issueSignerChain(release.publicKey!);
    writeFileSync(path.join(dir, 'pki/signer.crt'), certificate);
    writeFileSync(path.join(dir, 'pki/chain.pem'), chain);
    const cmd = signetArgv(['config', 'check', '--offline']);
    const r = await runProcess(cmd.bin, cmd.args, {
      cwd: dir,
      timeoutMs: 60_000,
      env: {
        ...process.env,
        SIGNET_CONFIG: 'signet.yaml',
        REG_PASSWORD: 'registry-password',
        SIGNET_HOOK_SECRET: 'a-long-enough-webhook-secret',
        COSIGN_PASSWORD: 'pw',
        SITE: 'lab',
        AWS_ENDPOINT_URL_KMS: aws.url,
        AWS_REGION: aws.region,
        AWS_ACCESS_KEY_ID: aws.accessKeyId,
        AWS_SECRET_ACCESS_KEY: aws.secretAccessKey,
        AWS_EC2_METADATA_DISABLED: 'true',
        NODE_NO_WARNINGS: '1', // the AWS SDK's notice about Node 20
      },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/signet\.yaml: ok \(2 registries, 1 integration\(s\), 3 key\(s\), 2 rule\(s\)\)/);
    expect(r.code).toBe(0);
    expect(aws.calls['GetPublicKey']).toBeGreaterThan(0);
  }, 90_000);
});

describe('one run reports everything', () => {
  it('schema, cross-reference and key problems together, each with its path and line, in file order', async () => {
    const good = writeKey('good.pem');
    writeFileSync(
      path.join(tmp.dir, 'locked.pem'),
      createPrivateKey(readFileSync(good)).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'right' }),
    );
    const file = path.join(tmp.dir, 'many.yaml');
    writeFileSync(
      file,
      `registries:
  - host: 127.0.0.1:5000
    insecure: true
    timeoutMS: 100
keys:
  - name: a
    provider: file
    path: nothere.pem
  - name: b
    provider: file
    path: locked.pem
    password: bad-secret-1
  - name: c
    provider: file
    path: good.pem
rules:
  - match: "127.0.0.1:5000/**"
    keys: [a, b, c, d]
`,
    );
    const r = await check(file, '--offline');
    expect(r.code).toBe(1);
    const lines = r.err.split('\n').slice(1);
    expect(lines.map((l) => /:(\d+) {2}(\S+):/.exec(l)?.slice(1).join(' '))).toEqual([
      '4 registries[0].timeoutMS',
      '6 keys[0]',
      '9 keys[1]',
      '18 rules[0].keys[3]',
    ]);
    expect(lines[0]).toContain('unknown field "timeoutMS"');
    expect(lines[1]).toMatch(/KEY_INVALID: key "a"/);
    expect(lines[2]).toMatch(/KEY_PASSWORD: key "b"/);
    expect(r.err).not.toContain('bad-secret-1');
  });
});

describe('registry credentials', () => {
  const registries: RunningRegistry[] = [];
  let key: string;
  beforeAll(async () => {
    key = writeKey('reg.pem');
    registries.push(await startRegistry({ auth: { kind: 'htpasswd', username: 'alice', password: 'right-htpasswd' } }));
    registries.push(await startRegistry({ auth: { kind: 'token', username: 'bob', password: 'right-token' } }));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(registries.map((r) => r.stop()));
  });

  const config = (entries: { host: string; password: string; user: string; authHost?: string }[]) => {
    const file = path.join(tmp.dir, `creds-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      file,
      `registries:
${entries
  .map(
    (e) => `  - host: ${e.host}
    insecure: true
    credentials: { username: ${e.user}, password: "${e.password}" }
${e.authHost ? `    authHosts: ["${e.authHost}"]\n` : ''}`,
  )
  .join('')}keys: [{ name: k, provider: file, path: ${key} }]
rules:
${entries.map((e) => `  - { match: "${e.host}/team/app", keys: [k] }\n`).join('')}`,
    );
    return file;
  };

  it('right passwords: ok, both registries named', async () => {
    const [h, t] = registries;
    const realmHost = new URL(t!.tokenServer!.realm).host;
    const issued = t!.tokenServer!.issued();
    const r = await check(
      config([
        { host: h!.host, user: 'alice', password: 'right-htpasswd' },
        { host: t!.host, user: 'bob', password: 'right-token', authHost: realmHost },
      ]),
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('registry credentials: taken by');
    expect(r.out).toContain(h!.host);
    expect(r.out).toContain(t!.host);
    // a token for GET /v2/ and one for the rule's repository (pull,push)
    expect(t!.tokenServer!.issued() - issued).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('wrong passwords: REGISTRY_AUTH_FAILED at each registry credentials line, the password never shown', async () => {
    const [h, t] = registries;
    const realmHost = new URL(t!.tokenServer!.realm).host;
    const refused = t!.tokenServer!.refused();
    const file = config([
      { host: h!.host, user: 'alice', password: 'wrong-pass-1' },
      { host: t!.host, user: 'bob', password: 'wrong-pass-2', authHost: realmHost },
    ]);
    const r = await check(file);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`:4  registries\\[0\\]\\.credentials: registry ${h!.host}: REGISTRY_AUTH_FAILED`));
    expect(r.err).toMatch(new RegExp(`:7  registries\\[1\\]\\.credentials: registry ${t!.host}: REGISTRY_AUTH_FAILED: token service`));
    expect(r.err).not.toMatch(/wrong-pass/);
    expect(t!.tokenServer!.refused()).toBeGreaterThan(refused);
    // --offline: no registry contacted, the file itself is fine
    const offline = await check(file, '--offline');
    expect(offline.code).toBe(0);
    expect(offline.out).toContain('registry credentials: not checked (--offline)');
  }, 60_000);
});
