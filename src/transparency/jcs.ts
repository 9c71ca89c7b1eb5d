/**
 * RFC 8785 JSON Canonicalization Scheme (JCS), enough for Rekor: objects with keys sorted by UTF-16
 * code units, no whitespace, strings and numbers in ECMAScript's JSON form (which is what JCS
 * specifies). Rekor signs the SET over JCS(Payload) (sigstore/rekor pkg/api/entries.go signEntry;
 * cosign pkg/cosign/verify.go VerifySET uses webpki.org/jsoncanonicalizer).
 */
export function canonicalize(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('JCS: non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalize(v === undefined ? null : v)).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    // Array.prototype.sort compares UTF-16 code units, exactly what JCS asks for.
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalize(obj[k])}`).join(',')}}`;
  }
  throw new TypeError(`JCS: cannot canonicalize a ${typeof value}`);
}
