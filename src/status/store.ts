/**
 * Signing status per (digest, rule, key): pending | signed | skipped(reason) | failed(code,
 * reason), with times, in Redis, kept for a retention period. What `GET /api/v1/images/{ref}/status`
 * and `signet status` read (like ECR's DescribeImageSigningStatus).
 *
 * Keys: `<prefix>:status:<host>/<repo>@<digest>` is a hash `<rule>/<key>` -> entry. A push that
 * failed or was skipped before its digest was known is kept under `<prefix>:status:<host>/<repo>:<tag>`
 * with the field `-`. `<prefix>:status:recent` lists the latest entries for the status page.
 */
import type { Redis } from 'ioredis';

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

export class StatusStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly retentionSeconds: number,
  ) {}

  private hashKey(repository: string, digest: string | undefined, tag: string | undefined): string {
    return `${this.prefix}:status:${repository}${digest ? `@${digest}` : `:${tag ?? ''}`}`;
  }

  /** Records several updates in one round trip; keeps createdAt of existing entries. */
  async record(updates: readonly StatusUpdate[], now = new Date()): Promise<void> {
    if (updates.length === 0) return;
    const iso = now.toISOString();
    // Per-key entries live with their digest; the push-level entry (no key) with its tag when it
    // has one (so a tag-only push and its later resolution update the same entry), else its digest.
    const keys = updates.map((u) => (u.key ? this.hashKey(u.repository, u.digest, undefined) : this.hashKey(u.repository, u.tag ? undefined : u.digest, u.tag)));
    const fields = updates.map((u) => (u.key ? `${u.rule ?? '-'}/${u.key}` : '-'));
    const existing = await this.redis.pipeline(keys.map((k, i) => ['hget', k, fields[i]!])).exec();
    const multi = this.redis.multi();
    updates.forEach((u, i) => {
      const prev = existing?.[i]?.[1] ? (JSON.parse(existing[i]![1] as string) as StatusEntry) : undefined;
      const entry: StatusEntry = { ...stripUndefined(u), createdAt: prev?.createdAt ?? iso, updatedAt: iso };
      const json = JSON.stringify(entry);
      multi.hset(keys[i]!, fields[i]!, json).expire(keys[i]!, this.retentionSeconds);
      if (u.state !== 'pending') multi.lpush(`${this.prefix}:status:recent`, json);
    });
    multi.ltrim(`${this.prefix}:status:recent`, 0, RECENT_MAX - 1).expire(`${this.prefix}:status:recent`, this.retentionSeconds);
    await multi.exec();
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
