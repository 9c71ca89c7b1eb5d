/**
 * Webhook authentication: the integration's shared secret, presented as
 * `Authorization: Bearer <secret>`, a bare `Authorization: <secret>` (Harbor's auth header is sent
 * verbatim), or `?token=<secret>` for senders that cannot set headers. Compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';

export function presentedSecrets(req: Request): string[] {
  const out: string[] = [];
  const h = req.headers['authorization'];
  if (typeof h === 'string' && h.length > 0) {
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    out.push(m ? m[1]!.trim() : h.trim());
  }
  const q = req.query['token'];
  if (typeof q === 'string' && q.length > 0) out.push(q);
  return out;
}

/** Constant-time equality of two strings of any length (compares SHA-256 digests). */
export function secretEquals(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

export function isAuthorized(req: Request, secret: string | undefined, insecure: boolean): boolean {
  if (!secret) return insecure;
  // Evaluate every presented value (no early exit) so timing does not reveal which one matched.
  let ok = false;
  for (const s of presentedSecrets(req)) ok = secretEquals(s, secret) || ok;
  return ok;
}
