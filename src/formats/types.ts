/**
 * One interface for every way signet stores signatures. A format is one module in this folder
 * and one entry in the map of src/formats/index.ts; nothing outside src/formats branches on a
 * format's name. Each format:
 *
 * - `read`: which valid signatures by the plan's keys are on one manifest, as a verifier of that
 *   format would find them (the plan's identity, annotations, certificate and transparency
 *   requirements applied), with a report line per stored signature. `signet verify`, `signet
 *   backfill` and the writers' own "already present?" decisions use it.
 * - `write`: attach what is missing for the plan's keys, signing through the Signer chain
 *   (key -> certificate -> Rekor / timestamp: src/signing/signer.ts). Storage formats store;
 *   signers sign.
 */
import type { SigningKey } from '../kms/signing-key.js';
import type { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import type { RegistryClient } from '../registry/client.js';
import type { SignatureLimitMetrics } from '../signing/carry.js';
import type { Exclusion } from '../signing/lock.js';
import type { FormatName, SigningPlan } from '../signing/plan.js';
import type { Signer } from '../signing/signer.js';
import type { TlogStatus } from '../signing/tlog.js';
import type { TimestampStatus } from '../signing/signer.js';

export type { FormatName } from '../signing/plan.js';

/** A manifest signed: the pushed one, or an index child (as the registry serves it). */
export interface Subject {
  mediaType: string;
  digest: string;
  size: number;
}

export interface ReadContext {
  client: RegistryClient;
  /** The repository within the registry. */
  repository: string;
  /** Every configured key (a signature by a key outside the plan is reported by its name). */
  keys: readonly SigningKey[];
  /** Rekor public keys the rule trusts (PEM), for checking entries; none: entries only counted. */
  rekorKeys?: readonly string[] | undefined;
  /** The configured timestamp authorities: a rule's timestamps are verified against its TSA chain (none: only counted). */
  timestamps?: TimestampAuthorities | undefined;
}

export interface WriteContext extends ReadContext {
  lock: Exclusion;
  /** One Signer per plan key, in plan order (the chain for this rule's witnesses). */
  signers: readonly Signer[];
  /** signet has no record of this digest: a format may skip its read before signing. */
  expectNew?: boolean | undefined;
  /** registries[].verifyWrites: read back after writing. */
  verifyWrite?: boolean | undefined;
  metrics?: SignatureLimitMetrics | undefined;
}

/** One stored signature, as `signet verify` lists it. */
export interface StoredSignature {
  format: FormatName;
  /** What identifies it in its storage: the .sig layer's payload digest, the referrer's manifest digest. */
  ref: string;
  /** The configured key it verifies with, or null. */
  key: string | null;
  /** The legacy payload's docker-reference, when the format has one. */
  dockerReference?: string | undefined;
  /** The manifest digest it signs, when it could be read. */
  signedDigest?: string | undefined;
  /** The key is one the plan requires. */
  requiredKey: boolean;
  /** This signature is one the plan requires (right key, content, certificate and transparency). */
  satisfies: boolean;
  note?: string | undefined;
}

export interface FormatReading {
  format: FormatName;
  signatures: StoredSignature[];
  /** Plan keys without a signature meeting the plan, with why. */
  missing: { key: string; why: string }[];
  /** Why no signature of this storage counts (a verifier refuses all of it), when so. */
  refused?: string | undefined;
}

export interface SignResult {
  key: string;
  /** signed: a new signature was written; present: a valid signature by this key was already there. */
  outcome: 'signed' | 'present';
  /** sha256 of what the key signed (legacy: the simple-signing payload; bundle: the in-toto statement). */
  payloadDigest: string;
  format: FormatName;
  /** Annotations added to a signature that was already present (e.g. its Rekor entry). */
  upgraded?: string[];
  /** The transparency log, when the rule logs to Rekor. */
  tlog?: TlogStatus;
  /** The timestamp, when the rule asks for one. */
  timestamp?: TimestampStatus;
  /** Bundle format: digest of the referrer manifest holding the bundle. */
  referrer?: string;
}

export interface SignatureFormat {
  readonly name: FormatName;
  /** How RSA keys sign for this format (cosign's formats: PKCS#1 v1.5; Notary Project: PSS); checked at startup. */
  readonly rsaPadding: 'pkcs1v15' | 'pss';
  read(ctx: ReadContext, plan: SigningPlan, subject: Subject): Promise<FormatReading>;
  write(ctx: WriteContext, plan: SigningPlan, subject: Subject): Promise<SignResult[]>;
}
