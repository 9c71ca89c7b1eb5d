/**
 * A signing key. One method to sign, one to describe the public half, like sigstore-js's Signer.
 *
 * `sign` receives the SHA-256 digest of the payload (32 bytes) and returns a signature over the
 * payload: for RSA PKCS#1 v1.5 by default (what the sigstore verifiers accept) or RSASSA-PSS
 * (SHA-256, MGF1-SHA-256, 32-byte salt) when `opts.rsaPadding === 'pss'`; ASN.1 DER for ECDSA.
 * Providers whose backend returns raw r||s convert it (see ecdsa.ts).
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
  /**
   * The RSA paddings this key can sign with, known once the provider is created (no backend call).
   * ECDSA keys report both (the padding does not apply to them). A provider without `paddings`
   * is taken to sign PKCS#1 v1.5 only with an RSA key (both with an ECDSA key). Most backends choose the padding per call (both); a Google
   * Cloud KMS key's algorithm fixes it (`RSA_SIGN_PKCS1_*` or `RSA_SIGN_PSS_*`). The runtime asks
   * at startup, through `checkPaddings` (paddings.ts), so a rule that needs a padding its key
   * cannot sign is refused before any image is signed.
   */
  paddings?(): Promise<readonly RsaPadding[]>;
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
  rsaPadding?: RsaPadding;
}

export type RsaPadding = 'pkcs1v15' | 'pss';

/** What a key whose backend picks the padding per call (or an ECDSA key) reports. */
export const BOTH_PADDINGS: readonly RsaPadding[] = Object.freeze(['pkcs1v15', 'pss'] as const);
