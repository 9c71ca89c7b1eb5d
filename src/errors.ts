/**
 * Typed errors with stable codes. Codes are part of the public surface: they appear in job
 * failure reasons, logs and (later) the status API, so never rename one.
 *
 * Whether a code is retried is decided once, in RETRYABLE below, never at a throw site:
 * - retryable means the job may succeed later (registry 5xx/429, Redis or lock busy);
 * - not retryable means retrying cannot help (bad config, key denied, digest mismatch); the
 *   worker turns those into BullMQ's UnrecoverableError so no attempts are wasted.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'REDIS_UNAVAILABLE'
  | 'REGISTRY_NOT_CONFIGURED'
  | 'REGISTRY_UNAVAILABLE'
  | 'REGISTRY_THROTTLED'
  | 'REGISTRY_AUTH_FAILED'
  | 'REGISTRY_DENIED'
  | 'REGISTRY_PROTOCOL'
  | 'MANIFEST_NOT_FOUND'
  /** A pushed tag is not (yet) in the registry: the webhook may come before the tag is linked. Retried. */
  | 'TAG_NOT_FOUND'
  | 'DIGEST_MISMATCH'
  | 'TAG_MOVED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'INVALID_REFERENCE'
  | 'KEY_INVALID'
  | 'KEY_UNSUPPORTED'
  | 'KEY_PASSWORD'
  /** A private key file others may read or write (mode o+r/o+w): refused at startup. */
  | 'KEY_FILE_PERMISSIONS'
  | 'KEY_SIGN_FAILED'
  /** The key backend throttled us (429, ThrottlingException, RESOURCE_EXHAUSTED): retried. */
  | 'KEY_THROTTLED'
  /** The key backend is unreachable, timed out or answered 5xx: retried. */
  | 'KEY_UNAVAILABLE'
  /** Access to the key was denied (IAM, RBAC, policy): not retried. */
  | 'KEY_DENIED'
  /** The key (or version) does not exist: not retried. */
  | 'KEY_NOT_FOUND'
  /** The key (or version) is disabled or scheduled for deletion: not retried. */
  | 'KEY_DISABLED'
  /** The Rekor transparency log is unreachable, timed out, throttled us or answered 5xx: retried. */
  | 'REKOR_UNAVAILABLE'
  /** Rekor refused the entry (4xx) or answered something signet cannot use (bad body, bad SET): not retried. */
  | 'REKOR_REJECTED'
  /** The RFC 3161 timestamp authority is unreachable, timed out, throttled us or answered 5xx: retried. */
  | 'TIMESTAMP_UNAVAILABLE'
  /** The timestamp authority refused the request, or its token does not verify (status, imprint, nonce, chain): not retried. */
  | 'TIMESTAMP_REJECTED'
  | 'LOCK_TIMEOUT'
  | 'SIGNATURE_WRITE_REJECTED'
  | 'SIGNATURE_READBACK_FAILED'
  /** The registry refused a manifest because a blob it names is missing (MANIFEST_BLOB_UNKNOWN): uploaded again on the retry. */
  | 'SIGNATURE_BLOB_MISSING'
  /** The .sig would exceed a limit cosign or the registry applies (1,000 layers, 4 MiB manifest): not written, not retried. */
  | 'SIGNATURE_LIMIT_EXCEEDED'
  | 'WEBHOOK_UNAUTHORIZED'
  | 'WEBHOOK_MALFORMED'
  /** An HTTP API call without the right `Authorization: Bearer <server.apiToken>`. */
  | 'API_UNAUTHORIZED'
  /** No such HTTP API route, or the API is off (no server.apiToken). */
  | 'API_NOT_FOUND'
  | 'INTERNAL'
  /** The registry's scanner reported the scan of a gated image (require.scan) as failed or stopped: not signed, not retried. */
  | 'SCAN_FAILED'
  /** No scan of a gated image (require.scan) within the rule's waitSeconds: not signed, not retried. */
  | 'SCAN_TIMEOUT'
  /** The registry's scan API (Harbor /api/v2.0) is unreachable, timed out, throttled us or answered 5xx: retried. */
  | 'SCAN_API_UNAVAILABLE'
  /** The directory for generated keys (the embedded default's ./keys) cannot be created or written by this user. */
  | 'KEY_DIR_NOT_WRITABLE'
  /** Redis is set up to lose data signet relies on (maxmemory-policy other than noeviction), or is a different topology than configured: refused at startup. */
  | 'REDIS_MISCONFIGURED'
  /** Not every replica the acknowledgement policy (redis.ack) asks for confirmed the job in time: the webhook is answered 503. */
  | 'REDIS_NOT_REPLICATED';

/**
 * Which codes the job queue retries: the one place that decides it (not each throw site). True
 * means the job may succeed later (an upstream that is down, throttling or not yet consistent);
 * false means retrying cannot help (bad config, refused credentials, a key denied, a bad answer).
 */
export const RETRYABLE: Readonly<Record<ErrorCode, boolean>> = {
  CONFIG_INVALID: false,
  CONFIG_NOT_FOUND: false,
  REDIS_UNAVAILABLE: true,
  REGISTRY_NOT_CONFIGURED: false,
  REGISTRY_UNAVAILABLE: true,
  REGISTRY_THROTTLED: true,
  REGISTRY_AUTH_FAILED: false,
  REGISTRY_DENIED: false,
  REGISTRY_PROTOCOL: false,
  MANIFEST_NOT_FOUND: false,
  TAG_NOT_FOUND: true,
  DIGEST_MISMATCH: false,
  TAG_MOVED: false,
  UNSUPPORTED_MEDIA_TYPE: false,
  INVALID_REFERENCE: false,
  KEY_INVALID: false,
  KEY_UNSUPPORTED: false,
  KEY_PASSWORD: false,
  KEY_FILE_PERMISSIONS: false,
  KEY_SIGN_FAILED: false,
  KEY_THROTTLED: true,
  KEY_UNAVAILABLE: true,
  KEY_DENIED: false,
  KEY_NOT_FOUND: false,
  KEY_DISABLED: false,
  REKOR_UNAVAILABLE: true,
  REKOR_REJECTED: false,
  TIMESTAMP_UNAVAILABLE: true,
  TIMESTAMP_REJECTED: false,
  LOCK_TIMEOUT: true,
  SIGNATURE_WRITE_REJECTED: false,
  SIGNATURE_READBACK_FAILED: true,
  SIGNATURE_BLOB_MISSING: true,
  SIGNATURE_LIMIT_EXCEEDED: false,
  WEBHOOK_UNAUTHORIZED: false,
  WEBHOOK_MALFORMED: false,
  API_UNAUTHORIZED: false,
  API_NOT_FOUND: false,
  INTERNAL: false,
  SCAN_FAILED: false,
  SCAN_TIMEOUT: false,
  SCAN_API_UNAVAILABLE: true,
  KEY_DIR_NOT_WRITABLE: false,
  REDIS_MISCONFIGURED: false,
  REDIS_NOT_REPLICATED: true,
};

export class SignetError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** HTTP status from an upstream, when the error came from one. */
  readonly status?: number;
  /** Seconds the upstream asked us to wait (Retry-After), when it said so. */
  readonly retryAfterSeconds?: number;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; status?: number; retryAfterSeconds?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SignetError';
    this.code = code;
    this.retryable = RETRYABLE[code];
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.retryAfterSeconds !== undefined) this.retryAfterSeconds = opts.retryAfterSeconds;
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

export function isSignetError(err: unknown): err is SignetError {
  return err instanceof SignetError;
}

/** A one-line description safe for logs and job failure reasons: "CODE: message". */
export function describeError(err: unknown): string {
  if (err instanceof SignetError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `INTERNAL: ${err.message}`;
  return `INTERNAL: ${String(err)}`;
}
