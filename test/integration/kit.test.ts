/**
 * Proves the test kit (test/helpers/*) against the real tools: CNCF distribution 2.8
 * (`docker-registry`) and cosign 2.5. Loopback only.
 *
 * Captured notification envelopes are stored in test/fixtures/distribution/ (written when
 * missing or with UPDATE_FIXTURES=1); every run checks that live envelopes still have exactly
 * the recorded JSON shape.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { MT, RegistryHttpError, getManifest, listTags, pushImage, pushIndex, sha256, sigTag, tagExisting, USER_AGENT } from '../helpers/images.js';
import { COSIGN3_BIN, cosignGenerateKeyPair, cosignSign, cosignVerify, tempDir } from '../helpers/cosign.js';
import { runProcess } from '../helpers/proc.js';
import { eventsOf, startHookReceiver, type CapturedRequest, type HookReceiver } from '../helpers/hooks.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixturesDir = join(here, '..', 'fixtures', 'distribution');
const KEY_PASSWORD = 'kit-test-password';

/** The JSON "shape" of a value: object keys (sorted) -> shape, arrays -> [shape of items], leaves -> type. */
function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : [];
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) o[k] = shape((v as Record<string, unknown>)[k]);
    return o;
  }
  return v === null ? 'null' : typeof v;
}

function saveOrCompareFixture(name: string, captured: CapturedRequest): void {
  const file = join(fixturesDir, name);
  if (!existsSync(file) || process.env.UPDATE_FIXTURES === '1') {
    mkdirSync(fixturesDir, { recursive: true });
    writeFileSync(file, captured.raw); // byte-exact, as the registry sent it
  }
  const recorded: unknown = JSON.parse(readFileSync(file, 'utf8'));
  expect(shape(captured.json)).toEqual(shape(recorded));
}

describe('ports', () => {
  it('freePort returns a bindable loopback port', async () => {
    const p = await freePort();
    expect(p).toBeGreaterThan(1023);
    expect(p).toBeLessThan(65536);
  });
});

describe('plain registry + cosign', () => {
  let reg: RunningRegistry;
  const tmp = tempDir('signet-kit-');
  let keys: { keyPath: string; pubPath: string };
  let otherKeys: { keyPath: string; pubPath: string };

  beforeAll(async () => {
    const t0 = Date.now();
    reg = await startRegistry();
    console.info(`[kit] plain registry ready in ${Date.now() - t0} ms at ${reg.url}`);
    mkdirSync(join(tmp.dir, 'a'));
    mkdirSync(join(tmp.dir, 'b'));
    [keys, otherKeys] = await Promise.all([cosignGenerateKeyPair(join(tmp.dir, 'a'), KEY_PASSWORD), cosignGenerateKeyPair(join(tmp.dir, 'b'), KEY_PASSWORD)]);
  }, 60_000);

  afterAll(async () => {
    await reg?.stop();
    tmp.remove();
    if (reg) expect(existsSync(reg.dataDir)).toBe(false);
  });

  it('pushes an image by tag and reads it back', async () => {
    const img = await pushImage(reg, 'kit/app', 'v1');
    expect(img.digest).toBe(sha256(img.manifest));
    const m = await getManifest(reg, 'kit/app', 'v1');
    expect(m.status).toBe(200);
    expect(m.digest).toBe(img.digest);
    expect(m.contentType).toBe(MT.ociManifest);
    expect(m.body.equals(img.manifest)).toBe(true);
    // random content: a second push gives another digest
    const img2 = await pushImage(reg, 'kit/app', 'v2');
    expect(img2.digest).not.toBe(img.digest);
    // variant: deterministic
    const a = await pushImage(reg, 'kit/det', undefined, { variant: 'x' });
    const b = await pushImage(reg, 'kit/det', undefined, { variant: 'x' });
    expect(a.digest).toBe(b.digest);
    const d = await pushImage(reg, 'kit/det', 'docker', { variant: 'x', mediaType: 'docker' });
    expect((await getManifest(reg, 'kit/det', 'docker')).contentType).toBe(MT.dockerManifest);
    expect(d.digest).not.toBe(a.digest);
  });

  it('pushes an OCI index with children by digest, and re-tags', async () => {
    const idx = await pushIndex(reg, 'kit/multi', 'latest', ['linux/amd64', 'linux/arm64']);
    expect(idx.children).toHaveLength(2);
    const m = await getManifest(reg, 'kit/multi', 'latest');
    expect(m.status).toBe(200);
    expect(m.contentType).toBe(MT.ociIndex);
    expect(m.digest).toBe(idx.digest);
    const parsed = JSON.parse(m.body.toString()) as { manifests: { digest: string; platform: { architecture: string } }[] };
    expect(parsed.manifests.map((x) => x.digest)).toEqual(idx.children);
    expect(parsed.manifests.map((x) => x.platform.architecture)).toEqual(['amd64', 'arm64']);
    for (const c of idx.children) expect((await getManifest(reg, 'kit/multi', c)).status).toBe(200);

    await tagExisting(reg, 'kit/multi', idx.digest, 'stable');
    expect((await getManifest(reg, 'kit/multi', 'stable')).digest).toBe(idx.digest);
    expect(await listTags(reg, 'kit/multi')).toEqual(['latest', 'stable']);
    expect((await getManifest(reg, 'kit/multi', 'nope')).status).toBe(404);
  });

  it('cosign 3.1 is installed and verifies a legacy .sig by key (no bundle referrer on the image)', async () => {
    const img = await pushImage(reg, 'kit/signed3', 'v1');
    const ref = `${reg.host}/kit/signed3@${img.digest}`;
    await cosignSign(ref, keys.keyPath, KEY_PASSWORD); // cosign 2.5 writes the legacy .sig
    const v3 = { bin: COSIGN3_BIN() };
    const version = await runProcess(COSIGN3_BIN(), ['version'], { timeoutMs: 30_000 });
    expect(version.stdout + version.stderr).toMatch(/GitVersion/);
    const good = await cosignVerify(ref, keys.pubPath, [], v3);
    expect(good.ok, good.stderr).toBe(true);
    expect(good.payloads[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    const bad = await cosignVerify(ref, otherKeys.pubPath, [], v3);
    expect(bad.ok).toBe(false);
  });

  it('cosign signs; verify accepts the right key and rejects another key', async () => {
    const img = await pushImage(reg, 'kit/signed', 'v1');
    const ref = `${reg.host}/kit/signed@${img.digest}`;
    const t0 = Date.now();
    await cosignSign(ref, keys.keyPath, KEY_PASSWORD);
    const signMs = Date.now() - t0;

    // the legacy .sig manifest cosign wrote
    const sig = await getManifest(reg, 'kit/signed', sigTag(img.digest));
    expect(sig.status).toBe(200);
    expect(sig.contentType).toBe(MT.ociManifest);
    const sigManifest = JSON.parse(sig.body.toString()) as {
      layers: { mediaType: string; annotations: Record<string, string> }[];
    };
    expect(sigManifest.layers).toHaveLength(1);
    expect(sigManifest.layers[0]!.mediaType).toBe('application/vnd.dev.cosign.simplesigning.v1+json');
    expect(sigManifest.layers[0]!.annotations['dev.cosignproject.cosign/signature']).toMatch(/^[A-Za-z0-9+/=]+$/);

    const t1 = Date.now();
    const good = await cosignVerify(ref, keys.pubPath);
    const verifyMs = Date.now() - t1;
    expect(good.ok, good.stderr).toBe(true);
    expect(good.payloads).toHaveLength(1);
    expect(good.payloads[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    expect(good.payloads[0].critical.identity['docker-reference']).toBe(`${reg.host}/kit/signed`);
    expect(good.payloads[0].critical.type).toBe('cosign container image signature');

    // by tag works too (cosign resolves the tag to the digest)
    expect((await cosignVerify(`${reg.host}/kit/signed:v1`, keys.pubPath)).ok).toBe(true);

    const bad = await cosignVerify(ref, otherKeys.pubPath);
    expect(bad.ok).toBe(false);
    expect(bad.payloads).toEqual([]);
    expect(bad.stderr).toMatch(/no matching signatures|invalid signature/i);

    const unsigned = await pushImage(reg, 'kit/signed', 'unsigned');
    const none = await cosignVerify(`${reg.host}/kit/signed@${unsigned.digest}`, keys.pubPath);
    expect(none.ok).toBe(false);
    expect(none.stderr).toMatch(/no signatures found/i);
    console.info(`[kit] cosign sign ${signMs} ms, cosign verify ${verifyMs} ms`);
  }, 60_000);

  it('cosign signs an index by tag: the .sig is on the index digest', async () => {
    const idx = await pushIndex(reg, 'kit/msigned', 'v1', ['linux/amd64', 'linux/arm64']);
    await cosignSign(`${reg.host}/kit/msigned@${idx.digest}`, keys.keyPath, KEY_PASSWORD);
    expect((await getManifest(reg, 'kit/msigned', sigTag(idx.digest))).status).toBe(200);
    expect((await getManifest(reg, 'kit/msigned', sigTag(idx.children[0]!))).status).toBe(404);
    const v = await cosignVerify(`${reg.host}/kit/msigned:v1`, keys.pubPath);
    expect(v.ok, v.stderr).toBe(true);
    expect(v.payloads[0].critical.image['docker-manifest-digest']).toBe(idx.digest);
  }, 60_000);
});

describe('notifications', () => {
  const SECRET = 'kit-s3cret';
  let recv: HookReceiver;
  let reg: RunningRegistry;
  let regIgnoring: RunningRegistry;
  let recvIgnoring: HookReceiver;

  beforeAll(async () => {
    recv = await startHookReceiver();
    recvIgnoring = await startHookReceiver();
    [reg, regIgnoring] = await Promise.all([
      startRegistry({
        notifyUrl: `${recv.url}/hooks/distribution`,
        notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
      }),
      startRegistry({
        notifyUrl: `${recvIgnoring.url}/hooks/distribution`,
        notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
        notifyIgnoredMediaTypes: ['application/octet-stream'],
        notifyIgnoredActions: ['pull'],
      }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([reg?.stop(), regIgnoring?.stop()]);
    await Promise.all([recv?.close(), recvIgnoring?.close()]);
  });

  it('delivers a manifest push event (and blob push events) with the configured header', async () => {
    const t0 = Date.now();
    const img = await pushImage(reg, 'team-a/api', 'v1.2.3');
    const pushedAt = Date.now();
    const isManifestPush = (r: CapturedRequest): boolean =>
      eventsOf(r).some((e) => e.action === 'push' && e.target?.digest === img.digest && e.target?.tag === 'v1.2.3');
    const hit = await recv.waitFor(isManifestPush, 10_000);
    console.info(`[kit] manifest push event arrived ${hit.receivedAt - pushedAt} ms after the PUT returned (push took ${pushedAt - t0} ms)`);

    expect(hit.method).toBe('POST');
    expect(hit.path).toBe('/hooks/distribution');
    expect(hit.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(hit.headers['content-type']).toBe('application/vnd.docker.distribution.events.v1+json');
    // pretty-printed with a 3-space indent
    expect(hit.raw.toString()).toMatch(/^\{\n {3}"events": \[\n/);

    const events = eventsOf(hit);
    expect(events).toHaveLength(1); // 2.8 sends one event per envelope
    const ev = events[0];
    expect(ev.action).toBe('push');
    expect(ev.target).toMatchObject({
      mediaType: MT.ociManifest,
      digest: img.digest,
      size: img.manifest.length,
      length: img.manifest.length,
      repository: 'team-a/api',
      url: `${reg.url}/v2/team-a/api/manifests/${img.digest}`,
      tag: 'v1.2.3',
    });
    expect(ev.request).toMatchObject({ method: 'PUT', host: reg.host });
    expect(typeof ev.request.addr).toBe('string');
    expect(ev.request.useragent).toBe(USER_AGENT);
    expect(ev.actor).toEqual({}); // no auth -> empty actor
    expect(typeof ev.source.addr).toBe('string');
    expect(typeof ev.source.instanceID).toBe('string');
    expect(typeof ev.id).toBe('string');
    expect(Number.isNaN(Date.parse(ev.timestamp))).toBe(false);
    saveOrCompareFixture('captured-manifest-push.json', hit);

    // blob pushes are notified too, as application/octet-stream
    const blob = await recv.waitFor((r) => eventsOf(r).some((e) => e.action === 'push' && e.target?.digest === img.layerDigest), 10_000);
    const bev = eventsOf(blob)[0];
    expect(bev.target.mediaType).toBe('application/octet-stream');
    expect(bev.target.url).toBe(`${reg.url}/v2/team-a/api/blobs/${img.layerDigest}`);
    expect(bev.target.tag).toBeUndefined();
    saveOrCompareFixture('captured-blob-push.json', blob);
  }, 30_000);

  it('push by digest has no target.tag; an index push carries the index media type', async () => {
    const img = await pushImage(reg, 'team-a/bydigest', undefined);
    const hit = await recv.waitFor((r) => eventsOf(r).some((e) => e.target?.digest === img.digest && e.action === 'push'));
    expect(eventsOf(hit)[0].target.tag).toBeUndefined();

    const idx = await pushIndex(reg, 'team-a/multi', 'v2', ['linux/amd64', 'linux/arm64']);
    const ih = await recv.waitFor((r) => eventsOf(r).some((e) => e.target?.digest === idx.digest && e.action === 'push'));
    expect(eventsOf(ih)[0].target).toMatchObject({ mediaType: MT.ociIndex, tag: 'v2', repository: 'team-a/multi' });
  }, 30_000);

  it('ignoredmediatypes [application/octet-stream] + ignore.actions [pull] drop blob and pull events', async () => {
    const img = await pushImage(regIgnoring, 'team-b/api', 'v1');
    await getManifest(regIgnoring, 'team-b/api', 'v1'); // a pull
    await recvIgnoring.waitFor((r) => eventsOf(r).some((e) => e.target?.digest === img.digest));
    await new Promise((r) => setTimeout(r, 1000));
    const all = recvIgnoring.requests.flatMap(eventsOf);
    expect(all.every((e) => e.target.mediaType !== 'application/octet-stream')).toBe(true);
    expect(all.every((e) => e.action === 'push')).toBe(true);
    // while the default registry does send pull events
    await getManifest(reg, 'team-a/api', 'v1.2.3');
    await recv.waitFor((r) => eventsOf(r).some((e) => e.action === 'pull' && e.target?.repository === 'team-a/api'));
  }, 30_000);
});

describe('htpasswd registry (plain http)', () => {
  const user = { username: 'alice', password: 'wonder-land' };
  let reg: RunningRegistry;
  const tmp = tempDir('signet-kit-');
  let keys: { keyPath: string; pubPath: string };

  beforeAll(async () => {
    [reg, keys] = await Promise.all([startRegistry({ auth: { kind: 'htpasswd', ...user } }), cosignGenerateKeyPair(tmp.dir, KEY_PASSWORD)]);
  }, 60_000);
  afterAll(async () => {
    await reg?.stop();
    tmp.remove();
  });

  it('accepts pushes only with the right credentials', async () => {
    await expect(pushImage(reg, 'priv/app', 'v1')).rejects.toMatchObject({ status: 401 });
    await expect(pushImage(reg, 'priv/app', 'v1', { auth: { ...user, password: 'wrong' } })).rejects.toBeInstanceOf(RegistryHttpError);
    const img = await pushImage(reg, 'priv/app', 'v1', { auth: user });
    expect((await getManifest(reg, 'priv/app', 'v1')).status).toBe(401);
    const m = await getManifest(reg, 'priv/app', 'v1', { auth: user });
    expect(m.status).toBe(200);
    expect(m.digest).toBe(img.digest);
  });

  it('cosign signs and verifies with --registry-username/--registry-password', async () => {
    const img = await pushImage(reg, 'priv/signed', 'v1', { auth: user });
    const ref = `${reg.host}/priv/signed@${img.digest}`;
    await cosignSign(ref, keys.keyPath, KEY_PASSWORD, [], { auth: user });
    expect((await cosignVerify(ref, keys.pubPath, [], { auth: user })).ok).toBe(true);
    const anon = await cosignVerify(ref, keys.pubPath);
    expect(anon.ok).toBe(false);
    expect(anon.stderr).toMatch(/UNAUTHORIZED|401/);
  }, 60_000);
});

describe('token-auth registry', () => {
  const user = { username: 'bob', password: 'builder-pw' };
  let reg: RunningRegistry;
  let recv: HookReceiver;
  const tmp = tempDir('signet-kit-');
  let keys: { keyPath: string; pubPath: string };

  beforeAll(async () => {
    recv = await startHookReceiver();
    [reg, keys] = await Promise.all([
      startRegistry({ auth: { kind: 'token', ...user }, notifyUrl: `${recv.url}/hooks/distribution` }),
      cosignGenerateKeyPair(tmp.dir, KEY_PASSWORD),
    ]);
  }, 60_000);
  afterAll(async () => {
    await reg?.stop();
    await recv?.close();
    tmp.remove();
  });

  it('challenges with Bearer realm/service/scope', async () => {
    const { httpRequest, header } = await import('../helpers/http.js');
    const r = await httpRequest(`${reg.url}/v2/tok/app/manifests/v1`);
    expect(r.status).toBe(401);
    expect(header(r, 'www-authenticate')).toBe(
      `Bearer realm="${reg.tokenServer!.realm}",service="${reg.tokenServer!.service}",scope="repository:tok/app:pull"`,
    );
  });

  it('accepts pushes only with the right credentials; actor.name is the token subject', async () => {
    await expect(pushImage(reg, 'tok/app', 'v1')).rejects.toMatchObject({ status: 401 });
    await expect(pushImage(reg, 'tok/app', 'v1', { auth: { ...user, password: 'nope' } })).rejects.toMatchObject({
      status: 401,
    });
    expect(reg.tokenServer!.refused()).toBeGreaterThanOrEqual(2);
    const img = await pushImage(reg, 'tok/app', 'v1', { auth: user });
    expect(reg.tokenServer!.issued()).toBeGreaterThanOrEqual(1);
    expect((await getManifest(reg, 'tok/app', 'v1')).status).toBe(401);
    expect((await getManifest(reg, 'tok/app', 'v1', { auth: user })).digest).toBe(img.digest);

    const hit = await recv.waitFor((r) => eventsOf(r).some((e) => e.target?.digest === img.digest && e.action === 'push'));
    expect(eventsOf(hit)[0].actor).toEqual({ name: user.username });
  });

  it('RS256-signed tokens are accepted too', async () => {
    const rs = await startRegistry({ auth: { kind: 'token', alg: 'RS256', ...user } });
    try {
      await expect(pushImage(rs, 'tok/rs', 'v1', { auth: { ...user, password: 'x' } })).rejects.toMatchObject({
        status: 401,
      });
      const img = await pushImage(rs, 'tok/rs', 'v1', { auth: user });
      expect((await getManifest(rs, 'tok/rs', 'v1', { auth: user })).digest).toBe(img.digest);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${rs.logs()}`);
    } finally {
      await rs.stop();
    }
  }, 30_000);

  it('cosign signs and verifies through the token flow', async () => {
    const img = await pushImage(reg, 'tok/signed', 'v1', { auth: user });
    const ref = `${reg.host}/tok/signed@${img.digest}`;
    await cosignSign(ref, keys.keyPath, KEY_PASSWORD, [], { auth: user });
    const v = await cosignVerify(ref, keys.pubPath, [], { auth: user });
    expect(v.ok, v.stderr).toBe(true);
  }, 60_000);
});

describe('TLS registry (self-signed)', () => {
  let reg: RunningRegistry;
  const tmp = tempDir('signet-kit-');
  let keys: { keyPath: string; pubPath: string };

  beforeAll(async () => {
    [reg, keys] = await Promise.all([startRegistry({ tls: true }), cosignGenerateKeyPair(tmp.dir, KEY_PASSWORD)]);
  }, 60_000);
  afterAll(async () => {
    await reg?.stop();
    tmp.remove();
  });

  it('serves https with the exposed CA', async () => {
    expect(reg.url.startsWith('https://')).toBe(true);
    expect(reg.caFile).toBeTruthy();
    await expect(pushImage({ url: reg.url }, 'tls/app', 'v0')).rejects.toThrow(/self[- ]signed|certificate/i);
    const img = await pushImage(reg, 'tls/app', 'v1');
    expect((await getManifest(reg, 'tls/app', 'v1')).digest).toBe(img.digest);
  });

  it('cosign works with --registry-cacert and fails without it', async () => {
    const img = await pushImage(reg, 'tls/signed', 'v1');
    const ref = `${reg.host}/tls/signed@${img.digest}`;
    await cosignSign(ref, keys.keyPath, KEY_PASSWORD, [], { caFile: reg.caFile, allowHttp: false });
    const v = await cosignVerify(ref, keys.pubPath, [], { caFile: reg.caFile, allowHttp: false });
    expect(v.ok, v.stderr).toBe(true);
    const noCa = await cosignVerify(ref, keys.pubPath, [], { allowHttp: false });
    expect(noCa.ok).toBe(false);
    // ggcr pings https first and, for a loopback host, falls back to plain http when TLS fails,
    // so the error is either the x509 failure or the http fallback being refused.
    expect(noCa.stderr).toMatch(/certificate|x509|HTTP request to an HTTPS server/i);
  }, 60_000);
});
