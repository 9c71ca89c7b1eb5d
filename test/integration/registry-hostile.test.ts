/**
 * signet's registry client against a registry that misbehaves on purpose (the stand-in of
 * test/helpers/malicious-registry.ts): huge and dripping bodies are cut at their cap and at the
 * request's deadline, answers of the wrong shape are REGISTRY_PROTOCOL (not retried), a 401 with
 * a foreign token realm does not stick, Retry-After is capped, and listings are bounded.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backfill } from '../../src/backfill/backfill.js';
import { compileRules } from '../../src/config/rules.js';
import { registrySchema } from '../../src/config/schema.js';
import { MAX_RETRY_AFTER_SECONDS } from '../../src/edge/retry-after.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryDirectory } from '../../src/registry/directory.js';
import { startMaliciousRegistry, type MaliciousRegistry } from '../helpers/malicious-registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

let evil: MaliciousRegistry;
let client: RegistryClient | undefined;

beforeAll(async () => {
  evil = await startMaliciousRegistry();
});
afterAll(async () => {
  await evil?.stop();
});
afterEach(async () => {
  evil.tricks.length = 0;
  await client?.close();
  client = undefined;
});

function clientFor(host: string, extra: Record<string, unknown> = {}): RegistryClient {
  client = new RegistryClient(registrySchema.parse({ host, insecure: true, ...extra }));
  return client;
}

const manifestPath = (url: URL) => url.pathname.includes('/manifests/');

describe('size caps and the deadline', () => {
  it('a 1 GiB manifest (streamed, no length declared) is refused at 4 MiB with bounded RSS', async () => {
    evil.tricks.push({ kind: 'huge', bytes: GiB, times: 1, match: (_r, u) => manifestPath(u) });
    const c = clientFor(evil.host, { timeoutMs: 60_000 });
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const err = await c.getManifest('big/app', 'v1').catch((e: unknown) => e);
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL', retryable: false });
    expect(String((err as Error).message)).toMatch(/larger than 4 MiB, the limit for manifest answers/);
    // the read stopped near the cap: far less than the 1 GiB on offer was sent
    expect(evil.hugeBytesSent).toBeLessThan(64 * MiB);
    // generous: the old client buffered the whole body (2.1 GiB RSS measured in the issue)
    const growth = (peak - before) / MiB;
    console.log(`1 GiB manifest: RSS growth ${growth.toFixed(1)} MiB, ${(evil.hugeBytesSent / MiB).toFixed(1)} MiB sent before the cut`);
    expect(growth).toBeLessThan(128);
  });

  it('a body declared larger than the cap is refused before it is read', async () => {
    evil.tricks.push({ kind: 'huge', bytes: 5 * MiB, declare: true, times: 1, match: (_r, u) => manifestPath(u) });
    const err = await clientFor(evil.host)
      .getManifest('big/app', 'v1')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL', retryable: false });
    expect(String((err as Error).message)).toMatch(/larger than 4 MiB/);
  });

  it('a registry dripping a byte every 200 ms is cut at the deadline: retryable REGISTRY_UNAVAILABLE, "timed out"', async () => {
    // undici's body timer is per chunk (1.5 s here): a byte every 200 ms never trips it
    evil.tricks.push({ kind: 'drip', everyMs: 200, times: 1, match: (_r, u) => manifestPath(u) });
    const err = await clientFor(evil.host, { timeoutMs: 1500 })
      .getManifest('slow/app', 'v1')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_UNAVAILABLE', retryable: true });
    expect(String((err as Error).message)).toMatch(/timed out .*within 1500 ms/);
    await expect.poll(() => evil.open).toBe(0); // the connection was given up
  }, 20_000);

  it('a token service answering a huge body: refused at the token cap', async () => {
    evil.tricks.push({ kind: 'answer', status: 401, times: 1, headers: { 'www-authenticate': `Bearer realm="http://${evil.host}/token"` } });
    evil.tricks.push({ kind: 'huge', bytes: 10 * MiB, times: 1, match: (_r, u) => u.pathname === '/token' });
    const err = await clientFor(evil.host)
      .getManifest('tok/app', 'v1')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL' });
    expect(String((err as Error).message)).toMatch(/larger than 64 KiB, the limit for token answers/);
  });
});

describe('answers of the wrong shape', () => {
  const bodies: [string, string, RegExp][] = [
    ['the number 42', '42', /wrong shape \(got a JSON number\)/],
    ['an array', '[]', /wrong shape \(got an array\)/],
    ['an empty object', '{}', /wrong shape \(schemaVersion: /],
    [
      'a manifest without layers',
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x', digest: 'sha256:' + 'a'.repeat(64), size: 1 } }),
      /layers/,
    ],
    ['malformed JSON', '{"schemaVersion": 2,', /malformed JSON/],
    [
      'an index served as an image manifest',
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }),
      /served a application\/vnd\.oci\.image\.index\.v1\+json body as application\/vnd\.oci\.image\.manifest\.v1\+json/,
    ],
  ];
  for (const [name, body, message] of bodies) {
    it(`a manifest whose body is ${name}: REGISTRY_PROTOCOL, not retried`, async () => {
      evil.tricks.push({ kind: 'answer', status: 200, body, headers: { 'content-type': OCI_MANIFEST }, times: 1, match: (_r, u) => manifestPath(u) });
      const err = await clientFor(evil.host)
        .getManifest('odd/app', 'v1')
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL', retryable: false });
      expect(String((err as Error).message)).toMatch(message);
    });
  }

  it('a valid manifest is read, with its parsed document', async () => {
    const doc = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:' + 'a'.repeat(64), size: 2 },
      layers: [],
    };
    evil.tricks.push({
      kind: 'answer',
      status: 200,
      body: JSON.stringify(doc),
      headers: { 'content-type': OCI_MANIFEST },
      times: 1,
      match: (_r, u) => manifestPath(u),
    });
    const m = await clientFor(evil.host).getManifest('ok/app', 'v1');
    expect(m).toMatchObject({ mediaType: OCI_MANIFEST, document: doc });
  });

  it('a tag list whose tags are not strings, and a token answer without a token: REGISTRY_PROTOCOL', async () => {
    evil.tricks.push({ kind: 'answer', status: 200, body: '{"name":"x","tags":42}', times: 1, match: (_r, u) => u.pathname.endsWith('/tags/list') });
    await expect(clientFor(evil.host).listTags('odd/app')).rejects.toMatchObject({ code: 'REGISTRY_PROTOCOL', retryable: false });
    evil.tricks.push({ kind: 'answer', status: 401, times: 1, headers: { 'www-authenticate': `Bearer realm="http://${evil.host}/token"` } });
    evil.tricks.push({ kind: 'answer', status: 200, body: '{"expires_in":300}', times: 1, match: (_r, u) => u.pathname === '/token' });
    await expect(client!.getManifest('odd/app', 'v1')).rejects.toMatchObject({
      code: 'REGISTRY_PROTOCOL',
      message: expect.stringMatching(/token service .*no token/),
    });
  });

  it('registry error details in messages go through the redaction', async () => {
    const body = JSON.stringify({ errors: [{ code: 'DENIED', message: 'try again with Bearer abc.def.ghi' }] });
    evil.tricks.push({ kind: 'answer', status: 403, body, times: 1 });
    const err = (await clientFor(evil.host)
      .getManifest('x/app', 'v1')
      .catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'REGISTRY_DENIED' });
    expect(err.message).toContain('Bearer [redacted]');
    expect(err.message).not.toContain('abc.def.ghi');
  });
});

describe('auth challenges', () => {
  it('a 401 with a token realm on a foreign host fails that request only; the next one succeeds', async () => {
    const authed = await startMaliciousRegistry({ auth: true });
    try {
      authed.tricks.push({
        kind: 'answer',
        status: 401,
        times: 1,
        headers: { 'www-authenticate': 'Bearer realm="http://evil.example:9999/token",service="x"' },
      });
      const c = clientFor(authed.host);
      await expect(c.getManifest('team/app', 'v1')).rejects.toMatchObject({ code: 'REGISTRY_NOT_CONFIGURED', retryable: false });
      // behaving again: the registry's own realm; the foreign challenge was not kept
      expect(await c.getManifest('team/app', 'v1')).toBeUndefined(); // authenticated 404 (the stand-in has no images)
      expect(authed.tokens).toBe(1);
      // and the working challenge is kept: the next request goes out with a token at once
      const before = authed.requests.length;
      await c.getManifest('team/app', 'v2');
      expect(authed.requests.slice(before)).toEqual(['GET /v2/team/app/manifests/v2']);
    } finally {
      await authed.stop();
    }
  });
});

describe('Retry-After', () => {
  it('429 with Retry-After: 99999999 is retried within the cap (10 minutes)', async () => {
    evil.tricks.push({ kind: 'answer', status: 429, times: 1, headers: { 'retry-after': '99999999' } });
    const err = await clientFor(evil.host)
      .getManifest('busy/app', 'v1')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_THROTTLED', retryable: true, retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
    expect(String((err as Error).message)).toContain('Retry-After 600s, capped');
  });
});

describe('listing bounds', () => {
  it('an endless Link: next chain of tags stops at 1,000 pages with a clear error', async () => {
    evil.tricks.push({ kind: 'endless-list', perPage: 1, times: Infinity, match: (_r, u) => u.pathname.endsWith('/tags/list') });
    evil.requests.length = 0;
    const err = (await clientFor(evil.host)
      .listTags('loop/app')
      .catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL' });
    expect(err.message).toMatch(/tags of loop\/app listing stopped after 1000 pages and 1000 names \(limits: 1000 pages, 100000 names\)/);
    expect(evil.requests.filter((r) => r.includes('/tags/list')).length).toBe(1000);
  }, 60_000);

  it('backfill over an endless catalog: truncated at 100,000 names, reported as an error, the names read still used', async () => {
    evil.tricks.push({ kind: 'endless-list', perPage: 1000, times: Infinity, match: (_r, u) => u.pathname === '/v2/_catalog' });
    evil.requests.length = 0;
    const registries = new RegistryDirectory([registrySchema.parse({ host: evil.host, insecure: true })]);
    try {
      const report = await backfill({ dryRun: true }, { registries, rules: compileRules([]), keys: new Map() });
      expect(report.repositories).toBe(100_000);
      expect(report.errors).toEqual([
        { host: evil.host, error: expect.stringMatching(/^REGISTRY_PROTOCOL: registry .*: catalog listing stopped after 100 pages and 100000 names/) },
      ]);
      expect(evil.requests.filter((r) => r.startsWith('GET /v2/_catalog')).length).toBe(100);
    } finally {
      await registries.close();
    }
  }, 60_000);
});
