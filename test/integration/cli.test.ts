/**
 * The `signet` command as users run it (a real child process): config check, start on the
 * embedded default, the Redis-missing message, sign one image, keys export.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { pushImage } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { runProcess } from '../helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { deletePrefix, REDIS_URL, uniquePrefix, waitFor } from '../helpers/signet.js';
import { signetArgv } from '../helpers/cli.js';

function signet(args: string[], opts: { cwd: string; env?: Record<string, string> }) {
  const cmd = signetArgv(args);
  return runProcess(cmd.bin, cmd.args, { cwd: opts.cwd, env: { ...process.env, SIGNET_CONFIG: '', ...opts.env }, timeoutMs: 60_000 });
}

let tmp: { dir: string; remove: () => void };
beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => tmp?.remove());

describe('signet config check', () => {
  it('lists every problem with its YAML path and line, exit 1', async () => {
    writeFileSync(
      path.join(tmp.dir, 'bad.yaml'),
      `server: { port: 99999 }
registries:
  - host: "http://nope/"
integrations:
  - { name: hook, kind: quay-or-so }
keys:
  - { name: k, provider: file, path: missing.pem }
rules:
  - { match: "127.0.0.1:5000/**", keys: [nokey] }
`,
    );
    const r = await signet(['config', 'check', '--config', 'bad.yaml'], { cwd: tmp.dir });
    expect(r.code).toBe(1);
    for (const expected of ['bad.yaml:1  server.port', 'bad.yaml:3  registries[0].host', 'bad.yaml:5  integrations[0].kind']) {
      expect(r.stderr).toContain(expected);
    }
    // one run: the schema, the rule's missing key and the key file that cannot be opened
    expect(r.stderr).toContain('bad.yaml:7  keys[0]: KEY_INVALID: key "k": file not found');
    expect(r.stderr).toContain('bad.yaml:9  rules[0].keys[0]: no key named "nokey"');
    expect(r.stderr).toMatch(/6 problem/);
  });

  it('accepts a good config and opens its keys', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(path.join(tmp.dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(
      path.join(tmp.dir, 'good.yaml'),
      `registries: [{ host: "127.0.0.1:5000", insecure: true }]
integrations: [{ name: local, kind: distribution, secret: "\${HOOK_SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "127.0.0.1:5000/**", keys: [k] }]
`,
    );
    const ok = await signet(['config', 'check', '--offline'], { cwd: tmp.dir, env: { SIGNET_CONFIG: 'good.yaml', HOOK_SECRET: 'x'.repeat(20) } });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/good.yaml: ok \(1 registry, 1 integration\(s\), 1 key\(s\), 1 rule\(s\)\)/);
    const unset = await signet(['config', 'check', '-c', 'good.yaml'], { cwd: tmp.dir });
    expect(unset.code).toBe(1);
    expect(unset.stderr).toContain('integrations[0].secret: environment variable HOOK_SECRET is not set');
    const exported = await signet(['keys', 'export', 'k', '-c', 'good.yaml'], { cwd: tmp.dir, env: { HOOK_SECRET: 'x'.repeat(20) } });
    expect(exported.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/);
    // a name the config does not have: the names it has, not the usage text
    const nosuch = await signet(['keys', 'export', 'nosuch', '-c', 'good.yaml'], { cwd: tmp.dir, env: { HOOK_SECRET: 'x'.repeat(20) } });
    expect(nosuch.code).toBe(1);
    expect(nosuch.stderr.trim()).toBe(`signet: KEY_NOT_FOUND: no key named "nosuch" in ${path.join(tmp.dir, 'good.yaml')}; configured keys: k`);
  });
});

describe('signet start on the embedded default', () => {
  it('without Redis: exits 1 with one line saying how to start one', async () => {
    const dir = tempDir();
    try {
      const r = await signet(['start'], { cwd: dir.dir, env: { SIGNET_REDIS_URL: `redis://127.0.0.1:${await freePort()}` } });
      expect(r.code).toBe(1);
      const errorLines = r.stderr.split('\n').filter((l) => l.startsWith('signet: REDIS'));
      expect(errorLines).toHaveLength(1);
      expect(errorLines[0]).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ .*redis-server --daemonize yes/);
    } finally {
      dir.remove();
    }
  });

  it('generates a P-256 key, prints where its public key is, listens, stops on SIGTERM', async () => {
    const dir = tempDir();
    const port = await freePort();
    const cmd = signetArgv(['start']);
    const child = spawn(cmd.bin, cmd.args, {
      cwd: dir.dir,
      env: { ...process.env, SIGNET_CONFIG: '', SIGNET_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => (stdout += d));
    try {
      await waitFor('healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 30_000, 200);
      expect(stderr).toMatch(/generated a P-256 signing key; verify with: cosign verify --key keys\/signet\.pub/);
      expect(existsSync(path.join(dir.dir, 'keys/signet.key'))).toBe(true);
      expect(readFileSync(path.join(dir.dir, 'keys/signet.pub'), 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
      const secret = readFileSync(path.join(dir.dir, 'keys/webhook-secret'), 'utf8').trim();
      expect(stderr + stdout).not.toContain(secret);
      expect(stdout).toMatch(/"msg":"receiver listening"/);
      const unauth = await fetch(`http://127.0.0.1:${port}/hooks/local`, { method: 'POST', body: '{}' });
      expect(unauth.status).toBe(401);
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(code).toBe(0);
    } finally {
      child.kill('SIGKILL');
      dir.remove();
    }
  });
});

describe('signet worker --http-port', () => {
  it('a worker-only process serves /healthz and /metrics (registry requests included), nothing else; exits 0 on SIGTERM', async () => {
    const prefix = uniquePrefix();
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(path.join(tmp.dir, 'w.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(
      path.join(tmp.dir, 'worker.yaml'),
      `redis: { url: "${REDIS_URL}", prefix: ${prefix} }
server: { host: 127.0.0.1 }
registries: [{ host: "127.0.0.1:5000", insecure: true }]
keys: [{ name: w, provider: file, path: w.pem }]
rules: [{ match: "127.0.0.1:5000/**", keys: [w] }]
`,
    );
    const port = await freePort();
    const bad = await signet(['serve', '--http-port', String(port), '-c', 'worker.yaml'], { cwd: tmp.dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--http-port is for "signet worker"');
    const cmd = signetArgv(['worker', '--http-port', String(port), '-c', 'worker.yaml']);
    const child = spawn(cmd.bin, cmd.args, { cwd: tmp.dir, env: { ...process.env, SIGNET_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    try {
      await waitFor('worker healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 30_000, 200);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (const name of [
        'signet_registry_requests_total',
        'signet_key_sign_seconds',
        'signet_signatures_total',
        'signet_jobs_total',
        'signet_push_to_signed_seconds',
      ]) {
        expect(metrics).toContain(`# TYPE ${name} `);
      }
      expect((await fetch(`http://127.0.0.1:${port}/hooks/local`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/hooks/local`, { method: 'POST', body: '{}' })).status).toBe(405);
      // stdout is buffered (4 KB or 100 ms): the line comes, perhaps after the requests above
      await waitFor('the "listening" log line', async () => /"msg":"worker metrics listening"/.test(out), 5_000, 50);
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(code).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await deletePrefix(prefix);
    }
  });
});

describe('signet sign IMAGE_REF', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => registry?.stop());

  it('signs one image now through the same pipeline; cosign verifies it', async () => {
    const img = await pushImage(registry, 'cli/app', 'v3');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(path.join(tmp.dir, 'rsa.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(path.join(tmp.dir, 'rsa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    const prefix = uniquePrefix();
    writeFileSync(
      path.join(tmp.dir, 'sign.yaml'),
      `redis: { url: "${REDIS_URL}", prefix: ${prefix} }
registries: [{ host: "${registry.host}", insecure: true }]
keys: [{ name: rsa, provider: file, path: rsa.pem }]
rules: [{ match: "${registry.host}/cli/**", keys: [rsa] }]
`,
    );
    try {
      const r = await signet(['sign', `${registry.host}/cli/app:v3`, '-c', 'sign.yaml'], { cwd: tmp.dir });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report).toMatchObject({
        status: 'signed',
        digest: img.digest,
        formats: ['legacy', 'bundle'],
        signatures: [
          { key: 'rsa', format: 'legacy', outcome: 'signed', digest: img.digest },
          { key: 'rsa', format: 'bundle', outcome: 'signed', digest: img.digest },
        ],
      });
      expect((await cosignVerify(`${registry.host}/cli/app:v3`, path.join(tmp.dir, 'rsa.pub'))).ok).toBe(true);
      const again = JSON.parse((await signet(['sign', `${registry.host}/cli/app:v3`, '-c', 'sign.yaml'], { cwd: tmp.dir })).stdout);
      expect(again.signatures[0].outcome).toBe('present');
      const bad = await signet(['sign', `${registry.host}/../etc:v1`, '-c', 'sign.yaml'], { cwd: tmp.dir });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/INVALID_REFERENCE/);
    } finally {
      await deletePrefix(prefix);
    }
  });
});
