import { z } from 'zod';
import { SignetError } from '../../errors.js';

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
