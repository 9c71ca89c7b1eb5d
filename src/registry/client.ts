/**
 * signet's OCI distribution client: the only code that speaks HTTP to registries, and only to the
 * registry it was built for. Manifests are fetched by digest or tag and their sha256 checked; blobs
 * are uploaded monolithically. 429/5xx/network errors become retryable SignetErrors in one place.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { SignetError } from '../errors.js';
import { Semaphore } from '../util/semaphore.js';
import { sha256Digest } from '../util/digest.js';
import type { RegistryConfig } from '../config/schema.js';
import { basicHeader, checkRealm, parseChallenge, TokenCache, type Challenge } from './auth.js';
import { createCredentialSource, type CredentialSource, type RegistryCredentials } from './credentials/index.js';
import { MANIFEST_ACCEPT } from './media-types.js';
import { isValidDigest, isValidRepository, isValidTag } from './reference.js';

export interface Manifest {
  body: Buffer;
  mediaType: string;
  /** sha256 of the bytes the registry served (what we sign). */
  digest: string;
}

export interface RegistryStats {
  requests: number;
}

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** What a request is about, for metrics: manifests, blobs, blob uploads, the token service, or the rest (catalog, tags, referrers, ping). */
export type RequestKind = 'manifest' | 'blob' | 'upload' | 'token' | 'other';

export function requestKind(path: string): RequestKind {
  if (path.includes('/blobs/uploads/')) return 'upload';
  if (path.includes('/manifests/')) return 'manifest';
  if (path.includes('/blobs/')) return 'blob';
  return 'other';
}

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
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export class RegistryClient {
  readonly host: string;
  readonly stats: RegistryStats = { requests: 0 };
  /** Called with every registry (and token service) answer's status, or 'network' when none came; set by the runtime for metrics. */
  onResponse: ((method: string, status: number | 'network', kind: RequestKind) => void) | undefined;
  private readonly base: string;
  private readonly dispatcher: Dispatcher;
  private readonly tokens = new TokenCache();
  private readonly limiter: Semaphore;
  /** Blob uploads under way, by repository@digest (see uploadBlob). */
  private readonly uploads = new Map<string, Promise<string>>();
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

  /** GET a manifest by tag or digest; the digest is computed from the bytes and checked. */
  async getManifest(repository: string, reference: string, accept = MANIFEST_ACCEPT): Promise<Manifest | undefined> {
    checkRepo(repository);
    checkManifestRef(reference);
    const r = await this.call({
      method: 'GET',
      path: `/v2/${repository}/manifests/${reference}`,
      repository,
      push: false,
      headers: { accept },
      ok: [200, 404],
    });
    if (r.status === 404) return undefined;
    const digest = sha256Digest(r.body);
    if (isValidDigest(reference) && digest !== reference) {
      throw new SignetError('DIGEST_MISMATCH', `registry ${this.host} served ${repository}@${reference} with content digest ${digest}`);
    }
    const header = headerValue(r.headers['docker-content-digest']);
    if (header && header !== digest && header.startsWith('sha256:')) {
      throw new SignetError('DIGEST_MISMATCH', `registry ${this.host} says ${repository}:${reference} is ${header} but served bytes hash to ${digest}`);
    }
    const mediaType = (headerValue(r.headers['content-type']) ?? '').split(';')[0]!.trim() || mediaTypeOf(r.body);
    return { body: r.body, mediaType, digest };
  }

  /** HEAD a manifest: its digest as the registry reports it, or undefined when absent. */
  async headManifest(repository: string, reference: string, accept = MANIFEST_ACCEPT): Promise<{ digest?: string; mediaType?: string } | undefined> {
    checkRepo(repository);
    checkManifestRef(reference);
    const r = await this.call({
      method: 'HEAD',
      path: `/v2/${repository}/manifests/${reference}`,
      repository,
      push: false,
      headers: { accept },
      ok: [200, 404],
    });
    if (r.status === 404) return undefined;
    const digest = headerValue(r.headers['docker-content-digest']);
    const mediaType = headerValue(r.headers['content-type'])?.split(';')[0]?.trim();
    return { ...(digest ? { digest } : {}), ...(mediaType ? { mediaType } : {}) };
  }

  /** PUT a manifest under a tag or its digest. Returns the digest of the bytes. */
  async putManifest(repository: string, reference: string, body: Buffer, mediaType: string): Promise<string> {
    checkRepo(repository);
    checkManifestRef(reference);
    const r = await this.call({
      method: 'PUT',
      path: `/v2/${repository}/manifests/${reference}`,
      repository,
      push: true,
      headers: { 'content-type': mediaType },
      body,
      ok: [201, 200, 202, 400, 403, 405, 409, 412],
    });
    if (r.status >= 400) {
      throw new SignetError(
        'SIGNATURE_WRITE_REJECTED',
        `registry ${this.host} refused PUT ${repository}:${reference} (HTTP ${r.status}${errorDetail(r.body)}); immutable tags or missing push permission?`,
        { status: r.status },
      );
    }
    return sha256Digest(body);
  }

  /**
   * Every repository name the registry lists (GET /v2/_catalog?n=, following `Link: rel="next"`
   * on this registry; token scope `registry:catalog:*`). Names that are not valid repository
   * names are left out. Registries without a catalog API answer with an error (404/401/403).
   */
  async listRepositories(pageSize = 1000): Promise<string[]> {
    return this.listPaged(`/v2/_catalog?n=${pageSize}`, 'repositories', { repository: '', scope: 'registry:catalog:*' }).then((names) =>
      names.filter(isValidRepository),
    );
  }

  /** The tags of a repository (GET /v2/<name>/tags/list?n=, paginated like the catalog); [] when it is unknown. */
  async listTags(repository: string, pageSize = 1000): Promise<string[]> {
    checkRepo(repository);
    return this.listPaged(`/v2/${repository}/tags/list?n=${pageSize}`, 'tags', { repository }).then((tags) => tags.filter(isValidTag));
  }

  private async listPaged(first: string, field: 'repositories' | 'tags', on: { repository: string; scope?: string }): Promise<string[]> {
    const out: string[] = [];
    const seen = new Set<string>();
    for (let path: string | undefined = first; path && !seen.has(path); ) {
      seen.add(path);
      const r = await this.call({ method: 'GET', path, ...on, push: false, headers: { accept: 'application/json' }, ok: [200, 404] });
      if (r.status === 404) {
        if (field === 'tags') return out;
        throw new SignetError('REGISTRY_PROTOCOL', `registry ${this.host} has no catalog API (GET /v2/_catalog answered 404)`, { status: 404 });
      }
      let page: unknown;
      try {
        page = (JSON.parse(r.body.toString('utf8')) as Record<string, unknown>)[field];
      } catch {
        throw new SignetError('REGISTRY_PROTOCOL', `registry ${this.host}: GET ${path} returned invalid JSON`);
      }
      if (Array.isArray(page)) for (const v of page) if (typeof v === 'string') out.push(v);
      path = nextLink(r.headers['link'], this.base);
    }
    return out;
  }

  async blobExists(repository: string, digest: string): Promise<boolean> {
    checkRepo(repository);
    const r = await this.call({ method: 'HEAD', path: `/v2/${repository}/blobs/${digest}`, repository, push: false, ok: [200, 404] });
    return r.status === 200;
  }

  /**
   * Upload a blob (monolithic POST + PUT) unless the registry already has it. Returns its digest.
   * Concurrent uploads of the same bytes to the same repository share one upload: distribution
   * answers 500 to a HEAD of a blob whose link another request is writing at that moment (seen
   * with the empty config of referrer manifests, which every subject of an index uploads).
   */
  async uploadBlob(repository: string, data: Buffer, knownAbsent = false): Promise<string> {
    checkRepo(repository);
    const digest = sha256Digest(data);
    const key = `${repository}@${digest}`;
    const inFlight = this.uploads.get(key);
    if (inFlight) return inFlight;
    const upload = this.upload(repository, data, digest, knownAbsent).finally(() => this.uploads.delete(key));
    this.uploads.set(key, upload);
    return upload;
  }

  private async upload(repository: string, data: Buffer, digest: string, knownAbsent: boolean): Promise<string> {
    if (!knownAbsent && (await this.blobExists(repository, digest))) return digest;
    const start = await this.call({
      method: 'POST',
      path: `/v2/${repository}/blobs/uploads/`,
      repository,
      push: true,
      headers: { 'content-length': '0' },
      ok: [202, 201],
    });
    if (start.status === 201) return digest; // cross-mount or already present
    const location = headerValue(start.headers['location']);
    if (!location) throw new SignetError('REGISTRY_PROTOCOL', `registry ${this.host} gave no upload location`);
    const url = new URL(location, this.base);
    if (url.host !== this.host) throw new SignetError('REGISTRY_PROTOCOL', `upload location points to another host (${url.host})`);
    url.searchParams.set('digest', digest);
    await this.call({
      method: 'PUT',
      path: `${url.pathname}${url.search}`,
      repository,
      push: true,
      headers: { 'content-type': 'application/octet-stream' },
      body: data,
      ok: [201, 204],
    });
    return digest;
  }

  // ---- transport -------------------------------------------------------------------------

  private scope(repository: string, push: boolean): string {
    return `repository:${repository}:${push ? 'pull,push' : 'pull'}`;
  }

  /**
   * The transport every operation uses: auth (challenge, token cache, credential refresh), the
   * per-registry concurrency limit, and 429/5xx/network failures turned into retryable errors.
   * Statuses in `c.ok` are returned to the caller; others throw. Public for format modules
   * (bundles, referrers) that need requests this class has no method for.
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
        this.tokens.challenge = challenge;
        auth = await this.authorize(challenge, wide);
        r = await this.send(c, auth);
        if (r.status === 401 && this.credentials?.invalidate()) {
          // refused again, with credentials that came from a cache: fetch fresh ones, once
          this.tokens.clear(scope);
          auth = await this.authorize(challenge, wide);
          r = await this.send(c, auth);
        }
        if (r.status === 401) {
          throw new SignetError('REGISTRY_AUTH_FAILED', `registry ${this.host} refused signet's credentials for ${c.repository} (HTTP 401)`, { status: 401 });
        }
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
      throw new SignetError('REGISTRY_AUTH_FAILED', `registry ${this.host} wants unsupported auth scheme "${challenge.scheme}"`);
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
    const headers: Record<string, string> = { accept: 'application/json' };
    let method: 'GET' | 'POST' = 'GET';
    let body: string | undefined;
    if (creds && 'identityToken' in creds) {
      // Docker's identitytoken: an OAuth2 refresh token, POSTed to the token service
      method = 'POST';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'signet', scope });
      if (service) form.set('service', service);
      body = form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (service) url.searchParams.set('service', service);
      url.searchParams.set('scope', scope);
      if (creds && 'username' in creds && 'password' in creds) headers['authorization'] = basicHeader(creds.username, creds.password);
    }
    let res: Dispatcher.ResponseData;
    try {
      this.stats.requests++;
      res = await request(url, { method, headers, ...(body !== undefined ? { body } : {}), dispatcher: this.dispatcher });
    } catch (err) {
      this.onResponse?.(method, 'network', 'token');
      throw networkError(this.host, 'token request', err);
    }
    this.onResponse?.(method, res.statusCode, 'token');
    const text = await res.body.text();
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new SignetError('REGISTRY_AUTH_FAILED', `token service of ${this.host} refused signet's credentials (HTTP ${res.statusCode})`, { status: res.statusCode });
    }
    if (res.statusCode === 429 || res.statusCode >= 500) throw upstreamError(this.host, 'token request', res.statusCode, res.headers['retry-after']);
    if (res.statusCode !== 200) {
      throw new SignetError('REGISTRY_AUTH_FAILED', `token service of ${this.host} answered HTTP ${res.statusCode}`, { status: res.statusCode });
    }
    let parsed: { token?: string; access_token?: string; expires_in?: number };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new SignetError('REGISTRY_PROTOCOL', `token service of ${this.host} returned invalid JSON`);
    }
    const token = parsed.token ?? parsed.access_token;
    if (!token) throw new SignetError('REGISTRY_PROTOCOL', `token service of ${this.host} returned no token`);
    const h = `Bearer ${token}`;
    this.tokens.set(scope, h, typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60);
    return h;
  }

  private async send(c: Call, auth: string | undefined): Promise<Reply> {
    const headers: Record<string, string> = { 'user-agent': 'signet', ...c.headers };
    if (auth) headers['authorization'] = auth;
    if (c.body) headers['content-length'] = String(c.body.length);
    let res: Dispatcher.ResponseData;
    try {
      this.stats.requests++;
      res = await request(`${this.base}${c.path}`, {
        method: c.method,
        headers,
        ...(c.body ? { body: c.body } : {}),
        dispatcher: this.dispatcher,
      });
    } catch (err) {
      this.onResponse?.(c.method, 'network', requestKind(c.path));
      throw networkError(this.host, `${c.method} ${c.path}`, err);
    }
    this.onResponse?.(c.method, res.statusCode, requestKind(c.path));
    const body = c.method === 'HEAD' ? (await res.body.dump(), Buffer.alloc(0)) : Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body };
  }

  private check(c: Call, r: Reply): Reply {
    if (c.ok.includes(r.status)) return r;
    if (r.status === 429 || r.status >= 500) throw upstreamError(this.host, `${c.method} ${c.path}`, r.status, r.headers['retry-after']);
    if (r.status === 403) {
      throw new SignetError('REGISTRY_DENIED', `registry ${this.host} denied ${c.method} on ${c.repository} (HTTP 403${errorDetail(r.body)})`, { status: 403 });
    }
    if (r.status === 404) {
      throw new SignetError('MANIFEST_NOT_FOUND', `registry ${this.host}: ${c.method} ${c.path} not found`, { status: 404 });
    }
    throw new SignetError('REGISTRY_PROTOCOL', `registry ${this.host}: ${c.method} ${c.path} answered HTTP ${r.status}${errorDetail(r.body)}`, { status: r.status });
  }
}

function checkRepo(repository: string): void {
  if (!isValidRepository(repository)) throw new SignetError('INVALID_REFERENCE', `invalid repository name "${repository.slice(0, 200)}"`);
}

function checkManifestRef(reference: string): void {
  if (!isValidDigest(reference) && !isValidTag(reference)) {
    throw new SignetError('INVALID_REFERENCE', `invalid tag or digest "${reference.slice(0, 200)}"`);
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The path of a `Link: <...>; rel="next"` target on this registry (RFC 5988), or undefined. */
function nextLink(link: string | string[] | undefined, base: string): string | undefined {
  const v = Array.isArray(link) ? link.join(', ') : link;
  const m = v ? /<([^>]+)>\s*;\s*rel="?next"?/i.exec(v) : null;
  if (!m) return undefined;
  try {
    const u = new URL(m[1]!, base);
    return u.host === new URL(base).host && u.pathname.startsWith('/v2/') ? `${u.pathname}${u.search}` : undefined;
  } catch {
    return undefined;
  }
}

function mediaTypeOf(body: Buffer): string {
  try {
    const m = JSON.parse(body.toString('utf8')) as { mediaType?: string };
    return m.mediaType ?? '';
  } catch {
    return '';
  }
}

function errorDetail(body: Buffer): string {
  if (!body.length) return '';
  try {
    const j = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    const e = j.errors?.[0];
    if (e) return `: ${e.code ?? ''} ${e.message ?? ''}`.trimEnd().slice(0, 300);
  } catch {
    /* not JSON */
  }
  return '';
}

function retryAfterSeconds(v: string | string[] | undefined): number | undefined {
  const s = headerValue(v);
  if (!s) return undefined;
  const n = Number(s);
  if (Number.isFinite(n) && n >= 0) return n;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : Math.max(0, (t - Date.now()) / 1000);
}

function upstreamError(host: string, what: string, status: number, retryAfter: string | string[] | undefined): SignetError {
  const ra = retryAfterSeconds(retryAfter);
  return new SignetError(
    status === 429 ? 'REGISTRY_THROTTLED' : 'REGISTRY_UNAVAILABLE',
    `registry ${host}: ${what} answered HTTP ${status}${ra !== undefined ? ` (Retry-After ${ra}s)` : ''}`,
    { retryable: true, status, ...(ra !== undefined ? { retryAfterSeconds: ra } : {}) },
  );
}

function networkError(host: string, what: string, err: unknown): SignetError {
  const e = err as { code?: string; message?: string };
  return new SignetError('REGISTRY_UNAVAILABLE', `registry ${host} unreachable (${what}): ${e.code ?? e.message ?? String(err)}`, {
    retryable: true,
    cause: err,
  });
}
