/**
 * POST /hooks/:integration on plain node:http (express stays off this hot path). In order:
 * unknown integration 404; authentication, before the body wherever the credential is in the
 * headers or the query string (a refused call is answered 401 with `connection: close`, its body
 * never read); for kinds that sign the body (github, jfrog hmac), a body read under a cap of such
 * reads at once (503), a size limit (413), a deadline and a minimum rate (408), then the
 * signature (401). Failed authentications have a token bucket of their own per integration (past
 * it: 429 and the connection closed) and a sampled log line; the integration's `rateLimit` (429)
 * is spent by authenticated calls only. Then content type 415, JSON and the adapter's schema
 * 400; what is not signed is dropped with a reason, the rest is enqueued (in one socket write
 * with the jobs of concurrent requests), and the answer is 202 only once Redis has every job of
 * this request: 503 with Retry-After when it does not (the registry retries), 200 when nothing
 * was to be queued.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import { decideRule } from '../signing/plan.js';
import { pusherPolicy, type RuleMatcher } from '../config/rules.js';
import type { Config, IntegrationConfig } from '../config/schema.js';
import { describeError, isSignetError } from '../errors.js';
import { asRedisUnavailable } from '../queue/redis-errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SignJobData, SignQueue } from '../queue/sign-queue.js';
import type { RegistryDirectory } from '../registry/directory.js';
import type { StatusStore, StatusUpdate } from '../status/store.js';
import type { ScanGate } from '../scan/gate.js';
import { formatReference, isAttachmentTag, isValidDigest, isValidRepository, isValidTag } from '../registry/reference.js';
import { adapterFor } from './adapters/index.js';
import { sharedSecretCheck } from './auth.js';
import { BodyError, declaredLength, readBody, refuse, sendJson, type BodyLimits } from './plain-http.js';
import { PreAuthSlots } from './preauth.js';
import { TokenBucket } from './rate-limit.js';
import { Rejections } from './rejections.js';
import type { AdapterEvent, AdapterResult, Authentication, IgnoredItem, RequestHead, ScanEvent, WebhookAdapter } from './types.js';

export interface HookDeps {
  config: Config;
  registries: RegistryDirectory;
  rules: RuleMatcher;
  queue: Pick<SignQueue, 'enqueueMany'>;
  metrics: Metrics;
  logger: Logger;
  /** Where a push not signed by decision (a rule's tag filter or conditions, or no rule matching) is recorded as skipped(reason) (the receiver's ReceiverDeps carries it). */
  status?: Pick<StatusStore, 'record'> | undefined;
  /** The scan gate: a registry's scan event is stored there and the push waiting for it queued again (src/scan/gate.ts). */
  scanGate?: Pick<ScanGate, 'onScan'> | undefined;
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
  name: string;
  integration: IntegrationConfig;
  adapter: WebhookAdapter<any>;
  /** How its calls authenticate (decided once, here). */
  auth: Authentication;
  /** Spent by authenticated calls only. */
  bucket: TokenBucket;
  /** Spent by failed authentications: 401 while it lasts, then 429 and a closed connection. */
  failures: TokenBucket;
}

/** How long a call waits, when every pre-authentication read is taken, for its body to have arrived whole anyway. */
const WHOLE_BODY_WAIT_MS = 25;

export function createHookHandler(deps: HookDeps): HookHandler {
  const { config, logger, metrics } = deps;
  const server = config.server;
  const endpoints = new Map<string, Endpoint>(
    config.integrations.map((i) => {
      const adapter = adapterFor(i.kind)!;
      const auth: Authentication = adapter.authentication?.(i) ?? { phase: 'headers', verify: sharedSecretCheck(i.secret, i.insecure) };
      return [
        i.name,
        { name: i.name, integration: i, adapter, auth, bucket: new TokenBucket(i.rateLimit), failures: new TokenBucket(server.authFailureRateLimit) },
      ];
    }),
  );
  const limits = (drain: boolean): BodyLimits => ({
    limit: server.bodyLimitBytes,
    timeoutMs: server.bodyTimeoutMs,
    minBytesPerSecond: server.minBodyBytesPerSecond,
    drain,
  });
  const authenticated = limits(true);
  const preAuth = limits(false);
  const slots = new PreAuthSlots(server.maxPreAuthBodies, metrics.webhookPreAuthBodies);
  const rejections = new Rejections(metrics, logger);
  const count = (integration: string, outcome: string, n = 1): void => metrics.webhookEvents.inc({ integration, outcome }, n);
  // The one line per accepted push holds only what this handler built (request id, integration
  // name, references admit() checked), never a credential: it skips pino's redaction pass (a copy
  // of the logged object and a walk of every redaction path, about 15 % of the CPU at peak).
  const pushLog = logger.child({}, { redact: [] });
  // the pusher a rule's conditions see: only one the event's integration vouches for (as the worker decides)
  const pusherOf = pusherPolicy(config);

  /** A failed authentication: 401 within the integration's failure budget, else 429 and the connection closed. */
  function unauthorized(req: IncomingMessage, res: ServerResponse, endpoint: Endpoint): void {
    count(endpoint.name, 'unauthorized');
    const wait = endpoint.failures.take();
    if (wait > 0) {
      rejections.record(endpoint.name, 'throttled_auth', req.socket.remoteAddress);
      return refuse(req, res, 429, { error: 'too many failed authentications' }, { 'retry-after': String(Math.max(1, Math.ceil(wait))) });
    }
    rejections.record(endpoint.name, 'unauthorized', req.socket.remoteAddress);
    refuse(req, res, 401, { error: 'unauthorized' });
  }

  /** Answers a body that could not be read; the connection is closed unless the request was read whole. */
  function bodyFailed(req: IncomingMessage, res: ServerResponse, endpoint: Endpoint, err: BodyError, authed: boolean): void {
    if (req.socket.destroyed) return; // the sender went away mid-body: nobody to answer
    if (err.reason && (!authed || err.status === 408)) rejections.record(endpoint.name, err.reason, req.socket.remoteAddress);
    else count(endpoint.name, 'malformed');
    if (req.complete) return sendJson(res, err.status, { error: err.message });
    refuse(req, res, err.status, { error: err.message });
  }

  /** A call's authentication outcome, never throwing (an authenticator that throws fails the check). */
  async function check(name: string, run: () => boolean | Promise<boolean>): Promise<boolean> {
    try {
      return await run();
    } catch (err) {
      logger.debug({ integration: name, err: describeError(err) }, 'webhook authentication error');
      return false;
    }
  }

  /** The body of a call not yet authenticated, read in one of the bounded slots; undefined when answered already. */
  async function readBeforeAuth(req: IncomingMessage, res: ServerResponse, endpoint: Endpoint): Promise<Buffer | undefined> {
    if (declaredLength(req) > server.bodyLimitBytes) {
      bodyFailed(req, res, endpoint, new BodyError(413, `body larger than ${server.bodyLimitBytes} bytes`, 'body_too_large'), false);
      return undefined;
    }
    const release = slots.tryAcquire();
    // Every slot taken: a body that has already arrived whole (as a webhook's usually does, in the
    // packets of its headers) costs nothing more to check; any other is refused unread.
    if (!release && !(await arrivedWhole(req))) {
      rejections.record(endpoint.name, 'preauth_busy', req.socket.remoteAddress);
      refuse(req, res, 503, { error: 'busy, retry later' }, { 'retry-after': '1' });
      return undefined;
    }
    try {
      return await readBody(req, preAuth);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      bodyFailed(req, res, endpoint, err, false);
      return undefined;
    } finally {
      release?.();
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const endpoint = endpoints.get(name);
    if (!endpoint) return refuse(req, res, 404, { error: 'unknown integration' });
    const { integration, adapter, auth } = endpoint;
    const head: RequestHead = { headers: req.headers, query: queryOf(req.url) };

    let body: Buffer | undefined;
    if (auth.phase === 'headers') {
      if (!(await check(name, () => auth.verify(head)))) return unauthorized(req, res, endpoint);
    } else {
      if (!(await check(name, () => auth.present(head)))) return unauthorized(req, res, endpoint);
      body = await readBeforeAuth(req, res, endpoint);
      if (!body) return;
      const raw = { ...head, body };
      if (!(await check(name, () => auth.verify(raw)))) return unauthorized(req, res, endpoint);
    }

    const wait = endpoint.bucket.take();
    if (wait > 0) {
      count(name, 'throttled');
      const headers = { 'retry-after': String(Math.max(1, Math.ceil(wait))) };
      const answer = { error: 'rate limit exceeded' };
      return body ? sendJson(res, 429, answer, headers) : refuse(req, res, 429, answer, headers);
    }

    if (!body) {
      try {
        body = await readBody(req, authenticated);
      } catch (err) {
        if (!(err instanceof BodyError)) throw err;
        return bodyFailed(req, res, endpoint, err, true);
      }
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
      // never the body (nor the parser's message, which quotes it): its size only
      logger.warn({ requestId, integration: name, bytes: body.length }, 'webhook body is not valid JSON: answered 400');
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
    const skips: StatusUpdate[] = [];
    for (const e of parsed.events) {
      const ref = formatReference(e);
      const verdict = admit(
        e,
        deps,
        (registry) => pusherOf({ integration: name, ...(e.pusher !== undefined ? { pusher: e.pusher } : {}) }, registry, e.repository).pusher,
      );
      if ('drop' in verdict) {
        ignored.push({ reason: verdict.drop, ref });
        count(name, verdict.refused ? 'refused' : 'ignored');
        if (verdict.refused) logger.warn({ requestId, integration: name, host: e.host }, `push refused: ${verdict.drop}`);
        if (verdict.skipped) {
          // not signed by decision (a rule's tag filter or condition, or no rule): kept in status
          // as skipped(reason), as the worker keeps its skips; one record and one line per push
          const s = verdict.skipped;
          skips.push({
            state: 'skipped',
            repository: `${s.registry}/${e.repository}`,
            ...(e.digest ? { digest: e.digest } : {}),
            ...(e.tag ? { tag: e.tag } : {}),
            ...(s.rule !== undefined ? { rule: s.rule } : {}),
            reason: verdict.drop,
            requestId,
          });
          pushLog.info({ requestId, integration: name, ref }, `push not signed: ${verdict.drop}`);
        }
        continue;
      }
      // Object.assign, not a spread: events come in many shapes, and spreading them was 10x slower
      jobs.push({ event: Object.assign({ integration: name, receivedAt }, e), registry: verdict.registry, requestId });
      refs.push(ref);
    }
    if (parsed.scans?.length) {
      try {
        await scanEvents(parsed.scans, { deps, integration, requestId, jobs, refs, ignored, count: (outcome) => count(name, outcome) });
      } catch (err) {
        count(name, 'unavailable', parsed.scans.length);
        logger.error({ requestId, integration: name, err: describeError(err) }, 'scan gate unavailable: answering 503 so the registry retries');
        return sendJson(res, 503, { error: 'scan gate unavailable, retry later' }, { 'retry-after': '5' });
      }
    }
    if (ignored.length && logger.isLevelEnabled('debug')) logger.debug({ requestId, integration: name, ignored }, 'events not queued');
    // the skip records and the jobs go to Redis together (one round trip each, not one after the other)
    const recorded =
      skips.length && deps.status
        ? deps.status.record(skips).catch((err: unknown) => {
            // the answer still names the reason; only the record is missing
            logger.warn({ requestId, integration: name, err: describeError(asRedisUnavailable(err, 'status record')) }, 'could not record status');
          })
        : undefined;
    let ids: string[];
    try {
      ids = jobs.length ? await deps.queue.enqueueMany(jobs) : [];
    } catch (err) {
      await recorded;
      count(name, 'unavailable', jobs.length);
      const e = asRedisUnavailable(err, 'queue');
      logger.error({ requestId, integration: name, err: describeError(e) }, 'queue unavailable: answering 503 so the registry retries');
      // the code says which: REDIS_UNAVAILABLE, or REDIS_NOT_REPLICATED (redis.ack: no replica confirmed in time)
      return sendJson(res, 503, { error: 'queue unavailable, retry later', code: isSignetError(e) ? e.code : 'INTERNAL' }, { 'retry-after': '5' });
    }
    await recorded;
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

/** Whether the request's body has been received whole (parsed, not yet read) now or within WHOLE_BODY_WAIT_MS. */
async function arrivedWhole(req: IncomingMessage): Promise<boolean> {
  await new Promise((r) => setImmediate(r));
  if (req.complete) return true;
  await new Promise((r) => setTimeout(r, WHOLE_BODY_WAIT_MS));
  return req.complete;
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
 * A registry's scan results: each is stored with the scan gate (when a rule with require.scan
 * covers the image), and the push of that digest signet remembers, waiting for it or decided on
 * an earlier scan, is queued to be decided on this one (the worker asks the gate again).
 */
async function scanEvents(
  scans: readonly ScanEvent[],
  ctx: {
    deps: HookDeps;
    integration: IntegrationConfig;
    requestId: string;
    jobs: SignJobData[];
    refs: string[];
    ignored: IgnoredItem[];
    count: (outcome: string) => void;
  },
): Promise<void> {
  const { deps, integration } = ctx;
  for (const s of scans) {
    const ref = `${s.host}/${s.repository}@${s.digest}`;
    const drop = (reason: string, outcome = 'ignored') => {
      ctx.ignored.push({ reason, ref });
      ctx.count(outcome);
    };
    const known = deps.registries.resolve(s.host);
    if (!known) drop(`registry host ${s.host} is not in registries (not contacted)`, 'refused');
    else if (!isValidRepository(s.repository) || !isValidDigest(s.digest)) drop('invalid repository name or digest', 'refused');
    else if (!deps.rules.find(known.config.host, s.repository)?.rule.require?.scan) drop('scan result for an image no rule with require.scan covers');
    else if (!deps.scanGate) drop('scan result not used: this process has no scan gate');
    else {
      const host = known.config.host;
      // an unauthenticated sender's scan is not taken: it only makes the worker ask the registry's API
      const pushes = await deps.scanGate.onScan(host, s.repository, s.digest, s.report, !integration.insecure);
      if (pushes.length === 0) drop(`scan result recorded (${s.report.status}); no push of this digest waits for it`);
      for (const push of pushes) {
        ctx.jobs.push({ ...push, event: { ...push.event, digest: s.digest }, requestId: ctx.requestId });
        ctx.refs.push(
          formatReference({ host: push.event.host, repository: push.event.repository, ...(push.event.tag ? { tag: push.event.tag } : {}), digest: s.digest }),
        );
      }
    }
  }
}

/**
 * The configured registry an event's job goes to, or why it is not queued (`refused` marks a
 * security matter: a host not configured, a name that could escape a registry URL).
 */
function admit(
  e: AdapterEvent,
  deps: HookDeps,
  vouchedPusher: (registry: string) => string | undefined,
): { registry: string } | { drop: string; refused?: boolean; skipped?: { registry: string; rule?: number } } {
  if (e.tag && isAttachmentTag(e.tag)) return { drop: 'signature or attachment tag (written by a signer)' };
  const known = deps.registries.resolve(e.host);
  if (!known) return { drop: `registry host ${e.host} is not in registries (not contacted)`, refused: true };
  if (!isValidRepository(e.repository)) return { drop: 'invalid repository name', refused: true };
  if (e.tag !== undefined && !isValidTag(e.tag)) return { drop: 'invalid tag', refused: true };
  if (e.digest !== undefined && !isValidDigest(e.digest)) return { drop: 'invalid digest', refused: true };
  const host = known.config.host;
  const decided = decideRule(deps.rules, host, e.repository, e.tag, { push: { pusher: vouchedPusher(host) } });
  // A skip is kept in status when it is a decision about a push someone may ask about: a rule's
  // conditions, or a tag a tag filter or no rule excludes. Untagged manifests (an index's
  // platform manifests, referrers such as signet's own bundles) are not: they would be a record
  // or more per real push, and the tagged push's row answers for them.
  if ('skip' in decided) {
    const kept = decided.condition || e.tag !== undefined;
    return { drop: decided.skip, ...(kept ? { skipped: { registry: host, ...(decided.index !== undefined ? { rule: decided.index } : {}) } } : {}) };
  }
  return { registry: known.config.host };
}
