/**
 * Config reload on SIGHUP (src/config/reload.ts), on a real `signet start` process, a real
 * htpasswd registry that notifies it, and real Redis. Started with a wrong registry password:
 * /readyz says registry <host>: REGISTRY_AUTH_FAILED (src/health/registry-check.ts). The file is
 * fixed (password, a new key, a new rule) and SIGHUP sent: /readyz is ready, and the next push
 * is signed by the new key under the new rule. Then a broken file and SIGHUP: the log names the
 * problem with its line, signet_config_reload_total{outcome="invalid"} counts it, and the old
 * config keeps signing; so does a file whose key cannot be opened (outcome="failed").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signetArgv } from '../helpers/cli.js';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { deletePrefix, REDIS_URL, uniquePrefix, waitFor } from '../helpers/signet.js';

const SECRET = 'reload-hook-secret-0123456789';
const auth = { username: 'ci', password: 'right-password' };
let tmp: { dir: string; remove: () => void };
let registry: RunningRegistry;
let child: ChildProcess | undefined;
let port: number;
const prefix = uniquePrefix();
let stdout = '';
const pub: Record<string, string> = {};

function writeKey(name: string): void {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, `${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  pub[name] = path.join(tmp.dir, `${name}.pub`);
  writeFileSync(pub[name]!, publicKey.export({ type: 'spki', format: 'pem' }));
}

const config = (password: string, keys: string[], rules: string[], extra = '') => `${extra}
server: { port: ${port}, host: 127.0.0.1 }
redis: { url: "${REDIS_URL}", prefix: ${prefix} }
registries:
  - host: ${registry.host}
    insecure: true
    credentials: { username: ci, password: "${password}" }
integrations:
  - { name: local, kind: distribution, secret: "${SECRET}" }
${extra ? `  - { name: extra, kind: distribution, secret: "${SECRET}-extra" }\n` : ''}keys:
${keys.map((k) => `  - { name: ${k}, provider: file, path: ${k}.pem }\n`).join('')}rules:
${rules.map((r) => `  - ${r}\n`).join('')}`;

const file = () => path.join(tmp.dir, 'signet.yaml');
const logs = () =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return { raw: l };
      }
    });
const readyz = async () => {
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: r.status, body: (await r.json()) as { down: string[]; checks: { registries: Record<string, { ok: boolean; error?: string }> } } };
};
const signatureOf = async (repo: string, digest: string) => (await getManifest(registry, repo, sigTag(digest), { auth })).status === 200;
const metric = async (outcome: string) => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(new RegExp(`^signet_config_reload_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
};

beforeAll(async () => {
  tmp = tempDir();
  writeKey('old');
  writeKey('new');
  port = await freePort();
  registry = await startRegistry({
    auth: { kind: 'htpasswd', ...auth },
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
  });
  writeFileSync(file(), config('wrong-password', ['old'], [`{ match: "${registry.host}/team/**", keys: [old] }`]));
  const cmd = signetArgv(['start', '--config', file()]);
  child = spawn(cmd.bin, cmd.args, { cwd: tmp.dir, env: { ...process.env, SIGNET_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stdout += d));
  await waitFor('signet listening', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok, 30_000, 200);
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
  }
  await registry?.stop();
  await deletePrefix(prefix);
  tmp?.remove();
});

describe('SIGHUP', () => {
  it('wrong credentials make /readyz fail; the fixed file, a new key and a new rule apply after SIGHUP', async () => {
    const before = await readyz();
    expect(before.status).toBe(503);
    expect(before.body.down).toEqual([`registry:${registry.host}`]);
    expect(before.body.checks.registries[registry.host]!.error).toMatch(/^REGISTRY_AUTH_FAILED: registry .* refused signet's credentials/);
    expect(JSON.stringify(before.body)).not.toContain('wrong-password');

    const hook = (name: string, secret: string) =>
      fetch(`http://127.0.0.1:${port}/hooks/${name}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: '{"events":[]}',
      });
    expect((await hook('extra', `${SECRET}-extra`)).status).toBe(404);

    // fixed password, a new key and rule, a new integration; a worker setting that needs a restart
    writeFileSync(
      file(),
      config(
        auth.password,
        ['old', 'new'],
        [`{ match: "${registry.host}/team/**", keys: [old] }`, `{ match: "${registry.host}/fresh/**", keys: [new] }`],
        'worker: { concurrency: 3 }',
      ),
    );
    child!.kill('SIGHUP');
    await waitFor('reloaded', () => logs().some((l) => l.msg === 'config reloaded: rules, registries, credentials, keys and webhook secrets in force'), 20_000);
    expect(await metric('ok')).toBe(1);
    expect(logs().find((l) => Array.isArray(l.restartNeeded))?.restartNeeded).toEqual(['worker.concurrency']);
    expect((await readyz()).status).toBe(200);
    // the new integration's webhook secret is in force
    expect((await hook('extra', 'not-the-secret-0123456789')).status).toBe(401);
    expect((await hook('extra', `${SECRET}-extra`)).status).toBe(200);

    const img = await pushImage(registry, 'fresh/app', 'v1', { auth });
    await waitFor('signature under the new rule', () => signatureOf('fresh/app', img.digest), 30_000, 200);
    const v = await cosignVerify(`${registry.host}/fresh/app@${img.digest}`, pub['new']!, [], { auth });
    expect(v.ok).toBe(true);
    const old = await cosignVerify(`${registry.host}/fresh/app@${img.digest}`, pub['old']!, [], { auth });
    expect(old.ok).toBe(false);
  }, 120_000);

  it('a broken file keeps the old config, logs why with the line, and counts outcome="invalid"', async () => {
    writeFileSync(
      file(),
      config(auth.password, ['old'], [`{ match: "${registry.host}/fresh/**", keys: [new] }`]).replace('insecure: true', 'insecure: true\n    timeoutMS: 5'),
    );
    child!.kill('SIGHUP');
    const refused = await waitFor('refused', () => logs().find((l) => typeof l.msg === 'string' && l.msg.startsWith('config reload refused')), 20_000);
    const problems = (refused.problems as string[]).join('\n');
    expect(problems).toMatch(/signet\.yaml:7 {2}registries\[0\]\.timeoutMS: unknown field "timeoutMS"/);
    expect(problems).toMatch(/rules\[0\]\.keys\[0\]: no key named "new"/);
    expect(await metric('invalid')).toBe(1);
    // a file that passes its check but names a key that cannot be opened: outcome="failed", nothing changes either
    writeFileSync(
      file(),
      config(auth.password, ['old', 'new'], [`{ match: "${registry.host}/fresh/**", keys: [new] }`]).replace('path: new.pem', 'path: gone.pem'),
    );
    child!.kill('SIGHUP');
    const failed = await waitFor('failed', () => logs().find((l) => l.outcome === 'failed'), 20_000);
    expect((failed.problems as string[]).join('\n')).toMatch(/KEY_INVALID: key "new".*gone\.pem/);
    expect(await metric('failed')).toBe(1);
    // the old config (new key, fresh rule) still signs
    const img = await pushImage(registry, 'fresh/app', 'v2', { auth });
    await waitFor('signature with the config still in force', () => signatureOf('fresh/app', img.digest), 30_000, 200);
    expect((await cosignVerify(`${registry.host}/fresh/app@${img.digest}`, pub['new']!, [], { auth })).ok).toBe(true);
  }, 120_000);
});
