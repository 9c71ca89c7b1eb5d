/**
 * The one `Retry-After` parser (RFC 9110 §10.2.3: delay-seconds or an HTTP date) for every
 * upstream signet reads: registries, token services, Rekor, timestamp authorities, key services.
 * The value is capped: an upstream cannot park a job for longer than the queue's own longest
 * backoff (a registry answering `Retry-After: 99999999` parked jobs for years, and re-delivered
 * webhooks were folded into them).
 */

/** The longest wait an upstream can ask for, in seconds (the queue's longest backoff, 10 minutes). */
export const MAX_RETRY_AFTER_SECONDS = 600;

/** A header value as node:http, undici and the SDKs give it. */
export type HeaderValue = string | readonly string[] | number | null | undefined;

/**
 * Seconds to wait, from a `Retry-After` value: whole seconds (fractions tolerated), or an HTTP
 * date (seconds from `now`, never negative), capped at `max`. Undefined when absent or unreadable.
 */
export function parseRetryAfter(value: HeaderValue, opts: { now?: number; max?: number } = {}): number | undefined {
  const max = opts.max ?? MAX_RETRY_AFTER_SECONDS;
  const raw = typeof value === 'number' ? String(value) : Array.isArray(value) ? value[0] : (value as string | null | undefined);
  if (typeof raw !== 'string') return undefined;
  const s = raw.trim();
  if (!s || s.length > 64) return undefined;
  let seconds: number;
  if (/^\d+(?:\.\d+)?$/.test(s)) seconds = Number(s);
  else {
    // an HTTP date names its day and month ("Sun, 06 Nov 1994 08:49:37 GMT"); Date.parse also takes "-5"
    if (!/^[A-Za-z]{3},/.test(s)) return undefined;
    const at = Date.parse(s);
    if (Number.isNaN(at)) return undefined;
    seconds = Math.max(0, Math.ceil((at - (opts.now ?? Date.now())) / 1000));
  }
  return Number.isFinite(seconds) ? Math.min(seconds, max) : max;
}

/** `{ retryAfterSeconds }` to spread into SignetError options, or `{}` when there is none. */
export function retryAfterOption(value: HeaderValue): { retryAfterSeconds?: number } {
  const ra = parseRetryAfter(value);
  return ra === undefined ? {} : { retryAfterSeconds: ra };
}
