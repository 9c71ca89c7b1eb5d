/**
 * The embedded default (src/config/defaults.ts): loopback unless SIGNET_HOST says otherwise, the
 * startup hint is a `cosign verify` command that works as printed, and a keys directory this user
 * cannot write stops `signet start` with KEY_DIR_NOT_WRITABLE and what to do (docker compose:
 * uid 1000 in a mounted checkout), not a bare EACCES.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { prepareDefaultConfig } from '../../../src/config/defaults.js';
import { configSchema } from '../../../src/config/schema.js';
import { signetArgv } from '../../helpers/cli.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'signet-defaults-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('embedded default', () => {
  it('listens on 127.0.0.1 unless SIGNET_HOST / server.host says otherwise', async () => {
    const env = { SIGNET_HOOK_SECRET: 'a-secret-of-sixteen-chars-or-more' };
    expect((await prepareDefaultConfig(tempDir(), env)).loaded.config.server.host).toBe('127.0.0.1');
    expect((await prepareDefaultConfig(tempDir(), { ...env, SIGNET_HOST: '0.0.0.0', SIGNET_PORT: '9000' })).loaded.config.server).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
    });
    // a config file without server.host: loopback too
    const parsed = configSchema.parse({
      registries: [{ host: 'r.example' }],
      integrations: [],
      keys: [{ name: 'k', provider: 'file', path: 'k.pem' }],
      rules: [],
    });
    expect(parsed.server.host).toBe('127.0.0.1');
  });

  it('the first start prints a cosign command with --insecure-ignore-tlog=true (cosign 2.5 and 3.1 refuse without it), writes the key 0600', async () => {
    const dir = tempDir();
    const { notes } = await prepareDefaultConfig(dir, {});
    expect(notes[0]).toBe(
      'generated a P-256 signing key; verify with: cosign verify --key keys/signet.pub --insecure-ignore-tlog=true 127.0.0.1:5000/REPOSITORY:TAG',
    );
    expect(statSync(path.join(dir, 'keys/signet.key')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'keys')).mode & 0o077).toBe(0);
    expect(readFileSync(path.join(dir, 'keys/webhook-secret'), 'utf8').trim()).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });

  it('a keys directory it cannot create: KEY_DIR_NOT_WRITABLE with the uid and what to do, exit 1 (as uid 1000 in a root-owned checkout, like docker compose)', async () => {
    const dir = tempDir();
    const asRoot = process.getuid?.() === 0;
    // root may write anywhere: run signet as uid 1000 (the image's `node` user) in a directory root owns;
    // otherwise take write permission away from ourselves
    if (asRoot) chownSync(dir, 0, 0);
    chmodSync(dir, 0o755);
    if (!asRoot) chmodSync(dir, 0o555);
    const uid = asRoot ? 1000 : process.getuid!();
    const cmd = signetArgv(['start']);
    const child = spawn(cmd.bin, cmd.args, {
      cwd: dir,
      env: { ...process.env, SIGNET_CONFIG: '', SIGNET_HOOK_SECRET: '', HOME: tmpdir() },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(asRoot ? { uid: 1000, gid: 1000 } : {}),
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    chmodSync(dir, 0o755);
    expect(code, stderr).toBe(1);
    const line = stderr.split('\n').find((l) => l.startsWith('signet: KEY_DIR_NOT_WRITABLE'));
    expect(line, stderr).toBeDefined();
    expect(line).toContain(`cannot create or write ${path.join(dir, 'keys')} (EACCES) as uid ${uid}`);
    expect(line).toContain(`mkdir -p keys && chown ${uid} keys`);
    expect(line).toContain('docker-compose.yml mounts one at /app/keys');
  });
});
