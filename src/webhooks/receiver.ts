/**
 * The HTTP receiver: POST /hooks/:integration. Authenticate, parse with the integration's adapter,
 * drop what is not an image push we sign, enqueue the rest, and answer 202 only once Redis has
 * every job (503 when it cannot, so the registry retries).
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { RuleMatcher } from '../config/rules.js';
import type { Config, IntegrationConfig } from '../config/schema.js';
import { describeError, isSignetError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SignQueue } from '../queue/sign-queue.js';
import type { RegistryDirectory } from '../registry/directory.js';
import { isAttachmentTag, isValidDigest, isValidRepository, isValidTag } from '../registry/reference.js';
import { adapterFor } from './adapters/index.js';
import { isAuthorized } from './auth.js';
import { TokenBucket } from './rate-limit.js';
import { imageStatus } from '../api/status.js';
import type { StatusStore } from '../status/store.js';
import type { QueueAdmin } from '../queue/admin.js';
import { readinessHandler, type Readiness } from '../health/readiness.js';
import { statusPageRouter } from '../ui/status-page.js';
import type { IgnoredItem, PushEvent } from './types.js';

export interface ReceiverDeps {
  config: Config;
  registries: RegistryDirectory;
  rules: RuleMatcher;
  queue: SignQueue;
  metrics: Metrics;
  logger: Logger;
  /** Signing status store, for GET /api/v1/images/{ref}/status. */
  status?: StatusStore;
  /** GET /readyz (Redis, keys, registries); without it /readyz answers like /healthz. */
  readiness?: Readiness;
  /** Failed jobs, retry and counts for the status page (GET /ui, on only with server.statusPageToken). */
  admin?: QueueAdmin;
}

interface Outcome {
  queued: { ref: string; job: string }[];
  ignored: IgnoredItem[];
}

export function createReceiver(deps: ReceiverDeps): express.Express {
  const { config, logger, metrics } = deps;
  const integrations = new Map(config.integrations.map((i) => [i.name, i]));
  const buckets = new Map(config.integrations.map((i) => [i.name, new TokenBucket(i.rateLimit)]));
  const app = express();
  app.disable('x-powered-by');
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
        metrics,
        logger,
        integrations: config.integrations.map((i) => i.name),
        keys: config.keys.map((k) => k.name),
      }),
    );
  }
  app.get('/api/v1/images/*ref', async (req: Request, res: Response) => {
    const parts = (req.params as unknown as { ref: string[] }).ref;
    if (!deps.status || parts.at(-1) !== 'status') {
      res.status(404).json({ error: 'not found' });
      return;
    }
    const ref = parts.slice(0, -1).join('/');
    try {
      res.json(await imageStatus(ref, { registries: deps.registries, rules: deps.rules, status: deps.status }));
    } catch (err) {
      const code = isSignetError(err) ? err.code : 'INTERNAL';
      const status = code === 'INVALID_REFERENCE' ? 400 : code === 'MANIFEST_NOT_FOUND' || code === 'REGISTRY_NOT_CONFIGURED' ? 404 : isSignetError(err) && err.retryable ? 503 : 500;
      res.status(status).json({ error: describeError(err) });
    }
  });

  app.post(
    '/hooks/:integration',
    (req: Request, res: Response, next: NextFunction) => {
      const integ = integrations.get(String(req.params['integration']));
      if (!integ) {
        res.status(404).json({ error: 'unknown integration' });
        return;
      }
      const wait = buckets.get(integ.name)!.take();
      if (wait > 0) {
        metrics.webhookEvents.inc({ integration: integ.name, outcome: 'throttled' });
        res.status(429).set('Retry-After', String(Math.max(1, Math.ceil(wait)))).json({ error: 'rate limit exceeded' });
        return;
      }
      res.locals['integration'] = integ;
      next();
    },
    express.raw({ type: () => true, limit: config.server.bodyLimitBytes }),
    async (req: Request, res: Response, next: NextFunction) => {
      const integ = res.locals['integration'] as IntegrationConfig;
      const adapter = adapterFor(integ.kind)!;
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      let ok: boolean;
      try {
        ok = adapter.authenticate
          ? await adapter.authenticate({ headers: req.headers, query: req.query as Record<string, unknown>, body: raw }, integ)
          : isAuthorized(req, integ.secret, integ.insecure);
      } catch (err) {
        // an authenticator that throws (say, on a malformed signature header) fails the check
        logger.debug({ integration: integ.name, err: describeError(err) }, 'webhook authentication error');
        ok = false;
      }
      if (!ok) {
        metrics.webhookEvents.inc({ integration: integ.name, outcome: 'unauthorized' });
        logger.warn({ integration: integ.name, remote: req.ip }, 'webhook rejected: bad or missing secret');
        res.status(401).json({ error: 'unauthorized' });
        return;
      }
      next();
    },
    async (req: Request, res: Response) => {
      const integ = res.locals['integration'] as IntegrationConfig;
      const adapter = adapterFor(integ.kind)!;
      const requestId = headerId(req) ?? randomUUID();
      const log = logger.child({ requestId, integration: integ.name });

      const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (ctype && ctype !== 'application/json' && !adapter.contentTypes.includes(ctype) && !ctype.endsWith('+json')) {
        metrics.webhookEvents.inc({ integration: integ.name, outcome: 'malformed' });
        res.status(415).json({ error: `unsupported content type ${ctype}` });
        return;
      }
      let body: unknown;
      try {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        metrics.webhookEvents.inc({ integration: integ.name, outcome: 'malformed' });
        res.status(400).json({ error: 'body is not valid JSON' });
        return;
      }

      let parsed;
      try {
        parsed = adapter.parse(body, { integration: integ, headers: req.headers });
      } catch (err) {
        metrics.webhookEvents.inc({ integration: integ.name, outcome: 'malformed' });
        const msg = isSignetError(err) ? err.message : 'payload could not be parsed';
        log.warn({ err: describeError(err) }, 'webhook payload rejected');
        res.status(400).json({ error: msg });
        return;
      }

      const out: Outcome = { queued: [], ignored: [...parsed.ignored] };
      const receivedAt = new Date().toISOString();
      const jobs: Promise<void>[] = [];
      for (const e of parsed.events) {
        const ref = `${e.host}/${e.repository}${e.tag ? `:${e.tag}` : ''}${e.digest ? `@${e.digest}` : ''}`;
        const reason = dropReason(e, deps);
        if (reason) {
          out.ignored.push({ reason: reason.text, ref });
          metrics.webhookEvents.inc({ integration: integ.name, outcome: reason.refused ? 'refused' : 'ignored' });
          if (reason.refused) log.warn({ host: e.host }, `push refused: ${reason.text}`);
          continue;
        }
        const registry = deps.registries.resolve(e.host)!.config.host;
        const event: PushEvent = { ...e, integration: integ.name, receivedAt };
        jobs.push(
          deps.queue.enqueue({ event, registry, requestId }).then((job) => {
            out.queued.push({ ref, job });
          }),
        );
      }
      for (const _ of parsed.ignored) metrics.webhookEvents.inc({ integration: integ.name, outcome: 'ignored' });
      if (out.ignored.length && log.isLevelEnabled('debug')) log.debug({ ignored: out.ignored }, 'events not queued');

      const settled = await Promise.allSettled(jobs);
      const failed = settled.filter((s) => s.status === 'rejected');
      if (failed.length > 0) {
        metrics.webhookEvents.inc({ integration: integ.name, outcome: 'unavailable' }, failed.length);
        log.error({ err: describeError((failed[0] as PromiseRejectedResult).reason) }, 'queue unavailable: answering 503 so the registry retries');
        res.status(503).set('Retry-After', '5').json({ error: 'queue unavailable, retry later' });
        return;
      }
      metrics.webhookEvents.inc({ integration: integ.name, outcome: 'queued' }, out.queued.length);
      if (out.queued.length) log.info({ queued: out.queued.map((q) => q.ref) }, 'push queued');
      res.status(out.queued.length ? 202 : 200).json({ requestId, queued: out.queued, ignored: out.ignored });
    },
  );

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string };
    const integration = String(req.params?.['integration'] ?? '');
    if (e.type === 'entity.too.large' || e.status === 413) {
      metrics.webhookEvents.inc({ integration, outcome: 'malformed' });
      res.status(413).json({ error: `body larger than ${config.server.bodyLimitBytes} bytes` });
      return;
    }
    if (e.status && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ error: 'bad request' });
      return;
    }
    logger.error({ err: describeError(err) }, 'receiver error');
    res.status(500).json({ error: 'internal error' });
  });
  return app;
}

function headerId(req: Request): string | undefined {
  const v = req.headers['x-request-id'];
  return typeof v === 'string' && /^[A-Za-z0-9._-]{1,100}$/.test(v) ? v : undefined;
}

/** Why an event is not queued, or undefined. `refused` marks what is a security matter. */
function dropReason(e: Omit<PushEvent, 'integration' | 'receivedAt'>, deps: ReceiverDeps): { text: string; refused?: boolean } | undefined {
  if (e.tag && isAttachmentTag(e.tag)) return { text: 'signature or attachment tag (written by a signer)' };
  const known = deps.registries.resolve(e.host);
  if (!known) return { text: `registry host ${e.host} is not in registries (not contacted)`, refused: true };
  if (!isValidRepository(e.repository)) return { text: 'invalid repository name', refused: true };
  if (e.tag !== undefined && !isValidTag(e.tag)) return { text: 'invalid tag', refused: true };
  if (e.digest !== undefined && !isValidDigest(e.digest)) return { text: 'invalid digest', refused: true };
  const found = deps.rules.find(known.config.host, e.repository);
  if (!found) return { text: 'no rule matches this repository' };
  const why = deps.rules.skipReason(found.rule, e.tag);
  if (why) return { text: why };
  return undefined;
}
