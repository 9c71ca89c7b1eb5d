/**
 * POST /hooks/:integration on plain node:http (express stays off this hot path). In order:
 * unknown integration 404, rate limit 429, body over server.bodyLimitBytes 413, authentication
 * 401, content type 415, JSON and the adapter's schema 400. Then what is not signed is dropped
 * with a reason, the rest is enqueued (in one socket write with the jobs of concurrent
 * requests), and the answer is 202 only once Redis has every job of this request: 503 with
 * Retry-After when it does not (the registry retries), 200 when nothing was to be queued.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { RuleMatcher } from '../config/rules.js';
import type { Config, IntegrationConfig } from '../config/schema.js';
import { describeError, isSignetError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SignJobData, SignQueue } from '../queue/sign-queue.js';
import type { RegistryDirectory } from '../registry/directory.js';
import { formatReference, isAttachmentTag, isValidDigest, isValidRepository, isValidTag } from '../registry/reference.js';
import { adapterFor } from './adapters/index.js';
import { sharedSecretCheck } from './auth.js';
import { BodyError, readBody, sendJson } from './plain-http.js';
import { TokenBucket } from './rate-limit.js';
import type { AdapterEvent, AdapterResult, IgnoredItem, RawWebhookRequest, WebhookAdapter } from './types.js';

export interface HookDeps {
  config: Config;
  registries: RegistryDirectory;
  rules: RuleMatcher;
  queue: Pick<SignQueue, 'enqueueMany'>;
  metrics: Metrics;
  logger: Logger;
}

/** Handles one POST /hooks/<integration>; answers on `res` and never throws. */
export type HookHandler = (req: IncomingMessage, res: ServerResponse, integration: string) => void;

const HOOK_PATH = /^\/hooks\/([^/?]+)\/?(?:\?|$)/i;

/** The integration a `POST /hooks/<name>` request names (matched as express did: any case, optional trailing slash), else undefined. */
export function hookIntegration(req: IncomingMessage): string | undefined {
  if (req.method !== 'POST') return undefined;
  const m = HOOK_PATH.exec(req.url ?? '');
  if (!m) return undefined;
  const name = m[1]!;
  try {
    return name.includes('%') ? decodeURIComponent(name) : name;
  } catch {
    return name;
  }
}

/** What the handler keeps per configured integration. */
interface Endpoint {
  integration: IntegrationConfig;
  adapter: WebhookAdapter<any>;
  bucket: TokenBucket;
  /** Shared-secret check, for adapters without their own `authenticate`. */
  checkSecret: (req: Pick<RawWebhookRequest, 'headers' | 'query'>) => boolean;
}

export function createHookHandler(deps: HookDeps): HookHandler {
  const { config, logger, metrics } = deps;
  const endpoints = new Map<string, Endpoint>(
    config.integrations.map((i) => [
      i.name,
      { integration: i, adapter: adapterFor(i.kind)!, bucket: new TokenBucket(i.rateLimit), checkSecret: sharedSecretCheck(i.secret, i.insecure) },
    ]),
  );
  const count = (integration: string, outcome: string, n = 1): void => metrics.webhookEvents.inc({ integration, outcome }, n);
  // The one line per accepted push holds only what this handler built (request id, integration
  // name, references admit() checked), never a credential: it skips pino's redaction pass (a copy
  // of the logged object and a walk of every redaction path, about 15 % of the CPU at peak).
  const pushLog = logger.child({}, { redact: [] });

  async function handle(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const endpoint = endpoints.get(name);
    if (!endpoint) return sendJson(res, 404, { error: 'unknown integration' });
    const { integration, adapter } = endpoint;
    const wait = endpoint.bucket.take();
    if (wait > 0) {
      count(name, 'throttled');
      return sendJson(res, 429, { error: 'rate limit exceeded' }, { 'retry-after': String(Math.max(1, Math.ceil(wait))) });
    }

    let body: Buffer;
    try {
      body = await readBody(req, config.server.bodyLimitBytes);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      if (req.socket.destroyed) return; // the sender went away mid-body: nobody to answer
      count(name, 'malformed');
      return sendJson(res, err.status, { error: err.message });
    }

    const raw: RawWebhookRequest = { headers: req.headers, query: queryOf(req.url), body };
    let ok: boolean;
    try {
      ok = adapter.authenticate ? await adapter.authenticate(raw, integration) : endpoint.checkSecret(raw);
    } catch (err) {
      // an authenticator that throws (say, on a malformed signature header) fails the check
      logger.debug({ integration: name, err: describeError(err) }, 'webhook authentication error');
      ok = false;
    }
    if (!ok) {
      count(name, 'unauthorized');
      logger.warn({ integration: name, remote: req.socket.remoteAddress }, 'webhook rejected: bad or missing secret');
      return sendJson(res, 401, { error: 'unauthorized' });
    }

    const requestId = headerId(req) ?? randomUUID();
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (ctype && ctype !== 'application/json' && !adapter.contentTypes.includes(ctype) && !ctype.endsWith('+json')) {
      count(name, 'malformed');
      return sendJson(res, 415, { error: `unsupported content type ${ctype}` });
    }
    let payload: unknown;
    try {
      payload = JSON.parse(body.toString('utf8'));
    } catch {
      count(name, 'malformed');
      return sendJson(res, 400, { error: 'body is not valid JSON' });
    }
    let parsed: AdapterResult;
    try {
      parsed = adapter.parse(payload, { integration, headers: req.headers });
    } catch (err) {
      count(name, 'malformed');
      logger.warn({ requestId, integration: name, err: describeError(err) }, 'webhook payload rejected');
      return sendJson(res, 400, { error: isSignetError(err) ? err.message : 'payload could not be parsed' });
    }

    const ignored: IgnoredItem[] = [...parsed.ignored];
    if (ignored.length) count(name, 'ignored', ignored.length);
    const receivedAt = new Date().toISOString();
    const jobs: SignJobData[] = [];
    const refs: string[] = [];
    for (const e of parsed.events) {
      const ref = formatReference(e);
      const verdict = admit(e, deps);
      if ('drop' in verdict) {
        ignored.push({ reason: verdict.drop, ref });
        count(name, verdict.refused ? 'refused' : 'ignored');
        if (verdict.refused) logger.warn({ requestId, integration: name, host: e.host }, `push refused: ${verdict.drop}`);
        continue;
      }
      // Object.assign, not a spread: events come in many shapes, and spreading them was 10x slower
      jobs.push({ event: Object.assign({ integration: name, receivedAt }, e), registry: verdict.registry, requestId });
      refs.push(ref);
    }
    if (ignored.length && logger.isLevelEnabled('debug')) logger.debug({ requestId, integration: name, ignored }, 'events not queued');

    let ids: string[];
    try {
      ids = jobs.length ? await deps.queue.enqueueMany(jobs) : [];
    } catch (err) {
      count(name, 'unavailable', jobs.length);
      logger.error({ requestId, integration: name, err: describeError(err) }, 'queue unavailable: answering 503 so the registry retries');
      return sendJson(res, 503, { error: 'queue unavailable, retry later' }, { 'retry-after': '5' });
    }
    count(name, 'queued', ids.length);
    if (refs.length) pushLog.info({ requestId, integration: name, queued: refs }, 'push queued');
    sendJson(res, refs.length ? 202 : 200, { requestId, queued: refs.map((ref, i) => ({ ref, job: ids[i]! })), ignored });
  }

  return (req, res, name) => {
    handle(req, res, name).catch((err: unknown) => {
      logger.error({ integration: name, err: describeError(err) }, 'receiver error');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
    });
  };
}

const NO_QUERY: Record<string, unknown> = Object.freeze({});

/** The query string as express's "simple" parser read it (node:querystring). */
function queryOf(url = ''): Record<string, unknown> {
  const q = url.indexOf('?');
  return q < 0 ? NO_QUERY : parseQuery(url.slice(q + 1));
}

function headerId(req: IncomingMessage): string | undefined {
  const v = req.headers['x-request-id'];
  return typeof v === 'string' && /^[A-Za-z0-9._-]{1,100}$/.test(v) ? v : undefined;
}

/**
 * The configured registry an event's job goes to, or why it is not queued (`refused` marks a
 * security matter: a host not configured, a name that could escape a registry URL).
 */
function admit(e: AdapterEvent, deps: HookDeps): { registry: string } | { drop: string; refused?: boolean } {
  if (e.tag && isAttachmentTag(e.tag)) return { drop: 'signature or attachment tag (written by a signer)' };
  const known = deps.registries.resolve(e.host);
  if (!known) return { drop: `registry host ${e.host} is not in registries (not contacted)`, refused: true };
  if (!isValidRepository(e.repository)) return { drop: 'invalid repository name', refused: true };
  if (e.tag !== undefined && !isValidTag(e.tag)) return { drop: 'invalid tag', refused: true };
  if (e.digest !== undefined && !isValidDigest(e.digest)) return { drop: 'invalid digest', refused: true };
  const found = deps.rules.find(known.config.host, e.repository);
  if (!found) return { drop: 'no rule matches this repository' };
  const why = deps.rules.skipReason(found.rule, e.tag);
  if (why) return { drop: why };
  return { registry: known.config.host };
}
