import { describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_SECONDS, parseRetryAfter, retryAfterOption } from '../../../src/edge/retry-after.js';

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-12-05T12:00:00Z');
  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfter('7')).toBe(7);
    expect(parseRetryAfter(' 2.5 ')).toBe(2.5);
    expect(parseRetryAfter(['3', '9'])).toBe(3);
    expect(parseRetryAfter(4)).toBe(4);
    expect(parseRetryAfter('Sat, 05 Dec 2026 12:00:30 GMT', { now })).toBe(30);
    expect(parseRetryAfter('Sat, 05 Dec 2026 11:00:00 GMT', { now })).toBe(0);
  });
  it('caps what an upstream can ask for', () => {
    expect(parseRetryAfter('99999999')).toBe(MAX_RETRY_AFTER_SECONDS);
    expect(parseRetryAfter('Fri, 31 Dec 9999 23:59:59 GMT', { now })).toBe(MAX_RETRY_AFTER_SECONDS);
    expect(parseRetryAfter('1e400')).toBeUndefined();
    expect(parseRetryAfter('120', { max: 60 })).toBe(60);
  });
  it('ignores what is not a Retry-After value', () => {
    for (const v of [undefined, null, '', '-5', 'soon', 'x'.repeat(100), []]) expect(parseRetryAfter(v as never)).toBeUndefined();
    expect(retryAfterOption('nope')).toEqual({});
    expect(retryAfterOption('5')).toEqual({ retryAfterSeconds: 5 });
  });
});
