/**
 * What the signing code reads from a registry outside RegistryClient's own methods (blobs,
 * referrers indexes, the referrers fallback tag, the legacy .sig), against a registry stand-in
 * that answers what a real registry would not: every answer is schema-checked, a malformed one
 * is REGISTRY_PROTOCOL (or, where the caller treats it so, "no referrers API" / "unreadable"),
 * and a blob is capped while it streams.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { KeyProvider } from '../../../src/kms/types.js';
import { RegistryClient } from '../../../src/registry/client.js';
import { attachBundles, attachLegacySignatures } from '../../helpers/signing-keys.js';
import { signStatement } from '../../../src/signing/bundle.js';
import { parseSignatureManifest } from '../../../src/signing/legacy-sig.js';
import type { DigestLock } from '../../../src/signing/lock.js';
import { simpleSigningPayload } from '../../../src/signing/payload.js';
import { getBlob, listReferrersApi, MAX_REFERRER_PAGES, parseIndex } from '../../../src/signing/registry-ops.js';
import { startMaliciousRegistry, type MaliciousRegistry } from '../../helpers/malicious-registry.js';

const D = `sha256:${'ab'.repeat(32)}`;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const desc = (digest: string) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 10 });
const noLock = { withLock: <T>(_n: string, fn: () => Promise<T>) => fn() } as unknown as DigestLock;

let reg: MaliciousRegistry;
let client: RegistryClient;

function key(name: string): KeyProvider {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { name, publicKeyPem: async () => pem, sign: async (_d, payload) => sign('sha256', payload!, privateKey) };
}

/** The stand-in answers GETs of `path` (exact pathname) with this body and content type, always. */
function serve(path: string, body: string, contentType = 'application/json', headers: Record<string, string> = {}) {
  reg.tricks.push({
    match: (req, u) => req.method === 'GET' && u.pathname === path,
    times: Infinity,
    kind: 'answer',
    status: 200,
    headers: { 'content-type': contentType, ...headers },
    body,
  });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

beforeAll(async () => {
  reg = await startMaliciousRegistry();
  client = new RegistryClient({ host: reg.host, insecure: true, aliases: [], authHosts: [], maxConcurrency: 4, timeoutMs: 10_000, verifyWrites: false });
});
afterAll(async () => {
  await client.close();
  await reg.stop();
});
beforeEach(() => {
  reg.tricks.length = 0;
  reg.requests.length = 0;
});

describe('referrers indexes are schema-checked', () => {
  it('parseIndex: malformed JSON, a Docker manifest list and an entry of the wrong type are REGISTRY_PROTOCOL', async () => {
    const bad = [
      '{"schemaVersion":2,"manifests":[',
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifests: [] }),
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [desc(D), { digest: 42, mediaType: 'x', size: 'big' }] }),
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ ...desc(D), annotations: { a: 1 } }] }),
      '42',
    ];
    for (const body of bad) expect(await codeOf(Promise.resolve().then(() => parseIndex(Buffer.from(body), 'test index'))), body).toBe('REGISTRY_PROTOCOL');
    expect(parseIndex(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [desc(D)] })), 'test index')).toEqual([desc(D)]);
  });

  it('a referrers API whose first answer is not a referrers index (an entry of the wrong type) counts as no API', async () => {
    serve(`/v2/team/app/referrers/${D}`, JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ digest: 'nope', mediaType: 7 }] }), INDEX);
    expect(await listReferrersApi(client, 'team/app', D)).toBeUndefined();
  });

  it('the fallback tag served with an entry of the wrong type: REGISTRY_PROTOCOL before anything is signed or written', async () => {
    // not served as an index type, so the registry client's media-type check does not apply: the referrers schema does
    serve(
      `/v2/team/app/manifests/sha256-${'ab'.repeat(32)}`,
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [desc(D), { digest: D, size: -1 }] }),
    );
    const statement = signStatement(D);
    const code = await codeOf(attachBundles(client, 'team/app', desc(D), [{ key: key('k'), statement }], noLock));
    expect(code).toBe('REGISTRY_PROTOCOL');
    expect(reg.requests.filter((r) => !r.startsWith('GET '))).toEqual([]);
  });

  it(`referrers pages follow Link on this registry only, at most ${MAX_REFERRER_PAGES} pages`, async () => {
    const path = `/v2/team/app/referrers/${D}`;
    const page = (i: number) => JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [desc(`sha256:${String(i % 10).repeat(64)}`)] });
    for (let i = 0; i < MAX_REFERRER_PAGES + 10; i++) {
      reg.tricks.push({
        match: (_req, u) => u.pathname === path && (u.searchParams.get('p') ?? '0') === String(i),
        times: Infinity,
        kind: 'answer',
        status: 200,
        headers: { 'content-type': INDEX, link: `<${path}?p=${i + 1}>; rel="next"` },
        body: page(i),
      });
    }
    // a client of its own: the one above saw this registry answer 404 (no referrers API) and remembers it
    const fresh = new RegistryClient({ host: reg.host, insecure: true, aliases: [], authHosts: [], maxConcurrency: 4, timeoutMs: 10_000, verifyWrites: false });
    const all = await listReferrersApi(fresh, 'team/app', D);
    expect(all).toHaveLength(MAX_REFERRER_PAGES);
    expect(reg.requests).toHaveLength(MAX_REFERRER_PAGES);

    reg.tricks.length = 0;
    reg.requests.length = 0;
    serve(path, page(1), INDEX, { link: `<http://evil.example${path}?p=1>; rel="next"` });
    expect(await listReferrersApi(fresh, 'team/app', D)).toHaveLength(1);
    expect(reg.requests).toHaveLength(1);
    await fresh.close();
  });

  it('a registry that answers 404 to the referrers API is not asked again for a while (support is per registry)', async () => {
    const other = new RegistryClient({ host: reg.host, insecure: true, aliases: [], authHosts: [], maxConcurrency: 4, timeoutMs: 10_000, verifyWrites: false });
    expect(await listReferrersApi(other, 'team/app', D)).toBeUndefined();
    expect(await listReferrersApi(other, 'team/other', `sha256:${'cd'.repeat(32)}`)).toBeUndefined();
    expect(reg.requests.filter((r) => r.includes('/referrers/'))).toHaveLength(1);
    await other.close();
  });
});

describe('the legacy .sig is schema-checked', () => {
  it('a .sig that is JSON but not a manifest (layers not descriptors): REGISTRY_PROTOCOL, nothing written over it', async () => {
    const digest = `sha256:${'cd'.repeat(32)}`;
    const payload = simpleSigningPayload(`${reg.host}/team/app`, digest);
    for (const body of ['{"layers":5}', '{"layers":[null]}', JSON.stringify({ layers: [{ digest: 'x', mediaType: 'y' }] })]) {
      reg.tricks.length = 0;
      reg.requests.length = 0;
      serve(`/v2/team/app/manifests/sha256-${'cd'.repeat(32)}.sig`, body);
      const code = await codeOf(attachLegacySignatures(client, 'team/app', digest, [{ key: key('k'), payload }], noLock));
      expect(code, body).toBe('REGISTRY_PROTOCOL');
      expect(
        reg.requests.filter((r) => r.startsWith('PUT ') || r.startsWith('POST ')),
        body,
      ).toEqual([]);
    }
  });

  it('a JSON object without layers holds no signatures (as before); layers are read as descriptors', () => {
    expect(parseSignatureManifest({ schemaVersion: 2, manifests: [] }, 'test .sig')).toEqual([]);
    expect(parseSignatureManifest({ layers: [{ ...desc(D), annotations: { a: 'b' } }] }, 'test .sig')).toEqual([{ ...desc(D), annotations: { a: 'b' } }]);
    expect(() => parseSignatureManifest({ layers: [{ ...desc(D), size: 1.5 }] }, 'test .sig')).toThrow(expect.objectContaining({ code: 'REGISTRY_PROTOCOL' }));
  });
});

describe('getBlob', () => {
  it('caps a blob while it streams: a 256 MiB blob is unreadable at 1 MiB, and little more is ever sent', async () => {
    const digest = `sha256:${'ef'.repeat(32)}`;
    reg.tricks.push({ match: (_req, u) => u.pathname.includes('/blobs/'), times: 1, kind: 'huge', bytes: 256 * 1024 * 1024 });
    const sentBefore = reg.hugeBytesSent;
    const r = await getBlob(client, 'team/app', digest, 1024 * 1024);
    expect(r).toEqual({ status: 'unreadable', why: `larger than ${1024 * 1024} bytes` });
    // bounded: the read stops at the cap (kernel buffers hold a few MiB more at most)
    await new Promise((res) => setTimeout(res, 200));
    expect(reg.hugeBytesSent - sentBefore).toBeLessThan(32 * 1024 * 1024);
  });

  it('a declared content-length over the cap: unreadable without reading the body', async () => {
    reg.tricks.push({ match: (_req, u) => u.pathname.includes('/blobs/'), times: 1, kind: 'huge', bytes: 64 * 1024 * 1024, declare: true });
    expect(await getBlob(client, 'team/app', D, 4096)).toMatchObject({ status: 'unreadable' });
  });
});
