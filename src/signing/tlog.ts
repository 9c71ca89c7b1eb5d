/**
 * A rule's transparency-log policy: log every signature to its Rekor, and decide what happens
 * when Rekor fails.
 *
 * - `required: true` (default): nothing is written until Rekor has the entry. Rekor outages are
 *   retryable errors (REKOR_UNAVAILABLE): the client retries a few times, then the job is retried
 *   with backoff like any other dependency outage, so signing waits for Rekor. A refusal
 *   (REKOR_REJECTED: 4xx, an entry that does not match, a bad SET) fails the job.
 * - `required: false`: Rekor is best effort. If it still fails after the client's retries, the
 *   signature is written without a transparency-log entry and the report says why
 *   (`tlog.status: 'unavailable'`). The next time that digest is signed (another tag, a re-push,
 *   `signet sign`), the present signature is logged then and gets its entry.
 */
import { describeError, SignetError } from '../errors.js';
import type { RekorClient, RekorLogEntry } from '../transparency/rekor.js';

export interface TlogPolicy {
  rekor: RekorClient;
  required: boolean;
}

/** What happened with the transparency log for one signature (in SignReport entries). */
export interface TlogStatus {
  /**
   * logged: a new entry; existing: Rekor already had it (409); present: the signature already
   * carried an entry; unavailable: Rekor failed and the rule does not require it.
   */
  status: 'logged' | 'existing' | 'present' | 'unavailable';
  logIndex?: number;
  uuid?: string;
  integratedTime?: number;
  error?: string;
}

export type TlogResult = { entry: RekorLogEntry; status: TlogStatus } | { entry?: undefined; status: TlogStatus };

/** Create the entry (or find the existing one) and check it, applying the rule's policy. */
export async function logToRekor(policy: TlogPolicy, proposed: unknown, check: (e: RekorLogEntry) => void): Promise<TlogResult> {
  try {
    const entry = await policy.rekor.createEntry(proposed);
    check(entry);
    return {
      entry,
      status: { status: entry.existing ? 'existing' : 'logged', logIndex: entry.logIndex, uuid: entry.uuid, integratedTime: entry.integratedTime },
    };
  } catch (err) {
    const rekorFailure = err instanceof SignetError && (err.code === 'REKOR_UNAVAILABLE' || err.code === 'REKOR_REJECTED');
    if (!policy.required && rekorFailure) return { status: { status: 'unavailable', error: describeError(err) } };
    throw err;
  }
}
