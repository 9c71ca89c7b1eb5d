/**
 * Signatures made recently, per key provider and signed digest.
 *
 * A job that fails after its signature was made (a registry 5xx on the payload upload or on the
 * .sig PUT, a lock lost to a stalled worker) is retried, and the retry would otherwise ask the
 * key backend again: a second KMS call for one signature, and with Rekor a second entry (an
 * ECDSA signature differs each time). With the memo the retry writes the same signature, and
 * Rekor answers 409 with the entry the first attempt made.
 *
 * Keyed by the provider object (not its name), so a key reloaded under the same name never gets
 * another key's signature. Concurrent calls for the same digest share one backend call. A failed
 * call is not kept. Bounded per key (the oldest go first) and time-limited.
 */
import type { KeyProvider } from '../kms/types.js';

export interface SignatureMemoOptions {
  /** Entries kept per key (default 4096: about 1 MB of heap for P-256 signatures, 2 MB for RSA-2048). */
  maxEntries?: number;
  /** How long a signature is reused (default 30 minutes: the default retry backoff stays well inside). */
  ttlMs?: number;
  now?: () => number;
}

interface Entry {
  at: number;
  /** While the backend call runs: concurrent requests wait for the same call. */
  pending: Promise<Buffer> | undefined;
  /**
   * Then the signature as base64: a string of its own. (A Buffer from a KMS answer is often a
   * slice of node's 8 KB allocation pool, and keeping it would keep the whole slab.)
   */
  base64: string | undefined;
}

export class SignatureMemo {
  private readonly byKey = new WeakMap<KeyProvider, Map<string, Entry>>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(opts: SignatureMemoOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 4096;
    this.ttlMs = opts.ttlMs ?? 30 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** `key.sign(digest, payload)`, unless this key signed the same digest within the TTL. */
  sign(key: KeyProvider, digest: Buffer, payload?: Buffer): Promise<Buffer> {
    const entries = this.entriesOf(key);
    const id = digest.toString('base64');
    const hit = entries.get(id);
    if (hit && this.now() - hit.at < this.ttlMs) {
      if (hit.pending) return hit.pending;
      if (hit.base64 !== undefined) return Promise.resolve(Buffer.from(hit.base64, 'base64'));
    }
    if (hit) entries.delete(id);

    const pending = key.sign(digest, payload);
    // one shape for the entry's whole life (no delete: V8 keeps it a small fast object)
    const entry: Entry = { at: this.now(), pending, base64: undefined };
    entries.set(id, entry);
    pending.then(
      (signature) => {
        entry.base64 = signature.toString('base64');
        entry.pending = undefined;
      },
      () => {
        if (entries.get(id) === entry) entries.delete(id);
      },
    );
    // a Map iterates in insertion order: the first key is the oldest entry
    while (entries.size > this.maxEntries) entries.delete(entries.keys().next().value as string);
    return pending;
  }

  private entriesOf(key: KeyProvider): Map<string, Entry> {
    let entries = this.byKey.get(key);
    if (!entries) {
      entries = new Map();
      this.byKey.set(key, entries);
    }
    return entries;
  }
}

/** The process's memo, shared by the legacy and bundle writers. */
export const recentSignatures = new SignatureMemo();
