/**
 * `signet worker` (a real child process) against a Redis that cannot take its writes
 * (workers/redis-outage.ts), with redis-server processes of the test's own:
 * - a read-only replica (`--replicaof`, answers READONLY): the worker logs a bounded number of
 *   lines however long it stays (it used to log ~7,600 lines a second), and once the node is
 *   promoted (REPLICAOF NO ONE) it says it recovered and takes jobs again;
 * - a master that is gone: SIGTERM still ends the process (it used to hang past
 *   worker.shutdownTimeoutMs, waiting on commands queued for a Redis that never came back).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { SignQueue } from '../../src/queue/sign-queue.js';
import { signetArgv } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { waitExit } from '../helpers/proc.js';
import { tempDir } from '../helpers/cosign.js';
import { waitFor } from '../helpers/signet.js';

const SHUTDOWN_MS = 2000;
let tmp: { dir: string; remove: () => void };
const nodes: Node[] = [];
const children: ChildProcess[] = [];

interface Running {
  child: ChildProcess;
  lines: () => Record<string, any>[];
  text: () => string;
}

function startWorker(redisUrl: string, name: string, command: 'worker' | 'start' = 'worker', port = 0): Running {
  const file = path.join(tmp.dir, `${name}.yaml`);
  writeFileSync(
    file,
    `${command === 'start' ? `server: { port: ${port}, host: 127.0.0.1 }\n` : ''}redis: { url: "${redisUrl}", prefix: ${name} }
worker: { concurrency: 4, backoffMs: 100, shutdownTimeoutMs: ${SHUTDOWN_MS} }
registries: [{ host: "127.0.0.1:9", insecure: true }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "127.0.0.1:9/**", keys: [k] }]
`,
  );
  let out = '';
  const cmd = signetArgv([command, '-c', file]);
  const child = spawn(cmd.bin, cmd.args, { cwd: tmp.dir, env: { ...process.env, SIGNET_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  children.push(child);
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, any>;
        } catch {
          return { raw: l };
        }
      });
  return { child, lines, text: () => out };
}

interface Node {
  port: number;
  url: string;
  proc: ChildProcess;
  dir: string;
}

/** A redis-server of the test's own (a replica of `replicaOf` when given), ready to answer. */
async function startRedis(replicaOf?: number): Promise<Node> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'signet-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  if (replicaOf) args.push('--replicaof', '127.0.0.1', String(replicaOf));
  const proc = spawn('redis-server', args, { stdio: 'ignore' });
  nodes.push({ port, url: `redis://127.0.0.1:${port}`, proc, dir });
  const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  c.on('error', () => undefined);
  try {
    // a master takes writes; a replica answers and refuses them
    const expected = replicaOf ? 'READONLY' : 'OK';
    await waitFor(
      `redis on ${port}`,
      async () =>
        (
          await c.set('probe', '1').then(
            (r) => String(r),
            (e: Error) => e.message,
          )
        ).startsWith(expected),
      15_000,
    );
  } finally {
    c.disconnect();
  }
  return nodes[nodes.length - 1]!;
}

async function kill(node: Node): Promise<void> {
  if (node.proc.exitCode !== null || node.proc.signalCode !== null) return;
  node.proc.kill('SIGKILL');
  await waitExit(node.proc, 5000);
}

beforeAll(async () => {
  tmp = tempDir();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
}, 60_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const n of nodes) {
    await kill(n);
    rmSync(n.dir, { recursive: true, force: true });
  }
  tmp?.remove();
});

describe('worker against a read-only Redis node', () => {
  it('refuses to start against a replica, naming it (REDIS_MISCONFIGURED)', async () => {
    const master = await startRedis();
    const replica = await startRedis(master.port);
    const w = startWorker(replica.url, 'ro-start');
    expect(await waitExit(w.child, 60_000), w.text()).toBe(true);
    expect(w.child.exitCode).not.toBe(0);
    expect(w.text()).toMatch(/REDIS_MISCONFIGURED|is a read-only replica/);
    expect(w.text()).toContain(`127.0.0.1:${replica.port}`);
  }, 120_000);

  it('logs a bounded number of lines while its master is demoted (READONLY), recovers when it is promoted again, and SIGTERM ends it', async () => {
    const other = await startRedis();
    const replica = await startRedis(); // a master when the worker starts, demoted below
    const w = startWorker(replica.url, 'ro');
    await waitFor('worker started', () => w.lines().some((l) => l.msg === 'worker started'), 60_000);
    const demote = new Redis(replica.url, { maxRetriesPerRequest: 1 });
    await demote.replicaof('127.0.0.1', other.port);
    demote.disconnect();
    await waitFor('the outage line', () => w.lines().some((l) => /^redis unavailable: READONLY/.test(l.msg ?? '')), 60_000);
    // Let it run against the read-only node for a while: the count must not grow with time.
    // (Before: one "worker error" line per fetch attempt, ~7,600 lines a second.)
    await new Promise((r) => setTimeout(r, 5000));
    const during = w.lines();
    expect(during.filter((l) => /READONLY/.test(JSON.stringify(l))).length, w.text().slice(0, 3000)).toBe(1);
    // from the outage line on: that line, and at most one more (a changed reason)
    const from = during.findIndex((l) => /^redis unavailable: READONLY/.test(l.msg ?? ''));
    expect(during.length - from, w.text().slice(0, 3000)).toBeLessThanOrEqual(2);

    // promoted: the worker says so once, and takes jobs again
    const admin = new Redis(replica.url, { maxRetriesPerRequest: 1 });
    try {
      await admin.replicaof('NO', 'ONE');
      await waitFor('recovered line', () => w.lines().some((l) => /^redis recovered after \d+ s$/.test(l.msg ?? '')), 30_000);
      const queue = new SignQueue(admin, 'ro', configSchema.shape.worker.parse(undefined));
      const id = await queue.enqueue({
        event: { integration: 't', host: 'elsewhere.example', repository: 'a/b', tag: 'v1', receivedAt: new Date().toISOString() },
        registry: 'elsewhere.example',
        requestId: 'r1',
      });
      const failed = await waitFor('job run after recovery', () => w.lines().find((l) => l.job === id && l.msg === 'sign failed'), 30_000);
      expect(failed.code).toBe('REGISTRY_NOT_CONFIGURED');
      await queue.close();
    } finally {
      admin.disconnect();
    }
    expect(w.lines().filter((l) => l.level >= 50 && /redis/.test(l.msg ?? ''))).toHaveLength(1);

    w.child.kill('SIGTERM');
    expect(await waitExit(w.child, SHUTDOWN_MS + 15_000)).toBe(true);
    expect(w.child.exitCode).toBe(0);
  }, 180_000); // several bounded waits on child processes: more than the default 60 s on a loaded machine
});

describe('worker whose Redis master is gone', () => {
  it('logs the outage once and SIGTERM ends the process past worker.shutdownTimeoutMs', async () => {
    const master = await startRedis();
    const w = startWorker(master.url, 'gone');
    await waitFor('worker started', () => w.lines().some((l) => l.msg === 'worker started'), 60_000);
    await kill(master);
    await waitFor('the outage line', () => w.lines().some((l) => /^redis unavailable/.test(l.msg ?? '')), 30_000);
    // ioredis reconnects every ~2 s and each failure is an 'error' event: none of them is a line
    await new Promise((r) => setTimeout(r, 5000));
    const down = w.lines().filter((l) => /redis (still )?unavailable/.test(l.msg ?? ''));
    expect(down.length, w.text()).toBe(1);
    expect(w.lines().length, w.text()).toBeLessThanOrEqual(6);

    w.child.kill('SIGTERM');
    // Before: it waited forever for BullMQ's close (a QUIT queued for a Redis that is gone).
    expect(await waitExit(w.child, SHUTDOWN_MS + 15_000), w.text()).toBe(true);
    expect(w.child.exitCode).toBe(0);
    expect(w.text()).toMatch(/in-flight jobs did not finish in time/);
  }, 180_000); // several bounded waits on child processes: more than the default 60 s on a loaded machine
});

describe('signet start (receiver and worker) whose Redis master is gone', () => {
  it('SIGTERM ends the process: the worker within worker.shutdownTimeoutMs, the rest within 10 s more (src/cli.ts)', async () => {
    const master = await startRedis();
    const w = startWorker(master.url, 'gone-start', 'start', await freePort());
    await waitFor('worker started', () => w.lines().some((l) => l.msg === 'worker started'), 60_000);
    await kill(master);
    await waitFor('the outage line', () => w.lines().some((l) => /^redis unavailable/.test(l.msg ?? '')), 30_000);
    w.child.kill('SIGTERM');
    // the bound is shutdownTimeoutMs + the CLI's 10 s grace + slack for a loaded machine
    expect(await waitExit(w.child, SHUTDOWN_MS + 25_000), w.text()).toBe(true);
    expect([0, 1]).toContain(w.child.exitCode);
  }, 180_000); // several bounded waits on child processes: more than the default 60 s on a loaded machine
});
