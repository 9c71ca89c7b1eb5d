/**
 * A tiny X.509 issuer on node:crypto (DER by hand), so tests can make CAs, intermediates and
 * leaves with any dates, extended key usages and keys, without openssl's date limits.
 * Certificates are v3 with SKID/AKID, basicConstraints, keyUsage and optional EKU and SAN.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';

import { bits, bool, explicit, int, octets, oid, seq, set, tlv } from '../../src/util/der.js';

const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const OID = {
  cn: '2.5.4.3',
  o: '2.5.4.10',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  rsaSha256: '1.2.840.113549.1.1.11',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  skid: '2.5.29.14',
  akid: '2.5.29.35',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  serverAuth: '1.3.6.1.5.5.7.3.1',
};
export const EKU = { codeSigning: OID.codeSigning, serverAuth: OID.serverAuth };

function time(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0');
  const y = d.getUTCFullYear();
  const body = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return y >= 1950 && y < 2050 ? tlv(0x17, Buffer.from(`${String(y).slice(2)}${body}`)) : tlv(0x18, Buffer.from(`${y}${body}`));
}
const name = (cn: string) => seq(set(seq(oid(OID.o), utf8('signet test'))), set(seq(oid(OID.cn), utf8(cn))));
const ext = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

export interface Issuer {
  cn: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  pem: string;
}

export interface CertOptions {
  cn: string;
  publicKey: KeyObject;
  /** Signing CA; absent = self-signed with `selfKey`. */
  issuer?: Issuer;
  selfKey?: KeyObject;
  ca?: boolean;
  notBefore?: Date;
  notAfter?: Date;
  /** EKU OIDs; absent = no EKU extension. */
  eku?: string[];
  email?: string;
}

function skid(k: KeyObject): Buffer {
  return createHash('sha1')
    .update(k.export({ type: 'spki', format: 'der' }))
    .digest();
}

/** Issue a certificate (PEM). */
export function issueCertificate(o: CertOptions): string {
  const signer = o.issuer?.privateKey ?? o.selfKey;
  if (!signer) throw new Error('need issuer or selfKey');
  const issuerPub = o.issuer?.publicKey ?? o.publicKey;
  const rsa = signer.asymmetricKeyType === 'rsa';
  const alg = rsa ? seq(oid(OID.rsaSha256), tlv(0x05, Buffer.alloc(0))) : seq(oid(OID.ecdsaSha256));
  const notBefore = o.notBefore ?? new Date(Date.now() - 3600_000);
  const notAfter = o.notAfter ?? new Date(Date.now() + 24 * 3600_000);
  const exts = [
    ext(OID.basicConstraints, true, o.ca ? seq(bool(true)) : seq()),
    ext(OID.keyUsage, true, o.ca ? bits(Buffer.from([0x06]), 1) : bits(Buffer.from([0x80]), 7)),
    ext(OID.skid, false, octets(skid(o.publicKey))),
    ext(OID.akid, false, seq(tlv(0x80, skid(issuerPub)))),
  ];
  if (o.eku) exts.push(ext(OID.extKeyUsage, false, seq(...o.eku.map(oid))));
  if (o.email) exts.push(ext(OID.subjectAltName, false, seq(tlv(0x81, Buffer.from(o.email)))));
  const tbs = seq(
    explicit(0, int(Buffer.from([2]))),
    int(Buffer.concat([Buffer.from([0x01]), randomBytes(15)])),
    alg,
    name(o.issuer?.cn ?? o.cn),
    seq(time(notBefore), time(notAfter)),
    name(o.cn),
    o.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(...exts)),
  );
  const signature = sign('sha256', tbs, signer);
  const der = seq(tbs, alg, bits(signature));
  return new X509Certificate(der).toString();
}

/** A self-signed root CA (P-256). */
export function makeRootCa(cn = 'signet test root', opts: { notBefore?: Date; notAfter?: Date } = {}): Issuer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = issueCertificate({ cn, publicKey, selfKey: privateKey, ca: true, ...opts });
  return { cn, privateKey, publicKey, pem };
}

/** An intermediate CA under `parent`. */
export function makeIntermediateCa(parent: Issuer, cn = 'signet test intermediate', opts: { notBefore?: Date; notAfter?: Date } = {}): Issuer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = issueCertificate({ cn, publicKey, issuer: parent, ca: true, ...opts });
  return { cn, privateKey, publicKey, pem };
}

/**
 * A code-signing leaf for `publicKey` (CN "signet signer", SAN email `email`) under a fresh
 * intermediate and root: the leaf PEM and the chain PEM (intermediate, then root), as a
 * `certificate:` / `chain:` pair for a file key.
 */
export function issueSignerChain(publicKey: KeyObject, email = 'signet@example.com'): { certificate: string; chain: string } {
  const root = makeRootCa();
  const inter = makeIntermediateCa(root);
  const certificate = issueCertificate({ cn: 'signet signer', publicKey, issuer: inter, eku: [EKU.codeSigning], email });
  return { certificate, chain: inter.pem + root.pem };
}
