import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { SignetError } from '../../errors.js';
import { secretEquals } from '../auth.js';
import type { IntegrationBase } from '../integration-config.js';
import type { Authentication, RequestHead } from '../types.js';

export const MANIFEST_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

export const digestSchema = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 hex>');

/** Throws a 400-class error listing what did not match the adapter's schema. */
export function parseOrThrow<T>(schema: z.ZodType<T>, body: unknown, kind: string): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const first = r.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
    .join('; ');
  throw new SignetError('WEBHOOK_MALFORMED', `not a ${kind} webhook payload: ${first}`);
}

/** "host/repo:tag" or "host/repo@digest", split (the host is everything before the first "/"). */
export function splitResourceUrl(url: string): { host: string; path: string } | undefined {
  const noScheme = url.replace(/^[a-z]+:\/\//i, '');
  const slash = noScheme.indexOf('/');
  if (slash <= 0) return undefined;
  return { host: noScheme.slice(0, slash), path: noScheme.slice(slash + 1) };
}

/** First value of a request header (node lower-cases header names). */
export function headerValue(headers: RequestHead['headers'], name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' && s.length > 0 ? s : undefined;
}

/** True when any presented value equals the secret; every value is compared (no early exit), in constant time. */
export function anySecretEquals(presented: readonly string[], secret: string): boolean {
  let ok = false;
  for (const p of presented) ok = secretEquals(p, secret) || ok;
  return ok;
}

/**
 * A shared secret presented in `header` (default Authorization, null for none; a "Bearer " prefix is removed) or
 * in one of the `query` parameters (default `token`). Without a configured secret only
 * `insecure: true` lets a call in.
 */
export function sharedSecretAuth(req: RequestHead, integration: IntegrationBase, opts: { header?: string | null; query?: readonly string[] } = {}): boolean {
  if (!integration.secret) return integration.insecure;
  const presented: string[] = [];
  const h = opts.header === null ? undefined : headerValue(req.headers, opts.header ?? 'authorization');
  if (h) {
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    presented.push(m ? m[1]!.trim() : h.trim());
  }
  for (const name of opts.query ?? ['token']) {
    const q = req.query[name];
    if (typeof q === 'string' && q.length > 0) presented.push(q);
  }
  return anySecretEquals(presented, integration.secret);
}

/** Authentication decided from the headers and query alone (the body is never read for a refused call). */
export function headerAuth(verify: (req: RequestHead) => boolean | Promise<boolean>): Authentication {
  return { phase: 'headers', verify };
}

/** Lowercase hex HMAC-SHA256 of the exact body bytes. */
export function hmacSha256Hex(secret: string, body: Buffer): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * "host/path:tag" or "host/path@sha256:..." split without validation (the receiver validates):
 * the host is everything before the first "/"; a tag is a ":" after the last "/".
 */
export function splitImageRef(ref: string): { host: string; repository: string; tag?: string; digest?: string } | undefined {
  const split = splitResourceUrl(ref);
  if (!split) return undefined;
  let path = split.path;
  let digest: string | undefined;
  const at = path.indexOf('@');
  if (at >= 0) {
    digest = path.slice(at + 1);
    path = path.slice(0, at);
  }
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/')) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
  }
  if (!path) return undefined;
  return { host: split.host, repository: path, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** `repo:tag` / `repo@digest` for an ignored item's `ref`. */
export function refOf(repository: string | undefined, tag?: string, digest?: string): { ref?: string } {
  if (!repository) return {};
  return { ref: `${repository}${tag ? `:${tag}` : digest ? `@${digest}` : ''}` };
}
