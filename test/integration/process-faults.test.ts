/**
 * Worker processes as operators run them (`signet worker`, a real child process): SIGTERM lets the
 * job in flight finish before exiting; SIGKILL mid-job leaves a stalled job that another worker
 * picks up, and the image still ends with exactly one signature per key.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignQueue } from '../../src/queue/sign-queue.js';
import { configSchema } from '../../src/config/schema.js';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { deletePrefix, REDIS_URL, uniquePrefix, waitFor } from '../helpers/signet.js';
import { signetArgv } from '../helpers/cli.js';

const prefix = uniquePrefix();

let registry: RunningRegistry;
let proxy: FaultProxy;
let tmp: { dir: string; remove: () => void };
let queue: SignQueue;
let redis: Redis;
const children: ChildProcess[] = [];

function startWorker(name: string): { child: ChildProcess; output: () => string } {
  let out = '';
  const cmd = signetArgv(['worker', '-c', path.join(tmp.dir, 'signet.yaml')]);
  const child = spawn(cmd.bin, cmd.args, {
    cwd: tmp.dir,
    env: { ...process.env, SIGNET_CONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  children.push(child);
  void name;
  return { child, output: () => out };
}

const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

beforeAll(async () => {
  tmp = tempDir();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(path.join(tmp.dir, 'k.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  const yaml = `redis: { url: "${REDIS_URL}", prefix: ${prefix} }
worker: { concurrency: 4, backoffMs: 200, lockDurationMs: 2000, stalledIntervalMs: 1000, shutdownTimeoutMs: 20000 }
registries: [{ host: "${proxy.host}", insecure: true }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${proxy.host}/**", keys: [k] }]
`;
  writeFileSync(path.join(tmp.dir, 'signet.yaml'), yaml);
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  queue = new SignQueue(redis, prefix, configSchema.shape.worker.parse(undefined));
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await queue?.close();
  redis?.disconnect();
  await deletePrefix(prefix);
  await proxy?.close();
  await registry?.stop();
  tmp?.remove();
});

const enqueue = (repository: string) =>
  queue.enqueue({
    event: { integration: 't', host: proxy.host, repository, tag: 'v1', receivedAt: new Date().toISOString() },
    registry: proxy.host,
    requestId: repository,
  });

async function layers(repo: string, digest: string): Promise<number> {
  const m = await getManifest(registry, repo, sigTag(digest));
  return m.status === 200 ? JSON.parse(m.body.toString()).layers.length : 0;
}

describe('worker processes', () => {
  it('SIGTERM: stops taking jobs, finishes the one in flight, exits 0', async () => {
    const img = await pushImage(registry, 'term/app', 'v1');
    // the .sig write is slow (3 s): the job is in flight when SIGTERM arrives
    proxy.faults.push({ times: 1, delayMs: 3000, match: (r) => r.method === 'PUT' && (r.url ?? '').includes('/term/app/manifests/sha256-') });
    const w = startWorker('term');
    await waitFor('worker ready', () => w.output().includes('worker started'), 30_000);
    const id = await enqueue('term/app');
    await waitFor('job in flight', async () => (await queue.queue.getJobState(id)) === 'active');
    await waitFor('slow PUT reached', () => proxy.log.some((l) => l.includes('/term/app/manifests/sha256-') && l.includes('delayed')));
    w.child.kill('SIGTERM');
    await waitFor('worker stopping', () => w.output().includes('finishing in-flight'));
    // a job queued after SIGTERM is not taken by the stopping worker
    const later = await enqueue('term/other');
    expect(await exited(w.child)).toBe(0);
    expect(await queue.queue.getJobState(id)).toBe('completed');
    expect(await queue.queue.getJobState(later)).toBe('waiting');
    expect(await layers('term/app', img.digest)).toBe(1);
    expect(w.output()).toMatch(/finishing in-flight/);
    await queue.queue.remove(later);
  });

  it('SIGKILL mid-job: the stalled job is picked up by another worker; exactly one signature', async () => {
    const img = await pushImage(registry, 'kill/app', 'v1');
    proxy.faults.push({ times: 1, delayMs: 4000, match: (r) => r.method === 'PUT' && (r.url ?? '').includes('/kill/app/manifests/sha256-') });
    const first = startWorker('kill-1');
    await waitFor('worker ready', () => first.output().includes('worker started'), 30_000);
    const id = await enqueue('kill/app');
    await waitFor('slow PUT reached', () => proxy.log.some((l) => l.includes('/kill/app/manifests/sha256-') && l.includes('delayed')));
    first.child.kill('SIGKILL');
    await exited(first.child);
    const second = startWorker('kill-2');
    const state = await waitFor(
      'job completed by the second worker',
      async () => ((await queue.queue.getJobState(id)) === 'completed' ? 'completed' : undefined),
      40_000,
      250,
    );
    expect(state).toBe('completed');
    // the killed worker's delayed PUT may still land after the proxy's delay: wait it out
    await new Promise((r) => setTimeout(r, 4500));
    expect(await layers('kill/app', img.digest)).toBe(1);
    expect(second.output(), second.output()).toMatch(/"msg":"signed"/);
    const v = await cosignVerify(`${registry.host}/kill/app:v1`, path.join(tmp.dir, 'k.pub'));
    expect(v.ok, v.stderr).toBe(true);
    expect(v.payloads).toHaveLength(1);
    second.child.kill('SIGTERM');
    expect(await exited(second.child)).toBe(0);
  });
});
