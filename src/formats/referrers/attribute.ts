/**
 * Which configured key each stored referrer signature belongs to, and which of the plan's keys it
 * satisfies: the part of `read` every referrer format (bundle, Notation) shares. The format
 * supplies the parsed documents and its own judgement of one document for one key.
 */
import type { SigningKey } from '../../kms/signing-key.js';
import type { FormatName, SigningPlan } from '../../signing/plan.js';
import type { FormatReading, StoredSignature } from '../types.js';

/** A format's judgement of one stored document for one key. */
export type KeyVerdict =
  | { signedBy: false }
  | { signedBy: true; ok: true; signedDigest: string | undefined }
  | { signedBy: true; ok: false; why: string; signedDigest: string | undefined };

export interface AttributeWords {
  /** The note for a document that could not be read ("not a readable sigstore bundle"). */
  unreadable: string;
  /** How one document is named in messages ("bundle", "Notation signature"). */
  one: string;
  /** Why a plan key has none (default: `no ${one} by this key`). */
  none?: (key: SigningKey) => string;
}

export async function attributeReferrers<T>(
  format: FormatName,
  docs: readonly { digest: string; doc: T | undefined }[],
  plan: Pick<SigningPlan, 'keys'>,
  allKeys: readonly SigningKey[],
  judge: (doc: T, key: SigningKey) => Promise<KeyVerdict> | KeyVerdict,
  words: AttributeWords,
): Promise<FormatReading> {
  // the plan's keys first: when two names hold the same key, the rule's name is reported
  const ordered = [...plan.keys, ...allKeys.filter((k) => !plan.keys.includes(k))];
  const satisfied = new Set<SigningKey>();
  const why = new Map<SigningKey, string>();
  const signatures: StoredSignature[] = [];
  for (const { digest, doc } of docs) {
    const rep: StoredSignature = { format, ref: digest, key: null, requiredKey: false, satisfies: false };
    signatures.push(rep);
    if (doc === undefined) {
      rep.note = words.unreadable;
      continue;
    }
    for (const key of ordered) {
      const verdict = await judge(doc, key);
      if (verdict.signedBy === false) continue;
      rep.key = key.name;
      rep.signedDigest = verdict.signedDigest;
      rep.requiredKey = plan.keys.includes(key);
      if (verdict.ok && rep.requiredKey && !satisfied.has(key)) {
        satisfied.add(key);
        rep.satisfies = true;
      } else if (!verdict.ok) {
        rep.note = verdict.why;
        if (rep.requiredKey && !why.has(key)) why.set(key, `${words.one} ${digest.slice(0, 19)}…: ${verdict.why}`);
      } else if (rep.requiredKey) rep.note = `another ${words.one} already satisfies this key`;
      break;
    }
    if (rep.key === null) rep.note ??= 'verifies with no configured key';
  }
  const missing = plan.keys
    .filter((k) => !satisfied.has(k))
    .map((k) => ({ key: k.name, why: why.get(k) ?? (words.none ? words.none(k) : `no ${words.one} by this key`) }));
  return { format, signatures, missing };
}
