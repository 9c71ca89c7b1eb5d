/**
 * The sign worker against a real registry (behind the fault proxy), real Redis and cosign:
 * a tag pushed again while its first job is signing is signed too (Docker Hub and Quay name only
 * the tag, so both webhooks have the same dedup id); `${pusher}` is filled only from an
 * integration that authenticates its sender.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignVerify } from '../helpers/cosign.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { pendingJobs, startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'sign-worker-secret-0123456789';

let registry: RunningRegistry;
let proxy: FaultProxy;
let signet: RunningSignet;
let tmp: KeyDir;
let pub: string;

beforeAll(async () => {
  tmp = tempKeyDir();
  pub = tmp.pub;
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  const yaml = `
worker: { concurrency: 4, backoffMs: 100 }
registries:
  - { host: "${proxy.host}", insecure: true, aliases: ["docker.io"] }
integrations:
  - { name: hub, kind: dockerhub, secret: "${SECRET}" }
  - { name: open, kind: dockerhub, insecure: true }
  - { name: dist, kind: distribution, secret: "${SECRET}" }
keys:
  - { name: k, provider: file, path: k.pem }
rules:
  - match: "${proxy.host}/who/*"
    keys: [k]
    annotations: { pushed-by: "\${pusher}" }
  - match: "${proxy.host}/who-any/*"
    keys: [k]
    pusherFrom: any
    annotations: { pushed-by: "\${pusher}" }
  - { match: "${proxy.host}/**", keys: [k] }
`;
  signet = await startSignet(yaml, { baseDir: tmp.dir });
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  await registry?.stop();
  tmp?.remove();
});

/** What Docker Hub posts for a push of repository:tag (tag only, no digest). */
async function hubWebhook(integration: string, repository: string, tag: string, pusher = 'ci-bot'): Promise<number> {
  const body = {
    callback_url: 'https://registry.hub.docker.com/u/x/hook/1/',
    push_data: { pushed_at: 1, pusher, tag },
    repository: { repo_name: repository, name: repository.split('/')[1], namespace: repository.split('/')[0] },
  };
  const query = integration === 'hub' ? `?token=${SECRET}` : '';
  const res = await fetch(`${signet.url}/hooks/${integration}${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

/** What CNCF distribution posts for a manifest push: tag and digest. */
async function distributionWebhook(repository: string, tag: string, digest: string, mediaType: string): Promise<number> {
  const target = { mediaType, digest, repository, tag, url: `http://${proxy.host}/v2/${repository}/manifests/${digest}` };
  const body = { events: [{ id: digest, action: 'push', target, request: { host: proxy.host, method: 'PUT' }, actor: { name: 'ci' } }] };
  const res = await fetch(`${signet.url}/hooks/dist`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.docker.distribution.events.v1+json', authorization: `Bearer ${SECRET}` },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

const hasSig = async (repo: string, digest: string) => (await getManifest(registry, repo, sigTag(digest))).status === 200;

async function payloadAnnotations(repo: string, digest: string): Promise<Record<string, string>> {
  const v = await cosignVerify(`${registry.host}/${repo}@${digest}`, pub);
  expect(v.ok, v.stderr).toBe(true);
  expect(v.payloads).toHaveLength(1);
  return (v.payloads[0] as { optional?: Record<string, string> }).optional ?? {};
}

describe('tag-only pushes (Docker Hub, Quay)', () => {
  it('a tag pushed again while its first job is signing: both digests are signed', async () => {
    const repo = 'team/app';
    const first = await pushImage(registry, repo, 'v1');
    // the first job's .sig write is held 3 s: it has resolved v1 (to `first`) and is still active
    proxy.faults.push({ times: 1, delayMs: 3000, match: (r) => r.method === 'PUT' && (r.url ?? '').includes(`/${repo}/manifests/sha256-`) });
    expect(await hubWebhook('hub', repo, 'v1')).toBe(202);
    await waitFor('first job holding its .sig write', () => proxy.log.some((l) => l.includes(`/${repo}/manifests/sha256-`) && l.includes('delayed')));

    const second = await pushImage(registry, repo, 'v1');
    expect(second.digest).not.toBe(first.digest);
    expect(await hubWebhook('hub', repo, 'v1')).toBe(202);

    // every accepted job has finished: each webhook's digest must be signed by now
    await waitFor('queue drained', async () => (await pendingJobs(signet)) === 0, 30_000);
    expect(await hasSig(repo, first.digest)).toBe(true);
    expect(await hasSig(repo, second.digest), 'the re-pushed tag was folded into the running job and never signed').toBe(true);
    const v1 = await cosignVerify(`${registry.host}/${repo}@${first.digest}`, pub);
    expect(v1.ok, v1.stderr).toBe(true);
    const v2 = await cosignVerify(`${registry.host}/${repo}@${second.digest}`, pub);
    expect(v2.ok, v2.stderr).toBe(true);
  }, 60_000);

  it('the same with tag+digest events (distribution): each digest has its own job, both signed', async () => {
    const repo = 'team/dist';
    const first = await pushImage(registry, repo, 'v1');
    proxy.faults.push({ times: 1, delayMs: 3000, match: (r) => r.method === 'PUT' && (r.url ?? '').includes(`/${repo}/manifests/sha256-`) });
    expect(await distributionWebhook(repo, 'v1', first.digest, first.mediaType)).toBe(202);
    await waitFor('first job holding its .sig write', () => proxy.log.some((l) => l.includes(`/${repo}/manifests/sha256-`) && l.includes('delayed')));
    const second = await pushImage(registry, repo, 'v1');
    expect(await distributionWebhook(repo, 'v1', second.digest, second.mediaType)).toBe(202);
    await waitFor('queue drained', async () => (await pendingJobs(signet)) === 0, 30_000);
    expect(await hasSig(repo, first.digest)).toBe(true);
    expect(await hasSig(repo, second.digest)).toBe(true);
  }, 60_000);

  it('while a job waits, the same tag delivered again is still one job', async () => {
    const repo = 'team/dup';
    await pushImage(registry, repo, 'v1');
    const q = signet.service.queue!;
    // hold the worker off this job: pause the queue, deliver three times, resume
    await q.queue.pause();
    try {
      for (let i = 0; i < 3; i++) expect(await hubWebhook('hub', repo, 'v1')).toBe(202);
      const counts = await q.queue.getJobCounts('waiting', 'paused');
      expect(counts.waiting! + counts.paused!).toBe(1);
    } finally {
      await q.queue.resume();
    }
    await waitFor('queue drained', async () => (await pendingJobs(signet)) === 0, 30_000);
  }, 60_000);
});

describe('${pusher} is what the integration vouches for', () => {
  it('an authenticated integration fills ${pusher}', async () => {
    const img = await pushImage(registry, 'who/a', 'v1');
    expect(await hubWebhook('hub', 'who/a', 'v1', 'alice')).toBe(202);
    await waitFor('signed', () => hasSig('who/a', img.digest));
    expect(await payloadAnnotations('who/a', img.digest)).toMatchObject({ 'pushed-by': 'alice' });
  }, 60_000);

  it('an insecure (unauthenticated) integration does not: the annotation is left out, and the log says why', async () => {
    const img = await pushImage(registry, 'who/b', 'v1');
    expect(await hubWebhook('open', 'who/b', 'v1', 'release-manager')).toBe(202);
    await waitFor('signed', () => hasSig('who/b', img.digest));
    expect(await payloadAnnotations('who/b', img.digest)).not.toHaveProperty('pushed-by');
    expect(signet.logs.some((l) => l.msg?.includes('pusher not used') && l.integration === 'open')).toBe(true);
  }, 60_000);

  it('a rule with pusherFrom: any takes it from an insecure integration too', async () => {
    const img = await pushImage(registry, 'who-any/c', 'v1');
    expect(await hubWebhook('open', 'who-any/c', 'v1', 'bob')).toBe(202);
    await waitFor('signed', () => hasSig('who-any/c', img.digest));
    expect(await payloadAnnotations('who-any/c', img.digest)).toMatchObject({ 'pushed-by': 'bob' });
  }, 60_000);
});
