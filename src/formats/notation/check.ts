/**
 * Does one Notation signature hold what a plan requires of a key on a manifest? Used by the
 * reader (verify, backfill) and the writer's "already present?" decision alike:
 *
 * - signed by the key: the JWS signature verifies with the key's public key;
 * - with the key's configured certificate as the x5c leaf (what a trust policy checks against
 *   its trust store and trusted identities; signet checks the leaf is the one it was given);
 * - headers notation accepts for notary.x509 (jws.ts headerProblem), not expired;
 * - the payload names this manifest (digest, media type, size) with the plan's annotations;
 * - under a rule with a timestamp authority: an RFC 3161 countersignature over the signature
 *   bytes, verified against the rule's TSA chain when one is configured (else only counted).
 */
import type { SigningKey } from '../../kms/signing-key.js';
import type { Subject } from '../types.js';
import { headerProblem, jwsSignatureValid, payloadProblem, pemToDers, type ParsedEnvelope } from './jws.js';

export interface NotationNeeds {
  timestamp: boolean;
  verifyTimestamp?: ((signature: Buffer, signedTimestamp: Buffer) => Date) | undefined;
}

export type NotationVerdict =
  | { signedBy: false }
  | { signedBy: true; ok: true; signedDigest: string | undefined }
  | { signedBy: true; ok: false; why: string; signedDigest: string | undefined };

export function notationMeets(
  env: ParsedEnvelope,
  want: { subject: Subject; annotations?: Readonly<Record<string, string>> | undefined },
  key: SigningKey,
  need: NotationNeeds,
): NotationVerdict {
  if (!jwsSignatureValid(env, key.publicKey)) return { signedBy: false };
  const digest = env.payload.targetArtifact?.digest;
  const signedDigest = typeof digest === 'string' ? digest : undefined;
  const fail = (why: string): NotationVerdict => ({ signedBy: true, ok: false, why, signedDigest });
  if (!key.certificate) return fail('the key has no certificate (Notation verifies certificate chains)');
  const leaf = pemToDers(key.certificate.certificate)[0];
  if (!leaf || !env.x5c[0]?.equals(leaf)) return fail("x5c leaf is not the key's configured certificate");
  const h = headerProblem(env.header, key.publicKey, key.name);
  if (h) return fail(h);
  const p = payloadProblem(env, want.subject, want.annotations);
  if (p) return fail(p);
  if (need.timestamp) {
    if (!env.timestampToken) return fail('no RFC 3161 countersignature');
    if (need.verifyTimestamp) {
      try {
        need.verifyTimestamp(env.signature, env.timestampToken);
      } catch (err) {
        return fail((err as Error).message);
      }
    }
  }
  return { signedBy: true, ok: true, signedDigest: want.subject.digest };
}
