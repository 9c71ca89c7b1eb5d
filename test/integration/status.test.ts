/**
 * Signing status per (digest, rule, key) through the real pipeline: pending while a job runs,
 * signed with both keys, failed with code and reason, skipped with reason; read over
 * GET /api/v1/images/{ref}/status (by tag and by digest) and with `signet status`. Redis is read
 * first (issue 19 item 2): while the registry refuses signet's credentials, status by tag and by
 * digest still show the recorded failure, and the failed resolution is reported beside it with
 * its code. Pushes a rule's tag filter or no rule excludes are recorded by the receiver as
 * skipped(reason) and logged once at info (item 3).
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { tempDir } from '../helpers/cosign.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { pushImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { REDIS_URL, startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
const API_TOKEN = 'status-api-token-0123456789';
const HOOK_SECRET = 'status-hook-secret-0123456789';

beforeAll(async () => {
  tmp = tempDir();
  for (const k of ['a', 'b']) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(path.join(tmp.dir, `${k}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  }
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  signet = await startSignet(
    `
server: { apiToken: "${API_TOKEN}" }
worker: { concurrency: 4, attempts: 2, backoffMs: 100 }
registries: [{ host: "${proxy.host}", insecure: true }]
integrations: [{ name: dist, kind: distribution, secret: "${HOOK_SECRET}" }]
keys: [{ name: a, provider: file, path: a.pem }, { name: b, provider: file, path: b.pem }]
rules:
  - { match: "${proxy.host}/team/**", keys: [a, b] }
  - { match: "${proxy.host}/tagged/**", keys: [a], tags: { include: ["v*"] } }
`,
    { baseDir: tmp.dir },
  );
});
afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  await registry?.stop();
  tmp?.remove();
});

const enqueue = (repository: string, tag: string, digest?: string) =>
  signet.service.queue!.enqueue({
    event: { integration: 't', host: proxy.host, repository, tag, ...(digest ? { digest } : {}), receivedAt: new Date().toISOString() },
    registry: proxy.host,
    requestId: `st-${repository}`,
  });
const cliConfig = () => {
  const cfg = path.join(tmp.dir, 'status-cli.yaml');
  writeFileSync(
    cfg,
    `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }
registries: [{ host: "${proxy.host}", insecure: true }]
keys: [{ name: a, provider: file, path: a.pem }, { name: b, provider: file, path: b.pem }]
rules: [{ match: "${proxy.host}/team/**", keys: [a, b] }]
`,
  );
  return cfg;
};
const cli = async (...args: string[]) => {
  const lines: string[] = [];
  const code = await main(
    [...args, '-c', cliConfig()],
    (l) => lines.push(l),
    (l) => lines.push(l),
  );
  return { code, text: lines.join('\n') };
};
/** A distribution notification for one manifest push, posted to the receiver. */
const hook = async (repository: string, tag: string | undefined, digest: string) => {
  const body = {
    events: [
      {
        id: `ev-${repository}-${tag}`,
        action: 'push',
        target: {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest,
          size: 1,
          repository,
          ...(tag ? { tag } : {}),
          url: `http://${proxy.host}/v2/${repository}/manifests/${digest}`,
        },
        request: { host: proxy.host, method: 'PUT' },
        actor: { name: 'ci' },
      },
    ],
  };
  const res = await fetch(`${signet.url}/hooks/dist`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${HOOK_SECRET}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
};
const api = async (ref: string) => {
  const res = await fetch(`${signet.url}/api/v1/images/${ref}/status`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
  return { status: res.status, body: (await res.json()) as any };
};

describe('signing status', () => {
  it('pending while in flight, then signed per key; by tag and by digest', async () => {
    const img = await pushImage(registry, 'team/app', 'v1');
    proxy.faults.push({ times: 1, delayMs: 1500, match: (r) => r.method === 'PUT' && (r.url ?? '').includes('/team/app/manifests/sha256-') });
    await enqueue('team/app', 'v1');
    const pending = await waitFor('pending status', async () => {
      const { body } = await api(`${proxy.host}/team/app:v1`);
      return body.statuses?.find((s: any) => s.state === 'pending') ? body : undefined;
    });
    expect(pending.image.digest).toBe(img.digest);
    const done = await waitFor('signed status', async () => {
      const { body } = await api(`${proxy.host}/team/app:v1`);
      return body.statuses?.filter((s: any) => s.state === 'signed').length === 3 ? body : undefined;
    });
    expect(done.rule).toEqual({ index: 0, keys: ['a', 'b'] });
    const perKey = done.statuses.filter((s: any) => s.key);
    expect(perKey.map((s: any) => [s.key, s.state, s.digest, s.rule])).toEqual([
      ['a', 'signed', img.digest, 0],
      ['b', 'signed', img.digest, 0],
    ]);
    expect(perKey[0].reason).toBe(`signed as ${proxy.host}/team/app:v1`);
    expect(Date.parse(perKey[0].updatedAt)).toBeGreaterThanOrEqual(Date.parse(perKey[0].createdAt));
    // kept for status.retentionDays (default 30)
    const ttl = await signet.runtime.lockRedis.ttl(`${signet.prefix}:status:${proxy.host}/team/app@${img.digest}`);
    expect(ttl).toBeGreaterThan(29 * 86400);
    expect(ttl).toBeLessThanOrEqual(30 * 86400);
    const byDigest = await api(`${proxy.host}/team/app@${img.digest}`);
    expect(byDigest.body.statuses.filter((s: any) => s.key).map((s: any) => s.key)).toEqual(['a', 'b']);
  });

  it('failed with its code and reason; skipped with its reason; unknown images and bad refs', async () => {
    await pushImage(registry, 'team/denied', 'v1');
    proxy.faults.push({ times: Infinity, status: 403, match: (r) => (r.url ?? '').includes('/team/denied/') });
    await enqueue('team/denied', 'v1');
    // (the API resolves the tag in the registry, which refuses everything for now: read the store)
    const failed = await waitFor('failed status', async () =>
      (await signet.runtime.status.get(`${proxy.host}/team/denied`, undefined, 'v1')).find((s) => s.state === 'failed'),
    );
    proxy.faults.length = 0;
    expect((await api(`${proxy.host}/team/denied:v1`)).body.statuses.find((s: any) => s.state === 'failed').code).toBe('REGISTRY_DENIED');
    expect(failed).toMatchObject({ code: 'REGISTRY_DENIED', repository: `${proxy.host}/team/denied`, tag: 'v1' });

    await pushImage(registry, 'tagged/app', 'latest');
    await enqueue('tagged/app', 'latest');
    const skipped = await waitFor('skipped status', async () =>
      (await api(`${proxy.host}/tagged/app:latest`)).body.statuses?.find((s: any) => s.state === 'skipped'),
    );
    expect(skipped.reason).toMatch(/not in rule's tags.include/);

    expect((await api(`${proxy.host}/team/nothing:v1`)).status).toBe(404);
    expect((await api(`${proxy.host}/Team/x:v1`)).status).toBe(400);
    expect((await api(`${proxy.host}/team/x%2F..%2Fy:v1`)).status).toBe(400);
    const none = await pushImage(registry, 'other/app', 'v1');
    const other = await api(`${proxy.host}/other/app@${none.digest}`);
    expect(other.body).toMatchObject({ rule: { none: `no rule matches ${proxy.host}/other/app` }, statuses: [] });
  });

  it('signet status IMAGE_REF prints the same', async () => {
    const cfg = path.join(tmp.dir, 'status.yaml');
    writeFileSync(
      cfg,
      `redis: { url: "${REDIS_URL}", prefix: ${signet.prefix} }
registries: [{ host: "${proxy.host}", insecure: true }]
keys: [{ name: a, provider: file, path: a.pem }, { name: b, provider: file, path: b.pem }]
rules: [{ match: "${proxy.host}/team/**", keys: [a, b] }]
`,
    );
    const lines: string[] = [];
    expect(
      await main(
        ['status', `${proxy.host}/team/app:v1`, '-c', cfg],
        (l) => lines.push(l),
        (l) => lines.push(l),
      ),
    ).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/rule 0: keys a, b/);
    expect(text).toMatch(/key a: signed \(signed as /);
    expect(text).toMatch(/key b: signed/);
    const j: string[] = [];
    await main(
      ['status', `${proxy.host}/team/denied:v1`, '--json', '-c', cfg],
      (l) => j.push(l),
      (l) => j.push(l),
    );
    expect(JSON.parse(j.join('\n')).statuses.find((s: any) => s.state === 'failed').code).toBe('REGISTRY_DENIED');
  });

  it('reads Redis first: with the registry refusing signet, status by tag and by digest show the recorded failure (item 2)', async () => {
    const img = await pushImage(registry, 'team/creds', 'v1');
    const other = await pushImage(registry, 'team/creds2', 'v1');
    // wrong registry credentials, as far as signet can tell: every request is refused
    proxy.faults.push({ times: Infinity, status: 403, match: (r) => (r.url ?? '').includes('/team/creds') });
    try {
      await enqueue('team/creds', 'v1', img.digest); // the webhook named tag and digest
      await enqueue('team/creds2', 'v1'); // a tag-only webhook (Quay, Docker Hub)
      for (const repo of ['team/creds', 'team/creds2']) {
        await waitFor(`${repo} failed`, async () =>
          (await signet.runtime.status.get(`${proxy.host}/${repo}`, undefined, 'v1')).find((s) => s.state === 'failed'),
        );
      }
      const before = proxy.log.length;
      const byTag = await api(`${proxy.host}/team/creds:v1`);
      expect(byTag.status).toBe(200);
      expect(byTag.body.image.digest).toBe(img.digest);
      expect(byTag.body.statuses.find((s: any) => s.state === 'failed')).toMatchObject({ code: 'REGISTRY_DENIED', tag: 'v1', digest: img.digest });
      expect(byTag.body.resolution).toBeUndefined();
      // the records named the digest: the registry was not asked
      expect(proxy.log.slice(before).filter((l) => l.includes('/team/creds/'))).toEqual([]);
      const byDigest = await api(`${proxy.host}/team/creds@${img.digest}`);
      expect(byDigest.status).toBe(200);
      expect(byDigest.body.statuses).toHaveLength(1);
      expect(byDigest.body.statuses[0]).toMatchObject({ state: 'failed', code: 'REGISTRY_DENIED', tag: 'v1' });

      // a tag whose failure came before its digest was known: the resolution is tried, fails the
      // same way, and the answer is what Redis holds plus that error with its code
      const tagOnly = await api(`${proxy.host}/team/creds2:v1`);
      expect(tagOnly.status).toBe(200);
      expect(tagOnly.body.statuses.map((s: any) => [s.state, s.code])).toEqual([['failed', 'REGISTRY_DENIED']]);
      expect(tagOnly.body.resolution.code).toBe('REGISTRY_DENIED');
      expect(tagOnly.body.image.digest).toBeUndefined();

      const t = await cli('status', `${proxy.host}/team/creds:v1`);
      expect(t.code).toBe(0);
      expect(t.text).toMatch(/push: failed REGISTRY_DENIED \(/);
      const d = await cli('status', `${proxy.host}/team/creds@${img.digest}`);
      expect(d.code).toBe(0);
      expect(d.text).not.toContain('no signing recorded');
      expect(d.text).toMatch(/push :v1: failed REGISTRY_DENIED/);
      const t2 = await cli('status', `${proxy.host}/team/creds2:v1`);
      expect(t2.code).toBe(0);
      expect(t2.text).toMatch(/push: failed REGISTRY_DENIED/);
      expect(t2.text).toMatch(/registry: REGISTRY_DENIED: /);
    } finally {
      proxy.faults.length = 0;
    }
    // with nothing recorded, a tag is still resolved (and its digest's records read)
    const fresh = await api(`${proxy.host}/team/creds2:v1`);
    expect(fresh.body.resolution).toBeUndefined();
    expect(fresh.body.image.digest).toBe(other.digest);
  });

  it('a push a tag filter or no rule excludes is recorded as skipped(reason) by the receiver and logged at info (item 3)', async () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const filtered = await hook('tagged/app', 'nightly', digest);
    expect(filtered.status).toBe(200);
    expect(filtered.json.ignored[0].reason).toMatch(/tags\.include/);
    const unruled = await hook('elsewhere/app', 'v9', digest);
    expect(unruled.status).toBe(200);
    expect(unruled.json.ignored[0].reason).toBe(`no rule matches ${proxy.host}/elsewhere/app`);

    const f = await signet.runtime.status.get(`${proxy.host}/tagged/app`, digest, 'nightly');
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({
      state: 'skipped',
      rule: 1,
      tag: 'nightly',
      digest,
      requestId: filtered.json.requestId,
      reason: filtered.json.ignored[0].reason,
    });
    const u = await signet.runtime.status.get(`${proxy.host}/elsewhere/app`, digest, 'v9');
    expect(u).toHaveLength(1);
    expect(u[0]).toMatchObject({ state: 'skipped', tag: 'v9', reason: `no rule matches ${proxy.host}/elsewhere/app` });
    expect(u[0]!.rule).toBeUndefined();
    // one info line per push, with its request id and reason
    for (const [res, ref] of [
      [filtered, 'tagged/app:nightly'],
      [unruled, 'elsewhere/app:v9'],
    ] as const) {
      const lines = signet.logs.filter((l) => l.requestId === res.json.requestId && String(l.msg).startsWith('push not signed: '));
      expect(lines).toHaveLength(1);
      expect(lines[0]!.level).toBe(30);
      expect(lines[0]!.ref).toContain(ref);
    }
    // status shows it: by tag (API, CLI) and by digest
    const byTag = await api(`${proxy.host}/tagged/app:nightly`);
    expect(byTag.body.statuses.map((s: any) => [s.state, s.reason])).toEqual([['skipped', filtered.json.ignored[0].reason]]);
    const c = await cli('status', `${proxy.host}/elsewhere/app@${digest}`);
    expect(c.text).toMatch(/push :v9: skipped \(no rule matches /);
    // nothing was queued for either
    expect(filtered.json.queued).toEqual([]);
    expect(unruled.json.queued).toEqual([]);
    // an untagged manifest (a platform manifest, a referrer) is dropped without a record or an info line
    const child = `sha256:${'cd'.repeat(32)}`;
    const untagged = await hook('team/multi', undefined, child);
    expect(untagged.json.ignored[0].reason).toMatch(/^untagged manifest/);
    expect(await signet.runtime.status.get(`${proxy.host}/team/multi`, child, undefined)).toEqual([]);
    expect(signet.logs.filter((l) => l.requestId === untagged.json.requestId && String(l.msg).startsWith('push not signed'))).toEqual([]);
  });
});
