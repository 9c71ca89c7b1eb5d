/**
 * Does one sigstore bundle hold what a plan requires of a key on a manifest? Signature first
 * (DSSE pre-authentication encoding, verified on libuv's thread pool), then the statement by
 * meaning: an in-toto Statement v1 naming the digest, with cosign's sign predicate and at least
 * the plan's annotations on that subject (what `cosign sign -a k=v` 3.x writes), then what the
 * rule's witnesses add.
 */
import { verify as verifySignature } from 'node:crypto';
import type { SigningKey } from '../../kms/signing-key.js';
import { COSIGN_SIGN_PREDICATE, INTOTO_PAYLOAD_TYPE, INTOTO_STATEMENT_V1, pae, type ParsedBundle } from '../../signing/bundle.js';
import type { SigningPlan } from '../../signing/plan.js';
import type { ReadContext } from '../types.js';

export type BundleVerdict =
  | { signedBy: false }
  | { signedBy: true; ok: true; signedDigest: string | undefined }
  | { signedBy: true; ok: false; why: string; signedDigest: string | undefined };

export async function bundleMeets(
  b: ParsedBundle,
  plan: Pick<SigningPlan, 'annotations'>,
  digest: string,
  key: SigningKey,
  need: { tlog: boolean; timestamp: boolean },
  _ctx?: ReadContext,
): Promise<BundleVerdict> {
  if (b.payloadType !== INTOTO_PAYLOAD_TYPE) return { signedBy: false };
  const valid = await new Promise<boolean>((resolve) => {
    try {
      verifySignature('sha256', pae(b.payloadType, b.payload), key.publicKey, b.signature, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
  if (!valid) return { signedBy: false };
  const st = statementOf(b.payload);
  const [alg, hex] = digest.split(':');
  const subject = st?.subjects.find((s) => s.digest[alg!] === hex);
  const signedDigest = st?.subjects[0] ? Object.entries(st.subjects[0].digest).map(([a, h]) => `${a}:${h}`)[0] : undefined;
  const fail = (why: string): BundleVerdict => ({ signedBy: true, ok: false, why, signedDigest });
  if (!st) return fail('not an in-toto statement');
  if (st.predicateType !== COSIGN_SIGN_PREDICATE) return fail(`predicate ${st.predicateType.slice(0, 100)}, not a cosign signature`);
  if (!subject) return fail(`signs ${signedDigest ?? 'another manifest'}, not this manifest`);
  for (const [k, v] of Object.entries(plan.annotations ?? {})) {
    if (subject.annotations[k] !== v) return fail(`annotation ${k} is not "${v}"`);
  }
  if (need.tlog && b.tlogEntries === 0) return fail('no Rekor entry');
  if (need.timestamp && b.timestamps === 0) return fail('no RFC 3161 timestamp');
  return { signedBy: true, ok: true, signedDigest: `${alg}:${hex}` };
}

interface Statement {
  predicateType: string;
  subjects: { digest: Record<string, string>; annotations: Record<string, unknown> }[];
}

function statementOf(payload: Buffer): Statement | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (o['_type'] !== INTOTO_STATEMENT_V1 || typeof o['predicateType'] !== 'string' || !Array.isArray(o['subject'])) return undefined;
  const subjects: Statement['subjects'] = [];
  for (const s of o['subject'].slice(0, 64)) {
    if (!s || typeof s !== 'object') continue;
    const d = (s as Record<string, unknown>)['digest'];
    const a = (s as Record<string, unknown>)['annotations'];
    if (!d || typeof d !== 'object') continue;
    subjects.push({ digest: d as Record<string, string>, annotations: a && typeof a === 'object' ? (a as Record<string, unknown>) : {} });
  }
  return { predicateType: o['predicateType'], subjects };
}
