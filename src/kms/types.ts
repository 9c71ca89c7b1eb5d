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
  /**
   * Sign a SHA-256 digest of the payload. `payload`, when the caller has it, is the message the
   * digest was computed from: providers that sign locally may sign it directly (OpenSSL's
   * constant-time code path) after checking that it hashes to `digest`. KMS providers ignore it.
   */
  sign(digest: Buffer, payload?: Buffer, opts?: SignOptions): Promise<Buffer>;
  /** Release connections, sessions or libraries the provider holds (called once at shutdown). */
  close?(): Promise<void>;
}

export type KeyAlgorithm = 'rsa-2048' | 'ecdsa-p256';

/**
 * How an RSA key pads: PKCS#1 v1.5 (the default: what cosign and every sigstore verifier
 * accept) or RSASSA-PSS with SHA-256 and a 32-byte salt (what the Notary Project signature
 * specification requires for `notary.x509`). ECDSA keys ignore it. A provider that cannot sign
 * PSS throws KEY_SIGN_FAILED for `pss` (and is refused at startup for rules that need it).
 */
export interface SignOptions {
  rsaPadding?: 'pkcs1v15' | 'pss';
}
