/**
 * The status page's HTML: one server-rendered document, no script, no external asset, one inline
 * stylesheet (allowed by its hash in the Content-Security-Policy). Every value that reaches the
 * page goes through `esc`. Search, state filter, paging and auto-refresh are a GET form and links
 * (the token rides along, as on the page's own URL); below 900 px wide the tables become one card
 * per row, so nothing scrolls sideways.
 */
import { createHash } from 'node:crypto';
import type { FailedJob } from '../queue/admin.js';
import type { SignatureCount } from '../status/store.js';
import { imageName, ROW_STATES, type ImageRow, type RowPage, type RowState } from './rows.js';

export interface CounterRow {
  labels: Record<string, string>;
  value: number;
}

export interface PageQuery {
  q: string;
  state?: RowState | undefined;
  page: number;
  /** Seconds between automatic reloads (meta refresh); absent: off. */
  refresh?: number | undefined;
}

export type Failed<T> = T | { error: string };

export interface PageData {
  generatedAt: string;
  /** The token, echoed into the forms and links (the page is only served to whoever sent it). */
  token: string;
  notice?: { kind: 'ok' | 'error'; text: string };
  /** Set when Redis is not reachable: the page's headline says so (and why). */
  redisDown?: string | undefined;
  query: PageQuery;
  queue: Failed<Record<string, number>>;
  failed: Failed<(FailedJob & { rule?: { index: number; keys: string[] } | undefined })[]>;
  images: Failed<RowPage>;
  /** The search named one image (host/repo:tag or @digest): what Redis holds for it. */
  lookup?: { reference: string; rows: ImageRow[]; rule?: string } | { reference: string; error: string };
  /** Configured integration names, listed even with no events. */
  integrations: string[];
  webhookEvents: CounterRow[];
  signatures: Failed<SignatureCount[]>;
  keys: string[];
}

export const WEBHOOK_OUTCOMES = ['queued', 'ignored', 'refused', 'unauthorized', 'malformed', 'unavailable', 'throttled'] as const;
export const REFRESH_CHOICES = [10, 30, 60] as const;
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

const STYLE = `
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#666;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%;max-width:100%}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
td.state,td.rule,th.num{white-space:nowrap}td.image{width:30%}td.when{white-space:nowrap;font-size:12px}
th{background:#f0f0f0;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:12px;overflow-wrap:anywhere;word-break:break-all}
.state{font-weight:600}.state-signed,.k-signed,.k-present{color:#17752b}.state-failed,.k-failed{color:#b3261e}.state-skipped,.k-skipped{color:#8a6d00}.state-pending,.k-pending{color:#345}.k-missing{color:#777}
.keys{list-style:none;margin:0;padding:0}.keys li{margin:0 0 .15rem}
.notice{padding:.5rem .8rem;border-radius:4px;margin:.8rem 0}.notice-ok{background:#e6f4ea}.notice-error{background:#fce8e6}
.headline{background:#b3261e;color:#fff;padding:.7rem 1rem;border-radius:4px;margin:.8rem 0}.headline h2{margin:0;font-size:1.2rem}.headline p{margin:.3rem 0 0}
.error{color:#b3261e}
.cards{display:flex;gap:.8rem;flex-wrap:wrap}
.card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.5rem .9rem;min-width:6rem}
.card b{display:block;font-size:1.4rem}
form.controls{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.5rem 0}
form.controls label{display:flex;flex-direction:column;font-size:12px;color:#444;max-width:100%}
form.controls input[type=search]{width:28rem;max-width:100%}
input,select,button{font:inherit;max-width:100%}
nav.pages{display:flex;gap:1rem;align-items:center;margin:.5rem 0;flex-wrap:wrap}
button{cursor:pointer}
@media (max-width:900px){
body{margin:.8rem}
table.rows,table.rows tbody{display:block;width:100%}
table.rows thead{display:none}
table.rows tr{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));border:1px solid #ccc;border-radius:4px;margin:0 0 .6rem;background:#fff;padding:.2rem}
table.rows td{display:block;border:0;padding:.2rem .4rem;min-width:0;width:auto;white-space:normal}table.rows td.num{text-align:left}
table.rows td.image,table.rows td.detail,table.rows td.reason,table.rows td.wide{grid-column:1/-1}
table.rows td::before{content:attr(data-label);display:block;font:600 11px system-ui,sans-serif;color:#555;text-transform:uppercase}
table.rows td:empty{display:none}
}
`;

/** The Content-Security-Policy hash source of the inline stylesheet. */
export const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** /ui with the token and the given query (empty values left out). */
export function pageUrl(token: string, q: Partial<PageQuery> & Record<string, unknown>): string {
  const params = new URLSearchParams({ token });
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '' && !(k === 'page' && v === 1)) params.set(k, String(v));
  return `/ui?${params.toString()}`;
}

export function renderPage(d: PageData): string {
  const { query } = d;
  const here = pageUrl(d.token, { q: query.q, state: query.state, page: query.page, refresh: query.refresh });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
${query.refresh ? `<meta http-equiv="refresh" content="${esc(query.refresh)}">` : ''}
<title>signet status</title>
<style>${STYLE}</style>
</head>
<body>
<h1>signet status</h1>
<div class="meta">generated <time datetime="${esc(d.generatedAt)}">${esc(d.generatedAt)}</time> ·
<a href="${esc(here)}" id="refresh">refresh</a>${query.refresh ? ` · reloads every ${esc(query.refresh)} s` : ''}</div>
${d.redisDown ? `<div class="headline" role="alert" id="headline"><h2>Redis unavailable</h2><p>${esc(d.redisDown)}</p><p>Signing status, the queue and failed jobs cannot be read until Redis answers again; webhooks are answered 503 so registries retry.</p></div>` : ''}
${d.notice ? `<div class="notice notice-${d.notice.kind === 'ok' ? 'ok' : 'error'}" role="status" id="notice">${esc(d.notice.text)}</div>` : ''}
${queueSection(d.queue)}
${controls(d)}
${d.lookup ? lookupSection(d.lookup) : ''}
${imagesSection(d)}
${failedSection(d.failed, d.token)}
${integrationSection(d.integrations, d.webhookEvents)}
${signatureSection(d.keys, d.signatures)}
</body>
</html>
`;
}

export function renderMessage(title: string, text: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1><p>${esc(text)}</p></body></html>\n`;
}

function unavailable(what: string, e: { error: string }): string {
  return `<p class="error">${esc(what)} unavailable: ${esc(e.error)}</p>`;
}

function isError(v: unknown): v is { error: string } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { error?: unknown }).error === 'string';
}

function queueSection(q: PageData['queue']): string {
  const body = isError(q)
    ? unavailable('queue counts', q)
    : `<div class="cards">${QUEUE_STATES.map((s) => `<div class="card" data-queue="${esc(s)}"><b>${esc(q[s] ?? 0)}</b>${esc(s)}</div>`).join('')}</div>`;
  return `<section id="queue"><h2>Queue</h2>${body}</section>`;
}

function controls(d: PageData): string {
  const { query } = d;
  const option = (value: string, label: string, selected: boolean) => `<option value="${esc(value)}"${selected ? ' selected' : ''}>${esc(label)}</option>`;
  return `<form class="controls" id="controls" method="get" action="/ui">
<input type="hidden" name="token" value="${esc(d.token)}">
<label>Image (host/repo[:tag][@digest], or part of it)<input type="search" name="q" id="q" value="${esc(query.q)}" placeholder="registry.example.com/team/app:v1"></label>
<label>State<select name="state" id="state">${option('', 'any', !query.state)}${ROW_STATES.map((s) => option(s, s, query.state === s)).join('')}</select></label>
<label>Auto-refresh<select name="refresh" id="refresh-every">${option('', 'off', !query.refresh)}${REFRESH_CHOICES.map((s) => option(String(s), `${s} s`, query.refresh === s)).join('')}</select></label>
<button type="submit" id="apply">Show</button>
</form>`;
}

const HEAD = `<thead><tr><th>updated</th><th>state</th><th>image</th><th class="num">rule</th><th>keys</th><th>formats</th><th>why / detail</th><th>request id</th></tr></thead>`;

function keyList(r: ImageRow): string {
  if (r.keys.length === 0) return '';
  const label: Record<string, string> = {
    signed: 'signed',
    present: 'already signed',
    missing: 'not signed',
    failed: 'failed',
    skipped: 'skipped',
    pending: 'pending',
  };
  return `<ul class="keys">${r.keys
    .map(
      (k) =>
        `<li class="k-${esc(k.state)}" data-key="${esc(k.name)}" data-key-state="${esc(k.state)}">${esc(k.name)}: ${esc(label[k.state] ?? k.state)}${k.formats.length ? ` (${esc(k.formats.join(', '))})` : ''}</li>`,
    )
    .join('')}</ul>`;
}

function imageRow(r: ImageRow): string {
  const detail = [[r.code, r.reason].filter(Boolean).join(': '), r.scan].filter(Boolean).join('; ') + (r.manifests > 1 ? ` (${r.manifests} manifests)` : '');
  return `<tr data-state="${esc(r.state)}" data-repository="${esc(r.repository)}" data-image="${esc(imageName(r))}">
<td data-label="updated" class="when">${esc(r.updatedAt)}</td>
<td data-label="state" class="state state-${esc(r.state)}">${esc(r.state)}</td>
<td data-label="image" class="mono image">${esc(imageName(r))}</td>
<td data-label="rule" class="num rule">${esc(r.rule ?? '')}</td>
<td data-label="keys" class="keys-cell">${keyList(r)}</td>
<td data-label="formats" class="formats">${esc(r.formats.join(', '))}</td>
<td data-label="why / detail" class="detail">${esc(detail)}</td>
<td data-label="request id" class="mono">${esc(r.requestId ?? '')}</td>
</tr>`;
}

function lookupSection(l: NonNullable<PageData['lookup']>): string {
  const title = `<h2>Image ${esc(l.reference)}</h2>`;
  if ('error' in l) return `<section id="lookup">${title}<p class="error">${esc(l.error)}</p></section>`;
  const rule = l.rule ? `<p class="meta">${esc(l.rule)}</p>` : '';
  if (l.rows.length === 0) return `<section id="lookup">${title}${rule}<p>No signing recorded for this image (kept for status.retentionDays).</p></section>`;
  return `<section id="lookup">${title}${rule}<table class="rows">${HEAD}<tbody>
${l.rows.map(imageRow).join('\n')}
</tbody></table></section>`;
}

function imagesSection(d: PageData): string {
  const title = '<h2>Recent images</h2>';
  const p = d.images;
  if (isError(p)) return `<section id="recent">${title}${unavailable('signing status', p)}</section>`;
  const filtered = Boolean(d.query.q || d.query.state);
  if (p.total === 0) return `<section id="recent">${title}<p id="no-images">${filtered ? 'No recent image matches.' : 'Nothing signed yet.'}</p></section>`;
  const link = (page: number, text: string, rel: string) =>
    `<a href="${esc(pageUrl(d.token, { q: d.query.q, state: d.query.state, refresh: d.query.refresh, page }))}" rel="${esc(rel)}" id="page-${esc(rel)}">${esc(text)}</a>`;
  const nav = `<nav class="pages" aria-label="pages">${p.page > 1 ? link(p.page - 1, '← newer', 'prev') : ''}<span id="page-info">page ${esc(p.page)} of ${esc(p.pages)} · ${esc(p.total)} image(s)</span>${p.page < p.pages ? link(p.page + 1, 'older →', 'next') : ''}</nav>`;
  return `<section id="recent">${title}${nav}<table class="rows">${HEAD}<tbody>
${p.rows.map(imageRow).join('\n')}
</tbody></table>${p.pages > 1 ? nav.replace(/id="page-(prev|next|info)"/g, '') : ''}<p class="meta">One row per push: the push's outcome, each key its rule wants and the formats written.</p></section>`;
}

function failedSection(f: PageData['failed'], token: string): string {
  if (isError(f)) return `<section id="failures"><h2>Failures</h2>${unavailable('failed jobs', f)}</section>`;
  if (f.length === 0) return `<section id="failures"><h2>Failures</h2><p>No failed jobs.</p></section>`;
  const rows = f
    .map(
      (j) => `<tr data-job="${esc(j.id)}">
<td data-label="job" class="mono">${esc(j.id)}</td>
<td data-label="image" class="mono wide">${esc(j.ref)}</td>
<td data-label="rule" class="num rule">${esc(j.rule?.index ?? '')}</td>
<td data-label="keys" class="keys-cell">${esc(j.rule?.keys.join(', ') ?? '')}</td>
<td data-label="reason" class="reason">${esc(j.reason)}</td>
<td data-label="attempts" class="num">${esc(j.attempts)}</td>
<td data-label="failed at">${esc(j.failedAt ?? '')}</td>
<td data-label="retry"><form method="post" action="/ui/jobs/${esc(encodeURIComponent(j.id))}/retry">
<input type="hidden" name="token" value="${esc(token)}">
<button type="submit" aria-label="Retry job ${esc(j.id)}">Retry</button></form></td>
</tr>`,
    )
    .join('\n');
  return `<section id="failures"><h2>Failures (${f.length})</h2>
<table class="rows"><thead><tr><th>job</th><th>image</th><th class="num">rule</th><th>keys</th><th>reason</th><th class="num">attempts</th><th>failed at</th><th></th></tr></thead>
<tbody>
${rows}
</tbody></table><p class="meta">Retry puts the job back with a fresh set of attempts (worker.attempts, with backoff).</p></section>`;
}

function counterTable(
  id: string,
  title: string,
  first: string,
  cols: readonly string[],
  rows: Map<string, Record<string, number | string>>,
  note: string,
): string {
  const body = [...rows]
    .map(
      ([name, r]) =>
        `<tr data-${esc(first)}="${esc(name)}"><td data-label="${esc(first)}">${esc(name)}</td>${cols.map((c) => `<td class="num" data-label="${esc(c)}" data-outcome="${esc(c)}">${esc(r[c] ?? 0)}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<section id="${esc(id)}"><h2>${esc(title)}</h2>
<table class="rows"><thead><tr><th>${esc(first)}</th>${cols.map((c) => `<th class="num">${esc(c)}</th>`).join('')}</tr></thead>
<tbody>
${body || `<tr><td colspan="${cols.length + 1}">none</td></tr>`}
</tbody></table><p class="meta">${esc(note)}</p></section>`;
}

function integrationSection(integrations: string[], values: CounterRow[]): string {
  const rows = new Map<string, Record<string, number>>(integrations.map((n) => [n, {}]));
  for (const v of values) {
    const name = v.labels['integration'] ?? '';
    const col = v.labels['outcome'] ?? '';
    if (!(WEBHOOK_OUTCOMES as readonly string[]).includes(col)) continue;
    const r = rows.get(name) ?? {};
    r[col] = (r[col] ?? 0) + v.value;
    rows.set(name, r);
  }
  return counterTable(
    'integrations',
    'Webhook events by integration',
    'integration',
    WEBHOOK_OUTCOMES,
    rows,
    'Counted by this receiver process since it started (signet_webhook_events_total).',
  );
}

function signatureSection(keys: string[], counts: PageData['signatures']): string {
  if (isError(counts)) return `<section id="signatures"><h2>Signatures by key</h2>${unavailable('signature counts', counts)}</section>`;
  const rows = new Map<string, Record<string, number | string>>(keys.map((k) => [k, {}]));
  const perFormat = new Map<string, Map<string, number>>();
  for (const c of counts) {
    const r = rows.get(c.key) ?? {};
    r[c.outcome] = Number(r[c.outcome] ?? 0) + c.count;
    rows.set(c.key, r);
    const f = perFormat.get(c.key) ?? new Map<string, number>();
    f.set(c.format, (f.get(c.format) ?? 0) + c.count);
    perFormat.set(c.key, f);
  }
  for (const [k, r] of rows) r['formats'] = [...(perFormat.get(k) ?? [])].map(([f, n]) => `${f} ${n}`).join(', ');
  return counterTable(
    'signatures',
    'Signatures by key',
    'key',
    ['signed', 'present', 'formats'],
    rows,
    'Recorded in Redis by every worker (one per manifest, key and format): written now (signed) or found already there (present).',
  );
}
