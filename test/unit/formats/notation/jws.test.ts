/**
 * The Notary Project JWS envelope (src/formats/notation/jws.ts, check.ts): headers as
 * notation-core-go requires them, ES256 raw r||s and PS256 signatures, the payload's target
 * descriptor, and the verdict the reader and writer share (signed by the key, with its
 * certificate, about this manifest, countersigned when the rule stamps). notation 1.3 itself
 * checks what these build in test/integration/notation-format.test.ts.
 */
import { constants, createHash, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { notationMeets } from '../../../../src/formats/notation/check.js';
import {
  algFor,
  b64url,
  buildEnvelope,
  certificateChainDers,
  headerProblem,
  jwsSignatureValid,
  jwsTime,
  notationPayload,
  parseEnvelope,
  payloadProblem,
  protectedHeader,
  signingInput,
  thumbprints,
  type JwsAlg,
} from '../../../../src/formats/notation/jws.js';
import { notationManifest } from '../../../../src/formats/notation/write.js';
import { SigningKey } from '../../../../src/kms/signing-key.js';
import type { KeyProvider } from '../../../../src/kms/types.js';
import { issueSignerChain } from '../../../helpers/pki.js';

const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'ab'.repeat(32)}`, size: 1234 };
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

function signingKey(name: string, pair: { publicKey: KeyObject; privateKey: KeyObject }, withCert = true): SigningKey {
  const backend: KeyProvider = {
    name,
    publicKeyPem: async () => pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    sign: async (_digest, payload) => cryptoSign('sha256', payload!, pair.privateKey),
  };
  const chain = issueSignerChain(pair.publicKey);
  return new SigningKey(backend, pair.publicKey.export({ type: 'spki', format: 'pem' }) as string, {
    certificate: withCert ? { certificate: chain.certificate, chain: chain.chain, notAfter: new Date(Date.now() + 86400_000) } : undefined,
  });
}

/** An envelope signed locally the way write.ts signs (ES256 raw r||s, PS256 PSS salt = 32). */
function envelope(
  key: SigningKey,
  privateKey: KeyObject,
  o: { alg?: JwsAlg; header?: Buffer; payload?: Buffer; token?: Buffer; pkcs1?: boolean } = {},
): Buffer {
  const alg = o.alg ?? algFor(key.publicKey, key.name);
  const protectedB64 = b64url(o.header ?? protectedHeader({ alg, signingTime: new Date() }));
  const payloadB64 = b64url(o.payload ?? notationPayload(subject, { team: 'a' }));
  const input = signingInput(protectedB64, payloadB64);
  const signature =
    alg === 'ES256'
      ? cryptoSign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' })
      : o.pkcs1
        ? cryptoSign('sha256', input, privateKey)
        : cryptoSign('sha256', input, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  return buildEnvelope({ protectedB64, payloadB64, signature, x5c: certificateChainDers(key.certificate!), timestampToken: o.token });
}

describe('protected headers', () => {
  it('alg, crit, cty, signing scheme and a whole-second signing time; expiry listed in crit', () => {
    const h = JSON.parse(protectedHeader({ alg: 'ES256', signingTime: new Date('2026-01-02T03:04:05.678Z') }).toString()) as Record<string, unknown>;
    expect(h).toEqual({
      alg: 'ES256',
      crit: ['io.cncf.notary.signingScheme'],
      cty: 'application/vnd.cncf.notary.payload.v1+json',
      'io.cncf.notary.signingScheme': 'notary.x509',
      'io.cncf.notary.signingTime': '2026-01-02T03:04:05Z',
    });
    const e = JSON.parse(
      protectedHeader({ alg: 'PS256', signingTime: new Date('2026-01-02T03:04:05Z'), expiry: new Date('2027-01-01T00:00:00.5Z') }).toString(),
    ) as Record<string, unknown>;
    expect(e['crit']).toEqual(['io.cncf.notary.signingScheme', 'io.cncf.notary.expiry']);
    expect(e['io.cncf.notary.expiry']).toBe('2027-01-01T00:00:00Z');
    expect(jwsTime(new Date('2026-05-06T07:08:09.999Z'))).toBe('2026-05-06T07:08:09Z');
  });

  it('the algorithm follows the key as notation derives it: P-256 ES256, RSA-2048 PS256, others refused', () => {
    expect(algFor(p256.publicKey, 'k')).toBe('ES256');
    expect(algFor(rsa.publicKey, 'k')).toBe('PS256');
    expect(() => algFor(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey, 'k384')).toThrow(/k384.*EC secp384r1.*P-256 \(ES256\) and RSA-2048/);
    expect(() => algFor(generateKeyPairSync('rsa', { modulusLength: 3072 }).publicKey, 'k3072')).toThrow(/RSA-3072/);
    expect(() => algFor(generateKeyPairSync('ed25519').publicKey, 'ed')).toThrow(/KEY_INVALID|cannot sign Notation/);
  });

  it('headerProblem: what notation refuses', () => {
    const base = JSON.parse(protectedHeader({ alg: 'ES256', signingTime: new Date() }).toString()) as Record<string, unknown>;
    expect(headerProblem(base, p256.publicKey, 'k')).toBeUndefined();
    expect(headerProblem({ ...base, alg: 'ES384' }, p256.publicKey, 'k')).toMatch(/ES384.*ES256/);
    expect(headerProblem(base, rsa.publicKey, 'k')).toMatch(/needs PS256/);
    expect(headerProblem({ ...base, cty: 'application/json' }, p256.publicKey, 'k')).toMatch(/content type/);
    expect(headerProblem({ ...base, 'io.cncf.notary.signingScheme': 'notary.x509.signingAuthority' }, p256.publicKey, 'k')).toMatch(/signing scheme/);
    expect(headerProblem({ ...base, crit: [] }, p256.publicKey, 'k')).toMatch(/crit/);
    expect(headerProblem({ ...base, crit: ['io.cncf.notary.signingScheme', 'x.custom'] }, p256.publicKey, 'k')).toMatch(/unknown critical header x\.custom/);
    const { ['io.cncf.notary.signingTime']: _t, ...noTime } = base;
    expect(headerProblem(noTime, p256.publicKey, 'k')).toMatch(/signing time/);
    const past = JSON.parse(
      protectedHeader({ alg: 'ES256', signingTime: new Date(Date.now() - 7200_000), expiry: new Date(Date.now() - 3600_000) }).toString(),
    ) as Record<string, unknown>;
    expect(headerProblem(past, p256.publicKey, 'k')).toMatch(/expired/);
    expect(headerProblem({ ...past, crit: ['io.cncf.notary.signingScheme'] }, p256.publicKey, 'k')).toMatch(/expiry is not marked critical/);
  });
});

describe('payload and storage', () => {
  it('the payload is the target descriptor with the annotations; payloadProblem compares it', () => {
    const payload = notationPayload(subject, { z: '1', a: '2' });
    expect(payload.toString()).toBe(
      `{"targetArtifact":{"annotations":{"a":"2","z":"1"},"digest":"${subject.digest}","mediaType":"${subject.mediaType}","size":1234}}`,
    );
    expect(notationPayload(subject).toString()).toBe(`{"targetArtifact":{"digest":"${subject.digest}","mediaType":"${subject.mediaType}","size":1234}}`);
    const env = { payload: JSON.parse(payload.toString()) } as Parameters<typeof payloadProblem>[0];
    expect(payloadProblem(env, subject, { a: '2' })).toBeUndefined();
    expect(payloadProblem(env, subject, { a: '3' })).toMatch(/annotation a/);
    expect(payloadProblem(env, { ...subject, digest: `sha256:${'cd'.repeat(32)}` })).toMatch(/^signs sha256:abab/);
    expect(payloadProblem(env, { ...subject, size: 1 })).toMatch(/size 1234/);
    // a reader that knows only the digest
    expect(payloadProblem(env, { digest: subject.digest, mediaType: '', size: 0 })).toBeUndefined();
  });

  it('the referrer manifest: artifact type, empty config, one jose+json layer, subject, thumbprints leaf first', () => {
    const key = signingKey('k', p256);
    const env = envelope(key, p256.privateKey);
    const ders = certificateChainDers(key.certificate!);
    expect(ders).toHaveLength(3);
    const tp = JSON.parse(thumbprints(ders)) as string[];
    expect(tp[0]).toBe(createHash('sha256').update(ders[0]!).digest('hex'));
    const m = JSON.parse(notationManifest(env, subject, { 'io.cncf.notary.x509chain.thumbprint#S256': thumbprints(ders) }).toString()) as Record<string, any>;
    expect(m).toMatchObject({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.cncf.notary.signature',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2, digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' },
      layers: [{ mediaType: 'application/jose+json', size: env.length }],
      subject,
    });
  });
});

describe('the envelope and the verdict', () => {
  const need = { timestamp: false };
  const want = { subject, annotations: { team: 'a' } };

  it('ES256: raw r||s verifies with the key; the envelope parses (x5c leaf first, base64); the verdict is ok', () => {
    const key = signingKey('k', p256);
    const parsed = parseEnvelope(envelope(key, p256.privateKey))!;
    expect(parsed.signature).toHaveLength(64);
    expect(parsed.x5c[0]!.equals(certificateChainDers(key.certificate!)[0]!)).toBe(true);
    expect(jwsSignatureValid(parsed, key.publicKey)).toBe(true);
    expect(notationMeets(parsed, want, key, need)).toEqual({ signedBy: true, ok: true, signedDigest: subject.digest });
  });

  it('PS256 verifies; a PKCS#1 v1.5 signature under PS256 does not (a backend without PSS is caught)', () => {
    const key = signingKey('r', rsa);
    expect(notationMeets(parseEnvelope(envelope(key, rsa.privateKey))!, want, key, need)).toMatchObject({ signedBy: true, ok: true });
    expect(jwsSignatureValid(parseEnvelope(envelope(key, rsa.privateKey, { pkcs1: true }))!, key.publicKey)).toBe(false);
  });

  it('another key, another certificate, another manifest, tampered bytes, a missing countersignature', () => {
    const key = signingKey('k', p256);
    const parsed = parseEnvelope(envelope(key, p256.privateKey))!;
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(notationMeets(parsed, want, signingKey('o', other), need)).toEqual({ signedBy: false });
    // same key, another certificate configured for it
    expect(notationMeets(parsed, want, signingKey('k2', p256), need)).toMatchObject({ ok: false, why: /x5c leaf is not the key's configured certificate/ });
    expect(notationMeets(parsed, want, signingKey('k3', p256, false), need)).toMatchObject({ ok: false, why: /no certificate/ });
    expect(notationMeets(parsed, { subject: { ...subject, digest: `sha256:${'cd'.repeat(32)}` } }, key, need)).toMatchObject({ ok: false, why: /^signs / });
    expect(notationMeets(parsed, { subject, annotations: { team: 'b' } }, key, need)).toMatchObject({ ok: false, why: /annotation team/ });
    const tampered = { ...parsed, payloadB64: b64url(notationPayload({ ...subject, digest: `sha256:${'cd'.repeat(32)}` }, { team: 'a' })) };
    expect(notationMeets(tampered, want, key, need)).toEqual({ signedBy: false });
    expect(notationMeets(parsed, want, key, { timestamp: true })).toMatchObject({ ok: false, why: /no RFC 3161 countersignature/ });
  });

  it("a countersignature is handed to the rule's verifier with the signature bytes; its refusal is the verdict", () => {
    const key = signingKey('k', p256);
    const token = Buffer.from('token');
    const parsed = parseEnvelope(envelope(key, p256.privateKey, { token }))!;
    expect(parsed.timestampToken).toEqual(token);
    const seen: Buffer[][] = [];
    const ok = notationMeets(parsed, want, key, { timestamp: true, verifyTimestamp: (sig, t) => (seen.push([sig, t]), new Date()) });
    expect(ok).toMatchObject({ ok: true });
    expect(seen).toEqual([[parsed.signature, token]]);
    const refused = notationMeets(parsed, want, key, {
      timestamp: true,
      verifyTimestamp: () => {
        throw new Error('timestamp: wrong TSA');
      },
    });
    expect(refused).toMatchObject({ ok: false, why: 'timestamp: wrong TSA' });
  });

  it('parseEnvelope refuses what is not a JWS JSON envelope', () => {
    expect(parseEnvelope(Buffer.from('not json'))).toBeUndefined();
    expect(parseEnvelope(Buffer.from(JSON.stringify({ payload: 'e30', protected: 'e30', signature: 'AA', header: {} })))).toBeUndefined(); // no x5c
    expect(parseEnvelope(Buffer.from(JSON.stringify({ payload: 'e3+/', protected: 'e30', signature: 'AA', header: { x5c: ['AA=='] } })))).toBeUndefined(); // not base64url
  });
});
