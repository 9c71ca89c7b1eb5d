import { SignetError } from '../errors.js';

/** Every provider's `sign` takes a SHA-256 digest: refuse anything else before calling a backend. */
export function assertSha256Digest(keyName: string, digest: unknown): asserts digest is Buffer {
  if (!Buffer.isBuffer(digest) || digest.length !== 32) {
    throw new SignetError(
      'KEY_SIGN_FAILED',
      `key "${keyName}": sign() expects a 32-byte SHA-256 digest, got ${Buffer.isBuffer(digest) ? `${digest.length} bytes` : typeof digest}`,
    );
  }
}
