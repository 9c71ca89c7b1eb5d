/**
 * The status page: GET /ui (recent signings, failures with their reasons and a retry button,
 * queue depth, webhook events per integration, signatures per key) and
 * POST /ui/jobs/:id/retry. Both need `server.statusPageToken`: on GET as `?token=` or
 * `Authorization: Bearer`, on POST in the form body (`token=`) or `Authorization: Bearer`, never
 * from a cookie or the query string, so another site cannot make a browser retry jobs (CSRF).
 * Without a configured token the receiver does not mount the page at all (404).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { FailedJob, QueueAdmin } from '../queue/admin.js';
import type { StatusEntry, StatusStore } from '../status/store.js';
import { renderMessage, renderPage, STYLE_HASH, type CounterRow, type PageData } from './render.js';

export interface StatusPageDeps {
  token: string;
  admin: Pick<QueueAdmin, 'failed' | 'retry' | 'counts'>;
  status: Pick<StatusStore, 'recent'>;
  metrics: Metrics;
  logger: Logger;
  integrations: string[];
  keys: string[];
  /** Rows shown per list; default 50. */
  limit?: number;
  /** Per data source; default 2000 ms (a page never hangs on Redis). */
  timeoutMs?: number;
}

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

  const refuse = (req: Request, res: Response) => {
    deps.logger.warn({ remote: req.ip, path: req.path }, 'status page: bad or missing token');
    res.status(401).set(HEADERS).set('www-authenticate', 'Bearer realm="signet status page"').type('html').send(renderMessage('401 unauthorized', 'A valid status page token is required.'));
  };

  router.get('/', async (req: Request, res: Response) => {
    const token = bearer(req) ?? single(req.query['token']);
    if (!matches(token)) return refuse(req, res);
    const [queue, failed, recent, events, signatures] = await Promise.allSettled([
      withTimeout(deps.admin.counts(), timeoutMs),
      withTimeout(deps.admin.failed(limit), timeoutMs),
      withTimeout(deps.status.recent(limit), timeoutMs),
      deps.metrics.webhookEvents.get(),
      deps.metrics.signatures.get(),
    ]);
    const retried = single(req.query['retried']);
    const missing = single(req.query['missing']);
    const data: PageData = {
      generatedAt: new Date().toISOString(),
      token: token!,
      ...(retried ? { notice: { kind: 'ok' as const, text: `Job ${retried} queued again.` } } : {}),
      ...(missing ? { notice: { kind: 'error' as const, text: `No failed job ${missing} (already retried or removed).` } } : {}),
      queue: settled<Record<string, number>>(queue),
      failed: settled<FailedJob[]>(failed),
      recent: settled<StatusEntry[]>(recent),
      integrations: deps.integrations,
      keys: deps.keys,
      webhookEvents: events.status === 'fulfilled' ? (events.value.values as CounterRow[]) : [],
      signatures: signatures.status === 'fulfilled' ? (signatures.value.values as CounterRow[]) : [],
    };
    res.status(200).set(HEADERS).type('html').send(renderPage(data));
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
      deps.logger.error({ job: id, err: describeError(err) }, 'status page: retry failed');
      res.status(503).set(HEADERS).json({ error: 'queue unavailable, try again' });
      return;
    }
    deps.logger.info({ job: id, retried: ok, remote: req.ip }, ok ? 'status page: failed job queued again' : 'status page: no failed job to retry');
    if (fromForm !== undefined && !bearer(req)) {
      // a browser form: back to the page (303: GET), saying what happened
      res.redirect(303, `/ui?token=${encodeURIComponent(token!)}&${ok ? 'retried' : 'missing'}=${encodeURIComponent(id)}`);
      return;
    }
    res.status(ok ? 200 : 404).set(HEADERS).json(ok ? { retried: id } : { error: `no failed job ${id}` });
  });

  // body parser errors (too large, malformed) are answered here, not by the webhook error handler
  router.use((err: { status?: number }, _req: Request, res: Response, _next: express.NextFunction) => {
    const status = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
    res.status(status).set(HEADERS).json({ error: status === 413 ? 'body too large' : 'bad request' });
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
  return r.status === 'fulfilled' ? (r.value as T) : { error: describeError(r.reason).replace(/^INTERNAL: /, '').slice(0, 200) };
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
