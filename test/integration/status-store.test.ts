/**
 * StatusStore additions on the real Redis (issue 19 items 2 and 9): per-key signed updates of one
 * record call are merged with their formats united; each signature is counted per (key, format,
 * outcome) in Redis; a push-level entry naming tag and digest is found by either (`lookup` and
 * `get`, with no duplicate); `lookup` by tag follows the digest the tag's entry names.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusStore } from '../../src/status/store.js';
import { REDIS_URL, uniquePrefix } from '../helpers/signet.js';

const prefix = uniquePrefix();
const repo = 'registry.test/team/app';
const d1 = `sha256:${'1'.repeat(64)}`;
const child = `sha256:${'2'.repeat(64)}`;
let redis: Redis;
let store: StatusStore;

beforeAll(() => {
  redis = new Redis(REDIS_URL);
  store = new StatusStore(redis, prefix, 3600);
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

describe('StatusStore', () => {
  it('merges one key’s formats, counts each signature, and finds a tag push by tag and by digest', async () => {
    await store.record([
      { state: 'signed', repository: repo, tag: 'v1', digest: d1, rule: 0, requestId: 'r1' },
      { state: 'signed', repository: repo, tag: 'v1', digest: d1, rule: 0, key: 'a', formats: ['legacy'], reason: 'signed as x', requestId: 'r1' },
      {
        state: 'signed',
        repository: repo,
        tag: 'v1',
        digest: d1,
        rule: 0,
        key: 'a',
        formats: ['bundle'],
        present: true,
        reason: 'signed as x',
        requestId: 'r1',
      },
      { state: 'signed', repository: repo, tag: 'v1', digest: child, rule: 0, key: 'a', formats: ['legacy'], present: true, requestId: 'r1' },
    ]);
    const byTag = await store.lookup(repo, undefined, 'v1');
    expect(byTag.digest).toBe(d1);
    expect(byTag.entries.map((e) => [e.key ?? '-', e.formats, e.present])).toEqual([
      ['-', undefined, undefined],
      ['a', ['legacy', 'bundle'], undefined], // one written now: not "present"
    ]);
    const byDigest = await store.lookup(repo, d1, undefined);
    expect(byDigest.entries.map((e) => [e.key ?? '-', e.tag])).toEqual([
      ['-', 'v1'],
      ['a', 'v1'],
    ]);
    expect((await store.get(repo, d1, 'v1')).map((e) => e.key ?? '-')).toEqual(['-', 'a']);
    expect(await store.hasRecord(repo, d1)).toBe(true);
    const counts = (await store.signatureCounts()).sort((x, y) => `${x.format}${x.outcome}`.localeCompare(`${y.format}${y.outcome}`));
    expect(counts).toEqual([
      { key: 'a', format: 'bundle', outcome: 'present', count: 1 },
      { key: 'a', format: 'legacy', outcome: 'present', count: 1 },
      { key: 'a', format: 'legacy', outcome: 'signed', count: 1 },
    ]);
    // the push-level entry went on the recent list once (its copy under the digest did not)
    expect((await store.recent(10)).filter((e) => !e.key)).toHaveLength(1);
  });

  it('a tag’s entry about another digest is not that digest’s; a failure before resolution is found by tag only', async () => {
    const d2 = `sha256:${'3'.repeat(64)}`;
    await store.record([{ state: 'failed', repository: repo, tag: 'v2', code: 'REGISTRY_DENIED', reason: 'denied' }]);
    expect((await store.lookup(repo, undefined, 'v2')).entries.map((e) => e.code)).toEqual(['REGISTRY_DENIED']);
    expect((await store.lookup(repo, undefined, 'v2')).digest).toBeUndefined();
    expect((await store.lookup(repo, d2, 'v1')).entries).toEqual([]);
  });
});
