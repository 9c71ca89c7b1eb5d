/**
 * Webhook authentication: the integration's shared secret, presented as
 * `Authorization: Bearer <secret>`, a bare `Authorization: <secret>` (Harbor's auth header is sent
 * verbatim), or `?token=<secret>` for senders that cannot set headers. Compared in constant time.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import type { RequestHead } from './types.js';

const sha256 = (s: string): Buffer => hash('sha256', s, 'buffer');

export function presentedSecrets(req: RequestHead): string[] {
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
  return timingSafeEqual(sha256(a), sha256(b));
}

/**
 * The shared-secret check of one integration. The configured secret's digest is computed once;
 * each presented value is hashed and compared with it in constant time. Without a secret only
 * `insecure: true` lets a call in.
 */
export function sharedSecretCheck(secret: string | undefined, insecure: boolean): (req: RequestHead) => boolean {
  if (!secret) return () => insecure;
  const expected = sha256(secret);
  return (req) => {
    // Evaluate every presented value (no early exit) so timing does not reveal which one matched.
    let ok = false;
    for (const s of presentedSecrets(req)) ok = timingSafeEqual(sha256(s), expected) || ok;
    return ok;
  };
}
