/** The legacy format's reader: is a required .sig signature present (src/formats/legacy/read.ts). */
import { describe, expect, it } from 'vitest';
import { compileRules } from '../../../../src/config/rules.js';
import type { RuleConfig } from '../../../../src/config/schema.js';
import { signatureLayer, type SignatureLayer } from '../../../../src/signing/legacy-sig.js';
import { simpleSigningPayload } from '../../../../src/signing/payload.js';
import { CERTIFICATE_ANNOTATION } from '../../../../src/signing/certificate.js';
import { COSIGN_BUNDLE_ANNOTATION, cosignBundleAnnotation } from '../../../../src/transparency/entries.js';
import { sha256Digest } from '../../../../src/util/digest.js';
import { checkKey } from '../../../../src/formats/legacy/read.js';
import { decideRule, planSigning, type SigningPlan } from '../../../../src/signing/plan.js';
import { testKey } from '../../../helpers/signing-keys.js';

const H = 'reg.example:5000';
const D = `sha256:${'a'.repeat(64)}`;

const a = testKey('a');
const b = testKey('b');
const keys = new Map([
  ['a', a],
  ['b', b],
]);

async function layer(k: typeof a, payload: Buffer, extra: Record<string, string> = {}): Promise<{ layer: SignatureLayer; payload: Buffer }> {
  const sig = await k.sign(payload);
  return { layer: signatureLayer(payload, sha256Digest(payload), sig.toString('base64'), extra), payload };
}

/** A `dev.sigstore.cosign/bundle` annotation whose hashedrekord entry names `pem` (no SET check here). */
const entryNaming = (pem: string) =>
  cosignBundleAnnotation({
    uuid: 'u',
    body: Buffer.from(
      JSON.stringify({ apiVersion: '0.0.1', kind: 'hashedrekord', spec: { signature: { publicKey: { content: Buffer.from(pem).toString('base64') } } } }),
    ).toString('base64'),
    integratedTime: 1,
    logIndex: 1,
    logID: 'ab',
    signedEntryTimestamp: 'MEU=',
    existing: false,
  });

const rule = (r: Partial<RuleConfig> & { match: string }): RuleConfig => ({ keys: ['a', 'b'], identity: 'tag', untagged: 'ignore', ...r });

function required(rules: RuleConfig[], repo: string, tag: string | undefined, opts: { byDigest?: boolean } = {}): SigningPlan {
  const d = decideRule(compileRules(rules), H, repo, tag, opts);
  if ('skip' in d) throw new Error(`not required: ${d.skip}`);
  return planSigning(d, { host: H, repository: repo, tag, digest: D, ...opts }, keys);
}

describe('checkKey: is a required signature present', () => {
  it('byte-exact payload signed by the key; another key does not count', async () => {
    const req = required([rule({ match: `${H}/**` })], 'team/app', 'v1');
    const { layer: l } = await layer(a, simpleSigningPayload(`${H}/team/app:v1`, D));
    expect(await checkKey([l], D, req, a)).toEqual({ ok: true, layer: l });
    expect(await checkKey([l], D, req, b)).toEqual({ ok: false, why: 'no signature by this key' });
    // same key, other tag: not this tag's signature
    const { layer: other } = await layer(a, simpleSigningPayload(`${H}/team/app:v2`, D));
    expect((await checkKey([other], D, req, a)).ok).toBe(false);
  });

  it('a rule that logs to Rekor wants the bundle annotation on the layer', async () => {
    const req = required([rule({ match: `${H}/**`, rekor: { url: 'https://rekor.example', required: true, timeoutMs: 1000 } })], 'team/app', 'v1');
    const payload = simpleSigningPayload(`${H}/team/app:v1`, D);
    const bare = await layer(a, payload);
    expect(await checkKey([bare.layer], D, req, a)).toEqual({ ok: false, why: `signature lacks ${COSIGN_BUNDLE_ANNOTATION}` });
    const logged = await layer(a, payload, { [COSIGN_BUNDLE_ANNOTATION]: entryNaming(a.publicKeyPem) });
    expect((await checkKey([bare.layer, logged.layer], D, req, a)).ok).toBe(true);
    const unparsable = await layer(a, payload, { [COSIGN_BUNDLE_ANNOTATION]: '{}' });
    expect(await checkKey([unparsable.layer], D, req, a)).toEqual({ ok: false, why: 'signature lacks a Rekor entry naming its key' });
  });

  it('a layer with a certificate wants its Rekor entry to name the certificate, not the key (cosign >= 3.0.3)', async () => {
    const req = required([rule({ match: `${H}/**`, rekor: { url: 'https://rekor.example', required: true, timeoutMs: 1000 } })], 'team/app', 'v1');
    const payload = simpleSigningPayload(`${H}/team/app:v1`, D);
    const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const byKey = await layer(a, payload, { [CERTIFICATE_ANNOTATION]: cert, [COSIGN_BUNDLE_ANNOTATION]: entryNaming(a.publicKeyPem) });
    expect(await checkKey([byKey.layer], D, req, a)).toEqual({ ok: false, why: 'signature lacks a Rekor entry naming its certificate' });
    const byCert = await layer(a, payload, { [CERTIFICATE_ANNOTATION]: cert, [COSIGN_BUNDLE_ANNOTATION]: entryNaming(cert) });
    expect((await checkKey([byCert.layer], D, req, a)).ok).toBe(true);
  });

  it('with annotations: a payload carrying more (a webhook ${pusher}) counts when its bytes can be read', async () => {
    const req = required([rule({ match: `${H}/**`, annotations: { team: 'x', who: '${pusher}' } })], 'team/app', 'v1');
    expect(req.annotations).toEqual({ team: 'x' });
    const pushed = await layer(a, simpleSigningPayload(`${H}/team/app:v1`, D, { team: 'x', who: 'alice' }));
    const read = async (l: SignatureLayer) => (l.digest === pushed.layer.digest ? pushed.payload : undefined);
    expect((await checkKey([pushed.layer], D, req, a)).ok).toBe(false);
    expect((await checkKey([pushed.layer], D, req, a, read)).ok).toBe(true);
    const wrong = await layer(a, simpleSigningPayload(`${H}/team/app:v1`, D, { team: 'y' }));
    expect(await checkKey([wrong.layer], D, req, a, async () => wrong.payload)).toEqual({ ok: false, why: 'annotation team is not "x"' });
  });

  it('by digest: any reference naming the repository, nothing else', async () => {
    const req = required([rule({ match: `${H}/**` })], 'team/app', undefined, { byDigest: true });
    for (const ref of [`${H}/team/app`, `${H}/team/app:v9`, `${H}/team/app@${D}`]) {
      const s = await layer(a, simpleSigningPayload(ref, D));
      expect((await checkKey([s.layer], D, req, a, async () => s.payload)).ok).toBe(true);
    }
    for (const ref of [`${H}/team/app2:v1`, `${H}/team`, `other:5000/team/app:v1`]) {
      const s = await layer(a, simpleSigningPayload(ref, D));
      expect(await checkKey([s.layer], D, req, a, async () => s.payload)).toMatchObject({ ok: false, why: expect.stringContaining('docker-reference') });
    }
    const otherDigest = await layer(a, simpleSigningPayload(`${H}/team/app:v1`, `sha256:${'b'.repeat(64)}`));
    expect(await checkKey([otherDigest.layer], D, req, a, async () => otherDigest.payload)).toMatchObject({
      ok: false,
      why: expect.stringContaining('not this manifest'),
    });
  });
});
