/**
 * The Notary Project JWS signature envelope (specs/signature-envelope-jws.md, as notation-core-go
 * signature/jws writes and verifies it), built and checked here:
 *
 * - JWS JSON serialization (`application/jose+json`): `payload`, `protected` (both base64url,
 *   no padding), `header` (unprotected: `x5c` the certificate chain leaf first and the optional
 *   `io.cncf.notary.timestampSignature`, both standard base64 as Go's []byte marshals), `signature`
 *   (base64url) over ASCII(protected + "." + payload);
 * - payload `{"targetArtifact": descriptor}` (the signed manifest's mediaType, digest, size and
 *   the rule's annotations, which `notation sign --user-metadata` would put there), content type
 *   `application/vnd.cncf.notary.payload.v1+json`;
 * - protected headers: alg (PS256 for RSA-2048, ES256 for P-256: notation derives the algorithm
 *   from the certificate's key and refuses any other pairing), cty, signing scheme `notary.x509`,
 *   signing time (whole seconds), optional expiry, `crit` listing the signing scheme (and expiry);
 * - ECDSA signatures raw r||s (JWA), RSA signatures RSASSA-PSS SHA-256 (salt = hash length).
 *
 * A JOSE library (jose) would need the private key in-process; signet's keys only sign through
 * their backends, and the envelope is a few lines of JSON, so it is built by hand.
 */
import { createHash, verify as cryptoVerify, constants, X509Certificate, type KeyObject } from 'node:crypto';
import { ASN1Obj } from '@sigstore/core';
import { SignetError } from '../../errors.js';
import type { Subject } from '../types.js';

export const NOTATION_SIGNATURE = 'application/vnd.cncf.notary.signature';
export const JWS_ENVELOPE = 'application/jose+json';
export const NOTATION_PAYLOAD = 'application/vnd.cncf.notary.payload.v1+json';
export const SIGNING_SCHEME = 'notary.x509';
export const THUMBPRINT_ANNOTATION = 'io.cncf.notary.x509chain.thumbprint#S256';

const H_SCHEME = 'io.cncf.notary.signingScheme';
const H_TIME = 'io.cncf.notary.signingTime';
const H_EXPIRY = 'io.cncf.notary.expiry';
const H_AUTHENTIC_TIME = 'io.cncf.notary.authenticSigningTime';
const U_TIMESTAMP = 'io.cncf.notary.timestampSignature';

export type JwsAlg = 'ES256' | 'PS256';

/** The JWS algorithm notation pairs with this key (ExtractKeySpec), or a KEY_INVALID error naming why none. */
export function algFor(key: KeyObject, name: string): JwsAlg {
  const t = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails;
  if (t === 'ec' && d?.namedCurve === 'prime256v1') return 'ES256';
  if (t === 'rsa' && d?.modulusLength === 2048) return 'PS256';
  const what = t === 'ec' ? `EC ${d?.namedCurve ?? '?'}` : t === 'rsa' ? `RSA-${d?.modulusLength ?? '?'}` : String(t);
  // notation signs RSA-3072 with PS384, P-384 with ES384...: signet's keys sign SHA-256 digests only
  throw new SignetError('KEY_INVALID', `key "${name}" (${what}) cannot sign Notation signatures: signet supports P-256 (ES256) and RSA-2048 (PS256)`);
}

export function b64url(b: Buffer): string {
  return b.toString('base64url');
}

function sortKeys(o: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]!;
  return out;
}

/** The payload: the target descriptor (keys in the order Go's map marshalling gives them). */
export function notationPayload(subject: Subject, annotations?: Readonly<Record<string, string>>): Buffer {
  const target: Record<string, unknown> = {};
  if (annotations && Object.keys(annotations).length) target['annotations'] = sortKeys(annotations);
  target['digest'] = subject.digest;
  target['mediaType'] = subject.mediaType;
  target['size'] = subject.size;
  return Buffer.from(JSON.stringify({ targetArtifact: target }));
}

/** RFC 3339 in whole seconds, UTC (notation truncates signing time and expiry to the second). */
export function jwsTime(d: Date): string {
  return new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function protectedHeader(opts: { alg: JwsAlg; signingTime: Date; expiry?: Date | undefined }): Buffer {
  const crit = [H_SCHEME, ...(opts.expiry ? [H_EXPIRY] : [])];
  const h: Record<string, unknown> = { alg: opts.alg, crit, cty: NOTATION_PAYLOAD };
  if (opts.expiry) h[H_EXPIRY] = jwsTime(opts.expiry);
  h[H_SCHEME] = SIGNING_SCHEME;
  h[H_TIME] = jwsTime(opts.signingTime);
  return Buffer.from(JSON.stringify(h));
}

/** What the key signs: ASCII(BASE64URL(protected) "." BASE64URL(payload)). */
export function signingInput(protectedB64: string, payloadB64: string): Buffer {
  return Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii');
}

/** PEM text -> DER of each CERTIFICATE block, in order. */
export function pemToDers(pem: string): Buffer[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b).raw);
}

/** x5c for a key's configured certificate: the leaf, then the chain (intermediates, root). */
export function certificateChainDers(cert: { certificate: string; chain?: string | undefined }): Buffer[] {
  return [...pemToDers(cert.certificate), ...(cert.chain ? pemToDers(cert.chain) : [])];
}

/** The thumbprint annotation value notation writes: a JSON array of hex SHA-256 of each DER, leaf first. */
export function thumbprints(ders: readonly Buffer[]): string {
  return JSON.stringify(ders.map((d) => createHash('sha256').update(d).digest('hex')));
}

export function buildEnvelope(opts: {
  protectedB64: string;
  payloadB64: string;
  signature: Buffer;
  x5c: readonly Buffer[];
  timestampToken?: Buffer | undefined;
}): Buffer {
  const header: Record<string, unknown> = {};
  if (opts.timestampToken) header[U_TIMESTAMP] = opts.timestampToken.toString('base64');
  header['x5c'] = opts.x5c.map((d) => d.toString('base64'));
  return Buffer.from(JSON.stringify({ payload: opts.payloadB64, protected: opts.protectedB64, header, signature: b64url(opts.signature) }));
}

/** The TimeStampToken (ContentInfo) of a DER TimeStampResp: what notation stores as the countersignature. */
export function timestampToken(response: Buffer): Buffer {
  const resp = ASN1Obj.parseBuffer(Buffer.from(response));
  const token = resp.subs[1];
  if (!token) throw new SignetError('TIMESTAMP_REJECTED', 'timestamp: the response holds no token');
  return Buffer.from(token.toDER());
}

export interface ParsedEnvelope {
  protectedB64: string;
  payloadB64: string;
  header: Record<string, unknown>;
  payload: { targetArtifact?: { mediaType?: unknown; digest?: unknown; size?: unknown; annotations?: unknown } };
  signature: Buffer;
  x5c: Buffer[];
  timestampToken?: Buffer | undefined;
}

const b64urlRe = /^[A-Za-z0-9_-]*$/;

/** Parse an envelope (anyone who can push can write one): undefined when it is not a JWS JSON envelope of this shape. */
export function parseEnvelope(bytes: Buffer): ParsedEnvelope | undefined {
  try {
    const e = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    const { payload, protected: prot, header, signature } = e;
    if (typeof payload !== 'string' || typeof prot !== 'string' || typeof signature !== 'string') return undefined;
    if (![payload, prot, signature].every((s) => b64urlRe.test(s))) return undefined;
    if (!header || typeof header !== 'object' || Array.isArray(header)) return undefined;
    const h = header as Record<string, unknown>;
    const x5c = h['x5c'];
    if (!Array.isArray(x5c) || x5c.length === 0 || !x5c.every((c) => typeof c === 'string')) return undefined;
    const headerObj = JSON.parse(Buffer.from(prot, 'base64url').toString('utf8')) as unknown;
    const payloadObj = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown;
    if (!headerObj || typeof headerObj !== 'object' || !payloadObj || typeof payloadObj !== 'object') return undefined;
    const ts = h[U_TIMESTAMP];
    return {
      protectedB64: prot,
      payloadB64: payload,
      header: headerObj as Record<string, unknown>,
      payload: payloadObj as ParsedEnvelope['payload'],
      signature: Buffer.from(signature, 'base64url'),
      x5c: (x5c as string[]).map((c) => Buffer.from(c, 'base64')),
      timestampToken: typeof ts === 'string' && ts.length ? Buffer.from(ts, 'base64') : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Does the JWS signature verify with `key` under the header's algorithm? */
export function jwsSignatureValid(env: ParsedEnvelope, key: KeyObject): boolean {
  const input = signingInput(env.protectedB64, env.payloadB64);
  const alg = env.header['alg'];
  try {
    if (alg === 'ES256' && key.asymmetricKeyType === 'ec')
      return env.signature.length === 64 && cryptoVerify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, env.signature);
    if (alg === 'PS256' && key.asymmetricKeyType === 'rsa') {
      return cryptoVerify('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, env.signature);
    }
  } catch {
    return false;
  }
  return false;
}

/**
 * Why the protected headers are not ones notation accepts for the notary.x509 scheme (or
 * undefined when they are): content type, signing scheme, signing time, `crit` (names only
 * headers present, including the signing scheme and any expiry; notation refuses unknown critical
 * attributes it cannot process), expiry not passed, algorithm the one the key requires.
 */
export function headerProblem(h: Record<string, unknown>, key: KeyObject, keyName: string, now: Date = new Date()): string | undefined {
  let alg: JwsAlg;
  try {
    alg = algFor(key, keyName);
  } catch (err) {
    return (err as Error).message;
  }
  if (h['alg'] !== alg) return `algorithm ${String(h['alg'])}, the key needs ${alg}`;
  if (h['cty'] !== NOTATION_PAYLOAD) return `content type ${String(h['cty'])}`;
  if (h[H_SCHEME] !== SIGNING_SCHEME) return `signing scheme ${String(h[H_SCHEME])}`;
  if (h[H_AUTHENTIC_TIME] !== undefined) return 'authenticSigningTime under notary.x509';
  const time = typeof h[H_TIME] === 'string' ? new Date(h[H_TIME]) : undefined;
  if (!time || Number.isNaN(time.getTime())) return 'no signing time';
  const crit = h['crit'];
  if (!Array.isArray(crit) || !crit.includes(H_SCHEME)) return 'crit does not list the signing scheme';
  for (const c of crit) {
    if (c !== H_SCHEME && c !== H_EXPIRY) return `unknown critical header ${String(c)}`;
  }
  if (h[H_EXPIRY] !== undefined) {
    const expiry = typeof h[H_EXPIRY] === 'string' ? new Date(h[H_EXPIRY]) : undefined;
    if (!expiry || Number.isNaN(expiry.getTime())) return 'unreadable expiry';
    if (!crit.includes(H_EXPIRY)) return 'expiry is not marked critical';
    if (expiry <= time) return 'expiry is not after the signing time';
    if (expiry <= now) return `expired on ${expiry.toISOString()}`;
  }
  return undefined;
}

/** Why the payload does not name `subject` with `annotations` (or undefined when it does); an empty media type or zero size is not compared. */
export function payloadProblem(env: ParsedEnvelope, subject: Subject, annotations?: Readonly<Record<string, string>>): string | undefined {
  const t = env.payload.targetArtifact;
  if (!t || typeof t !== 'object') return 'no targetArtifact';
  if (t.digest !== subject.digest) return `signs ${String(t.digest)}`;
  // notation compares media type and size too; a reader given only the digest (mediaType '', size 0) cannot
  if (subject.mediaType && t.mediaType !== subject.mediaType) return `targetArtifact media type ${String(t.mediaType)}, the manifest is ${subject.mediaType}`;
  if (subject.size && t.size !== subject.size) return `targetArtifact size ${String(t.size)}, the manifest has ${subject.size} bytes`;
  const have = t.annotations && typeof t.annotations === 'object' ? (t.annotations as Record<string, unknown>) : {};
  for (const [k, v] of Object.entries(annotations ?? {})) {
    if (have[k] !== v) return `annotation ${k} is not ${JSON.stringify(v)}`;
  }
  return undefined;
}
