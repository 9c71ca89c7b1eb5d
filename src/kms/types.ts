/**
 * A signing key. One method to sign, one to describe the public half, like sigstore-js's Signer.
 *
 * `sign` receives the SHA-256 digest of the payload (32 bytes) and returns a signature that the
 * sigstore verifiers accept over the payload: PKCS#1 v1.5 for RSA (never PSS), ASN.1 DER for
 * ECDSA. Providers whose backend returns raw r||s convert it (see ecdsa.ts).
 */
export interface KeyProvider {
  /** The key's name in the config (`keys[].name`). */
  readonly name: string;
  /** SPKI PEM ("-----BEGIN PUBLIC KEY-----"), fetched once and cached by the provider. */
  publicKeyPem(): Promise<string>;
  /** Sign a SHA-256 digest of the payload. */
  sign(digest: Buffer): Promise<Buffer>;
}

export type KeyAlgorithm = 'rsa-2048' | 'ecdsa-p256';
