/**
 * What signet carries forward from an existing .sig (carry.ts) and the limits it writes within:
 * a few claims of its payload kept (co-signers), a poisoned .sig's kept only when a configured key
 * verifies them, at most 16 verified per read, other layers untouched; a present signature in a poisoned or over-limit .sig is cleaned
 * or refused, never simply reported present. The attach flow runs on the in-memory registry.
 */
import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSignetError } from '../../../src/errors.js';
import { Metrics } from '../../../src/metrics.js';
import type { RegistryClient } from '../../../src/registry/client.js';
import { checkSignatureLimits, MAX_CLAIMS_VERIFIED, triageLayers } from '../../../src/signing/carry.js';
import { buildSignatureManifest, parseSignatureManifest, signatureLayer, type SignatureLayer } from '../../../src/signing/legacy-sig.js';
import { simpleSigningPayload } from '../../../src/signing/payload.js';
import { sha256Digest } from '../../../src/util/digest.js';
import { startFakeOciClient, type FakeOciClient } from '../../helpers/fake-oci.js';
import { attachLegacySignatures, digestOf, noLock, testKey as key } from '../../helpers/signing-keys.js';

let oci: FakeOciClient;
let client: RegistryClient;
const OCI = 'application/vnd.oci.image.manifest.v1+json';

const layerBy = (k: ReturnType<typeof key>, payload: Buffer) =>
  signatureLayer(payload, sha256Digest(payload), sign('sha256', payload, k.raw.privateKey).toString('base64'));
const sigTag = (d: string) => `${d.replace(':', '-')}.sig`;

async function write(repo: string, digest: string, list: SignatureLayer[], blobs: Buffer[]) {
  const built = buildSignatureManifest(list);
  for (const b of blobs) await client.uploadBlob(repo, b);
  await client.uploadBlob(repo, built.config);
  await client.putManifest(repo, sigTag(digest), built.manifest, OCI);
}
async function read(repo: string, digest: string) {
  const m = await client.getManifest(repo, sigTag(digest), OCI);
  return m ? parseSignatureManifest(m.document, 'test .sig') : [];
}

beforeAll(async () => {
  ({ client } = oci = await startFakeOciClient());
});
afterAll(() => oci.stop());

describe('triageLayers', () => {
  const ours = key('ours');
  const old = key('old');
  const stranger = key('stranger');
  const payload = simpleSigningPayload('r/x:v1', digestOf('t'));
  const other = simpleSigningPayload('r/x:other', digestOf('t'));
  const payloads = new Map([[sha256Digest(payload), payload]]);

  it("a few claims (a co-signer with its own key, say): all verified, all carried, the signing keys' marked; other payloads untouched", async () => {
    const list = [layerBy(stranger, payload), layerBy(ours, payload), layerBy(old, payload), layerBy(stranger, other)];
    const t = await triageLayers(list, payloads, [ours], [old]);
    expect(t.carried.map((c) => c.layer)).toEqual(list);
    expect(t.carried.map((c) => c.signers.map((k) => k.name))).toEqual([[], ['ours'], [], []]);
    expect(t).toMatchObject({ invalid: 0, unchecked: 0 });
  });

  it(`more than ${MAX_CLAIMS_VERIFIED} claims: poisoned; only claims a configured key verifies are carried (signing keys, then the others), ${MAX_CLAIMS_VERIFIED} verified at most, the rest dropped unchecked`, async () => {
    const list = [
      layerBy(ours, payload),
      layerBy(stranger, other),
      layerBy(old, payload),
      ...Array.from({ length: 20 }, () => layerBy(stranger, payload)),
      layerBy(ours, payload),
    ];
    const t = await triageLayers(list, payloads, [ours], [old]);
    expect(t.carried.map((c) => c.layer)).toEqual([list[0], list[1], list[2]]);
    expect(t).toMatchObject({ invalid: MAX_CLAIMS_VERIFIED - 2, unchecked: 22 - MAX_CLAIMS_VERIFIED + 1 });
  });

  it("a claim whose size is not the payload's is no signature of it (cosign reads by the size)", async () => {
    const l = { ...layerBy(ours, payload), size: payload.length + 1 };
    expect((await triageLayers([l], payloads, [ours])).carried[0]!.signers).toEqual([]);
    const many = [l, ...Array.from({ length: MAX_CLAIMS_VERIFIED }, () => layerBy(ours, payload))];
    expect(await triageLayers(many, payloads, [ours])).toMatchObject({ invalid: 1, unchecked: 1 });
  });
});

describe('checkSignatureLimits', () => {
  const payload = simpleSigningPayload('r/x:v1', digestOf('l'));
  const l = layerBy(key('l'), payload);

  it('1,000 layers pass; 1,001 fail with SIGNATURE_LIMIT_EXCEEDED (not retryable), counted by limit', () => {
    const metrics = new Metrics();
    expect(checkSignatureLimits('here', Array(1000).fill(l), metrics).manifest.length).toBeGreaterThan(0);
    let err: unknown;
    try {
      checkSignatureLimits('here', Array(1001).fill(l), metrics);
    } catch (e) {
      err = e;
    }
    expect(isSignetError(err) && err.code).toBe('SIGNATURE_LIMIT_EXCEEDED');
    expect(isSignetError(err) && err.retryable).toBe(false);
    expect((err as Error).message).toContain('1001 layers');
  });

  it('a manifest over 4 MiB fails too', () => {
    const fat = { ...l, annotations: { ...l.annotations, 'x-note': 'x'.repeat(5000) } };
    expect(() => checkSignatureLimits('here', Array(900).fill(fat), undefined)).toThrow(/manifest would be \d+ bytes/);
  });
});

describe('attach with a poisoned .sig', () => {
  it("signet's own signature present among planted claims: the .sig is rewritten without them, outcome present, no new signature", async () => {
    const k = key('p');
    const d = digestOf('present');
    const payload = simpleSigningPayload('r/x:v1', d);
    await attachLegacySignatures(client, 'p', d, [{ key: k, payload }], noLock);
    const [mine] = await read('p', d);
    const attacker = key('attacker');
    await write('p', d, [mine!, ...Array.from({ length: 50 }, () => layerBy(attacker, payload))], [payload]);
    const metrics = new Metrics();
    const [r] = await attachLegacySignatures(client, 'p', d, [{ key: k, payload }], noLock, { metrics });
    expect(r!.outcome).toBe('present');
    expect(k.signs).toBe(1);
    expect(await read('p', d)).toEqual([mine]);
    const dropped = Object.fromEntries((await metrics.signatureLayersDropped.get()).values.map((v) => [v.labels.reason, v.value]));
    expect(dropped).toEqual({ invalid: MAX_CLAIMS_VERIFIED - 1, unchecked: 50 - (MAX_CLAIMS_VERIFIED - 1) });
  });

  it("signet's signature present but the .sig over 1,000 layers of others: SIGNATURE_LIMIT_EXCEEDED, not present", async () => {
    const k = key('q');
    const d = digestOf('full');
    const payload = simpleSigningPayload('r/x:v1', d);
    const theirs = simpleSigningPayload('r/x:theirs', d);
    await write('q', d, [layerBy(k, payload), ...Array.from({ length: 1000 }, () => layerBy(key('t'), theirs))], [payload, theirs]);
    const err = await attachLegacySignatures(client, 'q', d, [{ key: k, payload }], noLock).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSignetError(err) && err.code).toBe('SIGNATURE_LIMIT_EXCEEDED');
    expect(k.signs).toBe(0);
  });
});
