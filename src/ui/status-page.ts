/**
 * The status page: GET /ui (recent images, one row per push: state, rule, keys with their
 * formats, why not signed; search by image, filter by state, pages, auto-refresh; the image a
 * search names looked up in Redis; failures with their reasons, rule, keys and a retry button;
 * queue depth; webhook events per integration; signatures per key, counted in Redis by every
 * worker) and POST /ui/jobs/:id/retry. Both need `server.statusPageToken`: on GET as `?token=` or
 * `Authorization: Bearer`, on POST in the form body (`token=`) or `Authorization: Bearer`, never
 * from a cookie or the query string, so another site cannot make a browser retry jobs (CSRF).
 * Without a configured token the receiver does not mount the page at all (404). While Redis is
 * away the page still renders (503) with the headline "Redis unavailable".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import type { RuleMatcher } from '../config/rules.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { FailedJob, QueueAdmin } from '../queue/admin.js';
import { asRedisUnavailable, isRedisUnavailable } from '../queue/redis-errors.js';
import { parseReference } from '../registry/reference.js';
import type { SignatureCount, StatusEntry, StatusStore } from '../status/store.js';
import { REFRESH_CHOICES, renderMessage, renderPage, STYLE_HASH, type CounterRow, type PageData, type PageQuery } from './render.js';
import { imageRows, ROW_STATES, selectRows, type RowState } from './rows.js';

export interface StatusPageDeps {
  token: string;
  admin: Pick<QueueAdmin, 'failed' | 'retry' | 'counts'>;
  status: Pick<StatusStore, 'recent' | 'lookup' | 'signatureCounts'>;
  /** The rules, for the rule and keys of a failed or skipped push (what it was to be signed with). */
  rules?: RuleMatcher | undefined;
  metrics: Metrics;
  logger: Logger;
  integrations: string[];
  keys: string[];
  /** Rows shown per page (and failed jobs listed); default 50. */
  limit?: number;
  /** Per data source; default 2000 ms (a page never hangs on Redis). */
  timeoutMs?: number;
}

/** Status entries read for the image list (the whole recent list the store keeps). */
const RECENT_READ = 500;

const HEADERS: Record<string, string> = {
  'content-security-policy': `default-src 'none'; style-src ${STYLE_HASH}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

const JOB_ID = /^[A-Za-z0-9:._-]{1,128}$/;

export function statusPageRouter(deps: StatusPageDeps): express.Router {
  const router = express.Router();
  const expected = createHash('sha256').update(deps.token).digest();
  const matches = (given: string | undefined): boolean =>
    typeof given === 'string' && given.length > 0 && timingSafeEqual(createHash('sha256').update(given).digest(), expected);
  const limit = deps.limit ?? 50;
  const timeoutMs = deps.timeoutMs ?? 2000;
  const ruleOf = (repository: string) => {
    const slash = repository.indexOf('/');
    const found = slash > 0 ? deps.rules?.find(repository.slice(0, slash), repository.slice(slash + 1)) : undefined;
    return found ? { index: found.index, keys: found.rule.keys } : undefined;
  };

  const refuse = (req: Request, res: Response) => {
    deps.logger.warn({ remote: req.ip, path: req.path }, 'status page: bad or missing token');
    res
      .status(401)
      .set(HEADERS)
      .set('www-authenticate', 'Bearer realm="signet status page"')
      .type('html')
      .send(renderMessage('401 unauthorized', 'A valid status page token is required.'));
  };

  router.get('/', async (req: Request, res: Response) => {
    const token = bearer(req) ?? single(req.query['token']);
    if (!matches(token)) return refuse(req, res);
    const query = pageQuery(req.query);
    const target = referenceIn(query.q);
    const [queue, failed, recent, signatures, events, found] = await Promise.allSettled([
      withTimeout(deps.admin.counts(), timeoutMs),
      withTimeout(deps.admin.failed(limit), timeoutMs),
      withTimeout(deps.status.recent(RECENT_READ), timeoutMs),
      withTimeout(deps.status.signatureCounts(), timeoutMs),
      deps.metrics.webhookEvents.get(),
      target ? withTimeout(deps.status.lookup(target.repository, target.digest, target.tag), timeoutMs) : Promise.resolve(undefined),
    ]);
    const redisFailures = [queue, failed, recent, signatures, found].filter(
      (r): r is PromiseRejectedResult => r.status === 'rejected' && isRedisUnavailable(r.reason),
    );
    const retried = single(req.query['retried']);
    const missing = single(req.query['missing']);
    const images = settled<StatusEntry[]>(recent);
    const failedJobs = settled<FailedJob[]>(failed);
    let lookup: PageData['lookup'];
    if (target) {
      const rule = ruleOf(target.repository);
      lookup =
        found.status === 'fulfilled'
          ? {
              reference: query.q.trim(),
              rows: imageRows(found.value?.entries ?? [], ruleOf),
              rule: rule ? `rule ${rule.index}: keys ${rule.keys.join(', ')}` : `no rule matches ${target.repository}`,
            }
          : { reference: query.q.trim(), error: settledError(found.reason) };
    }
    const data: PageData = {
      generatedAt: new Date().toISOString(),
      token: token!,
      ...(retried ? { notice: { kind: 'ok' as const, text: `Job ${retried} queued again.` } } : {}),
      ...(missing ? { notice: { kind: 'error' as const, text: `No failed job ${missing} (already retried or removed).` } } : {}),
      ...(redisFailures.length ? { redisDown: settledError(redisFailures[0]!.reason) } : {}),
      query,
      queue: settled<Record<string, number>>(queue),
      failed: Array.isArray(failedJobs)
        ? failedJobs.map((j) => ({ ...j, rule: j.registry && j.repository ? ruleOf(`${j.registry}/${j.repository}`) : undefined }))
        : failedJobs,
      images: Array.isArray(images)
        ? selectRows(
            // a search naming one image lists that image's pushes; any other text is matched in the image names
            imageRows(images, ruleOf).filter(
              (r) => !target || (r.repository === target.repository && (!target.tag || r.tag === target.tag) && (!target.digest || r.digest === target.digest)),
            ),
            { q: target ? undefined : query.q, state: query.state, page: query.page, pageSize: limit },
          )
        : images,
      ...(lookup ? { lookup } : {}),
      integrations: deps.integrations,
      keys: deps.keys,
      webhookEvents: events.status === 'fulfilled' ? (events.value.values as CounterRow[]) : [],
      signatures: settled<SignatureCount[]>(signatures),
    };
    res
      .status(redisFailures.length ? 503 : 200)
      .set(HEADERS)
      .type('html')
      .send(renderPage(data));
  });

  router.post('/jobs/:id/retry', express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 }), async (req: Request, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const fromForm = single(body['token']);
    const token = bearer(req) ?? fromForm;
    if (!matches(token)) return refuse(req, res);
    const id = String(req.params['id'] ?? '');
    if (!JOB_ID.test(id)) {
      res.status(400).set(HEADERS).json({ error: 'invalid job id' });
      return;
    }
    let ok: boolean;
    try {
      ok = await withTimeout(deps.admin.retry(id), timeoutMs);
    } catch (err) {
      const e = asRedisUnavailable(err, 'retry');
      deps.logger.error({ job: id, err: describeError(e) }, 'status page: retry failed');
      res
        .status(503)
        .set(HEADERS)
        .json({ error: 'queue unavailable, try again', ...(isRedisUnavailable(e) ? { code: 'REDIS_UNAVAILABLE' } : {}) });
      return;
    }
    deps.logger.info({ job: id, retried: ok, remote: req.ip }, ok ? 'status page: failed job queued again' : 'status page: no failed job to retry');
    if (fromForm !== undefined && !bearer(req)) {
      // a browser form: back to the page (303: GET), saying what happened
      res.redirect(303, `/ui?token=${encodeURIComponent(token!)}&${ok ? 'retried' : 'missing'}=${encodeURIComponent(id)}`);
      return;
    }
    res
      .status(ok ? 200 : 404)
      .set(HEADERS)
      .json(ok ? { retried: id } : { error: `no failed job ${id}` });
  });

  // body parser errors (too large, malformed) are answered here, not by the webhook error handler
  router.use((err: { status?: number }, _req: Request, res: Response, _next: express.NextFunction) => {
    const status = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
    res
      .status(status)
      .set(HEADERS)
      .json({ error: status === 413 ? 'body too large' : 'bad request' });
  });
  return router;
}

function bearer(req: Request): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

function single(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function settled<T>(r: PromiseSettledResult<unknown>): T | { error: string } {
  if (r.status === 'fulfilled') return r.value as T;
  // the headline says why; each section only that it is affected
  return { error: isRedisUnavailable(r.reason) ? 'REDIS_UNAVAILABLE (see above)' : settledError(r.reason) };
}

/** "CODE: message" of a failed read, a Redis outage as REDIS_UNAVAILABLE. */
function settledError(reason: unknown): string {
  return describeError(asRedisUnavailable(reason))
    .replace(/^INTERNAL: /, '')
    .slice(0, 240);
}

/** The page's query: search text, state filter, page, auto-refresh (anything else ignored). */
function pageQuery(q: Request['query']): PageQuery {
  const state = single(q['state']);
  const page = Number(single(q['page']) ?? '1');
  const refresh = Number(single(q['refresh']) ?? '0');
  return {
    q: (single(q['q']) ?? '').slice(0, 300),
    ...(state && (ROW_STATES as readonly string[]).includes(state) ? { state: state as RowState } : {}),
    page: Number.isInteger(page) && page > 0 && page < 1e6 ? page : 1,
    ...((REFRESH_CHOICES as readonly number[]).includes(refresh) ? { refresh } : {}),
  };
}

/** A search that names one image (host/repo:tag or host/repo@digest): where its records are. */
function referenceIn(q: string): { repository: string; tag?: string; digest?: string } | undefined {
  const text = q.trim();
  if (!text.includes('/') || !/[:@]/.test(text.slice(text.indexOf('/')))) return undefined;
  try {
    const r = parseReference(text);
    if (!r.tag && !r.digest) return undefined;
    return { repository: `${r.host}/${r.repository}`, ...(r.tag ? { tag: r.tag } : {}), ...(r.digest ? { digest: r.digest } : {}) };
  } catch {
    return undefined;
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ms} ms`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
