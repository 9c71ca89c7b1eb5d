/**
 * Capped reads of upstream response bodies. Every body signet reads from an upstream (registry
 * manifests and JSON, token services, Rekor, key services) is read through `readCapped`: bytes
 * past the cap are never buffered (the stream is destroyed and the read fails), so a hostile or
 * broken upstream cannot grow the process's memory. The overall deadline of a request is the
 * caller's `AbortSignal` (undici's own timers are per chunk, so a registry dripping a byte every
 * few seconds never trips them): pass the same signal to `request()`; it aborts the body too.
 */

/** Caps on what signet reads, in bytes. Manifests: what distribution enforces on push. */
export const READ_LIMITS = {
  /** OCI manifests and indexes (distribution refuses to store larger ones). */
  manifest: 4 * 1024 * 1024,
  /** Token service answers (a JWT and a few fields). */
  token: 64 * 1024,
  /** Error bodies, JSON listings pages (tags, catalog, referrers) and other small answers. */
  json: 4 * 1024 * 1024,
  /** Error bodies read only for a message. */
  error: 16 * 1024,
} as const;

/** A body that exceeded its cap. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`response body larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

interface Body extends AsyncIterable<unknown> {
  destroy(err?: Error): unknown;
}

/**
 * Reads at most `limit` bytes of `body`. Throws BodyTooLargeError (after destroying the stream)
 * as soon as more arrive, or when a declared `content-length` is already over the cap.
 */
export async function readCapped(body: Body, limit: number, contentLength?: string | string[] | number): Promise<Buffer> {
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  if (Number.isFinite(declared) && declared > limit) {
    body.destroy();
    throw new BodyTooLargeError(limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
    size += b.length;
    if (size > limit) {
      body.destroy();
      throw new BodyTooLargeError(limit);
    }
    chunks.push(b);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}
