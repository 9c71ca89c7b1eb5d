/**
 * An RFC 3161 timestamp authority client, and the verification of its tokens.
 *
 * The client sends a DER TimeStampReq (version 1, SHA-256 messageImprint of the data, a random
 * 63-bit nonce, certReq TRUE) as `application/timestamp-query` (RFC 3161 §3.4, what cosign's
 * --timestamp-server-url, sigstore's timestamp-authority and every public TSA accept) and reads
 * `application/timestamp-reply`. The answer is checked (status granted, nonce, imprint) and
 * verified against the configured chain before it is returned; nothing unverified is handed out.
 *
 * What each signature format stores (both are the DER TimeStampResp, status included, exactly
 * as the TSA returned it, not the bare TimeStampToken):
 * - sigstore bundle: `verificationMaterial.timestampVerificationData.rfc3161Timestamps[]
 *   .signedTimestamp` (base64): protobuf-specs sigstore_common.proto RFC3161SignedTimestamp
 *   "Signed timestamp is the DER encoded TimeStampResponse"; sigstore-go and sigstore-js parse it
 *   as a TimeStampResp (@sigstore/core RFC3161Timestamp reads root.subs[0] as PKIStatusInfo).
 *   The timestamped data is the signature bytes (sigstore-go pkg/verify/tsa.go
 *   `sigContent.Signature()`: a message signature's bytes, or a DSSE envelope's first signature
 *   base64-decoded).
 * - cosign's legacy `.sig`/`.att` layers: annotation `dev.sigstore.cosign/rfc3161timestamp` =
 *   `{"SignedRFC3161Timestamp":"<base64 TimeStampResp>"}` (cosign pkg/cosign/bundle/tsa.go,
 *   "a DER encoded TimeStampResponse"; Go marshals []byte as standard base64). cosign
 *   pkg/cosign/verify.go VerifyRFC3161Timestamp timestamps the raw signature bytes (the
 *   base64-decoded `dev.cosignproject.cosign/signature` annotation), or the layer payload when
 *   that annotation is empty (attestations: the whole DSSE envelope JSON).
 *
 * Parsing uses @sigstore/core (ASN1Obj, RFC3161Timestamp, X509Certificate) and node:crypto; the
 * only DER written by hand is the small TimeStampReq, because neither @sigstore/core (a parser
 * only) nor node:crypto has an ASN.1 encoder, and pulling in pkijs/asn1js for four fields is
 * more code to trust than the twenty lines below.
 *
 * HTTP follows src/transparency/rekor.ts: undici with an overall deadline per request, a capped
 * body, bounded in-process retries honouring `Retry-After`, no redirects followed, upstream text
 * redacted. 429, 5xx, network errors and timeouts are TIMESTAMP_UNAVAILABLE (retryable); a
 * refusal or an answer that does not verify is TIMESTAMP_REJECTED.
 */
import { createHash, randomBytes, X509Certificate as NodeX509 } from 'node:crypto';
import { ASN1Obj, RFC3161Timestamp, X509Certificate } from '@sigstore/core';
import type { Dispatcher } from 'undici';
import { ServiceClient, textDetail, type ServiceReply } from '../edge/service-client.js';
import { bigint, tlv } from '../util/der.js';
import { SignetError } from '../errors.js';
import { upstreamText } from '../log.js';

/** A verified timestamp: what the formats store, and the time it proves. */
export interface SignedTimestamp {
  /** The DER TimeStampResp exactly as the TSA returned it (what the bundle and the legacy annotation hold). */
  response: Buffer;
  /** TSTInfo genTime. */
  genTime: Date;
}

/** A TSA certificate chain, checked: leaf (EKU timeStamping) first, self-signed root last. */
export interface TimestampChain {
  /** The PEM text, leaf first (what goes into exported trust roots). */
  pem: string;
  /** DER of each certificate, leaf first, root last. */
  certificates: Buffer[];
}

export interface TimestampClientOptions {
  /** The TSA endpoint, used as is (e.g. https://timestamp.sigstore.dev/api/v1/timestamp, https://freetsa.org/tsr). */
  url: string;
  /** Overall deadline of each request (connect, headers and the whole body). Default 10 s. */
  timeoutMs?: number;
  /** The TSA's certificate chain: PEM text (leaf first, root last) or a chain from parseTimestampChain / loadTimestampChain. */
  chain: string | TimestampChain;
  /** Attempts per call for retryable failures before the error is handed to the job queue. Default 3. */
  attempts?: number;
  /** Delays between those attempts (ms); jittered. Default [250, 1000]. */
  retryDelaysMs?: readonly number[];
  dispatcher?: Dispatcher;
}

export const OID_EKU_TIMESTAMPING = '1.3.6.1.5.5.7.3.8';
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SIGNING_CERTIFICATE_V2 = '1.2.840.113549.1.9.16.2.47';
const OID_SIGNING_CERTIFICATE = '1.2.840.113549.1.9.16.2.12';
const HASH_BY_OID: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  [OID_SHA256]: 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
/** The legacy annotation cosign reads the timestamp from. */
export const RFC3161_TIMESTAMP_ANNOTATION = 'dev.sigstore.cosign/rfc3161timestamp';

/** Retry-After longer than this is not waited for in-process: the job queue waits instead. */
/** Largest TSA answer read: a token with its certificates is a few KiB. */
const MAX_BODY_BYTES = 256 * 1024;
const REPLY_TYPES = new Set(['application/timestamp-reply', 'application/timestamp-response']);
const PKI_STATUS = ['granted', 'grantedWithMods', 'rejection', 'waiting', 'revocationWarning', 'revocationNotification'];
/** PKIFailureInfo bits (RFC 3161 §2.4.2). */
const FAIL_INFO: Record<number, string> = {
  0: 'badAlg',
  2: 'badRequest',
  5: 'badDataFormat',
  14: 'timeNotAvailable',
  15: 'unacceptedPolicy',
  16: 'unacceptedExtension',
  17: 'addInfoNotAvailable',
  25: 'systemFailure',
};

// ---- the request ------------------------------------------------------------------------------

/**
 * DER TimeStampReq (RFC 3161 §2.4.1): SEQUENCE { version 1, messageImprint { sha256 (NULL
 * parameters, as openssl ts and Go's timestamp package write them), hash }, nonce, certReq }.
 */
export function encodeTimestampRequest(req: { sha256: Buffer; nonce: bigint; certReq?: boolean }): Buffer {
  if (req.sha256.length !== 32) throw new RangeError('sha256 must be 32 bytes');
  const algorithm = tlv(0x30, Buffer.concat([tlv(0x06, Buffer.from('608648016503040201', 'hex')), Buffer.from([0x05, 0x00])]));
  const imprint = tlv(0x30, Buffer.concat([algorithm, tlv(0x04, req.sha256)]));
  const parts = [bigint(1n), imprint, bigint(req.nonce)];
  // certReq is DEFAULT FALSE: DER leaves a default value out
  if (req.certReq ?? true) parts.push(Buffer.from([0x01, 0x01, 0xff]));
  return tlv(0x30, Buffer.concat(parts));
}

/** A random positive 63-bit nonce (RFC 3161 §2.4.1 suggests 64 bits; the top bit is cleared so the INTEGER stays 8 bytes). */
export function randomNonce(): bigint {
  const b = randomBytes(8);
  b[0] = b[0]! & 0x7f;
  const n = b.readBigUInt64BE();
  return n === 0n ? 1n : n;
}

// ---- the chain --------------------------------------------------------------------------------

/** DER certificates from PEM text, in order. */
export function pemCertificates(pem: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g)) {
    out.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  }
  return out;
}

/**
 * Check a TSA chain (PEM, leaf first): at least a leaf and a root, each certificate issued and
 * signed by the next, the ones after the leaf CAs, the last self-signed, the leaf with EKU
 * timeStamping. Throws CONFIG_INVALID naming `what` and the first problem found.
 */
export function parseTimestampChain(pem: string, what = 'timestamp certificateChain'): TimestampChain {
  const bad = (why: string): never => {
    throw new SignetError('CONFIG_INVALID', `${what}: ${why}`);
  };
  const ders = pemCertificates(pem);
  if (ders.length === 0) bad('no PEM certificate in it');
  if (ders.length < 2) bad('needs the TSA certificate and the root that issued it (leaf first, root last); a single certificate is not a chain');
  const certs = ders.map((d, i) => {
    try {
      return new NodeX509(d);
    } catch {
      return bad(`certificate ${i + 1} is not a valid X.509 certificate`);
    }
  });
  const leaf = certs[0]!;
  if (!(leaf.keyUsage ?? []).includes(OID_EKU_TIMESTAMPING)) {
    bad(`the first certificate (${oneLine(leaf.subject)}) is not a timestamping certificate (no extended key usage timeStamping ${OID_EKU_TIMESTAMPING})`);
  }
  // what sigstore's timestamp-authority verifier (used by cosign and sigstore-go) also demands,
  // RFC 3161 §2.3: an end-entity certificate whose only EKU is timeStamping, marked critical
  if (leaf.ca) bad(`the first certificate (${oneLine(leaf.subject)}) is a CA; the TSA certificate must be an end-entity certificate`);
  if ((leaf.keyUsage ?? []).length !== 1) bad(`the TSA certificate (${oneLine(leaf.subject)}) must have timeStamping as its only extended key usage`);
  if (!X509Certificate.parse(Buffer.from(ders[0]!)).extension(OID_EXT_KEY_USAGE)?.critical) {
    bad(`the TSA certificate (${oneLine(leaf.subject)}) must mark its extended key usage critical (RFC 3161 2.3; cosign refuses it otherwise)`);
  }
  for (const [i, x] of certs.slice(1, -1).entries()) {
    const eku = x.keyUsage ?? [];
    if (eku.length && !eku.includes(OID_EKU_TIMESTAMPING) && !eku.includes('2.5.29.37.0')) {
      bad(`intermediate certificate ${i + 2} (${oneLine(x.subject)}) restricts its extended key usage without timeStamping`);
    }
  }
  for (let i = 0; i < certs.length - 1; i++) {
    const child = certs[i]!;
    const parent = certs[i + 1]!;
    if (!parent.ca) bad(`certificate ${i + 2} (${oneLine(parent.subject)}) is not a CA`);
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      bad(
        `certificate ${i + 1} (${oneLine(child.subject)}) is not issued by certificate ${i + 2} (${oneLine(parent.subject)}); list the leaf first and the root last`,
      );
    }
  }
  const root = certs[certs.length - 1]!;
  if (!root.checkIssued(root) || !root.verify(root.publicKey)) bad(`the last certificate (${oneLine(root.subject)}) is not a self-signed root`);
  return { pem: ders.map(toPem).join(''), certificates: ders };
}

function toPem(der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}
function oneLine(s: string): string {
  return upstreamText(s.replace(/\n/g, ', '), { max: 120 });
}

// ---- verification -----------------------------------------------------------------------------

export interface VerifyTimestampOptions {
  /** The nonce that was sent: the token must carry it. */
  nonce?: bigint;
  /** Require a SHA-256 imprint (the client's own requests). Readers accept SHA-256/384/512. */
  requireSha256?: boolean;
}

/**
 * Verify an RFC 3161 timestamp over `data` against a TSA chain: a TimeStampResp (what the
 * bundle and the legacy annotation hold) or a bare TimeStampToken. Checks the status, the
 * imprint, the signed messageDigest, the signature with the chain's leaf key (the signer must be
 * that leaf), the ESS signing-certificate attribute names that leaf, the leaf's EKU, and every
 * chain certificate's validity at genTime (and the nonce when given). Throws TIMESTAMP_REJECTED
 * (TIMESTAMP_UNAVAILABLE for a TSA that reported systemFailure or waiting).
 */
export function verifyTimestamp(
  bytes: Buffer,
  data: Buffer,
  chain: string | TimestampChain | readonly Buffer[],
  opts: VerifyTimestampOptions = {},
): { genTime: Date } {
  const c =
    typeof chain === 'string'
      ? parseTimestampChain(chain)
      : Array.isArray(chain)
        ? parseTimestampChain((chain as Buffer[]).map(toPem).join(''))
        : (chain as TimestampChain);
  const bad = (why: string): never => {
    throw new SignetError('TIMESTAMP_REJECTED', `timestamp: ${why}`);
  };
  let root: ASN1Obj;
  try {
    root = ASN1Obj.parseBuffer(Buffer.from(bytes));
  } catch {
    return bad('not DER');
  }
  try {
    // a bare TimeStampToken (ContentInfo: SEQUENCE { OID, [0] SignedData }) becomes a granted TimeStampResp
    if (root.subs[0]?.tag.isOID()) {
      root = ASN1Obj.parseBuffer(Buffer.from(tlv(0x30, Buffer.concat([Buffer.from('3003020100', 'hex'), root.toDER()]))));
    }
    checkStatus(root);
    if (root.subs.length < 2) bad('no timeStampToken in the response');
    const ts = new RFC3161Timestamp(root);
    const tst = ts.tstInfo;
    const genTime = generalizedTime(tst.root.subs[4]);
    const algorithm = tst.messageImprintHashAlgorithm;
    if (opts.requireSha256 ? algorithm !== 'sha256' : !['sha256', 'sha384', 'sha512'].includes(algorithm ?? '')) {
      bad(`message imprint algorithm ${algorithm ?? 'unknown'} not accepted`);
    }
    if (opts.nonce !== undefined) {
      const nonce = tst.root.subs.slice(5).find((s) => s.tag.isUniversal() && s.tag.isInteger());
      if (!nonce) bad('no nonce in the token (one was sent)');
      if (nonce!.toInteger() !== opts.nonce) bad('nonce does not match the request (a replayed or misrouted answer)');
    }
    const leafDer = c.certificates[0]!;
    const leaf = X509Certificate.parse(Buffer.from(leafDer));
    checkSigner(ts, leaf);
    checkEmbeddedSigner(ts, leaf);
    checkEssSigningCertificate(ts, leafDer);
    try {
      ts.verify(Buffer.from(data), createLeafKey(leafDer));
    } catch (err) {
      bad(`${err instanceof Error ? err.message : String(err)} (with the configured TSA certificate)`);
    }
    for (const [i, der] of c.certificates.entries()) {
      const x = new NodeX509(der);
      if (genTime < new Date(x.validFrom) || genTime > new Date(x.validTo)) {
        bad(`certificate ${i + 1} of the TSA chain (${oneLine(x.subject)}) is not valid at genTime ${genTime.toISOString()}`);
      }
    }
    if (!(new NodeX509(leafDer).keyUsage ?? []).includes(OID_EKU_TIMESTAMPING)) bad('the TSA certificate lacks extended key usage timeStamping');
    return { genTime };
  } catch (err) {
    if (err instanceof SignetError) throw err;
    return bad(`malformed token (${upstreamText(err instanceof Error ? err.message : String(err), { max: 120 })})`);
  }
}

/**
 * TSTInfo genTime, a GeneralizedTime "YYYYMMDDhhmmss[.f...]Z". Read here rather than with
 * @sigstore/core's TSTInfo.genTime, which (3.2) accepts only a 3-digit fraction: DER drops a
 * fraction's trailing zeros (X.690 11.7.3), so a valid genTime such as "...40.75Z" would be refused.
 */
function generalizedTime(obj: ASN1Obj | undefined): Date {
  const m = obj?.tag.isGeneralizedTime() ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z$/.exec(obj.value.toString('latin1')) : null;
  if (!m) throw new SignetError('TIMESTAMP_REJECTED', 'timestamp: unreadable genTime');
  const [, y, mo, d, h, mi, sec, frac] = m;
  const ms = frac ? Math.floor(Number(`0.${frac}`) * 1000) : 0;
  const t = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), ms));
  if (Number.isNaN(t.getTime()) || t.getUTCDate() !== Number(d) || t.getUTCHours() !== Number(h))
    throw new SignetError('TIMESTAMP_REJECTED', 'timestamp: unreadable genTime');
  return t;
}

function createLeafKey(der: Buffer) {
  return new NodeX509(der).publicKey;
}

/** PKIStatusInfo: granted / grantedWithMods pass; anything else is refused (systemFailure and waiting may pass later). */
function checkStatus(resp: ASN1Obj): void {
  const info = resp.subs[0];
  if (!info || !info.subs[0]?.tag.isInteger()) throw new SignetError('TIMESTAMP_REJECTED', 'timestamp: not a TimeStampResp');
  const status = Number(info.subs[0].toInteger());
  if (status === 0 || status === 1) return;
  const words: string[] = [];
  let failBits: number[] = [];
  for (const s of info.subs.slice(1)) {
    if (s.tag.isBitString()) failBits = s.toBitString();
    else for (const t of s.subs) words.push(t.value.toString('utf8'));
  }
  const fails = failBits.flatMap((bit, i) => (bit ? [FAIL_INFO[i] ?? `bit ${i}`] : []));
  const transient = status === 3 || fails.includes('systemFailure') || fails.includes('timeNotAvailable');
  const text = [PKI_STATUS[status] ?? `status ${status}`, ...fails, ...words.map((w) => upstreamText(w, { max: 200 }))].join(': ');
  throw new SignetError(transient ? 'TIMESTAMP_UNAVAILABLE' : 'TIMESTAMP_REJECTED', `timestamp authority answered ${text}`);
}

/** The SignerInfo's sid must name the configured leaf (IssuerAndSerialNumber or SubjectKeyIdentifier). */
function checkSigner(ts: RFC3161Timestamp, leaf: X509Certificate): void {
  const sid = signerInfo(ts).subs[1]!;
  let ok: boolean;
  if (sid.tag.isContextSpecific(0)) ok = !!leaf.extSubjectKeyID && sid.value.equals(leaf.extSubjectKeyID.keyIdentifier);
  else ok = ts.signerIssuer.equals(leaf.issuer) && ts.signerSerialNumber.equals(leaf.serialNumber);
  if (!ok) throw new SignetError('TIMESTAMP_REJECTED', 'timestamp: signed by a certificate other than the configured TSA certificate');
}

function signedData(ts: RFC3161Timestamp): ASN1Obj {
  const token = ts.root.subs[1]!;
  return token.subs.find((s) => s.tag.isContextSpecific(0))!.subs[0]!;
}
function signerInfo(ts: RFC3161Timestamp): ASN1Obj {
  const sd = signedData(ts);
  return sd.subs[sd.subs.length - 1]!.subs[0]!;
}

/**
 * A signer certificate embedded in the token (certReq) must be the configured leaf itself:
 * timestamp-authority's verifier (cosign, sigstore-go) refuses "certificate embedded in the TSR
 * does not match the provided TSA certificate", so signet refuses it before writing anything.
 */
function checkEmbeddedSigner(ts: RFC3161Timestamp, leaf: X509Certificate): void {
  const sd = signedData(ts);
  // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, certificates [0] IMPLICIT OPTIONAL, crls [1] OPTIONAL, signerInfos }
  const certs = sd.subs.slice(3, -1).find((s) => s.tag.isContextSpecific(0));
  for (const c of certs?.subs ?? []) {
    if (!c.tag.isUniversal() || c.tag.number !== 0x10) continue; // other CertificateChoices
    const x = new X509Certificate(c);
    if (x.issuer.equals(leaf.issuer) && x.serialNumber.equals(leaf.serialNumber) && !x.equals(leaf)) {
      throw new SignetError(
        'TIMESTAMP_REJECTED',
        'timestamp: the certificate embedded in the token is not the configured TSA certificate (same issuer and serial, other certificate)',
      );
    }
  }
}

/**
 * RFC 3161 §2.4.1 / RFC 5035: the signed attributes carry ESS signing-certificate(-v2) naming
 * the TSA certificate by hash; it must be the configured leaf.
 */
function checkEssSigningCertificate(ts: RFC3161Timestamp, leafDer: Buffer): void {
  const attrs = signerInfo(ts).subs.find((s) => s.tag.isContextSpecific(0));
  const attr = (oid: string) => attrs?.subs.find((a) => a.subs[0]?.tag.isOID() && a.subs[0].toOID() === oid);
  const v2 = attr(OID_SIGNING_CERTIFICATE_V2);
  const v1 = attr(OID_SIGNING_CERTIFICATE);
  const bad = (why: string): never => {
    throw new SignetError('TIMESTAMP_REJECTED', `timestamp: ${why}`);
  };
  if (!v2 && !v1) bad('no ESS signing-certificate attribute naming the TSA certificate');
  // Attribute ::= SEQUENCE { OID, SET { SigningCertificate(V2) ::= SEQUENCE { SEQUENCE OF ESSCertID(v2), ... } } }
  const first = (v2 ?? v1)!.subs[1]?.subs[0]?.subs[0]?.subs[0];
  if (!first) return bad('unreadable ESS signing-certificate attribute');
  let hashName = 'sha1';
  let certHash: Buffer;
  if (v2) {
    const head = first.subs[0]!;
    if (head.tag.isOctetString()) {
      hashName = 'sha256'; // ESSCertIDv2 hashAlgorithm DEFAULT sha256
      certHash = head.value;
    } else {
      hashName = HASH_BY_OID[head.subs[0]?.toOID() ?? ''] ?? '';
      certHash = first.subs[1]?.value ?? Buffer.alloc(0);
    }
  } else certHash = first.subs[0]!.value;
  if (!hashName) bad('ESS signing-certificate uses an unknown hash algorithm');
  if (!createHash(hashName).update(leafDer).digest().equals(certHash))
    bad('the ESS signing-certificate attribute names a certificate other than the configured TSA certificate');
}

// ---- the formats ------------------------------------------------------------------------------

/** An entry of the sigstore bundle's `timestampVerificationData.rfc3161Timestamps`. */
export function bundleRfc3161Timestamp(ts: Pick<SignedTimestamp, 'response'>): { signedTimestamp: string } {
  return { signedTimestamp: ts.response.toString('base64') };
}

/** The value of cosign's legacy `dev.sigstore.cosign/rfc3161timestamp` annotation. */
export function legacyRfc3161Annotation(ts: Pick<SignedTimestamp, 'response'>): string {
  return JSON.stringify({ SignedRFC3161Timestamp: ts.response.toString('base64') });
}

/**
 * The TSA as a TrustedRoot `timestampAuthorities[]` entry (protobuf-specs sigstore_trustroot.proto
 * CertificateAuthority, JSON form), shaped as `cosign trusted-root create --tsa
 * url=...,certificate-chain=...` (cosign 3.1 cmd/cosign/cli/trustedroot parseTSASpec, sigstore-go
 * timestampingAuthorityToProtobufCA) writes it: `subject` the root's O and CN, `uri`, `certChain`
 * leaf, intermediates, root (DER, base64), `validFor.start` the leaf's notBefore.
 */
export function trustedRootTimestampAuthority(chain: TimestampChain, url: string): Record<string, unknown> {
  const root = new NodeX509(chain.certificates[chain.certificates.length - 1]!);
  const field = (name: string) =>
    root.subject
      .split('\n')
      .find((l) => l.startsWith(`${name}=`))
      ?.slice(name.length + 1);
  const organization = field('O');
  const commonName = field('CN');
  const start = new Date(new NodeX509(chain.certificates[0]!).validFrom).toISOString().replace(/\.000Z$/, 'Z');
  return {
    subject: { ...(organization ? { organization } : {}), ...(commonName ? { commonName } : {}) },
    uri: url,
    certChain: { certificates: chain.certificates.map((d) => ({ rawBytes: d.toString('base64') })) },
    validFor: { start },
  };
}

// ---- the client -------------------------------------------------------------------------------

type Reply = ServiceReply;

export class TimestampClient {
  /** The endpoint without credentials, query or fragment (for messages). */
  readonly url: string;
  readonly chain: TimestampChain;
  private readonly target: URL;
  private readonly http: ServiceClient;

  constructor(opts: TimestampClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new SignetError('CONFIG_INVALID', 'timestamp url is not a URL');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new SignetError('CONFIG_INVALID', `timestamp url must be http(s), not ${u.protocol}`);
    if (u.username || u.password) throw new SignetError('CONFIG_INVALID', 'timestamp url must not carry credentials');
    u.hash = '';
    this.target = u;
    this.url = `${u.origin}${u.pathname}`;
    this.chain = typeof opts.chain === 'string' ? parseTimestampChain(opts.chain) : opts.chain;
    this.http = new ServiceClient({
      name: `timestamp authority ${this.url}`,
      unavailable: 'TIMESTAMP_UNAVAILABLE',
      rejected: 'TIMESTAMP_REJECTED',
      timeoutMs: opts.timeoutMs ?? 10_000,
      maxBodyBytes: MAX_BODY_BYTES,
      attempts: opts.attempts,
      retryDelaysMs: opts.retryDelaysMs,
      dispatcher: opts.dispatcher,
    });
  }

  /** Requests sent (for tests and metrics). */
  get requests(): number {
    return this.http.requests;
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  /**
   * Timestamp `data` (for the formats: the signature bytes, see the opening comment). Resolves
   * only with a response that verified against the configured chain.
   */
  async timestamp(data: Buffer): Promise<SignedTimestamp> {
    const sha256 = createHash('sha256').update(data).digest();
    // one nonce per call: a retry re-sends the same request, any answer to it is acceptable
    const nonce = randomNonce();
    const body = encodeTimestampRequest({ sha256, nonce, certReq: true });
    const r = await this.http.withRetry(() => this.send(body));
    if (r.status < 200 || r.status > 299) {
      const why = r.status >= 300 && r.status < 400 ? ' (redirects are not followed)' : textDetail(r.body);
      throw new SignetError('TIMESTAMP_REJECTED', `timestamp authority ${this.url} answered HTTP ${r.status}${why}`, { status: r.status });
    }
    const type = String(header(r.headers['content-type']) ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (!REPLY_TYPES.has(type)) {
      throw new SignetError(
        'TIMESTAMP_REJECTED',
        `timestamp authority ${this.url} answered ${type ? `"${upstreamText(type, { max: 80 })}"` : 'no content type'}, not application/timestamp-reply`,
      );
    }
    try {
      const { genTime } = verifyTimestamp(r.body, data, this.chain, { nonce, requireSha256: true });
      return { response: r.body, genTime };
    } catch (err) {
      if (err instanceof SignetError)
        throw new SignetError(err.code, `timestamp authority ${this.url}: ${err.message.replace(/^timestamp: /, '')}`, { cause: err });
      throw err;
    }
  }

  /** One HTTP exchange; throws retryable errors for 429/5xx/network/timeouts, returns the rest. */
  private send(body: Buffer): Promise<Reply> {
    return this.http.send(
      this.target,
      { method: 'POST', headers: { 'content-type': 'application/timestamp-query', accept: 'application/timestamp-reply' }, body },
      'POST',
    );
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
