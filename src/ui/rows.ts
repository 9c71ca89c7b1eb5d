/**
 * The status page's image rows: the status entries (newest first) folded into one row per push
 * (its push-level entry and its per-key entries: state, rule, keys with their formats, why not
 * signed), then searched, filtered by state and paged. Pure functions over the entries; the page
 * (render.ts) only draws them.
 */
import { countsText } from '../config/conditions.js';
import type { StatusEntry } from '../status/store.js';

export type RowState = 'pending' | 'signed' | 'skipped' | 'failed' | 'other';
/** The states the filter offers (pending entries are not on the recent list). */
export const ROW_STATES: readonly RowState[] = ['signed', 'failed', 'skipped'];

export interface KeyCell {
  name: string;
  /** signed: written now; present: found already there; missing: the rule wants it and nothing is recorded. */
  state: 'signed' | 'present' | 'missing' | 'failed' | 'skipped' | 'pending';
  formats: string[];
}

export interface ImageRow {
  id: string;
  repository: string;
  tag?: string;
  /** The pushed manifest (an index's own digest when per-platform manifests were signed too). */
  digest?: string;
  state: RowState;
  rule?: number;
  keys: KeyCell[];
  /** Every format any key wrote or found. */
  formats: string[];
  /** Distinct manifests signed (an index and its platforms count apart). */
  manifests: number;
  code?: string;
  reason?: string;
  /** The scan a scan gate decided on (require.scan): worst severity, findings, scanner. */
  scan?: string;
  requestId?: string;
  updatedAt: string;
}

/** The rule that covers a repository (host/repo) now: its index and keys. */
export type RuleOf = (repository: string) => { index: number; keys: string[] } | undefined;

const KNOWN = new Set(['pending', 'signed', 'skipped', 'failed']);

/** One row per push: entries of one request, repository and tag (or digest, for a digest-only push) go together. */
export function imageRows(entries: readonly StatusEntry[], ruleOf?: RuleOf): ImageRow[] {
  const groups = new Map<string, StatusEntry[]>();
  for (const e of entries) {
    const id = e.requestId ? `${e.requestId}|${e.repository}|${e.tag ?? ''}` : `|${e.repository}|${e.tag ? `:${e.tag}` : `@${e.digest ?? ''}`}`;
    const g = groups.get(id);
    if (g) g.push(e);
    else groups.set(id, [e]);
  }
  return [...groups].map(([id, g]) => toRow(id, g, ruleOf));
}

function toRow(id: string, g: StatusEntry[], ruleOf?: RuleOf): ImageRow {
  // newest first: the first push-level entry is the push's latest outcome
  const push = g.find((e) => !e.key);
  const perKey = g.filter((e) => e.key);
  const first = push ?? g[0]!;
  const rawState = push ? push.state : perKey.some((e) => e.state === 'signed') ? 'signed' : first.state;
  const state: RowState = KNOWN.has(rawState) ? (rawState as RowState) : 'other';
  const configured = ruleOf?.(first.repository);
  const rule = push?.rule ?? perKey.find((e) => e.rule !== undefined)?.rule ?? (state === 'signed' ? undefined : configured?.index);
  const keys = new Map<string, KeyCell>();
  const digests = new Set<string>();
  for (const e of perKey) {
    if (e.digest) digests.add(e.digest);
    const cell = keys.get(e.key!) ?? {
      name: e.key!,
      state: e.state === 'signed' ? (e.present ? 'present' : 'signed') : (e.state as KeyCell['state']),
      formats: [],
    };
    if (e.state === 'signed' && !e.present) cell.state = 'signed';
    cell.formats = [...new Set([...cell.formats, ...(e.formats ?? [])])];
    keys.set(e.key!, cell);
  }
  // the keys the rule wants that have nothing recorded: not signed (the row says why)
  const wanted = rule !== undefined && configured && configured.index === rule ? configured.keys : [];
  for (const k of wanted) if (!keys.has(k)) keys.set(k, { name: k, state: 'missing', formats: [] });
  const formats = [...new Set([...keys.values()].flatMap((k) => k.formats))];
  const detailFrom = push && (push.code || push.reason) ? push : perKey.find((e) => e.reason);
  const digest = push?.digest ?? perKey.find((e) => e.digest)?.digest;
  const tag = first.tag ?? g.find((e) => e.tag)?.tag;
  const requestId = g.find((e) => e.requestId)?.requestId;
  const scanned = g.find((e) => e.scan)?.scan;
  const scan = scanned
    ? `scan ${scanned.severity}: ${countsText(scanned.counts) || 'no findings'}${scanned.scanner ? ` (${scanned.scanner})` : ''}`
    : undefined;
  return {
    id,
    repository: first.repository,
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
    state,
    ...(rule !== undefined ? { rule } : {}),
    keys: [...keys.values()],
    formats,
    manifests: digests.size,
    ...(detailFrom?.code ? { code: detailFrom.code } : {}),
    ...(detailFrom?.reason ? { reason: detailFrom.reason } : {}),
    ...(scan ? { scan } : {}),
    ...(requestId ? { requestId } : {}),
    updatedAt: g.reduce((t, e) => (e.updatedAt > t ? e.updatedAt : t), first.updatedAt),
  };
}

/** host/repo:tag@digest, as far as known. */
export function imageName(r: Pick<ImageRow, 'repository' | 'tag' | 'digest'>): string {
  return `${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

export interface RowQuery {
  /** Case-insensitive text in the image name or request id. */
  q?: string | undefined;
  state?: RowState | undefined;
  /** 1-based. */
  page: number;
  pageSize: number;
}

export interface RowPage {
  rows: ImageRow[];
  /** Rows matching the search and filter, over all pages. */
  total: number;
  page: number;
  pages: number;
}

export function selectRows(all: readonly ImageRow[], query: RowQuery): RowPage {
  const q = query.q?.trim().toLowerCase();
  const matching = all.filter(
    (r) => (!query.state || r.state === query.state) && (!q || imageName(r).toLowerCase().includes(q) || (r.requestId ?? '').toLowerCase().includes(q)),
  );
  const pages = Math.max(1, Math.ceil(matching.length / query.pageSize));
  const page = Math.min(Math.max(1, query.page), pages);
  return { rows: matching.slice((page - 1) * query.pageSize, page * query.pageSize), total: matching.length, page, pages };
}
