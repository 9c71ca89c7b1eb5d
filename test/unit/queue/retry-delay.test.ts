import { describe, expect, it } from 'vitest';
import { dedupId, retryDelay } from '../../../src/queue/sign-queue.js';

describe('retry delay', () => {
  it('doubles per attempt with +/-25 % jitter', () => {
    for (let attempt = 1; attempt <= 6; attempt++) {
      const base = 1000 * 2 ** (attempt - 1);
      expect(retryDelay(attempt, 1000, undefined, () => 0)).toBe(base * 0.75);
      expect(retryDelay(attempt, 1000, undefined, () => 0.999999)).toBeCloseTo(base * 1.25, -1);
      expect(retryDelay(attempt + 1, 1000, undefined, () => 0)).toBeGreaterThan(retryDelay(attempt, 1000, undefined, () => 0.999999));
    }
  });
  it('never waits less than Retry-After, and is capped at 10 minutes (+ jitter)', () => {
    expect(retryDelay(1, 100, 5, () => 0)).toBe(5000);
    expect(retryDelay(30, 1000, undefined, () => 0.5)).toBe(10 * 60_000);
  });
  it('dedups by (registry, repository, digest, tag)', () => {
    const a = dedupId({ repository: 'r', tag: 'v1', digest: 'sha256:x' }, 'h');
    expect(dedupId({ repository: 'r', tag: 'v1', digest: 'sha256:x' }, 'h')).toBe(a);
    expect(dedupId({ repository: 'r', tag: 'v2', digest: 'sha256:x' }, 'h')).not.toBe(a);
    expect(dedupId({ repository: 'r', tag: 'v1', digest: 'sha256:x' }, 'h2')).not.toBe(a);
  });
});
