/**
 * Does one sigstore bundle hold what a plan requires of a key on a manifest? The bundle reader's
 * verdict (src/signing/bundle-read.ts checkBundle: signature, statement by meaning, Rekor entries
 * with their SETs and inclusion proofs, timestamps), plus what the plan adds: a key with a
 * certificate is expected to sign with it (cosign 3 checks the certificate against the CA), a
 * rule with `rekor:` wants an entry and a rule with a timestamp authority a timestamp. Used by the
 * reader (verify, backfill) and the writer's "already present?" decision alike.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import type { SigningKey } from '../../kms/signing-key.js';
import { pae } from '../../signing/bundle.js';
import { checkBundle, type SigstoreBundle } from '../../signing/bundle-read.js';

export type BundleVerdict =
  | { signedBy: false }
  | { signedBy: true; ok: true; signedDigest: string | undefined }
  | { signedBy: true; ok: false; why: string; signedDigest: string | undefined };

export interface BundleNeeds {
  /** The rule logs to Rekor: an entry is required (checked against `rekorKey` when the rule names the log's key). */
  tlog: boolean;
  rekorKey?: string | undefined;
  /** The rule stamps: a timestamp is required (verified by `verifyTimestamp` when given). */
  timestamp: boolean;
  verifyTimestamp?: ((signature: Buffer, signedTimestamp: Buffer) => Date) | undefined;
}

const rekorKeys = new Map<string, KeyObject>();
function rekorKeyOf(pem: string): KeyObject {
  let k = rekorKeys.get(pem);
  if (!k) rekorKeys.set(pem, (k = createPublicKey(pem)));
  return k;
}

export async function bundleMeets(
  b: SigstoreBundle,
  want: { digest: string; annotations?: Readonly<Record<string, string>> | undefined; predicateType?: string | undefined },
  key: SigningKey,
  need: BundleNeeds,
): Promise<BundleVerdict> {
  if (!(await signedBy(b, key))) return { signedBy: false };
  const signedDigest = claimedDigest(b);
  const r = await checkBundle(
    b,
    {
      digest: want.digest,
      ...(want.annotations ? { annotations: want.annotations } : {}),
      ...(want.predicateType ? { predicateType: want.predicateType } : {}),
    },
    { publicKey: key.publicKey, ...(key.certificate ? { certificatePem: key.certificate.certificate } : {}) },
    {
      ...(need.tlog && need.rekorKey ? { rekorKeys: [rekorKeyOf(need.rekorKey)] } : {}),
      ...(need.timestamp && need.verifyTimestamp ? { verifyTimestamp: need.verifyTimestamp, requireTimestamp: true } : {}),
    },
  );
  const fail = (why: string): BundleVerdict => ({ signedBy: true, ok: false, why, signedDigest });
  if (!r.ok) return fail(r.why);
  if (key.certificate && b.verifier.kind !== 'certificate') return fail('signed with the bare key; the key has a certificate');
  // without the log's key configured, an entry is only counted (the SET cannot be checked)
  if (need.tlog && !need.rekorKey && b.tlogEntries.length === 0) return fail('no tlog entry');
  if (need.timestamp && !need.verifyTimestamp && b.rfc3161Timestamps.length === 0) return fail('no RFC 3161 timestamp');
  return { signedBy: true, ok: true, signedDigest: want.digest };
}

/** Is the bundle's (DSSE) signature by this key? Message signatures need the manifest: not attributed here. */
async function signedBy(b: SigstoreBundle, key: SigningKey): Promise<boolean> {
  const c = b.content;
  if (c.kind !== 'dsse' || c.signatures.length !== 1) return false;
  const alg = key.publicKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return new Promise((resolve) => {
    try {
      cryptoVerify(alg, pae(c.payloadType, c.payload), key.publicKey, c.signatures[0]!.sig, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

function claimedDigest(b: SigstoreBundle): string | undefined {
  if (b.content.kind !== 'dsse') return undefined;
  try {
    const st = JSON.parse(b.content.payload.toString('utf8')) as { subject?: { digest?: Record<string, string> }[] };
    const d = st.subject?.[0]?.digest;
    return d?.['sha256'] ? `sha256:${d['sha256']}` : undefined;
  } catch {
    return undefined;
  }
}
