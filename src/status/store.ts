/**
 * Signing status per (digest, rule, key): pending | signed | skipped(reason) | failed(code,
 * reason), with times, in Redis, kept for a retention period. What `GET /api/v1/images/{ref}/status`
 * and `signet status` read (like ECR's DescribeImageSigningStatus).
 *
 * Keys: `<prefix>:status:<host>/<repo>@<digest>` is a hash `<rule>/<key>` -> entry. A push that
 * failed or was skipped before its digest was known is kept under `<prefix>:status:<host>/<repo>:<tag>`
 * with the field `-`; a push-level entry that names both its tag and its digest is also kept in the
 * digest's hash under `-`. `<prefix>:status:recent` lists the latest entries for the status page.
 * `<prefix>:status:signatures` counts signatures recorded per (key, format, outcome) by every
 * worker (the status page's "Signatures by key" in a split deployment).
 * The prefix is the configured one without hash-tag braces: on Redis Cluster each record hashes by
 * its own name (host/repo@digest), so records spread over the slots; a record's entries then go in
 * one script call per hash, and the recent list (one key, one slot) is written after them. The
 * signature counts are one hash (one slot).
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
  /** A per-key signed entry: the formats written or found (legacy, bundle, notation). Updates of one (digest, rule/key) in one record call are merged (formats united). */
  formats?: string[];
  /** A per-key signed entry whose signature was already there (not written now); counted as `present`. */
  present?: boolean;
  /** The scan behind a scan gate's decision (require.scan): worst severity, findings per severity, scanner. */
  scan?: { severity: string; counts: Record<string, number>; scanner?: string };
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

/** Adds to the signature counters: KEYS[1] the counter hash, ARGV (field, increment) pairs. */
const COUNT_SCRIPT = `
for i = 1, #ARGV, 2 do redis.call('hincrby', KEYS[1], ARGV[i], tonumber(ARGV[i + 1])) end
return 1
`;

/** Signatures recorded per (key, format, outcome), by every worker (the status page reads them from Redis, not from one process's counters). */
export interface SignatureCount {
  key: string;
  format: string;
  outcome: 'signed' | 'present';
  count: number;
}

type StatusRedis = (Redis | Cluster) & {
  signetStatusRecord(...args: (string | number)[]): Promise<number>;
  signetStatusRecordOne(key: string, ...args: string[]): Promise<string[]>;
  signetStatusKeyEntries(key: string): Promise<number>;
  signetStatusCount(...args: (string | number)[]): Promise<number>;
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
    if (!('signetStatusCount' in redis)) redis.defineCommand('signetStatusCount', { lua: COUNT_SCRIPT, numberOfKeys: 1 });
    this.redis = redis as StatusRedis;
  }

  private hashKey(repository: string, digest: string | undefined, tag: string | undefined): string {
    return `${this.prefix}:status:${repository}${digest ? `@${digest}` : `:${tag ?? ''}`}`;
  }

  /** Records several updates in one round trip; keeps createdAt of existing entries. */
  async record(given: readonly StatusUpdate[], now = new Date()): Promise<void> {
    if (given.length === 0) return;
    const counted = this.countSigned(given);
    const updates = mergeFormats(given);
    const iso = now.toISOString();
    const keys: string[] = [];
    const args: string[] = [String(this.retentionSeconds)];
    for (const u of updates) {
      // Per-key entries live with their digest; the push-level entry (no key) with its tag when it
      // has one (so a tag-only push and its later resolution update the same entry), else its digest.
      keys.push(u.key ? this.hashKey(u.repository, u.digest, undefined) : this.hashKey(u.repository, u.tag ? undefined : u.digest, u.tag));
      const entry: StatusEntry = { ...stripUndefined(u), createdAt: iso, updatedAt: iso };
      args.push(u.key ? `${u.rule ?? '-'}/${u.key}` : '-', JSON.stringify(entry), u.state === 'pending' ? '0' : '1');
      // a push-level entry of a tag that names its digest is kept with the digest too (not listed
      // twice), so `signet status host/repo@digest` finds a failure or skip of a tag push
      if (!u.key && u.tag && u.digest) {
        keys.push(this.hashKey(u.repository, u.digest, undefined));
        args.push('-', JSON.stringify(entry), '0');
      }
    }
    const recent = `${this.prefix}:status:recent`;
    if (!this.cluster) {
      keys.push(recent);
      await Promise.all([this.redis.signetStatusRecord(keys.length, ...keys, ...args), counted]);
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
    if (listed.length)
      await this.redis
        .multi()
        .lpush(recent, ...listed)
        .ltrim(recent, 0, RECENT_MAX - 1)
        .expire(recent, this.retentionSeconds)
        .exec();
    await counted;
  }

  /** Counts the signed per-key entries that name their format (one update per signature). */
  private countSigned(updates: readonly StatusUpdate[]): Promise<unknown> | undefined {
    const incs = new Map<string, number>();
    for (const u of updates) {
      if (u.state !== 'signed' || !u.key || !u.formats) continue;
      for (const f of u.formats) {
        const field = `${u.key}\t${f}\t${u.present ? 'present' : 'signed'}`;
        incs.set(field, (incs.get(field) ?? 0) + 1);
      }
    }
    if (incs.size === 0) return undefined;
    return this.redis.signetStatusCount(this.countKey(), ...[...incs].flatMap(([f, n]) => [f, n]));
  }

  private countKey(): string {
    return `${this.prefix}:status:signatures`;
  }

  /** Signatures recorded per (key, format, outcome) by every worker sharing this Redis. */
  async signatureCounts(): Promise<SignatureCount[]> {
    const all = await this.redis.hgetall(this.countKey());
    return Object.entries(all).map(([field, n]) => {
      const [key = '', format = '', outcome] = field.split('\t');
      return { key, format, outcome: outcome === 'present' ? 'present' : 'signed', count: Number(n) };
    });
  }

  /**
   * What signet recorded for an image, without asking the registry: the tag's push-level entry
   * (when a tag is given), then every entry of the digest (the one given, else the one the tag's
   * entry names). `digest` is the digest the records lead to, if any.
   */
  async lookup(repository: string, digest: string | undefined, tag: string | undefined): Promise<{ digest?: string; entries: StatusEntry[] }> {
    const out: StatusEntry[] = [];
    let tagEntry: StatusEntry | undefined;
    if (tag) {
      const t = await this.redis.hget(this.hashKey(repository, undefined, tag), '-');
      tagEntry = t ? (JSON.parse(t) as StatusEntry) : undefined;
      // a tag's entry about another digest than the one asked for is not this image's
      if (tagEntry && digest && tagEntry.digest && tagEntry.digest !== digest) tagEntry = undefined;
      if (tagEntry) out.push(tagEntry);
    }
    const d = digest ?? tagEntry?.digest;
    if (d) {
      const all = await this.redis.hgetall(this.hashKey(repository, d, undefined));
      for (const [field, v] of Object.entries(all)) {
        // the digest's push-level entry may be another tag's push: the asked tag's own entry wins
        if (field === '-' && tagEntry) continue;
        out.push(JSON.parse(v) as StatusEntry);
      }
    }
    return { ...(d ? { digest: d } : {}), entries: sortEntries(out) };
  }

  /** Has a signature by any key been recorded for this digest (signed here, or found present)? */
  async hasRecord(repository: string, digest: string): Promise<boolean> {
    return (await this.redis.signetStatusKeyEntries(this.hashKey(repository, digest, undefined))) > 0;
  }

  /** Every entry for a digest, and the tag-level entry when a tag is given. */
  async get(repository: string, digest: string | undefined, tag: string | undefined): Promise<StatusEntry[]> {
    const out: StatusEntry[] = [];
    // a push-level entry kept under its tag is only relevant when it names this digest (or none)
    let tagEntry: StatusEntry | undefined;
    if (tag) {
      const t = await this.redis.hget(this.hashKey(repository, undefined, tag), '-');
      const entry = t ? (JSON.parse(t) as StatusEntry) : undefined;
      if (entry && (!digest || !entry.digest || entry.digest === digest)) out.push((tagEntry = entry));
    }
    if (digest) {
      for (const [field, v] of Object.entries(await this.redis.hgetall(this.hashKey(repository, digest, undefined)))) {
        // the digest's push-level entry (a copy of a tag push's, or a digest-only push's) when the tag's is not read
        if (field === '-' && tagEntry) continue;
        out.push(JSON.parse(v) as StatusEntry);
      }
    }
    return sortEntries(out);
  }

  /** The latest finished entries, newest first. */
  async recent(limit = 100): Promise<StatusEntry[]> {
    return (await this.redis.lrange(`${this.prefix}:status:recent`, 0, limit - 1)).map((v) => JSON.parse(v) as StatusEntry);
  }
}

function sortEntries(out: StatusEntry[]): StatusEntry[] {
  return out.sort((a, b) => (a.rule ?? -1) - (b.rule ?? -1) || (a.key ?? '').localeCompare(b.key ?? '') || a.updatedAt.localeCompare(b.updatedAt));
}

/** One update per (repository, digest, rule/key) with formats: the formats of all, `present` only when every one was. */
function mergeFormats(updates: readonly StatusUpdate[]): StatusUpdate[] {
  if (!updates.some((u) => u.formats)) return [...updates];
  const out: StatusUpdate[] = [];
  const at = new Map<string, number>();
  for (const u of updates) {
    const id = u.key && u.formats ? `${u.repository}@${u.digest ?? ''}#${u.rule ?? '-'}/${u.key}` : undefined;
    const i = id === undefined ? undefined : at.get(id);
    if (i === undefined) {
      if (id !== undefined) at.set(id, out.length);
      out.push(u);
      continue;
    }
    const prev = out[i]!;
    const formats = [...new Set([...(prev.formats ?? []), ...(u.formats ?? [])])];
    const { present: _p, ...rest } = u;
    out[i] = { ...rest, formats, ...(prev.present && u.present ? { present: true } : {}) };
  }
  return out;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
