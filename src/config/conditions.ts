/**
 * The conditions a rule puts on signing (`rules[].require`): what must be true of a push before
 * its image is signed. See docs/conditions.md.
 *
 * `require.pushers: { allow?: [globs], deny?: [globs] }` is checked against the pusher the
 * registry reported, and only when the push's integration vouches for it (src/config/rules.ts
 * pusherPolicy). Deny wins over allow. A rule with pusher conditions is never satisfied by a
 * push without a vouched pusher (none in the payload, an `insecure: true` integration, `signet
 * sign`, backfill): a deny list cannot be checked against a name nobody vouches for, so it fails
 * closed like an allow list. Globs are picomatch globs over the name exactly as reported (case
 * matters; `/` separates segments as in `match`, so ARNs use `**` across them).
 *
 * `require.scan: { maxSeverity, scanner?, waitSeconds }` is the scan gate: the push is signed
 * only once the registry's scanner reported a finished scan with nothing above `maxSeverity`
 * (and, with `scanner`, by a scanner whose name matches that glob). The verdict on one scan is
 * `scanVerdict` here (pure); waiting for the scan, the records in Redis and the registry's scan
 * API are src/scan/gate.ts and src/scan/harbor.ts. Only Harbor reports scans (SCAN_REPORTERS).
 */
import picomatch from 'picomatch';
import { z } from 'zod';

const globs = z.array(z.string().min(1)).min(1, 'list at least one pattern (or leave the list out)');

export const pushersSchema = z
  .object({
    /** Pushers whose pushes may be signed (globs); any other is skipped. */
    allow: globs.optional(),
    /** Pushers whose pushes are never signed (globs); wins over allow. */
    deny: globs.optional(),
  })
  .strict()
  .refine((p) => p.allow !== undefined || p.deny !== undefined, { message: 'name allow, deny or both' });

/**
 * Severities from least to most severe, as Harbor names them (src/pkg/scan/vuln/severity.go:
 * None and Unknown both rank 0 there, Negligible 1, Low 2 ... Critical 5). Here Unknown ranks
 * above None (a finding nobody rated is still a finding), and a severity not in this list ranks
 * above Critical, as Harbor ranks it 99: an unrecognised rating never passes a gate.
 */
export const SEVERITIES = ['None', 'Unknown', 'Negligible', 'Low', 'Medium', 'High', 'Critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Rank of a severity name (case-insensitive); unknown names rank above Critical. */
export function severityRank(s: string): number {
  const i = SEVERITIES.findIndex((x) => x.toLowerCase() === s.toLowerCase());
  return i < 0 ? SEVERITIES.length : i;
}

export const scanSchema = z
  .object({
    /** The worst severity a signed image may have: `High` signs when nothing is Critical. */
    maxSeverity: z.enum(SEVERITIES),
    /** A glob the scanner's name must match (Harbor scan_overview scanner.name, e.g. "Trivy"); any when absent. */
    scanner: z.string().min(1).optional(),
    /** How long a push waits for its scan before it ends as failed(SCAN_TIMEOUT). */
    waitSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86400)
      .default(900),
  })
  .strict();

export const requireSchema = z
  .object({
    pushers: pushersSchema.optional(),
    scan: scanSchema.optional(),
  })
  .strict();

export type RuleRequire = z.infer<typeof requireSchema>;
export type PusherConditions = z.infer<typeof pushersSchema>;
export type ScanConditions = z.infer<typeof scanSchema>;

/**
 * The integration kinds whose webhooks report scans, with what they send (docs/conditions.md
 * has the table). Harbor sends SCANNING_COMPLETED / SCANNING_FAILED / SCANNING_STOPPED with the
 * scan_overview, and has an artifact API to ask. Quay's `vulnerability_found` fires only when a
 * vulnerability is found (never "scanned, clean"), and has no event for a finished scan: no
 * gate could pass on it. The others send no scan events a gate could use.
 */
export const SCAN_REPORTERS: Readonly<Record<string, string>> = {
  harbor: 'SCANNING_COMPLETED / SCANNING_FAILED / SCANNING_STOPPED (scan_overview), and the artifact API',
};

/** Whether pushes through an integration of this kind can pass a scan gate. */
export function kindReportsScans(kind: string): boolean {
  return SCAN_REPORTERS[kind] !== undefined;
}

/** A finished scan as signet reads it from the registry (src/scan/harbor.ts builds it). */
export interface ScanReport {
  /** Harbor's job status: Success, Error, Stopped (final), or Pending, Running, Scheduled. */
  status: string;
  /** The overall severity the scanner reported ("" when it reported none). */
  severity: string;
  /** Findings per severity. */
  counts: Record<string, number>;
  total?: number | undefined;
  fixable?: number | undefined;
  scanner?: { name: string; vendor?: string | undefined; version?: string | undefined } | undefined;
  reportId?: string | undefined;
  /** When the scan ended (RFC 3339), when reported. */
  completedAt?: string | undefined;
}

/** Whether a report's status is final (Harbor job statuses: Success, Error, Stopped). */
export function scanFinished(r: Pick<ScanReport, 'status'>): boolean {
  return ['success', 'error', 'stopped'].includes(r.status.toLowerCase());
}

/** The worst severity of a report: its overall severity or the worst with a count above 0, whichever ranks higher. */
export function worstSeverity(r: Pick<ScanReport, 'severity' | 'counts'>): string {
  let worst: string = r.severity && r.severity.length ? r.severity : 'None';
  for (const [sev, n] of Object.entries(r.counts)) if (n > 0 && severityRank(sev) > severityRank(worst)) worst = sev;
  return worst;
}

export type ScanVerdict =
  { outcome: 'passed'; severity: string } | { outcome: 'blocked'; severity: string; reason: string } | { outcome: 'failed'; reason: string };

const scannerMatchers = new WeakMap<ScanConditions, (s: string) => boolean>();

/**
 * The gate's verdict on one finished scan: `failed` for a scan that ended in error or was
 * stopped (SCAN_FAILED), `blocked` when a finding ranks above maxSeverity or the scanner is not
 * the one the rule names, else `passed`. The counts go in the reasons (severity:count, worst first).
 */
export function scanVerdict(cond: ScanConditions, report: ScanReport): ScanVerdict {
  const status = report.status.toLowerCase();
  if (status === 'error') return { outcome: 'failed', reason: `the scan${scannerName(report)} failed (scan_status ${clip(report.status)})` };
  if (status === 'stopped') return { outcome: 'failed', reason: `the scan${scannerName(report)} was stopped before it finished` };
  if (status !== 'success') return { outcome: 'failed', reason: `the scan has not finished (scan_status ${clip(report.status)})` };
  const severity = worstSeverity(report);
  if (cond.scanner) {
    let m = scannerMatchers.get(cond);
    if (!m) scannerMatchers.set(cond, (m = picomatch(cond.scanner, { dot: true })));
    const name = report.scanner?.name;
    if (!name || !m(name)) {
      return {
        outcome: 'blocked',
        severity,
        reason: `scanned by ${name ? `"${clip(name)}"` : 'an unnamed scanner'}, not by require.scan.scanner "${cond.scanner}"`,
      };
    }
  }
  if (severityRank(severity) > severityRank(cond.maxSeverity)) {
    return {
      outcome: 'blocked',
      severity,
      reason: `scan found ${countsText(report.counts) || clip(severity)}: ${clip(severity)} is above require.scan.maxSeverity ${cond.maxSeverity}`,
    };
  }
  return { outcome: 'passed', severity };
}

/** "Critical:1 High:2 Low:5": the non-zero counts, worst first. */
export function countsText(counts: Record<string, number>): string {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => severityRank(b) - severityRank(a))
    .map(([s, n]) => `${clip(s)}:${n}`)
    .join(' ');
}

function scannerName(r: ScanReport): string {
  return r.scanner?.name ? ` by ${clip(r.scanner.name)}` : '';
}

/**
 * What each integration kind reports as the pusher (docs/conditions.md has the table); undefined:
 * its payload names no pusher, so a rule with pusher conditions cannot be met through it.
 * ACR's documented payload has no actor (its adapter passes `actor.name` should one appear, for
 * `${pusher}`, but a condition cannot rest on an undocumented field); ECR's "ECR Image Action"
 * event and JFrog's docker "pushed" event carry no user (JFrog's `source` is its service id).
 */
export const PUSHER_FIELD: Readonly<Record<string, string | undefined>> = {
  harbor: 'operator',
  distribution: 'events[].actor.name',
  gitlab: 'events[].actor.name',
  dockerhub: 'push_data.pusher',
  github: 'sender.login',
  quay: undefined,
  acr: undefined,
  'alibaba-acr': undefined,
  gar: undefined,
  ecr: undefined,
  jfrog: undefined,
};

/** Whether an integration kind's payload carries a pusher a condition can be checked against. */
export function kindReportsPusher(kind: string): boolean {
  return PUSHER_FIELD[kind] !== undefined;
}

type Compiled = { allow?: { test: (s: string) => boolean; globs: string[] }; deny?: { test: (s: string) => boolean; globs: string[] } };
const compiled = new WeakMap<PusherConditions, Compiled>();

function compile(p: PusherConditions): Compiled {
  let c = compiled.get(p);
  if (!c) {
    const one = (list: string[]) => {
      const ms = list.map((g) => picomatch(g, { dot: true }));
      return { globs: list, test: (s: string) => ms.some((m) => m(s)) };
    };
    c = { ...(p.allow ? { allow: one(p.allow) } : {}), ...(p.deny ? { deny: one(p.deny) } : {}) };
    compiled.set(p, c);
  }
  return c;
}

/** The facts of a push the conditions are checked against. */
export interface PushFacts {
  /** The pusher the push's integration vouches for; undefined when none (absent, not vouched, CLI, backfill). */
  pusher?: string | undefined;
}

/**
 * Why a push does not meet the rule's conditions, or undefined when it does (or the rule has none).
 * The reasons name the pusher (it is a user name the registry reported, not a secret).
 */
export function conditionSkip(req: RuleRequire | undefined, push: PushFacts): string | undefined {
  const pushers = req?.pushers;
  if (!pushers) return undefined;
  const c = compile(pushers);
  const pusher = push.pusher;
  if (pusher === undefined || pusher === '') {
    return 'rule requires a pusher (require.pushers) and this push has none its integration vouches for';
  }
  if (c.deny?.test(pusher)) return `pusher "${clip(pusher)}" is denied by require.pushers.deny`;
  if (c.allow && !c.allow.test(pusher)) return `pusher "${clip(pusher)}" is not in require.pushers.allow`;
  return undefined;
}

/** A reported name as it goes into a reason: control characters replaced, at most 100 characters. */
function clip(s: string): string {
  // eslint-disable-next-line no-control-regex -- replacing control characters is the point
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}...` : clean;
}
