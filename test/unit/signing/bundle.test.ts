import { checkBundle, parseSigstoreBundle } from '../../../src/signing/bundle-read.js';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  appendToIndex,
  buildBundle,
  envelopeJson,
  keyId,
  pae,
  referrerAnnotations,
  referrerManifest,
  referrersTag,
  signStatement,
} from '../../../src/signing/bundle.js';

const D = `sha256:${'1b'.repeat(32)}`;

describe('sigstore bundle pieces', () => {
  it('PAE is the DSSE v1 encoding (spec example)', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  });

  it("the statement is cosign v3's sign statement: in-toto v1, subject digest (+ annotations), cosign/sign/v1, empty predicate", () => {
    expect(signStatement(D).toString()).toBe(
      `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"${'1b'.repeat(32)}"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}`,
    );
    expect(JSON.parse(signStatement(D, { z: '1', a: '2' }).toString()).subject[0].annotations).toEqual({ a: '2', z: '1' });
    expect(Object.keys(JSON.parse(signStatement(D, { z: '1', a: '2' }).toString()).subject[0].annotations)).toEqual(['a', 'z']);
  });

  it('a bundle signed over PAE verifies with its key only, and parses back', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const statement = signStatement(D);
    const sig = sign('sha256', pae('application/vnd.in-toto+json', statement), privateKey);
    const b = JSON.parse(buildBundle({ statement, signature: sig, publicKeyPem: pem }).toString());
    expect(b.mediaType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
    expect(b.verificationMaterial.publicKey.hint).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(b.verificationMaterial.tlogEntries).toBeUndefined();
    expect(b.dsseEnvelope).toEqual({
      payload: statement.toString('base64'),
      payloadType: 'application/vnd.in-toto+json',
      signatures: [{ sig: sig.toString('base64') }],
    });
    // read back by the bundle reader: valid for this key and digest; not with an annotation it lacks, nor for another key
    const parsed = parseSigstoreBundle(Buffer.from(JSON.stringify(b)))!;
    expect(await checkBundle(parsed, { digest: D }, { publicKey })).toEqual({ ok: true, tlogEntries: 0, timestamps: 0 });
    expect(await checkBundle(parsed, { digest: D, annotations: { a: 'b' } }, { publicKey })).toMatchObject({ ok: false });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    expect(await checkBundle(parsed, { digest: D }, { publicKey: other })).toMatchObject({ ok: false, why: 'signature does not verify with the key' });
    expect(JSON.parse(envelopeJson(statement, sig))).toEqual({
      payloadType: 'application/vnd.in-toto+json',
      payload: statement.toString('base64'),
      signatures: [{ keyid: '', sig: sig.toString('base64') }],
    });
    expect(keyId(pem)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it("the referrer manifest is cosign's layout: empty config, one bundle layer, annotations, subject, artifactType", () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const ann = referrerAnnotations(signStatement(D), pem, new Date('2026-01-02T03:04:05.678Z'));
    const m = JSON.parse(referrerManifest(Buffer.from('{}x'), { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D, size: 7 }, ann).toString());
    expect(Object.keys(m)).toEqual(['schemaVersion', 'mediaType', 'config', 'layers', 'annotations', 'subject', 'artifactType']);
    expect(m.config).toEqual({
      mediaType: 'application/vnd.oci.empty.v1+json',
      size: 2,
      digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
    });
    expect(m.layers).toHaveLength(1);
    expect(m.annotations['org.opencontainers.image.created']).toBe('2026-01-02T03:04:05Z');
    expect(m.annotations['dev.sigstore.bundle.content']).toBe('dsse-envelope');
    expect(m.subject).toEqual({ mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 7, digest: D });
    expect(referrersTag(D)).toBe(`sha256-${'1b'.repeat(32)}`);
  });

  it('the fallback index: created when absent, appended without duplicates, other content kept', () => {
    const d = (n: string) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${n.repeat(64)}`,
      size: 1,
      artifactType: 'x',
      annotations: { b: '1', a: '2' },
    });
    const first = appendToIndex(undefined, [d('a')]);
    expect(first.changed).toBe(true);
    const doc = JSON.parse(first.body.toString());
    expect(doc).toMatchObject({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json' });
    expect(Object.keys(doc.manifests[0].annotations)).toEqual(['a', 'b']);
    expect(appendToIndex(doc, [d('a')]).changed).toBe(false);
    const withExtra = { ...doc, annotations: { keep: 'me' } };
    const next = JSON.parse(appendToIndex(withExtra, [d('a'), d('b')]).body.toString());
    expect(next.manifests.map((m: any) => m.digest[7])).toEqual(['a', 'b']);
    expect(next.annotations).toEqual({ keep: 'me' });
  });
});
