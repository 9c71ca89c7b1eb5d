/**
 * The legacy .sig read-modify-write with the new annotations, on an in-memory registry: Rekor
 * bundle and certificate annotations on new layers, "upgrading" a present layer instead of adding
 * a second one, and what happens when another writer gets between the unlocked plan and the
 * locked write.
 */
import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistryClient } from '../../../src/registry/client.js';
import { loadKeyCertificate } from '../../../src/signing/certificate.js';
import { buildSignatureManifest, parseSignatureManifest, signatureLayer } from '../../../src/signing/legacy-sig.js';
import type { DigestLock } from '../../../src/signing/lock.js';
import { simpleSigningPayload } from '../../../src/signing/payload.js';
import { RekorClient } from '../../../src/transparency/rekor.js';
import { sha256Digest } from '../../../src/util/digest.js';
import { startFakeOciClient, type FakeOci, type FakeOciClient } from '../../helpers/fake-oci.js';
import { EKU, issueCertificate, makeRootCa } from '../../helpers/pki.js';
import { startRekor, type RekorStandIn } from '../../helpers/rekor.js';
import { attachLegacySignatures, digestOf, noLock, testKey as key } from '../../helpers/signing-keys.js';

let oci: FakeOciClient;
let reg: FakeOci;
let rekor: RekorStandIn;
let client: RegistryClient;
let rc: RekorClient;
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const BUNDLE = 'dev.sigstore.cosign/bundle';
const SIG = 'dev.cosignproject.cosign/signature';

async function layers(repo: string, digest: string) {
  const m = await client.getManifest(repo, `${digest.replace(':', '-')}.sig`, OCI);
  return m ? parseSignatureManifest(m.document, 'test .sig') : [];
}
/** The PEM the layer's hashedrekord entry names (Rekor stores it re-marshalled: compared as X509/SPKI text). */
function entryVerifier(l: { annotations: Record<string, string> }): string {
  const body = JSON.parse(Buffer.from(JSON.parse(l.annotations[BUNDLE]!).Payload.body, 'base64').toString());
  return Buffer.from(body.spec.signature.publicKey.content, 'base64').toString();
}
/** Another writer: put this exact layer list in the .sig manifest. */
async function writeLayers(repo: string, digest: string, list: ReturnType<typeof signatureLayer>[], payload: Buffer) {
  const built = buildSignatureManifest(list);
  await client.uploadBlob(repo, payload);
  await client.uploadBlob(repo, built.config);
  await client.putManifest(repo, `${digest.replace(':', '-')}.sig`, built.manifest, OCI);
}

beforeAll(async () => {
  ({ reg, client } = oci = await startFakeOciClient());
  rekor = await startRekor();
  rc = new RekorClient({ url: rekor.url, retryDelaysMs: [5], attempts: 2 });
});
afterAll(async () => {
  await oci.stop();
  await rc.close();
  await rekor.stop();
});

describe('legacy attach with Rekor and certificates', () => {
  it('a new layer carries signature, bundle (our entry) and sorted annotations', async () => {
    const k = key('a');
    const d = digestOf('one');
    const payload = simpleSigningPayload('r/x:v1', d);
    const [r] = await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], noLock, { tlog: { rekor: rc, required: true } });
    expect(r).toMatchObject({ key: 'a', outcome: 'signed', format: 'legacy', tlog: { status: 'logged' } });
    const [l] = await layers('x', d);
    expect(Object.keys(l!.annotations)).toEqual([SIG, BUNDLE]);
    expect(JSON.parse(l!.annotations[BUNDLE]!).Payload.logIndex).toBe(r!.tlog!.logIndex);
  });

  it('a present signature without a bundle is logged and annotated in place (same signature, no KMS call, one layer)', async () => {
    const k = key('b');
    const d = digestOf('two');
    const payload = simpleSigningPayload('r/x:v1', d);
    await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], noLock);
    const before = (await layers('x', d))[0]!;
    const signs = k.signs;
    const [r] = await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], noLock, { tlog: { rekor: rc, required: true } });
    expect(r).toMatchObject({ outcome: 'present', upgraded: [BUNDLE], tlog: { status: 'logged' } });
    expect(k.signs).toBe(signs);
    const after = await layers('x', d);
    expect(after).toHaveLength(1);
    expect(after[0]!.annotations[SIG]).toBe(before.annotations[SIG]);
    const body = JSON.parse(Buffer.from(JSON.parse(after[0]!.annotations[BUNDLE]!).Payload.body, 'base64').toString());
    expect(body.spec.signature.content).toBe(before.annotations[SIG]);
  });

  it('a key that gained a certificate adds certificate and chain to its present layer', async () => {
    const k = key('c');
    const d = digestOf('three');
    const payload = simpleSigningPayload('r/x:v1', d);
    await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], noLock);
    const root = makeRootCa();
    const cert = issueCertificate({ cn: 'c', publicKey: k.raw.publicKey, issuer: root, eku: [EKU.codeSigning] });
    // the key reloaded with a certificate (keys are values)
    const kc = key('c', { pair: k.raw, certificate: loadKeyCertificate({ name: 'c', certificate: cert, chain: root.pem }, k.publicKeyPem, '.') });
    const [r] = await attachLegacySignatures(client, 'x', d, [{ key: kc, payload }], noLock);
    expect(r).toMatchObject({ outcome: 'present', upgraded: ['dev.sigstore.cosign/certificate', 'dev.sigstore.cosign/chain'] });
    const [l] = await layers('x', d);
    expect(Object.keys(l!.annotations)).toEqual([SIG, 'dev.sigstore.cosign/certificate', 'dev.sigstore.cosign/chain']);
    // with a certificate, the hashedrekord entry names the certificate (cosign >= 3.0.3 compares the entry with it)
    const [r2] = await attachLegacySignatures(
      client,
      'x',
      digestOf('three-b'),
      [{ key: kc, payload: simpleSigningPayload('r/x:v1', digestOf('three-b')) }],
      noLock,
      {
        tlog: { rekor: rc, required: true },
      },
    );
    expect(r2!.tlog!.status).toBe('logged');
    const [l2] = await layers('x', digestOf('three-b'));
    expect(entryVerifier(l2!)).toBe(cert);
    expect(l2!.annotations['dev.sigstore.cosign/certificate']).toBe(cert);
  });

  it('a present layer whose Rekor entry names the bare key gets an entry naming its certificate once the key has one (same signature, one layer); then it is complete', async () => {
    const k = key('c2');
    const d = digestOf('three-c');
    const payload = simpleSigningPayload('r/x:v1', d);
    const tlog = { tlog: { rekor: rc, required: true } };
    await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], noLock, tlog);
    const [before] = await layers('x', d);
    expect(entryVerifier(before!)).toBe(k.publicKeyPem);
    const root = makeRootCa();
    const cert = issueCertificate({ cn: 'c2', publicKey: k.raw.publicKey, issuer: root, eku: [EKU.codeSigning] });
    const kc = key('c2', { pair: k.raw, certificate: loadKeyCertificate({ name: 'c2', certificate: cert, chain: root.pem }, k.publicKeyPem, '.') });
    {
      const entries = rekor.size();
      const [r] = await attachLegacySignatures(client, 'x', d, [{ key: kc, payload }], noLock, tlog);
      expect(r).toMatchObject({
        outcome: 'present',
        upgraded: [BUNDLE, 'dev.sigstore.cosign/certificate', 'dev.sigstore.cosign/chain'],
        tlog: { status: 'logged' },
      });
      expect(kc.signs).toBe(0);
      expect(rekor.size()).toBe(entries + 1);
      const after = await layers('x', d);
      expect(after).toHaveLength(1);
      expect(after[0]!.annotations[SIG]).toBe(before!.annotations[SIG]);
      expect(entryVerifier(after[0]!)).toBe(cert);
      // complete now: nothing logged or written again
      const [again] = await attachLegacySignatures(client, 'x', d, [{ key: kc, payload }], noLock, tlog);
      expect(again).toMatchObject({ outcome: 'present', tlog: { status: 'present' } });
      expect(again!.upgraded).toBeUndefined();
      expect(rekor.size()).toBe(entries + 1);
    }
  });

  it('another writer adds an equivalent complete layer while we sign: ours is dropped and reported present', async () => {
    const k = key('d');
    const d = digestOf('four');
    const payload = simpleSigningPayload('r/x:v1', d);
    const theirs = signatureLayer(payload, sha256Digest(payload), sign('sha256', payload, k.raw.privateKey).toString('base64'));
    const racing = { withLock: async <T>(_n: string, fn: () => Promise<T>) => (await writeLayers('x', d, [theirs], payload), fn()) } as unknown as DigestLock;
    const [r] = await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], racing);
    expect(r!.outcome).toBe('present');
    const after = await layers('x', d);
    expect(after).toHaveLength(1);
    expect(after[0]!.annotations[SIG]).toBe(theirs.annotations[SIG]);
  });

  it("another writer's equivalent layer lacks the Rekor bundle: our signature and bundle replace its annotations (still one layer)", async () => {
    const k = key('e');
    const d = digestOf('five');
    const payload = simpleSigningPayload('r/x:v1', d);
    const theirs = signatureLayer(payload, sha256Digest(payload), sign('sha256', payload, k.raw.privateKey).toString('base64'));
    const racing = { withLock: async <T>(_n: string, fn: () => Promise<T>) => (await writeLayers('x', d, [theirs], payload), fn()) } as unknown as DigestLock;
    const [r] = await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], racing, { tlog: { rekor: rc, required: true } });
    expect(r).toMatchObject({ outcome: 'signed', tlog: { status: 'logged' } });
    const after = await layers('x', d);
    expect(after).toHaveLength(1);
    expect(after[0]!.annotations[SIG]).not.toBe(theirs.annotations[SIG]);
    const body = JSON.parse(Buffer.from(JSON.parse(after[0]!.annotations[BUNDLE]!).Payload.body, 'base64').toString());
    expect(body.spec.signature.content).toBe(after[0]!.annotations[SIG]);
  });

  it('verifyWrite: a writer outside the lock replaces the .sig right after our PUT -> read back, merged again, both signatures kept', async () => {
    const run = async (verifyWrite: boolean, name: string) => {
      const ours = key(`${name}-ours`);
      const other = key(`${name}-other`);
      const d = digestOf(name);
      const payload = simpleSigningPayload('r/x:v1', d);
      const theirs = signatureLayer(payload, sha256Digest(payload), sign('sha256', payload, other.raw.privateKey).toString('base64'));
      // the outside writer read the .sig before our PUT and writes its own list after it
      const clobbering = Object.create(client) as RegistryClient;
      let clobbered = false;
      clobbering.putManifest = async (...args: Parameters<RegistryClient['putManifest']>) => {
        const r = await client.putManifest(...args);
        if (!clobbered) {
          clobbered = true;
          await writeLayers('x', d, [theirs], payload);
        }
        return r;
      };
      const [r] = await attachLegacySignatures(clobbering, 'x', d, [{ key: ours, payload }], noLock, { expectNew: true, verifyWrite });
      expect(r!.outcome).toBe('signed');
      expect(ours.signs).toBe(1);
      return (await layers('x', d)).map((l) => l.annotations[SIG]);
    };
    const checked = await run(true, 'six');
    expect(checked).toHaveLength(2);
    // without the read-back the outside writer's list wins: the trade-off registries[].verifyWrites documents
    const unchecked = await run(false, 'seven');
    expect(unchecked).toHaveLength(1);
  });

  it('expectNew: no read before signing; a signature by the same key found under the lock wins (one sign call, nothing written)', async () => {
    const k = key('f');
    const d = digestOf('eight');
    const payload = simpleSigningPayload('r/x:v1', d);
    const theirs = signatureLayer(payload, sha256Digest(payload), sign('sha256', payload, k.raw.privateKey).toString('base64'));
    await writeLayers('x', d, [theirs], payload);
    const seen = reg.requests.length;
    const [r] = await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], noLock, { expectNew: true });
    expect(r!.outcome).toBe('present');
    expect(k.signs).toBe(1);
    // payload upload (POST + PUT), then the read under the lock; no config, no manifest PUT
    expect(reg.requests.slice(seen).map((q) => q.split(' ')[0])).toEqual(['POST', 'PUT', 'GET']);
    expect((await layers('x', d)).map((l) => l.annotations[SIG])).toEqual([theirs.annotations[SIG]]);
  });

  it('with Rekor, expectNew still reads first: a present signature is never logged a second time', async () => {
    const k = key('g');
    const d = digestOf('nine');
    const payload = simpleSigningPayload('r/x:v1', d);
    await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], noLock, { tlog: { rekor: rc, required: true } });
    const entries = rekor.size();
    const [r] = await attachLegacySignatures(client, 'x', d, [{ key: k, payload }], noLock, { tlog: { rekor: rc, required: true }, expectNew: true });
    expect(r).toMatchObject({ outcome: 'present', tlog: { status: 'present' } });
    expect(k.signs).toBe(1);
    expect(rekor.size()).toBe(entries);
  });
});
