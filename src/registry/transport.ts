/**
 * The edge between signet and one registry: every HTTP request to it (and to its token service)
 * goes through `RegistryTransport.fetch`, which gives each request an overall deadline (the
 * registry's `timeoutMs`, an AbortSignal that also aborts the body: undici's own timers are per
 * chunk, so a registry dripping a byte every few seconds never trips them) and reads each body
 * through `readCapped` (manifests 4 MiB as distribution enforces, tokens 64 KiB, JSON listings
 * 4 MiB, error bodies 16 KiB read for their message only). On top: auth (challenge, token cache,
 * credential refresh), the per-registry concurrency limit, and every failure turned into a
 * SignetError whose code alone says whether it is retried (src/errors.ts RETRYABLE).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import type { RegistryConfig } from '../config/schema.js';
import { BodyTooLargeError, READ_LIMITS, readCapped } from '../edge/read.js';
import { parseRetryAfter } from '../edge/retry-after.js';
import { SignetError } from '../errors.js';
import { Semaphore } from '../util/semaphore.js';
import { basicHeader, checkRealm, parseChallenge, TokenCache, type Challenge } from './auth.js';
import { createCredentialSource, type CredentialSource, type RegistryCredentials } from './credentials/index.js';
import { errorDetail, parseRegistryJson, tokenResponseSchema } from './schemas.js';

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** What a request is about, for metrics: manifests, blobs, blob uploads, the token service, or the rest (catalog, tags, referrers, ping). */
export type RequestKind = 'manifest' | 'blob' | 'upload' | 'token' | 'other';

export function requestKind(path: string): RequestKind {
  if (path.includes('/blobs/uploads/')) return 'upload';
  if (path.includes('/manifests/')) return 'manifest';
  if (path.includes('/blobs/')) return 'blob';
  return 'other';
}

/** The most signet reads of a successful answer, by what it is about. */
const BODY_LIMITS: Record<RequestKind, number> = {
  manifest: READ_LIMITS.manifest,
  // signet reads only small blobs (signature payloads, bundles); callers may ask for less
  blob: READ_LIMITS.json,
  upload: READ_LIMITS.error,
  token: READ_LIMITS.token,
  other: READ_LIMITS.json,
};

/** One request to this registry, for `call`. */
export interface Call {
  method: Method;
  path: string;
  repository: string;
  /** Push scope is needed for writes. */
  push: boolean;
  /** A token scope other than the repository's (the catalog: `registry:catalog:*`). */
  scope?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Statuses the caller handles itself (no error thrown). */
  ok: number[];
  /** The most bytes of a 2xx body read (default by kind: manifests 4 MiB, JSON and blobs 4 MiB); more is REGISTRY_PROTOCOL. */
  maxBytes?: number;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface RegistryStats {
  requests: number;
}

export class RegistryTransport {
  readonly host: string;
  readonly base: string;
  readonly stats: RegistryStats = { requests: 0 };
  /** Called with every registry (and token service) answer's status, or 'network' when none came; set by the runtime for metrics. */
  onResponse: ((method: string, status: number | 'network', kind: RequestKind) => void) | undefined;
  private readonly dispatcher: Dispatcher;
  private readonly tokens = new TokenCache();
  private readonly limiter: Semaphore;
  /** Where credentials come from (static, Docker config, ECR, ACR, GAR); asked only when a challenge needs them. */
  private readonly credentials: CredentialSource | undefined;

  constructor(
    private readonly cfg: RegistryConfig,
    opts: { baseDir?: string; dispatcher?: Dispatcher; credentials?: CredentialSource } = {},
  ) {
    this.host = cfg.host;
    this.base = `${cfg.insecure ? 'http' : 'https'}://${cfg.host}`;
    const ca = cfg.caFile ? readFileSync(path.resolve(opts.baseDir ?? '.', cfg.caFile)) : undefined;
    this.dispatcher =
      opts.dispatcher ??
      new Agent({
        connections: cfg.maxConcurrency,
        keepAliveTimeout: 30_000,
        headersTimeout: cfg.timeoutMs,
        bodyTimeout: cfg.timeoutMs,
        connect: { timeout: Math.min(cfg.timeoutMs, 10_000), ...(ca ? { ca } : {}) },
      });
    this.limiter = new Semaphore(cfg.maxConcurrency);
    this.credentials =
      opts.credentials ??
      createCredentialSource(cfg.credentials, {
        host: cfg.host,
        insecure: cfg.insecure,
        baseDir: opts.baseDir ?? '.',
        dispatcher: this.dispatcher,
        timeoutMs: cfg.timeoutMs,
      });
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** GET /v2/ without credentials, for readiness: the HTTP status of any answer (401 included); throws when none comes in time. */
  async ping(timeoutMs: number): Promise<number> {
    const res = await request(`${this.base}/v2/`, {
      method: 'GET',
      headers: { 'user-agent': 'signet' },
      dispatcher: this.dispatcher,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body.dump();
    return res.statusCode;
  }

  private scope(repository: string, push: boolean): string {
    return `repository:${repository}:${push ? 'pull,push' : 'pull'}`;
  }

  /**
   * One request with auth (challenge, token cache, credential refresh) under the per-registry
   * concurrency limit. Statuses in `c.ok` are returned to the caller; others throw.
   */
  async call(c: Call): Promise<Reply> {
    return this.limiter.run(async () => {
      // Writes use a pull,push token; reads reuse it when we have one (fewer token round trips).
      const scope = c.scope ?? this.scope(c.repository, c.push);
      const wide = c.scope ?? this.scope(c.repository, true);
      let auth = this.tokens.get(scope) ?? (c.push ? undefined : this.tokens.get(wide));
      if (!auth && this.tokens.challenge) auth = await this.authorize(this.tokens.challenge, wide);
      let r = await this.send(c, auth);
      if (r.status === 401) {
        const header = headerValue(r.headers['www-authenticate']);
        const challenge = header ? parseChallenge(header) : undefined;
        if (!challenge) throw new SignetError('REGISTRY_AUTH_FAILED', `registry ${this.host} answered 401 without a usable challenge`, { status: 401 });
        this.tokens.clear(scope);
        // the challenge is checked (realm host, scheme) by answering it, and kept for later
        // requests only once it worked: one bad 401 (a realm on another host) must not stick
        auth = await this.authorize(challenge, wide);
        r = await this.send(c, auth);
        if (r.status === 401 && this.credentials?.invalidate()) {
          // refused again, with credentials that came from a cache: fetch fresh ones, once
          this.tokens.clear(scope);
          auth = await this.authorize(challenge, wide);
          r = await this.send(c, auth);
        }
        if (r.status === 401) {
          throw new SignetError(
            'REGISTRY_AUTH_FAILED',
            `registry ${this.host} refused signet's credentials for ${c.repository || `${c.method} ${c.path}`} (HTTP 401)`,
            { status: 401 },
          );
        }
        this.tokens.challenge = challenge;
      }
      return this.check(c, r);
    });
  }

  /**
   * Answers a challenge with an Authorization header (and caches it for the scope). Credentials
   * are fetched here, when a challenge needs them; if the token service refuses credentials that
   * came from a cache, fresh ones are fetched once.
   */
  private async authorize(challenge: Challenge, scope: string): Promise<string | undefined> {
    if (challenge.scheme !== 'basic' && challenge.scheme !== 'bearer') {
      throw new SignetError('REGISTRY_AUTH_FAILED', `registry ${this.host} wants unsupported auth scheme "${challenge.scheme.slice(0, 50)}"`);
    }
    for (let attempt = 0; ; attempt++) {
      const creds = this.credentials ? await this.credentials.get() : undefined;
      try {
        return await this.answer(challenge, scope, creds);
      } catch (err) {
        const refused = err instanceof SignetError && err.code === 'REGISTRY_AUTH_FAILED' && err.status !== undefined;
        if (attempt === 0 && refused && this.credentials?.invalidate()) continue;
        throw err;
      }
    }
  }

  private async answer(challenge: Challenge, scope: string, creds: RegistryCredentials | undefined): Promise<string | undefined> {
    // a header made from expiring credentials (ECR, ACR, GAR) is not kept past their expiry
    const ttl = (max: number): number => (creds?.expiresAt ? Math.max(1, Math.min(max, (creds.expiresAt - Date.now()) / 1000)) : max);
    if (challenge.scheme === 'basic') {
      if (!creds || !('username' in creds) || !('password' in creds)) {
        throw new SignetError(
          'REGISTRY_AUTH_FAILED',
          creds
            ? `registry ${this.host} wants Basic auth but ${this.credentials?.describe() ?? 'the credentials'} gave no username and password`
            : `registry ${this.host} wants Basic auth but no credentials are configured`,
        );
      }
      const h = basicHeader(creds.username, creds.password);
      this.tokens.set(scope, h, ttl(3600));
      return h;
    }
    if (creds && 'token' in creds) {
      const h = `Bearer ${creds.token}`;
      this.tokens.set(scope, h, ttl(3600));
      return h;
    }
    const realm = challenge.params['realm'];
    if (!realm) throw new SignetError('REGISTRY_AUTH_FAILED', `registry ${this.host} sent a Bearer challenge without realm`);
    const url = checkRealm(realm, [this.host, ...this.cfg.authHosts], this.cfg.insecure);
    const service = challenge.params['service'];
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'signet' };
    let method: 'GET' | 'POST' = 'GET';
    let body: Buffer | undefined;
    if (creds && 'identityToken' in creds) {
      // Docker's identitytoken: an OAuth2 refresh token, POSTed to the token service
      method = 'POST';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'signet' });
      if (scope) form.set('scope', scope); // none for GET /v2/ (RegistryClient.checkAccess)
      if (service) form.set('service', service);
      body = Buffer.from(form.toString());
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (service) url.searchParams.set('service', service);
      if (scope) url.searchParams.set('scope', scope);
      if (creds && 'username' in creds && 'password' in creds) headers['authorization'] = basicHeader(creds.username, creds.password);
    }
    const what = 'token request';
    const res = await this.fetch(url, { method, headers, ...(body ? { body } : {}) }, what, 'token');
    if (res.status === 401 || res.status === 403) {
      throw new SignetError('REGISTRY_AUTH_FAILED', `token service of ${this.host} refused signet's credentials (HTTP ${res.status})`, { status: res.status });
    }
    if (res.status === 429 || res.status >= 500) throw upstreamError(this.host, what, res);
    if (res.status !== 200) {
      throw new SignetError('REGISTRY_AUTH_FAILED', `token service of ${this.host} answered HTTP ${res.status}`, { status: res.status });
    }
    const parsed = parseRegistryJson(res.body, tokenResponseSchema, `token service of ${this.host}`);
    const h = `Bearer ${parsed.token ?? parsed.access_token}`;
    this.tokens.set(scope, h, parsed.expires_in ?? 60);
    return h;
  }

  private async send(c: Call, auth: string | undefined): Promise<Reply> {
    const headers: Record<string, string> = { 'user-agent': 'signet', ...c.headers };
    if (auth) headers['authorization'] = auth;
    if (c.body) headers['content-length'] = String(c.body.length);
    return this.fetch(
      `${this.base}${c.path}`,
      { method: c.method, headers, ...(c.body ? { body: c.body } : {}) },
      `${c.method} ${c.path}`,
      requestKind(c.path),
      c.maxBytes,
    );
  }

  /**
   * The one HTTP read: a request under the registry's deadline, its body read up to the cap for
   * its kind (an error status: a short prefix, for the message). A deadline passed, a connection
   * lost or refused: REGISTRY_UNAVAILABLE (retried); a body over its cap: REGISTRY_PROTOCOL.
   */
  private async fetch(
    url: string | URL,
    init: { method: Method; headers: Record<string, string>; body?: Buffer },
    what: string,
    kind: RequestKind,
    maxBytes?: number,
  ): Promise<Reply> {
    const deadline = AbortSignal.timeout(this.cfg.timeoutMs);
    const fail = (err: unknown) => networkError(this.host, what, err, deadline.aborted ? this.cfg.timeoutMs : undefined);
    let res: Dispatcher.ResponseData;
    try {
      this.stats.requests++;
      res = await request(url, { ...init, dispatcher: this.dispatcher, signal: deadline });
    } catch (err) {
      this.onResponse?.(init.method, 'network', kind);
      throw fail(err);
    }
    this.onResponse?.(init.method, res.statusCode, kind);
    const status = res.statusCode;
    const success = status >= 200 && status < 300;
    const limit = success ? (maxBytes ?? BODY_LIMITS[kind]) : READ_LIMITS.error;
    let body: Buffer;
    try {
      if (init.method === 'HEAD') body = (await res.body.dump(), Buffer.alloc(0));
      else body = await readCapped(res.body, limit, res.headers['content-length']);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw fail(err);
      // an error body is only read for its message: a large one is no reason to fail differently
      if (!success) body = Buffer.alloc(0);
      else
        throw new SignetError(
          'REGISTRY_PROTOCOL',
          `registry ${this.host}: ${what} answered a body larger than ${describeBytes(limit)}, the limit for ${kind === 'other' ? 'JSON answers' : `${kind} answers`}`,
          { status, cause: err },
        );
    }
    return { status, headers: res.headers, body };
  }

  private check(c: Call, r: Reply): Reply {
    if (c.ok.includes(r.status)) return r;
    if (r.status === 429 || r.status >= 500) throw upstreamError(this.host, `${c.method} ${c.path}`, r);
    if (r.status === 403) {
      throw new SignetError('REGISTRY_DENIED', `registry ${this.host} denied ${c.method} on ${c.repository} (HTTP 403${errorDetail(r.body)})`, { status: 403 });
    }
    if (r.status === 404) {
      throw new SignetError('MANIFEST_NOT_FOUND', `registry ${this.host}: ${c.method} ${c.path} not found`, { status: 404 });
    }
    throw new SignetError('REGISTRY_PROTOCOL', `registry ${this.host}: ${c.method} ${c.path} answered HTTP ${r.status}${errorDetail(r.body)}`, {
      status: r.status,
    });
  }
}

export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function describeBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

/** 429 or 5xx: retried, never sooner than the registry's Retry-After (capped: src/edge/retry-after.ts). */
function upstreamError(host: string, what: string, r: Reply): SignetError {
  const raw = r.headers['retry-after'];
  const ra = parseRetryAfter(raw);
  const capped = ra !== undefined && parseRetryAfter(raw, { max: Infinity })! > ra;
  return new SignetError(
    r.status === 429 ? 'REGISTRY_THROTTLED' : 'REGISTRY_UNAVAILABLE',
    `registry ${host}: ${what} answered HTTP ${r.status}${ra !== undefined ? ` (Retry-After ${ra}s${capped ? ', capped' : ''})` : ''}${errorDetail(r.body)}`,
    { status: r.status, ...(ra !== undefined ? { retryAfterSeconds: ra } : {}) },
  );
}

/** No answer, a deadline passed, or a connection lost mid-body: REGISTRY_UNAVAILABLE (retried). */
function networkError(host: string, what: string, err: unknown, timedOutAfterMs: number | undefined): SignetError {
  const e = err as { code?: string; message?: string };
  const timeout = timedOutAfterMs !== undefined || /^UND_ERR_(HEADERS|BODY|CONNECT)_TIMEOUT$/.test(e.code ?? '');
  if (timeout) {
    return new SignetError(
      'REGISTRY_UNAVAILABLE',
      `registry ${host} timed out (${what})${timedOutAfterMs !== undefined ? `: no complete answer within ${timedOutAfterMs} ms` : `: ${e.code}`}`,
      { cause: err },
    );
  }
  return new SignetError('REGISTRY_UNAVAILABLE', `registry ${host} unreachable (${what}): ${e.code ?? e.message ?? String(err)}`, { cause: err });
}
