/**
 * The sign worker's Redis-outage state machine (workers/redis-outage.ts) driven directly, with
 * signet's real logger and a probe against real Redis nodes of the test's own: a flood of
 * READONLY errors is one line and one pause; failed probes add nothing; a change of reason is one
 * line; recovery is one line and one resume; other errors are logged once per message a minute.
 * (The BullMQ worker is a recorder of pause/resume calls: what is tested is signet's side.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { isRedisOutage, RedisOutage, writeProbe } from '../../workers/redis-outage.js';
import { freePort } from '../helpers/ports.js';
import { waitExit } from '../helpers/proc.js';
import { waitFor } from '../helpers/signet.js';

const procs: { proc: ChildProcess; dir: string }[] = [];

async function redisNode(replicaOf?: number): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'signet-outage-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  if (replicaOf) args.push('--replicaof', '127.0.0.1', String(replicaOf));
  const proc = spawn('redis-server', args, { stdio: 'ignore' });
  procs.push({ proc, dir });
  const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  c.on('error', () => undefined);
  try {
    await waitFor(`redis ${port}`, async () => (await c.ping().catch(() => '')) === 'PONG', 15_000);
  } finally {
    c.disconnect();
  }
  return { port, proc };
}

afterAll(async () => {
  for (const { proc, dir } of procs) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await waitExit(proc, 5000);
    rmSync(dir, { recursive: true, force: true });
  }
});

function harness() {
  const lines: Record<string, any>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write: (c, _e, cb) => (
        String(c)
          .split('\n')
          .filter(Boolean)
          .forEach((l) => lines.push(JSON.parse(l))),
        cb()
      ),
    }),
  });
  const calls: string[] = [];
  const worker = {
    pause: async () => void calls.push('pause'),
    resume: () => void calls.push('resume'),
    isPaused: () => calls.at(-1) === 'pause',
    isRunning: () => true,
  };
  return { lines, logger, calls, worker };
}

describe('RedisOutage', () => {
  it('READONLY flood: one line, one pause; probes on the replica fail quietly; promoted: one "recovered" line, one resume', async () => {
    const master = await redisNode();
    const replica = await redisNode(master.port);
    const conn = new Redis(replica.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    await waitFor('replica refuses writes', async () => ((await conn.set('x', '1').catch((e: Error) => e.message)) as string).startsWith('READONLY'));
    const { lines, logger, calls, worker } = harness();
    const outage = new RedisOutage({ worker, probe: writeProbe(conn, 'probe'), logger, initialDelayMs: 20, maxDelayMs: 100 });
    const readonly = Object.assign(new Error("READONLY You can't write against a read only replica."), { name: 'ReplyError' });
    for (let i = 0; i < 10_000; i++) outage.onError(readonly);
    expect(outage.down).toBe(true);
    // several probes go by (each refused with READONLY)
    await new Promise((r) => setTimeout(r, 600));
    expect(lines.map((l) => l.msg)).toEqual(["redis unavailable: READONLY You can't write against a read only replica."]);
    expect(lines[0]!.level).toBe(50);
    expect(calls).toEqual(['pause']);

    await conn.replicaof('NO', 'ONE');
    await waitFor('recovered', () => !outage.down, 10_000, 20);
    expect(lines.map((l) => l.msg)).toEqual([
      "redis unavailable: READONLY You can't write against a read only replica.",
      expect.stringMatching(/^redis recovered after \d+ s$/),
    ]);
    expect(calls).toEqual(['pause', 'resume']);
    outage.stop();
    conn.disconnect();
  });

  it('the node gone: one line for the outage, one for the change of reason, none per reconnect', async () => {
    const node = await redisNode();
    const conn = new Redis(node.port, '127.0.0.1', { maxRetriesPerRequest: null, retryStrategy: () => 50 });
    conn.on('error', () => undefined);
    await conn.ping();
    const { lines, logger, worker } = harness();
    const outage = new RedisOutage({ worker, probe: writeProbe(conn, 'probe'), logger, initialDelayMs: 20, maxDelayMs: 100 });
    outage.onError(new Error('LOADING Redis is loading the dataset in memory'));
    node.proc.kill('SIGKILL');
    await waitExit(node.proc, 5000);
    for (let i = 0; i < 50; i++) outage.onError(Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:${node.port}`), { code: 'ECONNREFUSED' }));
    await new Promise((r) => setTimeout(r, 500));
    expect(lines.map((l) => l.msg)).toEqual([
      'redis unavailable: LOADING Redis is loading the dataset in memory',
      `redis still unavailable: connect ECONNREFUSED 127.0.0.1:${node.port}`,
    ]);
    expect(outage.down).toBe(true);
    outage.stop();
    conn.disconnect();
  });

  it('other worker errors: once per message a minute, with a repeat count on the next line', () => {
    let now = 0;
    const { lines, logger, worker } = harness();
    const outage = new RedisOutage({ worker, probe: async () => undefined, logger, now: () => now });
    for (let i = 0; i < 100; i++) outage.onError(new Error('Missing lock for job 7. moveToFinished'));
    outage.onError(new Error('something else'));
    now = 61_000;
    outage.onError(new Error('Missing lock for job 7. moveToFinished'));
    expect(lines.map((l) => [l.msg, l.err, l.repeatedSinceLastLine])).toEqual([
      ['worker error', 'Missing lock for job 7. moveToFinished', undefined],
      ['worker error', 'something else', undefined],
      ['worker error', 'Missing lock for job 7. moveToFinished', 99],
    ]);
    expect(outage.down).toBe(false);
  });

  it('what counts as Redis being unavailable', () => {
    for (const m of [
      'READONLY x',
      'LOADING x',
      'MASTERDOWN x',
      'OOM command not allowed',
      'MISCONF x',
      'NOREPLICAS x',
      'connect ECONNREFUSED 127.0.0.1:1',
      'Connection is closed.',
    ]) {
      expect(isRedisOutage(new Error(m)), m).toBe(true);
    }
    for (const m of ['Missing lock for job 1. moveToFinished', 'job stalled more than allowable limit', 'ERR syntax error']) {
      expect(isRedisOutage(new Error(m)), m).toBe(false);
    }
  });
});
