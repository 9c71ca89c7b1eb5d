/**
 * The HTTP receiver. POST /hooks/:integration, the hot path, is handled on plain node:http by
 * hook-handler.ts (authenticate, parse, drop what is not signed, enqueue, 202 only once Redis has
 * every job); everything else (/healthz, /readyz, /metrics, /ui, /api/v1) is an express app.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { describeError } from '../errors.js';
import { apiOff, apiRouter } from '../api/router.js';
import type { StatusStore } from '../status/store.js';
import type { QueueAdmin } from '../queue/admin.js';
import { readinessHandler, type Readiness } from '../health/readiness.js';
import { statusPageRouter } from '../ui/status-page.js';
import { createHookHandler, hookIntegration, type HookDeps } from './hook-handler.js';

/** What the hook handler needs (config, registries, rules, the queue's `enqueueMany`, metrics, logger), and: */
export interface ReceiverDeps extends HookDeps {
  /** Signing status store, for GET /api/v1/images/{ref}/status (on only with server.apiToken). */
  status?: StatusStore;
  /** GET /readyz (Redis, keys, registries); without it /readyz answers like /healthz. */
  readiness?: Readiness;
  /** Failed jobs, retry and counts for the status page (GET /ui, on only with server.statusPageToken). */
  admin?: QueueAdmin;
}

/** The request listener for `http.createServer`: webhooks to the hook handler, the rest to express. */
export function createReceiver(deps: ReceiverDeps): RequestListener {
  const hook = createHookHandler(deps);
  const app = createApp(deps);
  return (req: IncomingMessage, res: ServerResponse) => {
    const integration = hookIntegration(req);
    if (integration === undefined) app(req, res);
    else hook(req, res, integration);
  };
}

/** Everything but the webhooks. */
function createApp(deps: ReceiverDeps): express.Express {
  const { config, logger, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  if (deps.readiness) app.get('/readyz', readinessHandler(deps.readiness));
  else app.get('/readyz', (_req, res) => void res.json({ status: 'ready' }));
  if (config.server.statusPageToken && deps.admin && deps.status) {
    app.use(
      '/ui',
      statusPageRouter({
        token: config.server.statusPageToken,
        admin: deps.admin,
        status: deps.status,
        rules: deps.rules,
        metrics,
        logger,
        integrations: config.integrations.map((i) => i.name),
        keys: config.keys.map((k) => k.name),
      }),
    );
  }
  if (config.server.apiToken && deps.status) {
    app.use('/api/v1', apiRouter({ token: config.server.apiToken, registries: deps.registries, rules: deps.rules, status: deps.status, logger }));
  } else app.use('/api/v1', apiOff());

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number }).status;
    if (status && status >= 400 && status < 500) {
      res.status(status).json({ error: 'bad request' });
      return;
    }
    logger.error({ err: describeError(err) }, 'receiver error');
    res.status(500).json({ error: 'internal error' });
  });
  return app;
}
