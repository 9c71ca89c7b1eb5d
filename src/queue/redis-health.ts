/**
 * What would make Redis lose signet's data, checked at startup and by /readyz:
 * - `maxmemory-policy` other than `noeviction`: Redis would evict queued jobs under memory
 *   pressure (BullMQ requires noeviction). Refused (REDIS_MISCONFIGURED). Read with CONFIG GET,
 *   else from INFO memory (managed Redis often disables CONFIG); unreadable: a warning.
 * - persistence off (no AOF, no RDB `save`): a restart empties Redis. A warning (loud outside
 *   the embedded default).
 * - Redis came back empty: a marker key (`<prefix>:instance`, an id written once, at the first
 *   start) is gone or holds another id than this process saw, or the accepted-jobs counter
 *   (src/queue/ack.ts) went down. Reported in /readyz, the log and
 *   signet_redis_data_loss_detected_total: "Redis lost its data; run `signet backfill`".
 * On Cluster every master is checked; the marker and counter live in the queue's slot.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SignetError } from '../errors.js';
import type { Logger } from '../log.js';
import { isCluster, whenReady, type RedisClient } from './connection.js';

export type Persistence = 'aof' | 'rdb' | 'aof+rdb' | 'off' | 'unknown';

export interface NodeFindings {
  node: string;
  /** maxmemory-policy, when readable. */
  policy?: string;
  persistence: Persistence;
}

export interface DataLoss {
  detectedAt: string;
  message: string;
}

export interface RedisHealthReport {
  /** What makes Redis refuse to be used (an eviction policy). */
  problems: string[];
  warnings: string[];
  dataLoss?: DataLoss;
}

export interface RedisHealthOptions {
  /** The queue's prefix (hash-tagged on Cluster). */
  prefix: string;
  logger: Logger;
  /** Called on each detection (the metric). */
  onDataLoss?: () => void;
  /** The embedded default config (a developer's machine): persistence off is only logged at info. */
  embedded?: boolean;
}

const LOST = 'Redis lost its data; run `signet backfill` to sign what was pushed meanwhile';

export class RedisHealth {
  private marker: string | undefined;
  private maxAccepted = 0;
  private lost: DataLoss | undefined;
  private watcher: NodeJS.Timeout | undefined;
  private findings: NodeFindings[] = [];

  constructor(
    private readonly client: RedisClient,
    private readonly opts: RedisHealthOptions,
  ) {}

  private get markerKey(): string {
    return `${this.opts.prefix}:instance`;
  }

  /** Startup: refuses an evicting Redis, reads (or writes) the marker. */
  async startup(): Promise<NodeFindings[]> {
    await whenReady(this.client);
    const findings = (this.findings = await this.inspect());
    const problems = policyProblems(findings);
    if (problems.length) throw new SignetError('REDIS_MISCONFIGURED', problems.join('; '));
    try {
      await this.checkMarker();
    } catch (err) {
      // the marker is written in a MULTI: a replica answers READONLY, then EXECABORT
      if (/READONLY|EXECABORT/.test((err as Error)?.message ?? '')) {
        throw new SignetError(
          'REDIS_MISCONFIGURED',
          `Redis ${findings.map((f) => f.node).join(', ')} is a read-only replica: configure its master (redis.url) or the Sentinels (redis.sentinel)`,
          { cause: err },
        );
      }
      throw err;
    }
    return findings;
  }

  /**
   * Logs what startup found that may lose data without stopping signet: persistence off (a
   * warning; info only in the embedded default), a policy that cannot be read. Called by the
   * processes that queue or run jobs (not by one-shot commands such as `signet sign`).
   */
  reportStartup(): void {
    for (const w of persistenceWarnings(this.findings)) {
      if (this.opts.embedded) this.opts.logger.info(w);
      else this.opts.logger.warn(w);
    }
    for (const f of this.findings)
      if (!f.policy) this.opts.logger.warn({ node: f.node }, 'cannot read maxmemory-policy (CONFIG GET and INFO refused): make sure it is noeviction');
  }

  /** /readyz: the eviction policy again (someone may change it), persistence, the marker. */
  async check(): Promise<RedisHealthReport> {
    const findings = await this.inspect();
    await this.checkMarker();
    return {
      problems: policyProblems(findings),
      warnings: persistenceWarnings(findings),
      ...(this.lost ? { dataLoss: this.lost } : {}),
    };
  }

  /** Watches the marker every `ms` (workers have no /readyz to poll it). */
  watch(ms = 10_000): void {
    this.watcher ??= setInterval(() => void this.checkMarker().catch(() => undefined), ms);
    this.watcher.unref();
  }

  /** The accepted-jobs counter after a batch of `added` (src/queue/ack.ts): it only grows unless Redis lost it. */
  noteAccepted(total: number, added: number): void {
    if (total - added < this.maxAccepted) this.detect(`the accepted-jobs counter went back from ${this.maxAccepted} to ${total - added}`);
    this.maxAccepted = Math.max(this.maxAccepted, total);
  }

  get dataLoss(): DataLoss | undefined {
    return this.lost;
  }

  close(): void {
    clearInterval(this.watcher);
  }

  private async checkMarker(): Promise<void> {
    const fresh = `${randomBytes(8).toString('hex')} ${new Date().toISOString()}`;
    // one round trip: keep the existing marker (or write ours), read what is there
    const [, [, current]] = ((await this.client.multi().set(this.markerKey, fresh, 'NX').get(this.markerKey).exec()) ?? [[], []]) as [
      unknown,
      [unknown, string | null],
    ];
    if (this.marker !== undefined && current !== this.marker) {
      this.detect(
        current === fresh ? `its marker key ${this.markerKey} was gone` : `its marker key ${this.markerKey} was written again by another signet process`,
      );
    }
    if (current) this.marker = current;
  }

  private detect(why: string): void {
    this.lost = { detectedAt: new Date().toISOString(), message: `${LOST} (${why})` };
    this.maxAccepted = 0;
    this.opts.logger.error({ reason: why }, LOST);
    this.opts.onDataLoss?.();
  }

  /** Policy and persistence of every master (the client itself, or each Cluster master). */
  private async inspect(): Promise<NodeFindings[]> {
    const nodes: Redis[] = isCluster(this.client) ? this.client.nodes('master') : [this.client];
    return Promise.all(
      nodes.map(async (n) => ({
        node: `${n.options.host ?? 'sentinel master'}:${n.options.port ?? ''}`,
        ...(await evictionPolicy(n).then((p) => (p ? { policy: p } : {}))),
        persistence: await persistence(n),
      })),
    );
  }
}

function policyProblems(findings: readonly NodeFindings[]): string[] {
  return findings
    .filter((f) => f.policy !== undefined && f.policy !== 'noeviction')
    .map(
      (f) =>
        `Redis ${f.node} has maxmemory-policy ${f.policy}: it evicts queued jobs when memory runs short; set maxmemory-policy noeviction (BullMQ requires it)`,
    );
}

function persistenceWarnings(findings: readonly NodeFindings[]): string[] {
  return findings
    .filter((f) => f.persistence === 'off')
    .map((f) => `Redis ${f.node} has persistence off (appendonly no, no save): a restart loses every queued job; set appendonly yes (see docs/deploy.md)`);
}

async function evictionPolicy(n: Redis): Promise<string | undefined> {
  try {
    const r = (await n.config('GET', 'maxmemory-policy')) as string[];
    if (r.length >= 2) return r[1];
  } catch {
    // CONFIG disabled or renamed (managed Redis): INFO says it too
  }
  try {
    return /^maxmemory_policy:(\S+)/m.exec(await n.info('memory'))?.[1];
  } catch {
    return undefined;
  }
}

async function persistence(n: Redis): Promise<Persistence> {
  try {
    const [, aof] = (await n.config('GET', 'appendonly')) as string[];
    const [, save] = (await n.config('GET', 'save')) as string[];
    if (aof === undefined || save === undefined) throw new Error('no answer');
    const rdb = save.trim() !== '';
    return aof === 'yes' ? (rdb ? 'aof+rdb' : 'aof') : rdb ? 'rdb' : 'off';
  } catch {
    try {
      // INFO tells AOF, not the save schedule
      return /^aof_enabled:1/m.test(await n.info('persistence')) ? 'aof' : 'unknown';
    } catch {
      return 'unknown';
    }
  }
}
