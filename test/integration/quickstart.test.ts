/**
 * The README's "From clone to a verified signature", run for real: deploy/quickstart.sh (which
 * the README's steps mirror line for line, checked here) builds signet, starts Redis, `signet
 * start` on its embedded default, a real docker-registry notifying it with the generated secret,
 * pushes an image with crane and verifies signet's signature with cosign 2.5 and 3.1.
 * The walkthrough uses the fixed ports of the defaults (6379, 5000, 8080), so it runs in a network
 * namespace of its own (`unshare -n`; `unshare -rn` when not root): nothing leaves that loopback
 * and nothing collides with other tests.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COSIGN3_BIN } from '../helpers/cosign.js';
import { ROOT } from '../helpers/cli.js';

const SCRIPT = path.join(ROOT, 'deploy/quickstart.sh');
const IMAGE = '127.0.0.1:5000/demo/hello:v1';

/** The shell lines of the README's walkthrough block (comments and blank lines left out). */
function readmeSteps(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### From clone to a verified signature'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  return block
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

describe('quick start: from clone to a verified signature', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'signet-quickstart-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the README steps are the script's, line for line", () => {
    const script = readFileSync(SCRIPT, 'utf8')
      .split('\n')
      .map((l) => l.trim());
    const steps = readmeSteps();
    expect(steps.length).toBeGreaterThanOrEqual(10);
    for (const step of steps) expect(script, step).toContain(step);
    expect(steps).toContain(`cosign verify --key keys/signet.pub --insecure-ignore-tlog=true ${IMAGE}`);
  });

  it('deploy/quickstart.sh: a push to the registry is signed by signet and verifies with cosign 2.5 and 3.1', async () => {
    const unshare = process.getuid?.() === 0 ? ['-n'] : ['-rn'];
    const child = spawn('unshare', [...unshare, 'bash', '-c', 'ip link set lo up && exec bash "$0"', SCRIPT], {
      cwd: dir,
      // this test's Node first on PATH: the script runs signet on the runtime the suite runs on
      env: {
        ...process.env,
        PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`,
        COSIGN3: COSIGN3_BIN(),
        SIGNET_CONFIG: '',
        SIGNET_HOOK_SECRET: '',
        HOME: dir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGTERM'), 240_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
    const logs = ['signet.log', 'registry.log']
      .map((f) => (existsSync(path.join(dir, f)) ? `--- ${f}\n${readFileSync(path.join(dir, f), 'utf8').slice(-3000)}` : ''))
      .join('\n');
    expect(code, `${out}\n${logs}`).toBe(0);
    expect(out).toContain(`quickstart: ${IMAGE} is signed and verifies`);
    // signet status: the push and the default key signed
    expect(out).toMatch(/key default: signed \(signed as 127\.0\.0\.1:5000\/demo\/hello:v1\)/);
    // cosign 2.5 (the .sig: simple signing) and cosign 3.1 (the bundle: the sigstore sign predicate), both by the key
    expect(out.match(/The signatures were verified against the specified public key/g)).toHaveLength(2);
    expect(out).toContain('"type":"cosign container image signature"');
    expect(out).toContain('"type":"https://sigstore.dev/cosign/sign/v1"');
    // the first start wrote the key the README verifies with, the private one 0600
    expect(statSync(path.join(dir, 'keys/signet.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(dir, 'keys/signet.pub'), 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
    expect(readFileSync(path.join(dir, 'signet.log'), 'utf8')).toMatch(/"msg":"signed"/);
  }, 300_000);
});
