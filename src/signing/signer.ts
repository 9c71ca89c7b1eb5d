/**
 * Signing as a chain, apart from storage (like sigstore-js's Signer and Witness): the key signs
 * (SigningKey: its backend, its memo, its certificate), then the witnesses the rule names add
 * their evidence about that signature: a Rekor entry (transparency/rekor.ts, the policy in
 * tlog.ts) and an RFC 3161 timestamp over the signature bytes. The formats decide what is
 * signed (a simple-signing payload, a DSSE envelope) and where the results are stored; they
 * call the chain and never a key backend, Rekor or a TSA directly.
 *
 * A signature another worker process made for the same key and payload within 30 minutes (a
 * job retried elsewhere after its .sig PUT failed) is reused from Redis (shared-signatures.ts),
 * so the retry costs no key call and Rekor answers 409 with the entry already made. For a digest
 * nobody has signed (the pipeline's expectNew: no record, not a retry, no recent holder of its
 * lock, no witness) the pipeline gives the signers a store that only keeps, never looks.
 */
import { describeError, SignetError } from '../errors.js';
import type { SigningKey } from '../kms/signing-key.js';
import type { SignOptions } from '../kms/types.js';
import type { RekorLogEntry } from '../transparency/rekor.js';
import type { SharedSignatures } from './shared-signatures.js';
import { logToRekor, type TlogPolicy, type TlogStatus } from './tlog.js';

/** An RFC 3161 timestamp authority (transparency/timestamp.ts). */
export interface Timestamper {
  /** A timestamp over `data` (the signature bytes), verified against the configured chain. */
  timestamp(data: Buffer): Promise<{ response: Buffer; genTime: Date }>;
}

export interface TimestampPolicy {
  tsa: Timestamper;
  /** true: nothing is written without the timestamp (outages retried); false: best effort. */
  required: boolean;
}

/** What the rule asks of each signature besides the key: a Rekor entry, a timestamp. */
export interface Witnesses {
  tlog?: TlogPolicy | undefined;
  timestamp?: TimestampPolicy | undefined;
}

export interface TimestampStatus {
  status: 'stamped' | 'present' | 'unavailable';
  genTime?: string;
  error?: string;
}

/** The Rekor entry a format proposes for a signature, and how the answer is checked. */
export interface EntryProposal {
  proposed: unknown;
  check: (e: RekorLogEntry) => void;
}

export interface Witnessed {
  tlog?: { entry?: RekorLogEntry | undefined; status: TlogStatus };
  timestamp?: { response?: Buffer | undefined; status: TimestampStatus };
}

export class Signer {
  constructor(
    readonly key: SigningKey,
    readonly witnesses: Witnesses = {},
    /** Signatures other worker processes made recently (shared-signatures.ts); none: this process only. */
    private readonly shared?: SharedSignatures | undefined,
  ) {}

  /**
   * The key's signature over `payload` (the format's bytes: a payload, a DSSE PAE): one another
   * worker made recently for the same key and payload (verified), else the key's (its memo, else
   * its backend), kept for the others.
   */
  async sign(payload: Buffer, opts?: SignOptions): Promise<Buffer> {
    const found = await this.shared?.find(this.key, payload, opts);
    if (found) return found;
    const signature = await this.key.sign(payload, opts);
    await this.shared?.keep(this.key, payload, opts, signature);
    return signature;
  }

  /**
   * The witnesses' evidence for `signature`: the Rekor entry `entry` proposes (when the rule logs)
   * and a timestamp over the signature (when the rule stamps). Skips what `have` says is there.
   */
  async witness(signature: Buffer, entry: (() => EntryProposal) | undefined, have: { tlog?: boolean; timestamp?: boolean } = {}): Promise<Witnessed> {
    const out: Witnessed = {};
    const { tlog, timestamp } = this.witnesses;
    const jobs: Promise<void>[] = [];
    if (tlog && entry && !have.tlog) {
      jobs.push(
        (async () => {
          const e = entry();
          out.tlog = await logToRekor(tlog, e.proposed, e.check);
        })(),
      );
    }
    if (timestamp && !have.timestamp) jobs.push((async () => void (out.timestamp = await stamp(timestamp, signature)))());
    await Promise.all(jobs);
    return out;
  }
}

async function stamp(policy: TimestampPolicy, signature: Buffer): Promise<NonNullable<Witnessed['timestamp']>> {
  try {
    const t = await policy.tsa.timestamp(signature);
    return { response: t.response, status: { status: 'stamped', genTime: t.genTime.toISOString() } };
  } catch (err) {
    const outage = err instanceof SignetError && (err.code === 'TIMESTAMP_UNAVAILABLE' || err.code === 'TIMESTAMP_REJECTED');
    if (!policy.required && outage) return { status: { status: 'unavailable', error: describeError(err) } };
    throw err;
  }
}
