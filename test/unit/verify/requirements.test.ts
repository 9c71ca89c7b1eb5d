import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileRules } from '../../../src/config/rules.js';
import type { RuleConfig } from '../../../src/config/schema.js';
import type { KeyProvider } from '../../../src/kms/types.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../../src/registry/media-types.js';
import { parseManifest } from '../../../src/registry/schemas.js';
import { signatureLayer, type SignatureLayer } from '../../../src/signing/legacy-sig.js';
import { simpleSigningPayload } from '../../../src/signing/payload.js';
import { CERTIFICATE_ANNOTATION } from '../../../src/signing/certificate.js';
import { COSIGN_BUNDLE_ANNOTATION, cosignBundleAnnotation } from '../../../src/transparency/entries.js';
import { sha256Digest } from '../../../src/util/digest.js';
import { imageShape } from '../../../src/verify/image.js';
import { checkKey, requirementFor, type Requirement } from '../../../src/verify/requirements.js';

const H = 'reg.example:5000';
const D = `sha256:${'a'.repeat(64)}`;

function key(name: string): KeyProvider {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { name, publicKeyPem: async () => pem, sign: async (_d, payload) => sign('sha256', payload!, privateKey) };
}
const a = key('a');
const b = key('b');

async function layer(k: KeyProvider, payload: Buffer, extra: Record<string, string> = {}): Promise<{ layer: SignatureLayer; payload: Buffer }> {
  const sig = await k.sign(Buffer.alloc(0), payload);
  return { layer: signatureLayer(payload, sha256Digest(payload), sig.toString('base64'), extra), payload };
}

/** A `dev.sigstore.cosign/bundle` annotation whose hashedrekord entry names `pem` (no SET check here). */
const entryNaming = (pem: string) =>
  cosignBundleAnnotation({
    uuid: 'u',
    body: Buffer.from(JSON.stringify({ apiVersion: '0.0.1', kind: 'hashedrekord', spec: { signature: { publicKey: { content: Buffer.from(pem).toString('base64') } } } })).toString('base64'),
    integratedTime: 1,
    logIndex: 1,
    logID: 'ab',
    signedEntryTimestamp: 'MEU=',
    existing: false,
  });

const rule = (r: Partial<RuleConfig> & { match: string }): RuleConfig => ({ keys: ['a', 'b'], identity: 'tag', untagged: 'ignore', ...r });

function required(rules: RuleConfig[], repo: string, tag: string | undefined, opts: { byDigest?: boolean } = {}): Requirement {
  const d = requirementFor(compileRules(rules), H, repo, tag, D, opts);
  if (!('required' in d)) throw new Error(`not required: ${d.none}`);
  return d.required;
}

describe('requirementFor: the pipeline decision', () => {
  const rules = compileRules([
    rule({ match: `${H}/team/**`, tags: { exclude: ['*-dev'] }, annotations: { repo: '${repository}', who: '${pusher}', t: '${tag}' } }),
    rule({ match: `${H}/byrepo/**`, identity: 'repository' }),
    rule({ match: `${H}/bundles/**`, formats: ['bundle'] }),
  ]);
  it('takes identity and annotations from the first matching rule', () => {
    expect(requirementFor(rules, H, 'team/app', 'v1', D)).toEqual({
      required: expect.objectContaining({ ruleIndex: 0, identity: `${H}/team/app:v1`, annotations: { repo: 'team/app', t: 'v1' }, keys: ['a', 'b'] }),
    });
    expect(requirementFor(rules, H, 'byrepo/app', 'v1', D)).toMatchObject({ required: { identity: `${H}/byrepo/app` } });
  });
  it('says why nothing is required', () => {
    expect(requirementFor(rules, H, 'team/app', 'v1-dev', D)).toEqual({ none: 'tag "v1-dev" matches rule\'s tags.exclude', ruleIndex: 0 });
    expect(requirementFor(rules, H, 'team/app', undefined, D)).toMatchObject({ none: expect.stringContaining('untagged') });
    expect(requirementFor(rules, H, 'else/app', 'v1', D)).toEqual({ none: `no rule matches ${H}/else/app` });
    expect(requirementFor(rules, H, 'bundles/app', 'v1', D)).toMatchObject({ none: expect.stringContaining('no legacy .sig') });
  });
  it('by digest (verify IMAGE@DIGEST): no tag filter, any identity of the repository under identity: tag', () => {
    expect(requirementFor(rules, H, 'team/app', undefined, D, { byDigest: true })).toMatchObject({ required: { identity: undefined } });
    expect(requirementFor(rules, H, 'byrepo/app', undefined, D, { byDigest: true })).toMatchObject({ required: { identity: `${H}/byrepo/app` } });
  });
});

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
    const logged = await layer(a, payload, { [COSIGN_BUNDLE_ANNOTATION]: entryNaming(await a.publicKeyPem()) });
    expect((await checkKey([bare.layer, logged.layer], D, req, a)).ok).toBe(true);
    const unparsable = await layer(a, payload, { [COSIGN_BUNDLE_ANNOTATION]: '{}' });
    expect(await checkKey([unparsable.layer], D, req, a)).toEqual({ ok: false, why: 'signature lacks a Rekor entry naming its key' });
  });

  it('a layer with a certificate wants its Rekor entry to name the certificate, not the key (cosign >= 3.0.3)', async () => {
    const req = required([rule({ match: `${H}/**`, rekor: { url: 'https://rekor.example', required: true, timeoutMs: 1000 } })], 'team/app', 'v1');
    const payload = simpleSigningPayload(`${H}/team/app:v1`, D);
    const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const byKey = await layer(a, payload, { [CERTIFICATE_ANNOTATION]: cert, [COSIGN_BUNDLE_ANNOTATION]: entryNaming(await a.publicKeyPem()) });
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
    expect(await checkKey([otherDigest.layer], D, req, a, async () => otherDigest.payload)).toMatchObject({ ok: false, why: expect.stringContaining('not this manifest') });
  });
});

/** imageShape of `doc` as the registry client reads it (body parsed and checked against its media type). */
function shape(doc: object, mediaType: string) {
  return imageShape({ ...parseManifest(Buffer.from(JSON.stringify(doc)), mediaType, 'test manifest'), digest: D });
}

describe('imageShape: what the pipeline signs for a manifest', () => {
  it('an index and each child, with platforms; referrers and other types are skipped', () => {
    const c1 = `sha256:${'1'.repeat(64)}`;
    const c2 = `sha256:${'2'.repeat(64)}`;
    const desc = (digest: string, extra: object = {}) => ({ mediaType: OCI_MANIFEST, digest, size: 10, ...extra });
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [desc(c1, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }), desc(c2), desc(c1)],
    };
    expect(shape(index, OCI_INDEX)).toEqual({
      kind: 'signable',
      digest: D,
      mediaType: OCI_INDEX,
      manifests: [
        { digest: D, role: 'index' },
        { digest: c1, role: 'child', platform: 'linux/arm64/v8' },
        { digest: c2, role: 'child' },
      ],
    });
    const referrer = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc(c1), layers: [], subject: desc(c2) };
    expect(shape(referrer, OCI_MANIFEST)).toMatchObject({ kind: 'skip', reason: expect.stringContaining('subject') });
    expect(shape({}, 'application/vnd.docker.distribution.manifest.v1+prettyjws')).toMatchObject({ kind: 'skip' });
  });
});
