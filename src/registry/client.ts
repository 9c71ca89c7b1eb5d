/**
 * signet's OCI distribution client: the operations signet needs on one registry (manifests by
 * digest or tag with their sha256 checked and their schema validated, tag and catalog listings
 * with bounded pagination, blob uploads in one request where the registry takes them, else two).
 * Every request goes through the registry's transport (src/registry/transport.ts: deadline,
 * capped reads, auth, errors), the only code that speaks HTTP to registries, and only to the
 * registry it was built for.
 */
import type { Dispatcher } from 'undici';
import type { RegistryConfig } from '../config/schema.js';
import { SignetError } from '../errors.js';
import { sha256Digest } from '../util/digest.js';
import type { CredentialSource } from './credentials/index.js';
import { MANIFEST_ACCEPT } from './media-types.js';
import { isValidDigest, isValidRepository, isValidTag } from './reference.js';
import { catalogSchema, errorDetail, parseManifest, parseRegistryJson, tagListSchema, type ManifestDocument } from './schemas.js';
import { headerValue, RegistryTransport, type Call, type Reply, type RegistryStats, type RequestKind } from './transport.js';

export { requestKind, type Call, type Method, type Reply, type RegistryStats, type RequestKind } from './transport.js';

export interface Manifest {
  body: Buffer;
  mediaType: string;
  /** sha256 of the bytes the registry served (what we sign). */
  digest: string;
  /** The body, parsed and checked against its media type's schema (src/registry/schemas.ts). */
  document: ManifestDocument;
}

/**
 * Bounds on one tag or catalog listing (the pages a `Link: rel="next"` chain may run to, and the
 * names kept): a registry serving an endless chain cannot grow signet without limit.
 */
export interface ListLimits {
  maxPages: number;
  maxNames: number;
  /**
   * Called when a bound is hit, with why; the names read so far are then returned. Without it,
   * hitting a bound is an error (REGISTRY_PROTOCOL).
   */
  onTruncated?: (why: string) => void;
}

/** 1,000 pages and 100,000 names per listing (a catalog or one repository's tags). */
export const LIST_LIMITS: Readonly<ListLimits> = { maxPages: 1000, maxNames: 100_000 };

/** How long an uploaded or seen blob is taken as present without asking (see RegistryClient.present). */
const PRESENT_TTL_MS = 10 * 60_000;
/**
 * The same for a shared constant blob (uploadBlob `shared`): every signature manifest of the
 * repository names it, so garbage collection keeps it while one is left; a PUT that finds it
 * gone uploads it again (putManifestWith).
 */
const SHARED_TTL_MS = 24 * 60 * 60_000;
const MAX_PRESENT = 10_000;

export class RegistryClient {
  readonly host: string;
  /** Blob uploads under way, by repository@digest (see uploadBlob). */
  private readonly uploads = new Map<string, Promise<string>>();
  /**
   * Blobs this client uploaded or saw (repository@digest -> when), so a blob every signature of a
   * repository shares (the `.sig` config, the empty config of referrer manifests) costs no request
   * each time. Bounded (MAX_PRESENT, oldest first) and expiring (PRESENT_TTL_MS, SHARED_TTL_MS).
   */
  private readonly present = new Map<string, number>();
  private readonly transport: RegistryTransport;
  /** Single-POST uploads: taken (true), not taken (false), not tried yet (undefined). See singlePostUpload. */
  private monolithic: boolean | undefined;

  constructor(cfg: RegistryConfig, opts: { baseDir?: string; dispatcher?: Dispatcher; credentials?: CredentialSource } = {}) {
    this.host = cfg.host;
    this.transport = new RegistryTransport(cfg, opts);
  }

  /** `http(s)://host`, what `Link` targets are resolved against (nextLink). */
  get base(): string {
    return this.transport.base;
  }

  get stats(): RegistryStats {
    return this.transport.stats;
  }

  /** Called with every registry (and token service) answer's status, or 'network' when none came; set by the runtime for metrics. */
  get onResponse(): ((method: string, status: number | 'network', kind: RequestKind) => void) | undefined {
    return this.transport.onResponse;
  }

  set onResponse(f: ((method: string, status: number | 'network', kind: RequestKind) => void) | undefined) {
    this.transport.onResponse = f;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /** GET /v2/ without credentials, for readiness: the HTTP status of any answer (401 included); throws when none comes in time. */
  ping(timeoutMs: number): Promise<number> {
    return this.transport.ping(timeoutMs);
  }

  /**
   * Whether the registry takes signet's credentials: an authenticated `GET /v2/` (answering its
   * challenge: Basic, or a token exchange without scope), and with `repository` a pull,push token
   * for it and `GET /v2/<repository>/tags/list` (404, a repository not pushed yet, is fine).
   * Throws REGISTRY_AUTH_FAILED (refused), REGISTRY_DENIED (403) or REGISTRY_UNAVAILABLE.
   */
  async checkAccess(repository?: string): Promise<void> {
    await this.call({ method: 'GET', path: '/v2/', repository: '', push: false, scope: '', ok: [200] });
    if (repository === undefined) return;
    checkRepo(repository);
    await this.call({ method: 'GET', path: `/v2/${repository}/tags/list`, repository, push: true, ok: [200, 404] });
  }

  /**
   * One request through the registry's transport: auth, host pinning, deadline, capped body,
   * 429/5xx -> retryable errors. Statuses in `c.ok` are returned; others throw. Public for format
   * modules (bundles, referrers) that need requests this class has no method for.
   */
  call(c: Call): Promise<Reply> {
    return this.transport.call(c);
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
    const contentType = (headerValue(r.headers['content-type']) ?? '').split(';')[0]!.trim();
    const what = isValidDigest(reference) ? `${repository}@${reference}` : `${repository}:${reference} (${digest})`;
    const { mediaType, document } = parseManifest(r.body, contentType, `registry ${this.host}: manifest ${what}`);
    return { body: r.body, mediaType, digest, document };
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
    if (r.status === 400 && /BLOB_UNKNOWN/.test(r.body.subarray(0, 4096).toString('utf8'))) {
      // a blob taken as present (this.present) may have been garbage-collected since: ask again next time
      for (const k of [...this.present.keys()]) if (k.startsWith(`${repository}@`)) this.present.delete(k);
      throw new SignetError(
        'SIGNATURE_BLOB_MISSING',
        `registry ${this.host} refused PUT ${repository}:${reference}: a blob it names is missing (HTTP 400${errorDetail(r.body)}); the retry uploads it again`,
        {
          status: r.status,
        },
      );
    }
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
   * on this registry; token scope `registry:catalog:*`), within `limits`. Names that are not valid
   * repository names are left out. Registries without a catalog API answer with an error (404/401/403).
   */
  async listRepositories(pageSize = 1000, limits: ListLimits = LIST_LIMITS): Promise<string[]> {
    const names = await this.listPaged(`/v2/_catalog?n=${pageSize}`, 'repositories', { repository: '', scope: 'registry:catalog:*' }, limits);
    return names.filter(isValidRepository);
  }

  /** The tags of a repository (GET /v2/<name>/tags/list?n=, paginated like the catalog, within `limits`); [] when it is unknown. */
  async listTags(repository: string, pageSize = 1000, limits: ListLimits = LIST_LIMITS): Promise<string[]> {
    checkRepo(repository);
    const tags = await this.listPaged(`/v2/${repository}/tags/list?n=${pageSize}`, 'tags', { repository }, limits);
    return tags.filter(isValidTag);
  }

  private async listPaged(first: string, field: 'repositories' | 'tags', on: { repository: string; scope?: string }, limits: ListLimits): Promise<string[]> {
    const out: string[] = [];
    const seen = new Set<string>();
    let pages = 0;
    for (let path: string | undefined = first; path && !seen.has(path);) {
      if (pages >= limits.maxPages || out.length >= limits.maxNames) {
        const why = `registry ${this.host}: ${field === 'tags' ? `tags of ${on.repository}` : 'catalog'} listing stopped after ${pages} pages and ${out.length} names (limits: ${limits.maxPages} pages, ${limits.maxNames} names)`;
        if (!limits.onTruncated) throw new SignetError('REGISTRY_PROTOCOL', why);
        limits.onTruncated(why);
        return out;
      }
      seen.add(path);
      pages++;
      const r = await this.call({ method: 'GET', path, ...on, push: false, headers: { accept: 'application/json' }, ok: [200, 404] });
      if (r.status === 404) {
        if (field === 'tags') return out;
        throw new SignetError('REGISTRY_PROTOCOL', `registry ${this.host} has no catalog API (GET /v2/_catalog answered 404)`, { status: 404 });
      }
      const what = `registry ${this.host}: GET ${path}`;
      const page = field === 'tags' ? parseRegistryJson(r.body, tagListSchema, what).tags : parseRegistryJson(r.body, catalogSchema, what).repositories;
      for (const v of page ?? []) {
        if (out.length >= limits.maxNames) break;
        out.push(v);
      }
      path = nextLink(r.headers['link'], this.transport.base);
    }
    return out;
  }

  async blobExists(repository: string, digest: string): Promise<boolean> {
    checkRepo(repository);
    const r = await this.call({ method: 'HEAD', path: `/v2/${repository}/blobs/${digest}`, repository, push: false, ok: [200, 404] });
    return r.status === 200;
  }

  /**
   * Does this registry take a whole blob in the POST that opens an upload (the OCI distribution
   * spec's "single POST" monolithic upload, `POST /v2/<name>/blobs/uploads/?digest=<d>` with the
   * body, answered 201)? Learned from the first upload (see upload): undefined until then.
   * distribution 2.8 (and Harbor on it) answers 202 and ignores the body; the upload then goes on
   * with the PUT it would have needed anyway, so the probe costs no request, only the bytes of
   * one small blob sent twice.
   */
  get singlePostUpload(): boolean | undefined {
    return this.monolithic;
  }

  /**
   * Upload a blob unless this client knows the repository has it. Returns its digest.
   *
   * - `fresh`: content signet just made (a new signature's payload, a bundle): nobody can have it
   *   yet, so no HEAD is asked and nothing is remembered.
   * - `shared`: a constant blob every signature manifest of a repository names (the `.sig`
   *   config, the empty config of referrers): uploaded once per repository without asking (an
   *   upload of a blob already there costs what a HEAD + upload would cost minus the HEAD), then
   *   remembered for SHARED_TTL_MS. Should the registry have garbage-collected it meanwhile, the
   *   manifest PUT says BLOB_UNKNOWN and putManifestWith uploads it again.
   * - neither: HEAD first, then upload when absent; remembered for PRESENT_TTL_MS.
   *
   * Concurrent uploads of the same bytes to the same repository share one upload: distribution
   * answers 500 to a HEAD of a blob whose link another request is writing at that moment (seen
   * with the empty config of referrer manifests, which every subject of an index uploads).
   */
  async uploadBlob(repository: string, data: Buffer, how: { fresh?: boolean; shared?: boolean } = {}): Promise<string> {
    checkRepo(repository);
    const digest = sha256Digest(data);
    const key = `${repository}@${digest}`;
    const seen = this.present.get(key);
    const ttl = how.shared ? SHARED_TTL_MS : PRESENT_TTL_MS;
    if (!how.fresh && seen !== undefined && Date.now() - seen < ttl) return digest;
    const inFlight = this.uploads.get(key);
    if (inFlight) return inFlight;
    const upload = this.upload(repository, data, digest, !how.fresh && !how.shared)
      .then((d) => {
        if (!how.fresh) this.remember(key);
        return d;
      })
      .finally(() => this.uploads.delete(key));
    this.uploads.set(key, upload);
    return upload;
  }

  /** Forget that `repository` holds `digest` (the registry said BLOB_UNKNOWN). */
  forgetBlob(repository: string, digest: string): void {
    this.present.delete(`${repository}@${digest}`);
  }

  private remember(key: string): void {
    this.present.delete(key);
    this.present.set(key, Date.now());
    while (this.present.size > MAX_PRESENT) this.present.delete(this.present.keys().next().value as string);
  }

  /**
   * PUT a manifest whose config is a shared blob (uploadBlob `shared`): uploaded first unless
   * remembered, and once more if the registry answers that a blob is missing (garbage-collected
   * since it was remembered), then the PUT is repeated once.
   */
  async putManifestWith(repository: string, reference: string, body: Buffer, mediaType: string, config: Buffer): Promise<string> {
    await this.uploadBlob(repository, config, { shared: true });
    try {
      return await this.putManifest(repository, reference, body, mediaType);
    } catch (err) {
      if (!(err instanceof SignetError) || err.code !== 'SIGNATURE_BLOB_MISSING') throw err;
      this.forgetBlob(repository, sha256Digest(config));
      await this.uploadBlob(repository, config, { shared: true });
      return this.putManifest(repository, reference, body, mediaType);
    }
  }

  private async upload(repository: string, data: Buffer, digest: string, headFirst: boolean): Promise<string> {
    if (headFirst && (await this.blobExists(repository, digest))) return digest;
    let start: Reply | undefined;
    if (this.monolithic !== false) {
      // single POST: the whole blob in the request that opens the upload (the distribution
      // spec's alternative to POST then PUT); 201 = stored. A 202 opens an ordinary upload (the
      // body was ignored): this registry does not do it, and the PUT below finishes this upload.
      const r = await this.call({
        method: 'POST',
        path: `/v2/${repository}/blobs/uploads/?digest=${encodeURIComponent(digest)}`,
        repository,
        push: true,
        headers: { 'content-type': 'application/octet-stream' },
        body: data,
        ok: [201, 202, 400, 405, 413, 415],
      });
      if (r.status === 201) {
        this.monolithic = true;
        return digest;
      }
      this.monolithic = false;
      if (r.status === 202) start = r;
    }
    start ??= await this.call({
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
    const url = new URL(location, this.transport.base);
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
}

function checkRepo(repository: string): void {
  if (!isValidRepository(repository)) throw new SignetError('INVALID_REFERENCE', `invalid repository name "${repository.slice(0, 200)}"`);
}

function checkManifestRef(reference: string): void {
  if (!isValidDigest(reference) && !isValidTag(reference)) {
    throw new SignetError('INVALID_REFERENCE', `invalid tag or digest "${reference.slice(0, 200)}"`);
  }
}

/**
 * The path of a `Link: <...>; rel="next"` target on this registry (RFC 5988), or undefined: the
 * one Link parser for every paginated listing (tags, catalog, referrers). A target on another
 * host or outside /v2/ is not followed.
 */
export function nextLink(link: string | string[] | undefined, base: string): string | undefined {
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
