/**
 * The status page's HTML: one server-rendered document, no script, no external asset, one inline
 * stylesheet (allowed by its hash in the Content-Security-Policy). Every value that reaches the
 * page goes through `esc`.
 */
import { createHash } from 'node:crypto';
import type { FailedJob } from '../queue/admin.js';
import type { StatusEntry } from '../status/store.js';
import { countsText } from '../config/conditions.js';

export interface CounterRow {
  labels: Record<string, string>;
  value: number;
}

export interface PageData {
  generatedAt: string;
  /** The token, echoed into the forms (the page is only served to whoever sent it). */
  token: string;
  notice?: { kind: 'ok' | 'error'; text: string };
  queue: Record<string, number> | { error: string };
  failed: FailedJob[] | { error: string };
  recent: StatusEntry[] | { error: string };
  /** Configured integration names, listed even with no events. */
  integrations: string[];
  webhookEvents: CounterRow[];
  signatures: CounterRow[];
  keys: string[];
}

export const WEBHOOK_OUTCOMES = ['queued', 'ignored', 'refused', 'unauthorized', 'malformed', 'unavailable', 'throttled'] as const;
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;
const STATES = new Set(['pending', 'signed', 'skipped', 'failed']);

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#666;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%;max-width:100%}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
.state{font-weight:600}.state-signed{color:#17752b}.state-failed{color:#b3261e}.state-skipped{color:#8a6d00}.state-pending{color:#345}
.notice{padding:.5rem .8rem;border-radius:4px;margin:.8rem 0}.notice-ok{background:#e6f4ea}.notice-error{background:#fce8e6}
.error{color:#b3261e}
.cards{display:flex;gap:.8rem;flex-wrap:wrap}
.card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.5rem .9rem;min-width:6rem}
.card b{display:block;font-size:1.4rem}
button{cursor:pointer}
`;

/** The Content-Security-Policy hash source of the inline stylesheet. */
export const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderPage(d: PageData): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>signet status</title>
<style>${STYLE}</style>
</head>
<body>
<h1>signet status</h1>
<div class="meta">generated <time datetime="${esc(d.generatedAt)}">${esc(d.generatedAt)}</time> ·
<a href="/ui?token=${esc(encodeURIComponent(d.token))}">refresh</a></div>
${d.notice ? `<div class="notice notice-${d.notice.kind === 'ok' ? 'ok' : 'error'}" role="status" id="notice">${esc(d.notice.text)}</div>` : ''}
${queueSection(d.queue)}
${failedSection(d.failed, d.token)}
${recentSection(d.recent)}
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

function queueSection(q: PageData['queue']): string {
  const body =
    'error' in q && typeof q.error === 'string'
      ? unavailable('queue counts', q as { error: string })
      : `<div class="cards">${QUEUE_STATES.map(
          (s) => `<div class="card" data-queue="${esc(s)}"><b>${esc((q as Record<string, number>)[s] ?? 0)}</b>${esc(s)}</div>`,
        ).join('')}</div>`;
  return `<section id="queue"><h2>Queue</h2>${body}</section>`;
}

function failedSection(f: PageData['failed'], token: string): string {
  if (!Array.isArray(f)) return `<section id="failures"><h2>Failures</h2>${unavailable('failed jobs', f)}</section>`;
  if (f.length === 0) return `<section id="failures"><h2>Failures</h2><p>No failed jobs.</p></section>`;
  const rows = f
    .map(
      (j) => `<tr data-job="${esc(j.id)}">
<td class="mono">${esc(j.id)}</td>
<td class="mono">${esc(j.ref)}</td>
<td class="reason">${esc(j.reason)}</td>
<td class="num">${esc(j.attempts)}</td>
<td>${esc(j.failedAt ?? '')}</td>
<td><form method="post" action="/ui/jobs/${esc(encodeURIComponent(j.id))}/retry">
<input type="hidden" name="token" value="${esc(token)}">
<button type="submit" aria-label="Retry job ${esc(j.id)}">Retry</button></form></td>
</tr>`,
    )
    .join('\n');
  return `<section id="failures"><h2>Failures (${f.length})</h2>
<table><thead><tr><th>job</th><th>image</th><th>reason</th><th class="num">attempts</th><th>failed at</th><th></th></tr></thead>
<tbody>
${rows}
</tbody></table></section>`;
}

function recentSection(r: PageData['recent']): string {
  if (!Array.isArray(r)) return `<section id="recent"><h2>Recent signings</h2>${unavailable('signing status', r)}</section>`;
  if (r.length === 0) return `<section id="recent"><h2>Recent signings</h2><p>Nothing signed yet.</p></section>`;
  const rows = r
    .map((e) => {
      const state = STATES.has(e.state) ? e.state : 'other';
      const image = `${e.repository}${e.tag ? `:${e.tag}` : ''}${e.digest ? `@${e.digest}` : ''}`;
      // a scan gate's decision shows the findings it was made on (require.scan)
      const scan = e.scan ? `scan ${e.scan.severity}: ${countsText(e.scan.counts) || 'no findings'}${e.scan.scanner ? ` (${e.scan.scanner})` : ''}` : '';
      const detail = [[e.code, e.reason].filter(Boolean).join(': '), scan].filter(Boolean).join('; ');
      return `<tr data-state="${esc(state)}" data-repository="${esc(e.repository)}">
<td>${esc(e.updatedAt)}</td>
<td class="state state-${esc(state)}">${esc(e.state)}</td>
<td class="mono">${esc(image)}</td>
<td>${esc(e.key ?? '')}</td>
<td class="num">${esc(e.rule ?? '')}</td>
<td>${esc(detail)}</td>
<td class="mono">${esc(e.requestId ?? '')}</td>
</tr>`;
    })
    .join('\n');
  return `<section id="recent"><h2>Recent signings</h2>
<table><thead><tr><th>updated</th><th>state</th><th>image</th><th>key</th><th class="num">rule</th><th>detail</th><th>request id</th></tr></thead>
<tbody>
${rows}
</tbody></table></section>`;
}

/** A label-by-outcome table from counter values. */
function pivot(rowsOf: string[], rowLabel: string, cols: readonly string[], values: CounterRow[]): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>(rowsOf.map((n) => [n, {}]));
  for (const v of values) {
    const row = v.labels[rowLabel] ?? '';
    const col = v.labels['outcome'] ?? '';
    if (!cols.includes(col)) continue;
    const r = out.get(row) ?? {};
    r[col] = (r[col] ?? 0) + v.value;
    out.set(row, r);
  }
  return out;
}

function counterTable(id: string, title: string, first: string, cols: readonly string[], rows: Map<string, Record<string, number>>, note: string): string {
  const body = [...rows]
    .map(
      ([name, r]) =>
        `<tr data-${esc(first)}="${esc(name)}"><td>${esc(name)}</td>${cols.map((c) => `<td class="num" data-outcome="${esc(c)}">${esc(r[c] ?? 0)}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<section id="${esc(id)}"><h2>${esc(title)}</h2>
<table><thead><tr><th>${esc(first)}</th>${cols.map((c) => `<th class="num">${esc(c)}</th>`).join('')}</tr></thead>
<tbody>
${body || `<tr><td colspan="${cols.length + 1}">none</td></tr>`}
</tbody></table><p class="meta">${esc(note)}</p></section>`;
}

function integrationSection(integrations: string[], values: CounterRow[]): string {
  return counterTable(
    'integrations',
    'Webhook events by integration',
    'integration',
    WEBHOOK_OUTCOMES,
    pivot(integrations, 'integration', WEBHOOK_OUTCOMES, values),
    'Counted by this receiver process since it started (signet_webhook_events_total).',
  );
}

function signatureSection(keys: string[], values: CounterRow[]): string {
  return counterTable(
    'signatures',
    'Signatures by key',
    'key',
    ['signed', 'present'],
    pivot(keys, 'key', ['signed', 'present'], values),
    'Counted by the worker in this process since it started (signet_signatures_total); a receiver-only process shows none.',
  );
}
