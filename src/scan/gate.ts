/**
 * The scan gate (rules[].require.scan): a push to a gated rule is signed only once the
 * registry's scanner reported a finished scan that passes (src/config/conditions.ts scanVerdict).
 * Every Redis access of the gate is here.
 *
 * One hash per pushed digest, `<prefix>:scanwait:{<host>/<repo>@<digest>}` (one key, single-key
 * scripts only, so it can live on any Redis Cluster slot; the braces make the reference its
 * hash tag), kept for the status retention:
 * - `scan`, `scanAt`: the latest scan seen (a webhook of an authenticated integration, or the
 *   artifact API), and when it ended; an older scan delivered late does not replace a newer one;
 * - `push:<tag>`: the last push of that digest under each tag (`push:` without one) to a gated
 *   rule (its queued job's data), so a scan event can have each decided (again);
 * - `waiting`: present while that push waits for its scan (its deadline, epoch ms);
 * - `decided`: the last decision (outcome and the scan it was made on), so a decision repeated
 *   for the same scan (a re-delivered event, the waiting job waking at its deadline) is counted
 *   once in signet_scan_gate_total; `passed`: a scan passed once, so a later scan that blocks
 *   an image signed earlier says its signatures stay.
 *
 * The worker side (`check`, through the pipeline): the stored scan, else the registry's artifact
 * API (a scan that ended before the push event arrived, backfill, `signet sign`), else the push
 * is recorded as waiting and the job is put back in the queue (a BullMQ delayed job, so it
 * survives restarts) until the deadline (receivedAt + waitSeconds), waking every `pollMs` before
 * it to ask the API again. At the deadline without a scan: failed(SCAN_TIMEOUT). The receiver side (`onScan`): the scan is stored (only when its
 * integration authenticates its sender: an unauthenticated one could forge a clean scan, so
 * its event only makes signet ask the API) and the remembered push is handed back to be queued.
 */
import { hash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ownKeyPrefix } from '../config/redis.js';
import { countsText, scanFinished, scanVerdict, worstSeverity, type ScanConditions, type ScanReport } from '../config/conditions.js';
import type { RegistryConfig } from '../config/schema.js';
import { SignetError } from '../errors.js';
import type { ScanSummary } from '../formats/attestation/statement.js';
import type { SignJobData } from '../queue/sign-queue.js';
import { createHarborApi, type HarborApi } from './harbor.js';

/** What a status entry records of the scan behind a decision (src/status/store.ts StatusUpdate.scan). */
export interface ScanCounts {
  severity: string;
  counts: Record<string, number>;
  scanner?: string | undefined;
}

export type GateDecision =
  | { outcome: 'passed'; summary: ScanSummary; scan: ScanCounts }
  | { outcome: 'blocked'; reason: string; scan: ScanCounts }
  /** `until`: when to look again (the deadline, or the next poll of the registry's API before it). */
  | { outcome: 'waiting'; until: number; reason: string };

export interface GateInput {
  cond: ScanConditions;
  ruleIndex: number;
  /** The configured registry host, the repository, the pushed manifest. */
  host: string;
  repository: string;
  digest: string;
  /** The queued push (remembered, so that the scan's arrival has it decided). */
  push: SignJobData;
}

/** Outcomes as signet_scan_gate_total counts them. */
export type GateOutcome = 'passed' | 'blocked' | 'failed' | 'timeout';

/** KEYS[1] the record; ARGV: push field, push JSON, deadline, ttl. A stored final scan wins; else the push waits. */
const WAIT_SCRIPT = `
local scan = redis.call('hget', KEYS[1], 'scan')
if scan then return scan end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2], 'waiting', ARGV[3])
redis.call('expire', KEYS[1], tonumber(ARGV[4]))
return false
`;

/** KEYS[1]; ARGV: scan JSON ('' for none), its end time ('' unknown), ttl. Returns the remembered pushes (and ends their wait). */
const SCAN_SCRIPT = `
if ARGV[1] ~= '' then
  local at = redis.call('hget', KEYS[1], 'scanAt')
  if not (at and ARGV[2] ~= '' and at > ARGV[2]) then
    redis.call('hset', KEYS[1], 'scan', ARGV[1], 'scanAt', ARGV[2])
  end
end
local all = redis.call('hgetall', KEYS[1])
local pushes = {}
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 5) == 'push:' then table.insert(pushes, all[i + 1]) end
end
redis.call('hdel', KEYS[1], 'waiting')
if redis.call('exists', KEYS[1]) == 1 then redis.call('expire', KEYS[1], tonumber(ARGV[3])) end
return pushes
`;

/**
 * KEYS[1]; ARGV: decision, push field, push JSON, ttl. Records the decision and the push, ends
 * the wait; returns {previous decision or '', '1' when a scan of this digest passed before}.
 */
const DECIDE_SCRIPT = `
local prev = redis.call('hget', KEYS[1], 'decided') or ''
local passed = redis.call('hget', KEYS[1], 'passed') or ''
redis.call('hset', KEYS[1], 'decided', ARGV[1], ARGV[2], ARGV[3])
if string.sub(ARGV[1], 1, 7) == 'passed|' then redis.call('hset', KEYS[1], 'passed', '1') end
redis.call('hdel', KEYS[1], 'waiting')
redis.call('expire', KEYS[1], tonumber(ARGV[4]))
return {prev, passed}
`;

type GateRedis = (Redis | Cluster) & {
  signetScanWait(key: string, field: string, push: string, deadline: string, ttl: string): Promise<string | null>;
  signetScanStore(key: string, scan: string, at: string, ttl: string): Promise<string[]>;
  signetScanDecide(key: string, decision: string, field: string, push: string, ttl: string): Promise<[string, string]>;
};

export interface ScanGateOptions {
  redis: Redis | Cluster;
  prefix: string;
  /** How long a record is kept (the status retention). */
  ttlSeconds: number;
  registries: readonly RegistryConfig[];
  baseDir?: string | undefined;
  /** Counts each new decision (signet_scan_gate_total). */
  onDecision?: ((outcome: GateOutcome) => void) | undefined;
  /** The artifact API of a registry (tests); default: Harbor's (src/scan/harbor.ts). */
  apiFor?: ((cfg: RegistryConfig) => HarborApi) | undefined;
  /**
   * A waiting push looks at the registry's API again this often (default 60 s) before its
   * deadline: a scan webhook may be lost, and Harbor scans an image index child by child (its
   * scan events name the children; the API answers the index's merged overview).
   */
  pollMs?: number | undefined;
  now?: () => number;
}

export class ScanGate {
  private readonly redis: GateRedis;
  private readonly apis = new Map<string, HarborApi>();
  private readonly now: () => number;

  constructor(private readonly opts: ScanGateOptions) {
    const r = opts.redis;
    if (!('signetScanWait' in r)) {
      r.defineCommand('signetScanWait', { lua: WAIT_SCRIPT, numberOfKeys: 1 });
      r.defineCommand('signetScanStore', { lua: SCAN_SCRIPT, numberOfKeys: 1 });
      r.defineCommand('signetScanDecide', { lua: DECIDE_SCRIPT, numberOfKeys: 1 });
    }
    this.redis = r as GateRedis;
    this.now = opts.now ?? Date.now;
  }

  /** The record of one pushed digest (one key per digest; the braces are its Redis Cluster hash tag). */
  key(host: string, repository: string, digest: string): string {
    return `${ownKeyPrefix(this.opts.prefix)}:scanwait:{${host}/${repository}@${digest}}`;
  }

  async close(): Promise<void> {
    const all = [...this.apis.values()];
    this.apis.clear();
    await Promise.allSettled(all.map((a) => a.close()));
  }

  /**
   * The gate's decision for a push: passed (with the summary the attestation records), blocked
   * (skipped with the counts), or waiting until its deadline. A failed or stopped scan throws
   * SCAN_FAILED, a deadline passed without a scan SCAN_TIMEOUT (neither is retried).
   */
  async check(input: GateInput): Promise<GateDecision> {
    const key = this.key(input.host, input.repository, input.digest);
    const ttl = String(this.opts.ttlSeconds);
    const push = { field: `push:${input.push.event.tag ?? ''}`, json: JSON.stringify(input.push) };
    let report = parseStored(await this.redis.hget(key, 'scan'));
    if (!report) {
      // nothing from a webhook: the scan may have ended before the push event came (or this is backfill)
      report = await this.api(input.host).scanOf(input.repository, input.digest);
      if (report && scanFinished(report)) await this.redis.signetScanStore(key, JSON.stringify(report), report.completedAt ?? '', ttl);
      else report = undefined;
    }
    if (!report) {
      const deadline = deadlineOf(input, this.now());
      if (this.now() >= deadline) {
        await this.decided(key, `timeout|${deadline}`, push, 'timeout');
        throw new SignetError(
          'SCAN_TIMEOUT',
          `no scan of ${input.digest.slice(0, 19)} within require.scan.waitSeconds (${input.cond.waitSeconds} s) of the push`,
        );
      }
      const raced = parseStored(await this.redis.signetScanWait(key, push.field, push.json, String(deadline), ttl));
      if (!raced) {
        const until = Math.min(deadline, this.now() + (this.opts.pollMs ?? 60_000));
        return { outcome: 'waiting', until, reason: `waiting for the registry's scan (require.scan) until ${new Date(deadline).toISOString()}` };
      }
      report = raced;
    }
    return this.decide(key, input, report, push);
  }

  /**
   * A scan event from the registry: the scan is stored when `trusted` (an authenticated
   * integration; undefined report: a failed scan without overview is still stored as failed),
   * and the pushes remembered for this digest (one per tag) are returned to be queued (decided again).
   */
  async onScan(host: string, repository: string, digest: string, report: ScanReport | undefined, trusted: boolean): Promise<SignJobData[]> {
    const scan = trusted && report && scanFinished(report) ? JSON.stringify(report) : '';
    const pushes = await this.redis.signetScanStore(
      this.key(host, repository, digest),
      scan,
      scan ? (report!.completedAt ?? '') : '',
      String(this.opts.ttlSeconds),
    );
    const out: SignJobData[] = [];
    for (const p of pushes ?? []) {
      try {
        out.push(JSON.parse(p) as SignJobData);
      } catch {
        // a record signet did not write: nothing to queue
      }
    }
    return out.sort((a, b) => (a.event.tag ?? '').localeCompare(b.event.tag ?? ''));
  }

  private async decide(key: string, input: GateInput, report: ScanReport, push: { field: string; json: string }): Promise<GateDecision> {
    const verdict = scanVerdict(input.cond, report);
    const scan: ScanCounts = {
      severity: verdict.outcome === 'failed' ? report.severity || 'None' : verdict.severity,
      counts: { ...report.counts },
      ...(report.scanner ? { scanner: report.scanner.name } : {}),
    };
    const which = report.reportId ?? report.completedAt ?? hash('sha256', JSON.stringify(report), 'hex').slice(0, 16);
    const passedBefore = await this.decided(key, `${verdict.outcome}|${which}`, push, verdict.outcome);
    // a later scan that no longer passes: recorded, and the signatures of the earlier pass stay
    const after =
      passedBefore && verdict.outcome !== 'passed' ? '; any signature written after an earlier passing scan stays (signet deletes no signature)' : '';
    if (verdict.outcome === 'failed') throw new SignetError('SCAN_FAILED', `${verdict.reason}${after}`);
    if (verdict.outcome === 'blocked') return { outcome: 'blocked', reason: `${verdict.reason}${after}`, scan };
    const summary: ScanSummary = {
      scanner: report.scanner?.name ?? 'unknown',
      ...(report.scanner?.version ? { scannerVersion: report.scanner.version } : {}),
      ...(report.completedAt ? { completedAt: report.completedAt } : {}),
      maxSeverity: input.cond.maxSeverity,
      severity: worstSeverity(report),
      counts: { ...report.counts },
    };
    return { outcome: 'passed', summary, scan };
  }

  /** Records a decision; counts it when it is new for this scan. Returns whether an earlier scan of this digest passed. */
  private async decided(key: string, decision: string, push: { field: string; json: string }, outcome: GateOutcome): Promise<boolean> {
    const [prev, passed] = await this.redis.signetScanDecide(key, decision, push.field, push.json, String(this.opts.ttlSeconds));
    if (prev !== decision) this.opts.onDecision?.(outcome);
    return passed === '1';
  }

  private api(host: string): HarborApi {
    let a = this.apis.get(host);
    if (!a) {
      const cfg = this.opts.registries.find((r) => r.host === host);
      if (!cfg) throw new SignetError('REGISTRY_NOT_CONFIGURED', `registry ${host} is not in registries`);
      a = this.opts.apiFor ? this.opts.apiFor(cfg) : createHarborApi(cfg, { baseDir: this.opts.baseDir ?? '.' });
      this.apis.set(host, a);
    }
    return a;
  }
}

/** When a push stops waiting: its acceptance (the job's receivedAt; now when unknown) plus waitSeconds. */
function deadlineOf(input: GateInput, now: number): number {
  const at = Date.parse(input.push.event.receivedAt);
  return (Number.isFinite(at) ? at : now) + input.cond.waitSeconds * 1000;
}

function parseStored(json: string | null | undefined): ScanReport | undefined {
  if (!json) return undefined;
  try {
    const r = JSON.parse(json) as ScanReport;
    return r && typeof r.status === 'string' && r.counts && typeof r.counts === 'object' ? r : undefined;
  } catch {
    return undefined;
  }
}

/** One line for a reason or a log: "Critical:1 High:2 (Trivy)". */
export function scanText(s: ScanCounts): string {
  return `${countsText(s.counts) || 'no findings'}${s.scanner ? ` (${s.scanner})` : ''}`;
}
