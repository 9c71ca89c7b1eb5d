/**
 * signet's registry client against a real docker-registry: concurrent uploads of the same blob to
 * the same repository go up once (distribution answers 500 to a HEAD of a blob whose link another
 * request is writing), and every caller gets the digest once the registry serves the blob. Blobs
 * it uploaded are remembered (the shared empty config of referrers costs no HEAD each time) and
 * forgotten when the registry says a manifest names a missing one (garbage collected meanwhile).
 * The single-POST upload is tried on the first upload and its answer remembered: 202 (distribution
 * 2.8) finishes that upload with a PUT, 201 (a registry that takes it) is one request per blob,
 * 405 and the like start the upload again as POST + PUT.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registrySchema } from '../../src/config/schema.js';
import { RegistryClient } from '../../src/registry/client.js';
import { startMaliciousRegistry, type MaliciousRegistry } from '../helpers/malicious-registry.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

let registry: RunningRegistry;
let client: RegistryClient;
const seen: string[] = [];

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient(registrySchema.parse({ host: registry.host, insecure: true }));
  client.onResponse = (method, status, kind) => void seen.push(`${method} ${kind} ${status}`);
});
afterAll(async () => {
  await client?.close();
  await registry?.stop();
});

describe('RegistryClient.uploadBlob', () => {
  it('concurrent uploads of the same bytes to one repository: one HEAD, one POST, one PUT; every caller gets the digest', async () => {
    const blob = Buffer.from('{}');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    seen.length = 0;
    const digests = await Promise.all(Array.from({ length: 8 }, () => client.uploadBlob('team/app', blob)));
    expect(digests).toEqual(Array(8).fill(digest));
    expect(seen.sort()).toEqual(['HEAD blob 404', 'POST upload 202', 'PUT upload 201']);
    expect(await client.blobExists('team/app', digest)).toBe(true);

    // once it is up, the client remembers it (no request at all); another repository uploads its own
    seen.length = 0;
    await Promise.all([client.uploadBlob('team/app', blob), client.uploadBlob('team/other', blob), client.uploadBlob('team/other', blob)]);
    expect(seen.sort()).toEqual(['HEAD blob 404', 'POST upload 202', 'PUT upload 201']);
    // another client (another worker) asks: HEAD 200, nothing uploaded
    const other = new RegistryClient({
      host: registry.host,
      insecure: true,
      aliases: [],
      authHosts: [],
      maxConcurrency: 4,
      timeoutMs: 10_000,
      verifyWrites: false,
    });
    other.onResponse = client.onResponse;
    seen.length = 0;
    await other.uploadBlob('team/app', blob);
    expect(seen).toEqual(['HEAD blob 200']);
    await other.close();
  });

  it('a failed upload fails every caller waiting on it, and the next call tries again', async () => {
    const blob = Buffer.from('retry me');
    await registry.stop();
    seen.length = 0;
    const outcomes = await Promise.allSettled(Array.from({ length: 3 }, () => client.uploadBlob('team/app', blob)));
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(String((outcomes[0] as PromiseRejectedResult).reason)).toMatch(/unreachable/);
    expect(seen).toEqual(['HEAD blob network']);
    // the failed upload is not kept: the next call asks the registry again
    await expect(client.uploadBlob('team/app', blob)).rejects.toThrow(/unreachable/);
    expect(seen).toEqual(['HEAD blob network', 'HEAD blob network']);
  });
});

describe('blobs taken as present', () => {
  let own: RunningRegistry;
  let reg: MaliciousRegistry;
  let proxied: RegistryClient;
  const OCI = 'application/vnd.oci.image.manifest.v1+json';
  beforeAll(async () => {
    own = await startRegistry(); // the file's registry was stopped by the test above
    reg = await startMaliciousRegistry({ upstream: own.host });
    proxied = new RegistryClient(registrySchema.parse({ host: reg.host, insecure: true }));
  });
  afterAll(async () => {
    await proxied?.close();
    await reg?.stop();
    await own?.stop();
  });

  it('a refused manifest naming a missing blob: SIGNATURE_BLOB_MISSING (retryable), and the blob is asked for again', async () => {
    const blob = Buffer.from('{}');
    await proxied.uploadBlob('team/app', blob);
    reg.requests.length = 0;
    await proxied.uploadBlob('team/app', blob);
    expect(reg.requests).toEqual([]); // remembered: no request

    reg.tricks.push({
      match: (req) => req.method === 'PUT' && (req.url ?? '').includes('/manifests/'),
      times: 1,
      kind: 'answer',
      status: 400,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry' }] }),
    });
    const err = await proxied.putManifest('team/app', 'v1', Buffer.from('{"schemaVersion":2}'), OCI).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'SIGNATURE_BLOB_MISSING', retryable: true });

    reg.requests.length = 0;
    await proxied.uploadBlob('team/app', blob);
    expect(reg.requests.some((r) => r.startsWith('HEAD '))).toBe(true); // forgotten: asked again
  });
});

describe("single-POST uploads (the distribution spec's monolithic POST), probed on the first upload", () => {
  let own: RunningRegistry;
  let reg: MaliciousRegistry;
  beforeAll(async () => {
    own = await startRegistry();
    reg = await startMaliciousRegistry({ upstream: own.host });
  });
  afterAll(async () => {
    await reg?.stop();
    await own?.stop();
  });
  const fresh = (c: RegistryClient, text: string) => c.uploadBlob('team/app', Buffer.from(text), { fresh: true });

  it('distribution 2.8 answers 202 and ignores the body: the same upload goes on with its PUT, and the next uploads are POST + PUT', async () => {
    const c = new RegistryClient(registrySchema.parse({ host: reg.host, insecure: true }));
    try {
      expect(c.singlePostUpload).toBeUndefined();
      reg.requests.length = 0;
      await fresh(c, 'first blob');
      expect(c.singlePostUpload).toBe(false);
      expect(reg.requests).toHaveLength(2);
      expect(reg.requests[0]).toMatch(/^POST \/v2\/team\/app\/blobs\/uploads\/\?digest=sha256(:|%3A)[0-9a-f]{64}$/);
      expect(reg.requests[1]).toMatch(/^PUT \/v2\/team\/app\/blobs\/uploads\/\S+digest=sha256(:|%3A)[0-9a-f]{64}/);
      reg.requests.length = 0;
      await fresh(c, 'second blob');
      expect(reg.requests[0]).toBe('POST /v2/team/app/blobs/uploads/');
      expect(reg.requests).toHaveLength(2);
      // both blobs are there, with their content
      for (const t of ['first blob', 'second blob']) {
        const d = `sha256:${createHash('sha256').update(t).digest('hex')}`;
        const r = await fetch(`${own.url}/v2/team/app/blobs/${d}`);
        expect(await r.text()).toBe(t);
      }
    } finally {
      await c.close();
    }
  });

  it('a registry that takes it (201): one request per blob from then on', async () => {
    const { startFakeOci } = await import('../helpers/fake-oci.js');
    const fake = await startFakeOci();
    fake.singlePost = true;
    const c = new RegistryClient(registrySchema.parse({ host: fake.host, insecure: true }));
    try {
      await fresh(c, 'one');
      await fresh(c, 'two');
      expect(c.singlePostUpload).toBe(true);
      expect(fake.requests).toEqual(['POST /v2/team/app/blobs/uploads/', 'POST /v2/team/app/blobs/uploads/']);
      expect(fake.blobs.get(`sha256:${createHash('sha256').update('two').digest('hex')}`)?.toString()).toBe('two');
    } finally {
      await c.close();
      await fake.stop();
    }
  });

  it('a registry that refuses it (405): the upload starts again as POST + PUT, and it is not tried again', async () => {
    const c = new RegistryClient(registrySchema.parse({ host: reg.host, insecure: true }));
    try {
      reg.tricks.push({ match: (req) => req.method === 'POST' && (req.url ?? '').includes('?digest='), times: 1, kind: 'answer', status: 405, body: '' });
      reg.requests.length = 0;
      await fresh(c, 'refused once');
      expect(c.singlePostUpload).toBe(false);
      expect(reg.requests.map((r) => r.split(' ')[0])).toEqual(['POST', 'POST', 'PUT']);
      expect(reg.requests[1]).toBe('POST /v2/team/app/blobs/uploads/');
    } finally {
      await c.close();
    }
  });
});
