/**
 * The bundle referrer path against a registry WITH the OCI 1.1 referrers API (the integration
 * tests' docker-registry 2.8 has none, so they cover the fallback tag): no fallback tag is
 * written, dedup reads the API, a bundle behind a redirect to storage does not count (only verified content does).
 */
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { KeyProvider } from '../../../src/kms/types.js';
import type { RegistryClient } from '../../../src/registry/client.js';
import { attachBundles } from '../../helpers/signing-keys.js';
import { checkBundle, parseSigstoreBundle } from '../../../src/signing/bundle-read.js';
import { signStatement, STATEMENT_ANNOTATION } from '../../../src/signing/bundle.js';
import type { DigestLock } from '../../../src/signing/lock.js';
import { startFakeOciClient, type FakeOci, type FakeOciClient } from '../../helpers/fake-oci.js';

let oci: FakeOciClient;
let reg: FakeOci;
let client: RegistryClient;
const locks: string[] = [];
const lock = { withLock: async <T>(name: string, fn: () => Promise<T>) => (locks.push(name), fn()) } as unknown as DigestLock;

function key(name: string): KeyProvider & { signs: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const k = {
    name,
    signs: 0,
    publicKeyPem: async () => publicKey.export({ type: 'spki', format: 'pem' }) as string,
    sign: async (digest: Buffer, payload?: Buffer) => {
      k.signs++;
      expect(createHash('sha256').update(payload!).digest().equals(digest)).toBe(true);
      const { sign } = await import('node:crypto');
      return sign('sha256', payload!, privateKey);
    },
  };
  return k;
}

const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'ab'.repeat(32)}`, size: 123 };

beforeAll(async () => {
  ({ reg, client } = oci = await startFakeOciClient());
});
afterAll(() => oci.stop());
beforeEach(() => {
  reg.referrersApi = true;
  reg.redirectBlobs = false;
  reg.requests.length = 0;
  locks.length = 0;
});

describe('bundle referrers through the referrers API', () => {
  it('pushes the referrer by digest, lists it through the API, writes no fallback tag', async () => {
    const k = key('k1');
    const statement = signStatement(subject.digest, { team: 'a' });
    const [r] = await attachBundles(client, 'team/app', subject, [{ key: k, statement }], lock);
    expect(r).toMatchObject({ key: 'k1', format: 'bundle', outcome: 'signed' });
    expect(reg.manifests.has(`team/app@${r!.referrer}`)).toBe(true);
    expect([...reg.tags.keys()]).toEqual([]); // no sha256-<hex> fallback tag
    expect(locks).toEqual([`${reg.host}/team/app@${subject.digest}#referrers`]);
    const m = JSON.parse(reg.manifests.get(`team/app@${r!.referrer}`)!.body.toString());
    expect(m.subject).toEqual(subject);
    const bundle = parseSigstoreBundle(reg.blobs.get(m.layers[0].digest)!)!;
    expect(await checkBundle(bundle, { digest: subject.digest, annotations: { team: 'a' } }, { publicKey: createPublicKey(await k.publicKeyPem()) })).toEqual({
      ok: true,
      tlogEntries: 0,
      timestamps: 0,
    });
  });

  it('a second run finds the bundle through the API (verified from the blob) and signs nothing', async () => {
    const k = key('k2');
    const statement = signStatement(subject.digest);
    const [first] = await attachBundles(client, 'team/dedup', subject, [{ key: k, statement }], lock);
    const signs = k.signs;
    reg.requests.length = 0;
    const [again] = await attachBundles(client, 'team/dedup', subject, [{ key: k, statement }], lock);
    expect(again).toMatchObject({ outcome: 'present', referrer: first!.referrer });
    expect(k.signs).toBe(signs);
    expect(reg.requests.some((r) => r.startsWith('GET /v2/team/dedup/blobs/'))).toBe(true);
    expect(reg.requests.some((r) => r.startsWith('PUT'))).toBe(false);
    expect(locks).toHaveLength(1); // the lock is not even taken
  });

  it('another key, or another statement, is not a duplicate', async () => {
    const [a, b] = [key('a'), key('b')];
    const s1 = signStatement(subject.digest, { tag: 'v1' });
    const s2 = signStatement(subject.digest, { tag: 'v2' });
    await attachBundles(client, 'team/many', subject, [{ key: a, statement: s1 }], lock);
    const out = await attachBundles(
      client,
      'team/many',
      subject,
      [
        { key: a, statement: s2 },
        { key: b, statement: s1 },
      ],
      lock,
    );
    expect(out.map((r) => r.outcome)).toEqual(['signed', 'signed']);
    const listed = [...reg.manifests.keys()].filter((k) => k.startsWith('team/many@'));
    expect(listed).toHaveLength(3);
  });

  it('blobs redirected to storage are not followed, and a bundle signet cannot read does not count: it writes its own', async () => {
    const k = key('k3');
    const statement = signStatement(subject.digest);
    const [first] = await attachBundles(client, 'team/redirect', subject, [{ key: k, statement }], lock);
    reg.redirectBlobs = true;
    // the listed referrer carries signet's statement and key annotations, but its content cannot be verified
    const m = JSON.parse(reg.manifests.get(`team/redirect@${first!.referrer}`)!.body.toString());
    expect(m.annotations[STATEMENT_ANNOTATION]).toBe(`sha256:${createHash('sha256').update(statement).digest('hex')}`);
    const [again] = await attachBundles(client, 'team/redirect', subject, [{ key: k, statement }], lock);
    expect(again!.outcome).toBe('signed');
  });

  it('without the API the fallback tag sha256-<hex> is maintained (appended, never duplicated)', async () => {
    reg.referrersApi = false;
    const [a, b] = [key('fa'), key('fb')];
    const statement = signStatement(subject.digest);
    await attachBundles(client, 'team/fallback', subject, [{ key: a, statement }], lock);
    await attachBundles(
      client,
      'team/fallback',
      subject,
      [
        { key: a, statement },
        { key: b, statement },
      ],
      lock,
    );
    const tag = reg.tags.get(`team/fallback:${subject.digest.replace(':', '-')}`)!;
    const index = JSON.parse(reg.manifests.get(`team/fallback@${tag}`)!.body.toString());
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests).toHaveLength(2);
    expect(new Set(index.manifests.map((d: any) => d.digest)).size).toBe(2);
    expect(index.manifests.every((d: any) => d.artifactType === 'application/vnd.dev.sigstore.bundle.v0.3+json')).toBe(true);
  });
});
