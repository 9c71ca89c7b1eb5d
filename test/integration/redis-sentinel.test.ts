/**
 * signet on Redis Sentinel (one master, one replica, three sentinels, real redis-server
 * processes), under a stream of real pushes to a real registry whose notifications reach signet
 * (receiver and worker in one process). Mid-stream the master goes away: once by SENTINEL
 * FAILOVER (the old master is demoted), once by SIGKILL (then started again). Every push must end
 * signed exactly once: none answered 202 and lost (the receiver acknowledges only what the replica
 * has, redis.ack), no duplicate signature. Prints the recovery time of each fault.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSentinel, type SentinelSetup } from '../helpers/redis-topology.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'sentinel-secret-0123456789';
const PUSHES = 120;
const FAULT_AT = 40;
let tmp: { dir: string; remove: () => void };
let sentinel: SentinelSetup;
let registry: RunningRegistry;
let signet: RunningSignet;

beforeAll(async () => {
  tmp = tempDir();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(path.join(tmp.dir, 'k.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  sentinel = await startSentinel({ replicas: 1 });
  const port = await freePort();
  registry = await startRegistry({
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
    notifyIgnoredMediaTypes: ['application/octet-stream'],
    notifyBackoff: '500ms',
  });
  signet = await startSignet(
    `
worker: { concurrency: 8, attempts: 20, backoffMs: 200, lockDurationMs: 3000, stalledIntervalMs: 1000 }
registries: [{ host: "${registry.host}", insecure: true }]
integrations: [{ name: local, kind: distribution, secret: "${SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${registry.host}/**", keys: [k], identity: repository }]
`,
    { baseDir: tmp.dir, port, redis: { sentinel: sentinel.config, ack: { replicas: 'auto', timeoutMs: 500 } } },
  );
}, 90_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await sentinel?.stop();
  tmp?.remove();
});

async function layers(repo: string, digest: string): Promise<number> {
  const m = await getManifest(registry, repo, sigTag(digest));
  return m.status === 200 ? JSON.parse(m.body.toString()).layers.length : 0;
}

/** Pushes PUSHES images (4 at a time), running `fault` once FAULT_AT are pushed; returns them and when the fault began. */
async function stream(name: string, fault: () => Promise<void>): Promise<{ pushed: { repo: string; digest: string }[]; faultAt: number }> {
  const pushed: { repo: string; digest: string }[] = [];
  let next = 0;
  let faultAt = 0;
  let faulting: Promise<void> | undefined;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < PUSHES) {
        const i = next++;
        if (i === FAULT_AT) {
          faultAt = Date.now();
          faulting = fault();
        }
        const repo = `${name}/app${i}`;
        const img = await pushImage(registry, repo, 'v1');
        pushed.push({ repo, digest: img.digest });
      }
    }),
  );
  await faulting;
  return { pushed, faultAt };
}

/** Waits for every push to be signed; counts lost (answered 202, never signed) and duplicated signatures; reports recovery. */
async function settle(name: string, run: { pushed: { repo: string; digest: string }[]; faultAt: number }) {
  await waitFor(
    'every push signed',
    async () => (await Promise.all(run.pushed.map((p) => layers(p.repo, p.digest)))).every((c) => c >= 1),
    120_000,
    1000,
  ).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 2000)); // late redeliveries land, then count
  const final = await Promise.all(run.pushed.map((p) => layers(p.repo, p.digest)));
  const queued = new Set(signet.logs.filter((l) => l.msg === 'push queued').flatMap((l) => (l.queued as string[]).filter((ref) => ref.includes(`/${name}/`))));
  const lost = run.pushed.filter((p, i) => final[i] === 0 && [...queued].some((ref) => ref.includes(`/${p.repo}:`)));
  const after = (l: Record<string, any>) => l.time >= run.faultAt;
  const refused = signet.logs.filter((l) => after(l) && l.msg?.startsWith('queue unavailable'));
  const lastRefused = refused.length ? refused[refused.length - 1]!.time : run.faultAt;
  const recovered = signet.logs.find((l) => l.msg === 'push queued' && l.time > lastRefused && (l.queued as string[]).some((r) => r.includes(`/${name}/`)));
  const recoveryMs = recovered ? recovered.time - run.faultAt : NaN;
  const report = {
    pushes: run.pushed.length,
    signed: final.filter((c) => c >= 1).length,
    answered202NeverSigned: lost.length,
    neverSigned: final.filter((c) => c === 0).length,
    duplicateSignatures: final.filter((c) => c > 1).length,
    answered503: refused.length,
    recoveryMs,
  };
  process.stdout.write(`\nredis-sentinel ${name}: ${JSON.stringify(report)}\n`);
  // a push not signed: lost (no job) or late (a job still retrying)? its jobs and log lines say
  const unsigned = run.pushed.filter((_p, i) => final[i] === 0);
  if (unsigned.length) {
    const jobs = await signet.service.queue!.queue.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed']);
    for (const p of unsigned) {
      const mine = jobs.filter((j) => j?.data?.event?.repository === p.repo);
      const states = await Promise.all(mine.map(async (j) => `${j.id} ${await j.getState()} attempts=${j.attemptsMade} ${j.failedReason ?? ''}`));
      process.stdout.write(`  unsigned ${p.repo}: jobs [${states.join('; ')}]\n`);
      for (const l of signet.logs.filter((x) => JSON.stringify(x).includes(`/${p.repo}`))) {
        process.stdout.write(`    +${l.time - run.faultAt} ms ${l.msg} ${l.err ?? ''}\n`);
      }
    }
  }
  if (process.env.SIGNET_DEBUG_HA) {
    for (const l of signet.logs.filter(
      (x) => x.time >= run.faultAt - 1000 && (x.msg?.startsWith('queue unavailable') || x.msg === 'push queued' || x.level >= 40),
    )) {
      process.stdout.write(`  +${l.time - run.faultAt} ms ${l.msg.slice(0, 30)} ${l.err ?? ''} ${(l.queued ?? []).join(',').slice(-40)}\n`);
    }
  }
  return report;
}

describe('Redis Sentinel', () => {
  it(`SENTINEL FAILOVER during ${PUSHES} pushes: no push answered 202 is lost, none signed twice`, async () => {
    const old = await sentinel.master();
    const run = await stream('failover', async () => {
      const s = sentinel.sentinels[0]!.client();
      try {
        await s.call('SENTINEL', 'FAILOVER', sentinel.masterName);
      } finally {
        s.disconnect();
      }
      await sentinel.waitNewMaster(old);
    });
    const report = await settle('failover', run);
    expect(await sentinel.master()).not.toBe(old);
    expect(report.answered202NeverSigned).toBe(0);
    expect(report.neverSigned).toBe(0);
    expect(report.duplicateSignatures).toBe(0);
    const p = run.pushed[FAULT_AT]!;
    expect((await cosignVerify(`${registry.host}/${p.repo}@${p.digest}`, path.join(tmp.dir, 'k.pub'))).ok).toBe(true);
  }, 240_000);

  it(`SIGKILL of the master during ${PUSHES} pushes, then its restart: no push answered 202 is lost, none signed twice`, async () => {
    const old = await sentinel.master();
    const run = await stream('sigkill', async () => {
      const node = sentinel.node(old);
      await node.kill();
      await sentinel.waitNewMaster(old);
      await node.start(); // comes back with its AOF, and is made a replica of the new master
    });
    const report = await settle('sigkill', run);
    expect(await sentinel.master()).not.toBe(old);
    expect(report.answered202NeverSigned).toBe(0);
    expect(report.neverSigned).toBe(0);
    expect(report.duplicateSignatures).toBe(0);
  }, 240_000);
});
