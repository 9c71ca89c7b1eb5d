/**
 * require.pushers end to end on a real registry: Harbor PUSH_ARTIFACT (Default and CloudEvents)
 * and distribution notifications built from the recorded samples (test/fixtures/webhooks, the
 * same bytes as ../shared/research/webhook-samples), posted to signet (receiver + worker, real Redis). An
 * allowed pusher is signed (the worker re-decides with the pusher it vouches for, and the real
 * `cosign verify` accepts the signature); another pusher, a denied one and one named through an
 * `insecure: true` integration are answered as not signed with the reason, recorded as
 * skipped(reason) in the status store, and nothing is written to the registry.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backfill } from '../../src/backfill/backfill.js';
import { cosignVerify } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'conditions-pushers-secret-0123456789';
const sample = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));

let registry: RunningRegistry;
let signet: RunningSignet;
let keys: KeyDir;

beforeAll(async () => {
  keys = tempKeyDir();
  registry = await startRegistry(); // no notifications: only the posted payloads reach signet
  signet = await startSignet(
    `
registries:
  - host: ${registry.host}
    insecure: true
    aliases: ["harbor.example.com", "registry.example.com"]
integrations:
  - { name: harbor, kind: harbor, secret: "${SECRET}" }
  - { name: harbor-open, kind: harbor, insecure: true }
  - { name: dist, kind: distribution, secret: "${SECRET}" }
keys:
  - { name: k, provider: file, path: k.pem }
rules:
  - match: "${registry.host}/team-a/**"
    keys: [k]
    require:
      pushers:
        allow: ["robot$ci+*", "ci-bot"]
        deny: ["robot$ci+evil"]
`,
    { baseDir: keys.dir },
  );
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  keys?.remove();
});

/** Harbor's Default PUSH_ARTIFACT payload (the recorded sample) for this push and operator. */
function harborPush(repo: string, tag: string, digest: string, operator: string) {
  const body = sample('harbor-push_artifact.json');
  body.operator = operator;
  body.event_data.resources = [{ digest, tag, resource_url: `harbor.example.com/${repo}:${tag}` }];
  const [namespace, ...rest] = repo.split('/');
  body.event_data.repository = { ...body.event_data.repository, namespace, name: rest.join('/'), repo_full_name: repo };
  return body;
}

/** Harbor's CloudEvents payload (harbor.artifact.pushed). */
function harborCloudEvent(repo: string, tag: string, digest: string, operator: string) {
  const body = sample('harbor-push_artifact-cloudevents.json');
  body.operator = operator;
  body.data.resources = [{ digest, tag, resource_url: `harbor.example.com/${repo}:${tag}` }];
  body.data.repository = { ...body.data.repository, repo_full_name: repo };
  return body;
}

/** distribution's notification envelope (the recorded sample) for a manifest push by this actor. */
function distributionPush(repo: string, tag: string, digest: string, mediaType: string, size: number, actor: string) {
  const body = sample('distribution-push.json');
  const e = body.events[0];
  e.target = { ...e.target, mediaType, digest, size, length: size, repository: repo, tag, url: `https://registry.example.com/v2/${repo}/manifests/${digest}` };
  e.actor = { name: actor };
  return body;
}

async function post(integration: string, body: unknown, contentType = 'application/json') {
  const res = await fetch(`${signet.url}/hooks/${integration}`, {
    method: 'POST',
    headers: { 'content-type': contentType, authorization: `Bearer ${SECRET}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
}

async function signedAndVerified(repo: string, tag: string, digest: string): Promise<void> {
  await waitFor(`signature on ${repo}@${digest.slice(0, 19)}`, async () => (await getManifest(registry, repo, sigTag(digest))).status === 200);
  const v = await cosignVerify(`${registry.host}/${repo}:${tag}`, keys.pub);
  expect(v.ok, v.stderr).toBe(true);
  expect(v.payloads.map((p) => p.critical.image['docker-manifest-digest'])).toEqual([digest]);
  const status = await waitFor('signed status', async () =>
    (await signet.runtime.status.get(`${registry.host}/${repo}`, digest, tag)).find((s) => s.state === 'signed' && !s.key),
  );
  expect(status.rule).toBe(0);
}

/** Answered 200 with the reason, nothing queued, skipped(reason) in status, no signature in the registry. */
async function skipped(res: { status: number; json: any }, repo: string, tag: string, digest: string, reason: RegExp): Promise<void> {
  expect(res.status).toBe(200);
  expect(res.json.queued).toEqual([]);
  expect(res.json.ignored).toHaveLength(1);
  expect(res.json.ignored[0].ref).toContain(`/${repo}:${tag}`);
  expect(res.json.ignored[0].reason).toMatch(reason);
  const entries = await signet.runtime.status.get(`${registry.host}/${repo}`, digest, tag);
  expect(entries).toHaveLength(1);
  expect(entries[0]).toMatchObject({ state: 'skipped', rule: 0, digest, tag, requestId: res.json.requestId });
  expect(entries[0]!.reason).toMatch(reason);
  expect(entries[0]!.reason).toBe(res.json.ignored[0].reason);
  expect((await getManifest(registry, repo, sigTag(digest))).status).toBe(404);
}

describe('require.pushers on Harbor and distribution payloads, on a real registry', () => {
  it('Harbor: an allowed operator (robot account) is signed; cosign verifies', async () => {
    const img = await pushImage(registry, 'team-a/app/api', 'v1');
    const res = await post('harbor', harborPush('team-a/app/api', 'v1', img.digest, 'robot$ci+pusher'));
    expect(res.status).toBe(202);
    expect(res.json.queued).toHaveLength(1);
    await signedAndVerified('team-a/app/api', 'v1', img.digest);
  });

  it('Harbor CloudEvents: the same operator is signed', async () => {
    const img = await pushImage(registry, 'team-a/app/web', 'v1');
    const res = await post('harbor', harborCloudEvent('team-a/app/web', 'v1', img.digest, 'robot$ci+release'), 'application/cloudevents+json');
    expect(res.status).toBe(202);
    await signedAndVerified('team-a/app/web', 'v1', img.digest);
  });

  it('Harbor: another operator is skipped with the reason (answer and status), nothing written', async () => {
    const img = await pushImage(registry, 'team-a/app/api', 'v2');
    const res = await post('harbor', harborPush('team-a/app/api', 'v2', img.digest, 'mallory'));
    await skipped(res, 'team-a/app/api', 'v2', img.digest, /^rule 0: pusher "mallory" is not in require\.pushers\.allow$/);
  });

  it('Harbor: a deny-listed operator is skipped although the allow list matches it', async () => {
    const img = await pushImage(registry, 'team-a/app/api', 'v3');
    const res = await post('harbor', harborPush('team-a/app/api', 'v3', img.digest, 'robot$ci+evil'));
    await skipped(res, 'team-a/app/api', 'v3', img.digest, /^rule 0: pusher "robot\$ci\+evil" is denied by require\.pushers\.deny$/);
  });

  it('Harbor through an insecure: true integration: an allowed name does not satisfy the allow list', async () => {
    const img = await pushImage(registry, 'team-a/app/api', 'v4');
    const res = await post('harbor-open', harborPush('team-a/app/api', 'v4', img.digest, 'robot$ci+pusher'));
    await skipped(
      res,
      'team-a/app/api',
      'v4',
      img.digest,
      /^rule 0: rule requires a pusher \(require\.pushers\) and this push has none its integration vouches for$/,
    );
  });

  it('distribution actor.name: ci-bot is signed, someone else is skipped', async () => {
    const ct = 'application/vnd.docker.distribution.events.v1+json';
    const ok = await pushImage(registry, 'team-a/svc', 'v1');
    const res = await post('dist', distributionPush('team-a/svc', 'v1', ok.digest, ok.mediaType, ok.manifest.length, 'ci-bot'), ct);
    expect(res.status).toBe(202);
    await signedAndVerified('team-a/svc', 'v1', ok.digest);

    const other = await pushImage(registry, 'team-a/svc', 'v2');
    const res2 = await post('dist', distributionPush('team-a/svc', 'v2', other.digest, other.mediaType, other.manifest.length, 'alice'), ct);
    await skipped(res2, 'team-a/svc', 'v2', other.digest, /^rule 0: pusher "alice" is not in require\.pushers\.allow$/);
  });

  it('distribution without an actor (a registry without auth sends actor {}): skipped', async () => {
    const img = await pushImage(registry, 'team-a/svc', 'v3');
    const body = distributionPush('team-a/svc', 'v3', img.digest, img.mediaType, img.manifest.length, 'x');
    body.events[0].actor = {};
    const res = await post('dist', body, 'application/vnd.docker.distribution.events.v1+json');
    await skipped(res, 'team-a/svc', 'v3', img.digest, /has none its integration vouches for/);
  });

  it('backfill knows no pusher: the rule is reported not required with the reason, nothing queued', async () => {
    const queued: unknown[] = [];
    const rt = signet.runtime;
    const report = await backfill(
      { repo: 'team-a/svc' },
      { registries: rt.registries, rules: rt.rules, keys: rt.keys, enqueue: async (job) => (queued.push(job), 'job') },
    );
    expect(report.errors).toEqual([]);
    expect(queued).toEqual([]);
    expect(report.toSign).toEqual([]);
    // v2 and v3 were never signed; v1 was, but backfill cannot tell who pushed any of them
    expect(report.notRequired).toEqual({ 'rule 0: rule requires a pusher (require.pushers) and this push has none its integration vouches for': 3 });
  });
});
