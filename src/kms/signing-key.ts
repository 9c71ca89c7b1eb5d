/**
 * A configured key as the signing code sees it: a value that carries its name, its public key
 * (PEM, KeyObject and key id, read from the backend once at startup), the certificate and chain
 * configured for it (bring-your-own PKI, checked at startup) and one `sign(payload)`.
 *
 * The backend (`KeyProvider`: a file, PKCS#11, a KMS) only signs digests. What is the same for
 * every backend lives here, once: hashing the payload, the memo of recent signatures (a retried
 * job never asks the backend twice for one signature: signature-memo.ts), and the timing hook
 * the runtime gives for `signet_key_sign_seconds`. Nothing is looked up in side tables keyed by
 * the key object and nothing is wrapped in place.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { KeyCertificate } from '../signing/certificate.js';
import { SignatureMemo } from '../signing/signature-memo.js';
import { sha256Digest } from '../util/digest.js';
import type { KeyProvider, SignOptions } from './types.js';

/** Called once per backend call: the key's name, the outcome and how long it took. */
export type SignObserver = (key: string, outcome: 'ok' | 'error', seconds: number) => void;

export interface SigningKeyOptions {
  certificate?: KeyCertificate | undefined;
  observe?: SignObserver | undefined;
  memo?: SignatureMemo | undefined;
}

export class SigningKey {
  readonly name: string;
  /** SPKI PEM. */
  readonly publicKeyPem: string;
  readonly publicKey: KeyObject;
  /** sha256 of the DER SubjectPublicKeyInfo, "sha256:<hex>". */
  readonly keyId: string;
  /** The configured certificate (leaf) and chain, when the key has one. */
  readonly certificate: KeyCertificate | undefined;
  private readonly memo: SignatureMemo;
  private readonly observe: SignObserver | undefined;

  constructor(
    /** The backend that signs digests; also what readiness asks (`publicKeyPem()`). */
    readonly backend: KeyProvider,
    publicKeyPem: string,
    opts: SigningKeyOptions = {},
  ) {
    this.name = backend.name;
    this.publicKeyPem = publicKeyPem;
    this.publicKey = createPublicKey(publicKeyPem);
    this.keyId = sha256Digest(this.publicKey.export({ type: 'spki', format: 'der' }));
    this.certificate = opts.certificate;
    this.observe = opts.observe;
    this.memo = opts.memo ?? new SignatureMemo();
  }

  /** What a signature's verification material names: the leaf certificate when there is one, else the key. */
  get verifierPem(): string {
    return this.certificate?.certificate ?? this.publicKeyPem;
  }

  /**
   * Sign `payload` (the backend gets its SHA-256 digest; local backends may sign the payload
   * itself). The same payload within the memo's time gets the same signature, without a backend call.
   */
  sign(payload: Buffer, opts: SignOptions = {}): Promise<Buffer> {
    const digest = createHash('sha256').update(payload).digest();
    const pss = opts.rsaPadding === 'pss';
    // a PSS signature is another signature of the same digest: remembered apart
    const id = pss ? Buffer.concat([digest, Buffer.from('pss')]) : digest;
    return this.memo.sign(id, () => this.callBackend(digest, payload, pss ? opts : undefined));
  }

  private async callBackend(digest: Buffer, payload: Buffer, opts: SignOptions | undefined): Promise<Buffer> {
    const call = () => (opts ? this.backend.sign(digest, payload, opts) : this.backend.sign(digest, payload));
    if (!this.observe) return call();
    const start = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - start) / 1e9;
    try {
      const sig = await call();
      this.observe(this.name, 'ok', seconds());
      return sig;
    } catch (err) {
      this.observe(this.name, 'error', seconds());
      throw err;
    }
  }

  close(): Promise<void> {
    return this.backend.close?.() ?? Promise.resolve();
  }
}
