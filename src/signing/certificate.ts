/**
 * Bring-your-own-PKI certificates for keys: `keys[].certificate` (the leaf) and `keys[].chain`
 * (intermediates, then the root), as PEM text or a path relative to the config file. Checked at
 * startup: the leaf must certify exactly this key, be valid now, allow code signing (cosign
 * verifies chains with ExtKeyUsageCodeSigning, pkg/cosign/verify.go TrustedCert), and the chain
 * must link leaf -> ... -> a self-signed root (what `cosign sign --certificate-chain` demands).
 * The PEMs then go into the `dev.sigstore.cosign/certificate` and `/chain` layer annotations.
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SignetError } from '../errors.js';

export const CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate';
export const CHAIN_ANNOTATION = 'dev.sigstore.cosign/chain';

const CODE_SIGNING = '1.3.6.1.5.5.7.3.3';
const ANY_EKU = '2.5.29.37.0';

export interface KeyCertificate {
  /** PEM of the leaf certificate. */
  certificate: string;
  /** PEM of the issuers, parent first, root last (absent when only the leaf is configured). */
  chain?: string;
  notAfter: Date;
}

/**
 * What the hashedrekord entry of a legacy `.sig` layer with these annotations must name: the
 * layer's certificate when it carries one, else the key (cosign >= 3.0.3 keyBytes: see
 * transparency/entries.ts proposedHashedRekord).
 */
export function legacyEntryVerifier(annotations: Readonly<Record<string, string>>, keyPem: string): string {
  return annotations[CERTIFICATE_ANNOTATION] ?? keyPem;
}

/**
 * Load and check `certificate`/`chain` for a key whose public key is `publicKeyPem`. Returns
 * undefined when neither is configured; throws KEY_INVALID (refused at startup) otherwise.
 */
export function loadKeyCertificate(
  cfg: { name: string; certificate?: string | undefined; chain?: string | undefined },
  publicKeyPem: string,
  baseDir: string,
  now: Date = new Date(),
): KeyCertificate | undefined {
  if (cfg.certificate === undefined && cfg.chain === undefined) return undefined;
  const fail = (why: string, cause?: unknown): never => {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": ${why}`, cause === undefined ? {} : { cause });
  };
  if (cfg.certificate === undefined) fail('chain is set but certificate is not');
  const leafCerts = parseCertificates(readPem(cfg.certificate!, baseDir, 'certificate', fail), 'certificate', fail);
  const [leaf, ...rest] = leafCerts;
  let chain = rest;
  if (cfg.chain !== undefined) {
    if (rest.length) fail('certificate holds more than one certificate and chain is set too: put only the leaf in certificate');
    chain = parseCertificates(readPem(cfg.chain, baseDir, 'chain', fail), 'chain', fail);
  }

  // The certificate must certify this very key (cosign compares them when both are present).
  const keyDer = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  const certDer = leaf!.publicKey.export({ type: 'spki', format: 'der' });
  if (!keyDer.equals(certDer)) fail(`certificate (subject "${oneLine(leaf!.subject)}") is for another key than the one configured`);

  checkValidity(leaf!, 'certificate', now, fail);
  const eku = leaf!.keyUsage;
  if (eku && eku.length && !eku.includes(CODE_SIGNING) && !eku.includes(ANY_EKU)) {
    fail('certificate does not allow code signing (extended key usage codeSigning is required by cosign)');
  }

  let child = leaf!;
  for (const [i, c] of chain.entries()) {
    const what = `chain certificate ${i + 1} ("${oneLine(c.subject)}")`;
    checkValidity(c, what, now, fail);
    if (!c.ca) fail(`${what} is not a CA certificate`);
    if (!child.checkIssued(c) || !child.verify(c.publicKey)) {
      fail(
        `${what} did not issue ${i === 0 ? 'the certificate' : `chain certificate ${i}`}: the chain must start with the leaf's issuer and end with the root`,
      );
    }
    child = c;
  }
  if (chain.length && !(child.checkIssued(child) && child.verify(child.publicKey))) {
    fail('the last chain certificate is not a self-signed root');
  }
  return {
    certificate: leaf!.toString(),
    ...(chain.length ? { chain: chain.map((c) => c.toString()).join('') } : {}),
    notAfter: new Date(leaf!.validTo),
  };
}

function readPem(value: string, baseDir: string, field: string, fail: (why: string, cause?: unknown) => never): string {
  if (value.includes('-----BEGIN')) return value;
  const file = path.resolve(baseDir, value);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    return fail(`cannot read ${field} file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
}

function parseCertificates(pem: string, field: string, fail: (why: string, cause?: unknown) => never): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) fail(`${field} holds no PEM CERTIFICATE`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      return fail(`${field}: PEM certificate ${i + 1} cannot be parsed`, err);
    }
  });
}

function checkValidity(c: X509Certificate, what: string, now: Date, fail: (why: string) => never): void {
  const from = new Date(c.validFrom);
  const to = new Date(c.validTo);
  if (now < from) fail(`${what} is not valid before ${from.toISOString()}`);
  if (now > to) fail(`${what} expired on ${to.toISOString()}`);
}

function oneLine(s: string): string {
  return s.replace(/\n/g, ', ');
}
