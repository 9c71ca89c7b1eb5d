/**
 * `signet keys csr NAME --subject DN [--san email:x|uri:x|dns:x ...]`: a PKCS#10 certificate
 * signing request (RFC 2986) for a configured key, signed by the key itself through its backend,
 * so a PKI team can issue the code-signing certificate that Notation (and cosign with
 * `keys[].certificate`) needs for a key that never leaves a KMS or HSM.
 *
 * The request asks for what a Notary Project / cosign code-signing leaf must carry: keyUsage
 * digitalSignature (critical), extendedKeyUsage codeSigning, basicConstraints CA:false (critical)
 * and the subject alternative names given. Signature: sha256WithRSAEncryption (PKCS#1 v1.5, what
 * every backend signs by default) for RSA keys, ecdsa-with-SHA256 (the DER signature the
 * providers return) for EC keys. The request is checked against the key's public key before it
 * is printed, so a backend that signed with another key is caught here, not by the CA.
 *
 * Why the DER is written by hand: the two ASN.1/X.509 libraries in node_modules are not runtime
 * dependencies of signet (they come in through @sigstore/mock, a dev dependency), and neither
 * fits without one: @peculiar/x509's Pkcs10CertificateRequestGenerator signs through a WebCrypto
 * CryptoKey (a KMS key is not one; faking a SubtleCrypto provider around a KMS is more code than
 * this file), and pkijs can take an externally made signature but pulls asn1js, pvtsutils and
 * its WebCrypto engine into the runtime for ~60 lines of fixed-shape DER. The encoders here
 * mirror test/helpers/pki.ts; openssl and node:crypto parse the result in the tests.
 */
import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { SignetError } from '../errors.js';
import { derEcdsaToRaw, rawEcdsaToDer } from './ecdsa.js';
import { NULL, bits, bool, octets, oid, seq, set, tlv } from '../util/der.js';
import type { SigningKey } from './signing-key.js';

const OID = {
  extensionRequest: '1.2.840.113549.1.9.14',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
};

/** Subject attribute names accepted in --subject, their OIDs and ASN.1 string types. */
const ATTRIBUTES: Record<string, { oid: string; type: 'printable' | 'utf8' | 'ia5' }> = {
  C: { oid: '2.5.4.6', type: 'printable' },
  ST: { oid: '2.5.4.8', type: 'utf8' },
  L: { oid: '2.5.4.7', type: 'utf8' },
  O: { oid: '2.5.4.10', type: 'utf8' },
  OU: { oid: '2.5.4.11', type: 'utf8' },
  CN: { oid: '2.5.4.3', type: 'utf8' },
  SERIALNUMBER: { oid: '2.5.4.5', type: 'printable' },
  DC: { oid: '0.9.2342.19200300.100.1.25', type: 'ia5' },
  EMAILADDRESS: { oid: '1.2.840.113549.1.9.1', type: 'ia5' },
};

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export interface SubjectAttribute {
  /** Upper-case short name: C, ST, L, O, OU, CN, SERIALNUMBER, DC, EMAILADDRESS. */
  type: string;
  value: string;
}

export interface SubjectAltName {
  type: 'email' | 'uri' | 'dns';
  value: string;
}

export interface CsrRequest {
  /** RFC 4514 string, most specific first ("CN=signer,O=Acme,ST=WA,C=US"). */
  subject: string;
  /** `email:x@y`, `uri:https://...`, `dns:host` */
  sans?: readonly string[];
}

const bad = (why: string) => new SignetError('CONFIG_INVALID', why);

/**
 * Parses an RFC 4514 distinguished name: comma-separated TYPE=value, `\,` `\+` `\\` `\"` etc. escape
 * a character, no multi-valued RDNs. Returned in DER order (the reverse of the string: C first).
 */
export function parseSubject(dn: string): SubjectAttribute[] {
  const rdns: string[] = [];
  let cur = '';
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i]!;
    if (c === '\\') {
      if (i + 1 >= dn.length) throw bad(`--subject "${dn}" ends with a lone backslash`);
      cur += c + dn[++i];
    } else if (c === ',' || c === ';') {
      rdns.push(cur);
      cur = '';
    } else if (c === '+') {
      throw bad(`--subject "${dn}": multi-valued RDNs (+) are not supported`);
    } else cur += c;
  }
  rdns.push(cur);
  const attrs = rdns.map((rdn): SubjectAttribute => {
    const eq = rdn.indexOf('=');
    if (eq < 0) throw bad(`--subject "${dn}": "${rdn.trim()}" is not TYPE=value`);
    const type = rdn.slice(0, eq).trim().toUpperCase();
    const spec = ATTRIBUTES[type];
    if (!spec) throw bad(`--subject "${dn}": attribute "${rdn.slice(0, eq).trim()}" is not one of ${Object.keys(ATTRIBUTES).join(', ')}`);
    const value = unescapeValue(rdn.slice(eq + 1).trim());
    if (!value) throw bad(`--subject "${dn}": ${type} is empty`);
    if (type === 'C' && !/^[A-Za-z]{2}$/.test(value)) throw bad(`--subject "${dn}": C must be a two-letter country code`);
    if (spec.type === 'printable' && !PRINTABLE.test(value)) throw bad(`--subject "${dn}": ${type} may hold only letters, digits, space and '()+,-./:=?`);
    if (spec.type === 'ia5' && !/^[\x20-\x7e]*$/.test(value)) throw bad(`--subject "${dn}": ${type} must be ASCII`);
    return { type, value };
  });
  return attrs.reverse();
}

function unescapeValue(v: string): string {
  return v.replace(/\\([0-9a-fA-F]{2}|.)/g, (_, e: string) => (e.length === 2 ? String.fromCharCode(parseInt(e, 16)) : e));
}

export function parseSan(s: string): SubjectAltName {
  const m = /^(email|uri|dns):(.+)$/i.exec(s.trim());
  if (!m) throw bad(`--san "${s}" must be email:ADDRESS, uri:URI or dns:NAME`);
  const type = m[1]!.toLowerCase() as SubjectAltName['type'];
  const value = m[2]!;
  if (!/^[\x21-\x7e]+$/.test(value)) throw bad(`--san "${s}": the value must be ASCII without spaces`);
  if (type === 'email' && !/^[^@]+@[^@]+$/.test(value)) throw bad(`--san "${s}" is not an email address`);
  if (type === 'uri' && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value)) throw bad(`--san "${s}" is not an absolute URI`);
  return { type, value };
}

function encodeValue(a: SubjectAttribute): Buffer {
  const t = ATTRIBUTES[a.type]!.type;
  return tlv(t === 'printable' ? 0x13 : t === 'ia5' ? 0x16 : 0x0c, Buffer.from(a.value, 'utf8'));
}

const extension = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

/** The CertificationRequestInfo (the signed part) for `publicKey`. */
export function certificationRequestInfo(publicKey: KeyObject, subject: readonly SubjectAttribute[], sans: readonly SubjectAltName[]): Buffer {
  const name = seq(...subject.map((a) => set(seq(oid(ATTRIBUTES[a.type]!.oid), encodeValue(a)))));
  const exts = [
    extension(OID.keyUsage, true, bits(Buffer.from([0x80]), 7)), // digitalSignature
    extension(OID.extKeyUsage, false, seq(oid(OID.codeSigning))),
    extension(OID.basicConstraints, true, seq()), // CA:false
  ];
  if (sans.length) {
    const tag = { email: 0x81, dns: 0x82, uri: 0x86 } as const;
    exts.push(extension(OID.subjectAltName, false, seq(...sans.map((s) => tlv(tag[s.type], Buffer.from(s.value, 'ascii'))))));
  }
  const attributes = tlv(0xa0, seq(oid(OID.extensionRequest), set(seq(...exts))));
  return seq(tlv(0x02, Buffer.from([0])), name, publicKey.export({ type: 'spki', format: 'der' }), attributes);
}

/**
 * A PEM "CERTIFICATE REQUEST" for `key`, signed through its backend (`key.sign`: SHA-256, RSA
 * PKCS#1 v1.5 or ECDSA DER). Throws CONFIG_INVALID for a bad subject or SAN, KEY_UNSUPPORTED for a
 * key type other than RSA or EC, KEY_SIGN_FAILED when the backend's signature does not verify.
 */
export async function createCsr(key: Pick<SigningKey, 'name' | 'publicKey' | 'sign'>, req: CsrRequest): Promise<string> {
  const subject = parseSubject(req.subject);
  const sans = (req.sans ?? []).map(parseSan);
  const type = key.publicKey.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ec') {
    throw new SignetError('KEY_UNSUPPORTED', `key "${key.name}": a certificate request needs an RSA or EC key, not ${type ?? 'unknown'}`);
  }
  const info = certificationRequestInfo(key.publicKey, subject, sans);
  let signature = await key.sign(info);
  if (type === 'ec') signature = ecdsaDer(signature, key);
  const ok = verifySignature('sha256', info, { key: key.publicKey, ...(type === 'ec' ? { dsaEncoding: 'der' as const } : {}) }, signature);
  if (!ok)
    throw new SignetError(
      'KEY_SIGN_FAILED',
      `key "${key.name}": the backend's signature over the certificate request does not verify with the key's public key`,
    );
  const alg = type === 'rsa' ? seq(oid(OID.sha256WithRSA), NULL) : seq(oid(OID.ecdsaWithSha256));
  const der = seq(info, alg, bits(signature));
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}-----END CERTIFICATE REQUEST-----\n`;
}

/** Providers return DER for ECDSA; a raw r||s of the curve's size is converted (defensive). */
function ecdsaDer(sig: Buffer, key: Pick<SigningKey, 'publicKey'>): Buffer {
  const size = ({ prime256v1: 32, secp384r1: 48, secp521r1: 66 } as Record<string, number>)[key.publicKey.asymmetricKeyDetails?.namedCurve ?? ''] ?? 32;
  if (sig[0] === 0x30) {
    try {
      derEcdsaToRaw(sig, size);
      return sig;
    } catch {
      // not DER after all
    }
  }
  return sig.length === 2 * size ? rawEcdsaToDer(sig) : sig;
}

/** The public key a PEM certificate request is for (tests and `keys csr` callers). */
export function csrPublicKey(pem: string): KeyObject {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  // CertificationRequest -> CertificationRequestInfo -> [version, subject, spki]
  const inner = (b: Buffer, at: number): { start: number; end: number } => {
    let i = at + 1;
    let n = b[i]!;
    i++;
    if (n & 0x80) {
      const k = n & 0x7f;
      n = 0;
      for (let j = 0; j < k; j++) n = n * 256 + b[i++]!;
    }
    return { start: i, end: i + n };
  };
  const req = inner(der, 0);
  const info = inner(der, req.start);
  let at = info.start;
  for (let skip = 0; skip < 2; skip++) at = inner(der, at).end;
  const spki = der.subarray(at, inner(der, at).end);
  return createPublicKey({ key: spki, format: 'der', type: 'spki' });
}
