/**
 * Signing status per (digest, rule, key): pending | signed | skipped(reason) | failed(code,
 * reason), with times, in Redis, kept for a retention period. What `GET /api/v1/images/{ref}/status`
 * and `signet status` read (like ECR's DescribeImageSigningStatus).
 *
 * Keys: `<prefix>:status:<host>/<repo>@<digest>` is a hash `<rule>/<key>` -> entry. A push that
 * failed or was skipped before its digest was known is kept under `<prefix>:status:<host>/<repo>:<tag>`
 * with the field `-`. `<prefix>:status:recent` lists the latest entries for the status page.
 * The prefix is the configured one without hash-tag braces: on Redis Cluster each record hashes by
 * its own name (host/repo@digest), so records spread over the slots; a record's entries then go in
 * one script call per hash, and the recent list (one key, one slot) is written after them.
 */
import type { Cluster, Redis } from 'ioredis';
import { ownKeyPrefix } from '../config/redis.js';

export type SigningState = 'pending' | 'signed' | 'skipped' | 'failed';

export interface StatusUpdate {
  state: SigningState;
  /** host/repo */
  repository: string;
  digest?: string;
  tag?: string;
  rule?: number;
  key?: string;
  code?: string;
  reason?: string;
  requestId?: string;
  jobId?: string;
}

export interface StatusEntry extends StatusUpdate {
  /** ISO times */
  createdAt: string;
  updatedAt: string;
}

const RECENT_MAX = 500;

/**
 * One round trip per record: KEYS = the entries' hashes, then the recent list; ARGV = retention
 * seconds, then (field, entry JSON, "1" when the entry goes on the recent list) per entry. An
 * entry that exists keeps its createdAt (copied from the stored JSON into the new one).
 */
const RECORD_SCRIPT = `
local ttl = tonumber(ARGV[1])
local recent = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local field, json, listed = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  local prev = redis.call('hget', KEYS[i], field)
  if prev then
    local created = string.match(prev, '"createdAt":"([^"]*)"')
    if created then json = (string.gsub(json, '"createdAt":"[^"]*"', '"createdAt":"' .. created .. '"', 1)) end
  end
  redis.call('hset', KEYS[i], field, json)
  redis.call('expire', KEYS[i], ttl)
  if listed == '1' then redis.call('lpush', recent, json) end
end
redis.call('ltrim', recent, 0, ${RECENT_MAX - 1})
redis.call('expire', recent, ttl)
return 1
`;

/**
 * Cluster: one hash at a time (KEYS[1]); ARGV as RECORD_SCRIPT's. Returns the JSON of the entries
 * that go on the recent list, with the createdAt they were stored with.
 */
const RECORD_ONE_SCRIPT = `
local ttl = tonumber(ARGV[1])
local listed = {}
for i = 2, #ARGV, 3 do
  local field, json = ARGV[i], ARGV[i + 1]
  local prev = redis.call('hget', KEYS[1], field)
  if prev then
    local created = string.match(prev, '"createdAt":"([^"]*)"')
    if created then json = (string.gsub(json, '"createdAt":"[^"]*"', '"createdAt":"' .. created .. '"', 1)) end
  end
  redis.call('hset', KEYS[1], field, json)
  if ARGV[i + 2] == '1' then listed[#listed + 1] = json end
end
redis.call('expire', KEYS[1], ttl)
return listed
`;

/** Does a digest's hash hold an entry per key (fields other than the push-level "-")? */
const HAS_KEY_ENTRY_SCRIPT = `
local n = redis.call('hlen', KEYS[1])
if n > 0 and redis.call('hexists', KEYS[1], '-') == 1 then n = n - 1 end
return n
`;

type StatusRedis = (Redis | Cluster) & {
  signetStatusRecord(...args: (string | number)[]): Promise<number>;
  signetStatusRecordOne(key: string, ...args: string[]): Promise<string[]>;
  signetStatusKeyEntries(key: string): Promise<number>;
};

export class StatusStore {
  private readonly redis: StatusRedis;
  private readonly prefix: string;
  private readonly cluster: boolean;

  constructor(
    redis: Redis | Cluster,
    prefix: string,
    private readonly retentionSeconds: number,
  ) {
    this.prefix = ownKeyPrefix(prefix);
    this.cluster = (redis as Cluster).isCluster === true;
    // EVALSHA with the script loaded on first use (ioredis falls back to EVAL once per connection)
    if (!('signetStatusRecord' in redis)) {
      redis.defineCommand('signetStatusRecord', { lua: RECORD_SCRIPT });
      redis.defineCommand('signetStatusRecordOne', { lua: RECORD_ONE_SCRIPT, numberOfKeys: 1 });
      redis.defineCommand('signetStatusKeyEntries', { lua: HAS_KEY_ENTRY_SCRIPT, numberOfKeys: 1 });
    }
    this.redis = redis as StatusRedis;
  }

  private hashKey(repository: string, digest: string | undefined, tag: string | undefined): string {
    return `${this.prefix}:status:${repository}${digest ? `@${digest}` : `:${tag ?? ''}`}`;
  }

  /** Records several updates in one round trip; keeps createdAt of existing entries. */
  async record(updates: readonly StatusUpdate[], now = new Date()): Promise<void> {
    if (updates.length === 0) return;
    const iso = now.toISOString();
    const keys: string[] = [];
    const args: string[] = [String(this.retentionSeconds)];
    for (const u of updates) {
      // Per-key entries live with their digest; the push-level entry (no key) with its tag when it
      // has one (so a tag-only push and its later resolution update the same entry), else its digest.
      keys.push(u.key ? this.hashKey(u.repository, u.digest, undefined) : this.hashKey(u.repository, u.tag ? undefined : u.digest, u.tag));
      const entry: StatusEntry = { ...stripUndefined(u), createdAt: iso, updatedAt: iso };
      args.push(u.key ? `${u.rule ?? '-'}/${u.key}` : '-', JSON.stringify(entry), u.state === 'pending' ? '0' : '1');
    }
    const recent = `${this.prefix}:status:recent`;
    if (!this.cluster) {
      keys.push(recent);
      await this.redis.signetStatusRecord(keys.length, ...keys, ...args);
      return;
    }
    // Cluster: the hashes are in different slots; one call per hash, in parallel, then the recent list
    const byKey = new Map<string, string[]>();
    keys.forEach((k, i) => {
      const list = byKey.get(k) ?? [];
      if (!byKey.has(k)) byKey.set(k, list);
      list.push(...args.slice(1 + 3 * i, 4 + 3 * i));
    });
    const listed = (await Promise.all([...byKey].map(([k, a]) => this.redis.signetStatusRecordOne(k, args[0]!, ...a)))).flat();
    if (listed.length) await this.redis.multi().lpush(recent, ...listed).ltrim(recent, 0, RECENT_MAX - 1).expire(recent, this.retentionSeconds).exec();
  }

  /** Has a signature by any key been recorded for this digest (signed here, or found present)? */
  async hasRecord(repository: string, digest: string): Promise<boolean> {
    return (await this.redis.signetStatusKeyEntries(this.hashKey(repository, digest, undefined))) > 0;
  }

  /** Every entry for a digest, and the tag-level entry when a tag is given. */
  async get(repository: string, digest: string | undefined, tag: string | undefined): Promise<StatusEntry[]> {
    const out: StatusEntry[] = [];
    if (digest) out.push(...Object.values(await this.redis.hgetall(this.hashKey(repository, digest, undefined))).map((v) => JSON.parse(v) as StatusEntry));
    // a push-level entry kept under its tag is only relevant when it names this digest (or none)
    if (tag) {
      const t = await this.redis.hget(this.hashKey(repository, undefined, tag), '-');
      const entry = t ? (JSON.parse(t) as StatusEntry) : undefined;
      if (entry && (!digest || !entry.digest || entry.digest === digest)) out.push(entry);
    }
    return out.sort((a, b) => (a.rule ?? -1) - (b.rule ?? -1) || (a.key ?? '').localeCompare(b.key ?? '') || a.updatedAt.localeCompare(b.updatedAt));
  }

  /** The latest finished entries, newest first. */
  async recent(limit = 100): Promise<StatusEntry[]> {
    return (await this.redis.lrange(`${this.prefix}:status:recent`, 0, limit - 1)).map((v) => JSON.parse(v) as StatusEntry);
  }
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
