/**
 * The walking skeleton on real parts: a real docker-registry sends real push notifications to
 * signet (in-process receiver + worker, real Redis), signet writes cosign signatures back, and the
 * real `cosign verify` decides.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignGenerateKeyPair, cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, pushIndex, sigTag, tagExisting } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { pendingJobs, startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'test-hook-secret-0123456789';
let registry: RunningRegistry;
/** A second registry that sends no notifications: pushes there reach signet only as Harbor webhooks. */
let quiet: RunningRegistry;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
const pub: Record<string, string> = {};

function writeKey(name: string, kind: 'rsa' | 'ec'): void {
  const { privateKey, publicKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, `${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  pub[name] = path.join(tmp.dir, `${name}.pub`);
  writeFileSync(pub[name]!, publicKey.export({ type: 'spki', format: 'pem' }));
}

beforeAll(async () => {
  tmp = tempDir();
  writeKey('rsa', 'rsa');
  writeKey('p256', 'ec');
  writeKey('other', 'ec');
  const cosignKey = await cosignGenerateKeyPair(tmp.dir, 'cosign-pw');
  pub['cosign'] = cosignKey.pubPath;

  const port = await freePort();
  registry = await startRegistry({
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
  });
  quiet = await startRegistry();
  const H = registry.host;
  const yaml = `
registries:
  - host: ${H}
    insecure: true
  - host: ${quiet.host}
    insecure: true
    aliases: ["harbor.local:8443"]
integrations:
  - name: harbor
    kind: harbor
    secret: "${SECRET}"
  - name: local
    kind: distribution
    secret: "${SECRET}"
keys:
  - { name: rsa, provider: file, path: rsa.pem }
  - { name: p256, provider: file, path: p256.pem }
  - { name: cosign, provider: file, path: cosign.key, password: "\${TEST_COSIGN_PASSWORD}" }
rules:
  - { match: "${H}/rsa/**", keys: [rsa] }
  - { match: "${H}/p256/**", keys: [p256] }
  - { match: "${H}/cosignkey/**", keys: [cosign] }
  - { match: "${H}/two/**", keys: [rsa, p256] }
  - { match: "${H}/byrepo/**", keys: [p256, rsa], identity: repository }
  - { match: "${H}/bytag/**", keys: [p256] }
  - { match: "${quiet.host}/**", keys: [p256] }
  - { match: "${H}/filtered/**", keys: [p256], tags: { include: ["v*"], exclude: ["*-dev"] } }
`;
  signet = await startSignet(yaml, { baseDir: tmp.dir, port, env: { TEST_COSIGN_PASSWORD: 'cosign-pw' } });
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await quiet?.stop();
  tmp?.remove();
});

const ref = (repo: string, digest: string) => `${registry.host}/${repo}@${digest}`;

/** Layers of the .sig manifest for a digest (0 when absent). */
async function sigLayers(repo: string, digest: string): Promise<any[]> {
  const m = await getManifest(registry, repo, sigTag(digest));
  if (m.status === 404) return [];
  return JSON.parse(m.body.toString()).layers;
}

async function signedWith(repo: string, digest: string, layers: number): Promise<any[]> {
  return waitFor(`${layers} signature(s) on ${repo}@${digest.slice(0, 19)}`, async () => {
    const l = await sigLayers(repo, digest);
    return l.length >= layers ? l : undefined;
  });
}

async function settle(): Promise<void> {
  await waitFor('queue drained', async () => (await pendingJobs(signet)) === 0);
}

describe('sign on push, verified by the real cosign', () => {
  it('RSA-2048 key: a push by tag ends in a signature cosign accepts; the wrong key is rejected', async () => {
    const img = await pushImage(registry, 'rsa/app', 'v1');
    await signedWith('rsa/app', img.digest, 1);
    const ok = await cosignVerify(`${registry.host}/rsa/app:v1`, pub['rsa']!);
    expect(ok.stderr).not.toMatch(/error/i);
    expect(ok.ok).toBe(true);
    expect(ok.payloads[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    expect(ok.payloads[0].critical.identity['docker-reference']).toBe(`${registry.host}/rsa/app:v1`);
    const wrong = await cosignVerify(`${registry.host}/rsa/app:v1`, pub['other']!);
    expect(wrong.ok).toBe(false);
  });

  it('P-256 key', async () => {
    const img = await pushImage(registry, 'p256/app', 'v1');
    await signedWith('p256/app', img.digest, 1);
    expect((await cosignVerify(ref('p256/app', img.digest), pub['p256']!)).ok).toBe(true);
    expect((await cosignVerify(ref('p256/app', img.digest), pub['rsa']!)).ok).toBe(false);
  });

  it('a key made by cosign generate-key-pair (encrypted cosign.key)', async () => {
    const img = await pushImage(registry, 'cosignkey/app', 'v1');
    await signedWith('cosignkey/app', img.digest, 1);
    expect((await cosignVerify(ref('cosignkey/app', img.digest), pub['cosign']!)).ok).toBe(true);
    expect((await cosignVerify(ref('cosignkey/app', img.digest), pub['p256']!)).ok).toBe(false);
  });

  it('a multi-arch index: the index and every child verify', async () => {
    const idx = await pushIndex(registry, 'p256/multi', 'v2', ['linux/amd64', 'linux/arm64', 'linux/s390x']);
    for (const d of [idx.digest, ...idx.children]) await signedWith('p256/multi', d, 1);
    for (const d of [idx.digest, ...idx.children]) {
      const v = await cosignVerify(ref('p256/multi', d), pub['p256']!);
      expect(v.ok, v.stderr).toBe(true);
      // children carry the index's tag identity, so a pull by tag of any platform matches
      expect(v.payloads[0].critical.identity['docker-reference']).toBe(`${registry.host}/p256/multi:v2`);
    }
    expect((await cosignVerify(`${registry.host}/p256/multi:v2`, pub['p256']!)).ok).toBe(true);
  });

  it('a rule with two keys: both verify', async () => {
    const img = await pushImage(registry, 'two/app', 'v1');
    const layers = await signedWith('two/app', img.digest, 2);
    expect(layers).toHaveLength(2);
    expect((await cosignVerify(ref('two/app', img.digest), pub['rsa']!)).ok).toBe(true);
    expect((await cosignVerify(ref('two/app', img.digest), pub['p256']!)).ok).toBe(true);
  });

  it('a repository no rule matches, and tags a rule filters out, are not signed', async () => {
    const none = await pushImage(registry, 'nobody/app', 'v1');
    const dev = await pushImage(registry, 'filtered/app', 'v1-dev');
    const latest = await pushImage(registry, 'filtered/app', 'latest');
    const release = await pushImage(registry, 'filtered/app', 'v1');
    await signedWith('filtered/app', release.digest, 1);
    await settle();
    expect(await sigLayers('nobody/app', none.digest)).toEqual([]);
    expect(await sigLayers('filtered/app', dev.digest)).toEqual([]);
    expect(await sigLayers('filtered/app', latest.digest)).toEqual([]);
    const reasons = signet.logs.flatMap((l) => l.ignored ?? []).map((i: any) => `${i.ref} ${i.reason}`);
    expect(reasons.some((r) => r.includes('nobody/app:v1') && r.includes('no rule'))).toBe(true);
    expect(reasons.some((r) => r.includes('filtered/app:v1-dev') && r.includes('exclude'))).toBe(true);
  });

  it('the same push delivered twice, and one digest under three tags: one signature per key (identity: repository)', async () => {
    const img = await pushImage(registry, 'byrepo/app', 'v1');
    await signedWith('byrepo/app', img.digest, 2);
    await tagExisting(registry, 'byrepo/app', img.digest, 'v1.0');
    await tagExisting(registry, 'byrepo/app', img.digest, 'stable');
    // deliver the first push again, by hand, exactly as the registry did
    const res = await fetch(`${signet.url}/hooks/local`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
      body: JSON.stringify({
        events: [
          {
            id: 'redelivered-1',
            action: 'push',
            target: {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: img.digest,
              repository: 'byrepo/app',
              tag: 'v1',
              url: `http://${registry.host}/v2/byrepo/app/manifests/${img.digest}`,
            },
            request: { host: registry.host },
          },
        ],
      }),
    });
    expect(res.status).toBe(202);
    await waitFor('three tag pushes and the redelivery processed', () =>
      ['v1.0', 'stable'].every((t) => signet.logs.some((l) => l.msg === 'signed' && String(l.ref).endsWith(`byrepo/app:${t}`))),
    );
    await settle();
    const layers = await sigLayers('byrepo/app', img.digest);
    expect(layers).toHaveLength(2);
    const v = await cosignVerify(ref('byrepo/app', img.digest), pub['rsa']!);
    expect(v.ok).toBe(true);
    expect(v.payloads.map((p) => p.critical.identity['docker-reference'])).toEqual([`${registry.host}/byrepo/app`]);
  });

  it('identity tag (default): one signature per key and tag, none for a repeated tag', async () => {
    const img = await pushImage(registry, 'bytag/app', 'v1');
    await signedWith('bytag/app', img.digest, 1);
    await tagExisting(registry, 'bytag/app', img.digest, 'v1.0');
    await tagExisting(registry, 'bytag/app', img.digest, 'stable');
    await tagExisting(registry, 'bytag/app', img.digest, 'stable');
    const layers = await signedWith('bytag/app', img.digest, 3);
    await settle();
    expect((await sigLayers('bytag/app', img.digest)).length).toBe(3);
    const v = await cosignVerify(ref('bytag/app', img.digest), pub['p256']!);
    expect(v.payloads.map((p) => p.critical.identity['docker-reference']).sort()).toEqual(
      ['stable', 'v1', 'v1.0'].map((t) => `${registry.host}/bytag/app:${t}`).sort(),
    );
    expect(layers.length).toBe(3);
  });

  it("signet's own signature pushes reach the receiver and cause no further signing", async () => {
    const img = await pushImage(registry, 'p256/loop', 'v1');
    await signedWith('p256/loop', img.digest, 1);
    const sigRef = `p256/loop:${sigTag(img.digest)}`;
    await waitFor('the .sig push notification', () =>
      signet.logs.some((l) => (l.ignored ?? []).some((i: any) => String(i.ref).includes(sigRef) && /signature/.test(i.reason))),
    );
    await settle();
    const jobsForLoop = signet.logs.filter((l) => l.msg === 'push queued' && l.queued.some((q: string) => q.includes('p256/loop')));
    expect(jobsForLoop.flatMap((l) => l.queued)).toEqual([`${registry.host}/p256/loop:v1@${img.digest}`]);
    expect(await sigLayers('p256/loop', img.digest)).toHaveLength(1);
  });

  it('Harbor webhooks (default and CloudEvents, tag and by-digest) end in signatures cosign accepts', async () => {
    const post = (body: unknown, type = 'application/json') =>
      fetch(`${signet.url}/hooks/harbor`, { method: 'POST', headers: { authorization: SECRET, 'content-type': type }, body: JSON.stringify(body) });
    const byTag = await pushImage(quiet, 'team-a/app', 'v1');
    const r1 = await post({
      type: 'PUSH_ARTIFACT',
      occur_at: 1755763200,
      operator: 'robot$ci',
      event_data: {
        resources: [{ digest: byTag.digest, tag: 'v1', resource_url: `harbor.local:8443/team-a/app:v1` }],
        repository: { name: 'app', namespace: 'team-a', repo_full_name: 'team-a/app', repo_type: 'private' },
      },
    });
    expect(r1.status).toBe(202);
    const byDigest = await pushImage(quiet, 'team-a/app', undefined);
    const r2 = await post(
      {
        specversion: '1.0',
        id: 'ce-1',
        type: 'harbor.artifact.pushed',
        source: '/projects/1/webhook/policies/1',
        operator: 'robot$ci',
        data: {
          resources: [{ digest: byDigest.digest, tag: byDigest.digest, resource_url: `${quiet.host}/team-a/app@${byDigest.digest}` }],
          repository: { name: 'app', namespace: 'team-a', repo_full_name: 'team-a/app', repo_type: 'private' },
        },
      },
      'application/cloudevents+json',
    );
    // a push by digest is untagged: the default rule (untagged: ignore) answers 2xx and does not queue it
    expect(r2.status).toBe(200);
    expect(((await r2.json()) as any).ignored[0].reason).toMatch(/untagged/);
    await waitFor('harbor by-tag push signed', async () => (await getManifest(quiet, 'team-a/app', sigTag(byTag.digest))).status === 200);
    const v = await cosignVerify(`${quiet.host}/team-a/app:v1`, pub['p256']!);
    expect(v.ok, v.stderr).toBe(true);
    // the identity names the configured host, not the alias Harbor used
    expect(v.payloads[0].critical.identity['docker-reference']).toBe(`${quiet.host}/team-a/app:v1`);
    await settle();
    expect((await getManifest(quiet, 'team-a/app', sigTag(byDigest.digest))).status).toBe(404);
  });

  it('a payload whose tag does not point at its digest is not signed (TAG_MOVED)', async () => {
    const a = await pushImage(quiet, 'team-b/app', 'v1');
    const b = await pushImage(quiet, 'team-b/app', 'v1'); // v1 moved to b
    const res = await fetch(`${signet.url}/hooks/harbor`, {
      method: 'POST',
      headers: { authorization: SECRET, 'content-type': 'application/json' },
      body: JSON.stringify({
        type: 'PUSH_ARTIFACT',
        event_data: { resources: [{ digest: a.digest, tag: 'v1', resource_url: `${quiet.host}/team-b/app:v1` }], repository: { repo_full_name: 'team-b/app' } },
      }),
    });
    expect(res.status).toBe(202);
    await waitFor('TAG_MOVED failure', () =>
      signet.logs.some((l) => l.msg === 'sign failed' && /TAG_MOVED/.test(l.err) && String(l.ref).includes('team-b/app')),
    );
    expect((await getManifest(quiet, 'team-b/app', sigTag(a.digest))).status).toBe(404);
    expect((await getManifest(quiet, 'team-b/app', sigTag(b.digest))).status).toBe(404);
  });

  it('a payload naming a registry host not in config is refused, and that host receives nothing', async () => {
    const { createServer } = await import('node:net');
    let connections = 0;
    const listener = createServer((sock) => {
      connections++;
      sock.destroy();
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const host = `127.0.0.1:${(listener.address() as { port: number }).port}`;
    try {
      const event = (h: string, url: string) => ({
        events: [
          {
            id: 'x',
            action: 'push',
            target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'a'.repeat(64)}`, repository: 'p256/app', tag: 'v9', url },
            request: { host: h },
          },
        ],
      });
      for (const body of [event(host, `http://${host}/v2/p256/app/manifests/v9`), event('', `http://${host}/v2/p256/app/manifests/v9`)]) {
        const res = await fetch(`${signet.url}/hooks/local`, {
          method: 'POST',
          headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        expect(res.status).toBe(200);
        expect(((await res.json()) as any).ignored[0].reason).toMatch(/not in registries/);
      }
      // the worker refuses it too, should such a job ever be queued
      await expect(signet.runtime.pipeline.sign({ host, repository: 'p256/app', tag: 'v9' })).rejects.toMatchObject({ code: 'REGISTRY_NOT_CONFIGURED' });
      await settle();
      expect(connections).toBe(0);
    } finally {
      listener.close();
    }
  });
});
