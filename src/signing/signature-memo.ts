/**
 * Signatures one key made recently, per signed digest (each SigningKey holds its own memo).
 *
 * A job that fails after its signature was made (a registry 5xx on the payload upload or on the
 * .sig PUT, a lock lost to a stalled worker) is retried, and the retry would otherwise ask the
 * key backend again: a second KMS call for one signature, and with Rekor a second entry (an
 * ECDSA signature differs each time). With the memo the retry writes the same signature, and
 * Rekor answers 409 with the entry the first attempt made.
 *
 * The memo belongs to the key value, so a key reloaded under the same name never gets another
 * key's signature. Concurrent calls for the same digest share one backend call. A failed call is
 * not kept. Bounded (the oldest go first) and time-limited.
 */

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
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(opts: SignatureMemoOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 4096;
    this.ttlMs = opts.ttlMs ?? 30 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** `call()` (the backend signing `digest`), unless the same digest was signed within the TTL. */
  sign(digest: Buffer, call: () => Promise<Buffer>): Promise<Buffer> {
    const entries = this.entries;
    const id = digest.toString('base64');
    const hit = entries.get(id);
    if (hit && this.now() - hit.at < this.ttlMs) {
      if (hit.pending) return hit.pending;
      if (hit.base64 !== undefined) return Promise.resolve(Buffer.from(hit.base64, 'base64'));
    }
    if (hit) entries.delete(id);

    const pending = call();
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
}
