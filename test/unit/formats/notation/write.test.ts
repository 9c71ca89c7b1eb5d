/**
 * The notation writer against a fake OCI registry (test/helpers/fake-oci.ts): with the referrers
 * API (no fallback tag written, the shared per-digest lock, dedup through the API), and without
 * it (the `sha256-<hex>` fallback index shared with the bundle format: the two writers run at
 * once on one digest under one serializing lock and neither loses the other's entry).
 */
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundles } from '../../../../src/formats/bundle/write.js';
import { parseEnvelope } from '../../../../src/formats/notation/jws.js';
import { writeNotation } from '../../../../src/formats/notation/write.js';
import type { WriteContext } from '../../../../src/formats/types.js';
import { SigningKey } from '../../../../src/kms/signing-key.js';
import type { KeyProvider } from '../../../../src/kms/types.js';
import type { DigestLock } from '../../../../src/signing/lock.js';
import type { SigningPlan } from '../../../../src/signing/plan.js';
import { Signer } from '../../../../src/signing/signer.js';
import { startFakeOciClient, type FakeOciClient } from '../../../helpers/fake-oci.js';
import { issueSignerChain } from '../../../helpers/pki.js';

const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'ab'.repeat(32)}`, size: 123 };

function certifiedKey(name: string): SigningKey & { backend: { signs: number } } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const backend: KeyProvider & { signs: number } = {
    name,
    signs: 0,
    publicKeyPem: async () => publicKey.export({ type: 'spki', format: 'pem' }) as string,
    sign: async (_digest: Buffer, payload?: Buffer) => (backend.signs++, cryptoSign('sha256', payload!, privateKey)),
  };
  const c = issueSignerChain(publicKey);
  return new SigningKey(backend, publicKey.export({ type: 'spki', format: 'pem' }) as string, {
    certificate: { certificate: c.certificate, chain: c.chain, notAfter: new Date(Date.now() + 86400_000) },
  }) as SigningKey & { backend: { signs: number } };
}

/** A lock that serializes by name (what the Redis lock does across workers), recording the names. */
function serialLock(names: string[]): DigestLock {
  const tails = new Map<string, Promise<unknown>>();
  return {
    withLock: async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      names.push(name);
      const prev = tails.get(name) ?? Promise.resolve();
      const run = prev.then(fn, fn);
      tails.set(
        name,
        run.catch(() => undefined),
      );
      return run;
    },
  } as unknown as DigestLock;
}

function setup(oci: FakeOciClient, key: SigningKey, lock: DigestLock): { ctx: WriteContext; plan: SigningPlan } {
  const ctx = { client: oci.client, repository: 'team/app', keys: [key], lock, signers: [new Signer(key)] } as WriteContext;
  const plan = { rule: {}, annotations: { team: 'a' }, keys: [key], formats: ['notation'] } as unknown as SigningPlan;
  return { ctx, plan };
}

describe('with the referrers API', () => {
  let oci: FakeOciClient;
  beforeAll(async () => void (oci = await startFakeOciClient()));
  afterAll(() => oci.stop());

  it('pushes the signature manifest by digest, writes no fallback tag, takes the shared referrers lock; a second run finds it present and signs nothing', async () => {
    const key = certifiedKey('n');
    const names: string[] = [];
    const { ctx, plan } = setup(oci, key, serialLock(names));
    const [r] = await writeNotation(ctx, plan, subject);
    expect(r).toMatchObject({ key: 'n', format: 'notation', outcome: 'signed' });
    expect([...oci.reg.tags.keys()]).toEqual([]);
    expect(names).toEqual([`${oci.reg.host}/team/app@${subject.digest}#referrers`]);
    const m = JSON.parse(oci.reg.manifests.get(`team/app@${r!.referrer}`)!.body.toString()) as Record<string, any>;
    expect(m).toMatchObject({ artifactType: 'application/vnd.cncf.notary.signature', subject, layers: [{ mediaType: 'application/jose+json' }] });
    expect(JSON.parse(m['annotations']['io.cncf.notary.x509chain.thumbprint#S256'])).toHaveLength(3);
    const env = parseEnvelope(oci.reg.blobs.get(m['layers'][0].digest)!)!;
    expect(env.payload).toEqual({ targetArtifact: { annotations: { team: 'a' }, ...subject } });
    expect(key.backend.signs).toBe(1);

    const [again] = await writeNotation(ctx, plan, subject);
    expect(again).toMatchObject({ outcome: 'present', referrer: r!.referrer, payloadDigest: r!.payloadDigest });
    expect(r!.payloadDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(key.backend.signs).toBe(1);
  });

  it('a key without a certificate is refused before anything is signed', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const bare = new SigningKey(
      { name: 'bare', publicKeyPem: async () => '', sign: async (_d, p) => cryptoSign('sha256', p!, privateKey) },
      publicKey.export({ type: 'spki', format: 'pem' }) as string,
    );
    const { ctx, plan } = setup(oci, bare, serialLock([]));
    await expect(writeNotation(ctx, { ...plan, keys: [bare] }, { ...subject, digest: `sha256:${'cd'.repeat(32)}` })).rejects.toThrow(
      /key "bare" has no certificate/,
    );
  });
});

describe('without the referrers API: the fallback index shared with bundles', () => {
  let oci: FakeOciClient;
  beforeAll(async () => {
    oci = await startFakeOciClient();
    oci.reg.referrersApi = false;
  });
  afterAll(() => oci.stop());

  it('bundle and notation writing the same digest at once: the index lists both', async () => {
    const key = certifiedKey('n');
    const names: string[] = [];
    const { ctx, plan } = setup(oci, key, serialLock(names));
    const [b, n] = await Promise.all([writeBundles(ctx, plan, subject), writeNotation(ctx, plan, subject)]);
    expect(b![0]).toMatchObject({ format: 'bundle', outcome: 'signed' });
    expect(n![0]).toMatchObject({ format: 'notation', outcome: 'signed' });
    expect(new Set(names)).toEqual(new Set([`${oci.reg.host}/team/app@${subject.digest}#referrers`]));
    const tag = oci.reg.tags.get(`team/app:${subject.digest.replace(':', '-')}`)!;
    const index = JSON.parse(oci.reg.manifests.get(`team/app@${tag}`)!.body.toString()) as { manifests: { digest: string; artifactType: string }[] };
    expect(index.manifests.map((m) => [m.artifactType, m.digest]).sort()).toEqual(
      [
        ['application/vnd.cncf.notary.signature', n![0]!.referrer],
        ['application/vnd.dev.sigstore.bundle.v0.3+json', b![0]!.referrer],
      ].sort(),
    );
    // each reads the other's entry and keeps to its own: a second run of both finds them present
    const [b2, n2] = await Promise.all([writeBundles(ctx, plan, subject), writeNotation(ctx, plan, subject)]);
    expect([b2![0]!.outcome, n2![0]!.outcome]).toEqual(['present', 'present']);
  });
});
