/**
 * The Notary Project signature format (what `notation` 1.x, Ratify, Kyverno `type: Notary` and
 * AWS Signer/ECR managed signing verify): a JWS envelope with signing scheme notary.x509 over the
 * manifest's descriptor, stored as an OCI 1.1 referrer. See jws.ts (the envelope), write.ts,
 * read.ts. Keys need a certificate chain (keys[].certificate/chain); `signet config check`
 * refuses a rule asking for `notation` with a key that has none.
 */
import type { SignatureFormat } from '../types.js';
import { readNotation } from './read.js';
import { writeNotation } from './write.js';

export const notationFormat: SignatureFormat = {
  name: 'notation',
  rsaPadding: 'pss',
  read: readNotation,
  write: (ctx, plan, subject) => writeNotation(ctx, plan, subject),
};
