import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { header, httpRequest, type HttpResponse } from './http.js';

/**
 * Push tiny images straight over the registry HTTP API (distribution spec v2), no skopeo or
 * docker: one gzip'd tar layer, a config blob, a manifest; monolithic blob uploads
 * (POST /v2/<repo>/blobs/uploads/ then PUT <location>&digest=). Handles 401 with a Basic
 * challenge or the Docker token (Bearer) flow.
 */

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** sent on every request; shows up as `request.useragent` in distribution events */
export const USER_AGENT = 'signet-test-kit/1.0';

export const MANIFEST_ACCEPT = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerList].join(', ');

/** Anything with the registry's base URL (a RunningRegistry fits). */
export interface RegistryTarget {
  url: string;
  caFile?: string;
}

export interface Credentials {
  username: string;
  password: string;
}

export class RegistryHttpError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${url} -> HTTP ${status}: ${body.slice(0, 500)}`);
    this.name = 'RegistryHttpError';
  }
}

export function sha256(b: Buffer | string): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** The legacy cosign signature tag for a digest: sha256:<hex> -> sha256-<hex>.sig */
export function sigTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const sp = h.indexOf(' ');
  const scheme = (sp < 0 ? h : h.slice(0, sp)).trim().toLowerCase();
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g;
  for (const m of (sp < 0 ? '' : h.slice(sp + 1)).matchAll(re)) params[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? '';
  return { scheme, params };
}

/**
 * A small registry client. One instance keeps its Authorization header and the union of the
 * token scopes it has been challenged for, so later requests do not re-authenticate.
 */
export class RegistryClient {
  private authorization: string | undefined;
  private readonly scopes = new Set<string>();
  /** token requests made (for tests that count auth round trips) */
  tokenRequests = 0;

  constructor(
    readonly reg: RegistryTarget,
    readonly creds?: Credentials,
    readonly timeoutMs = 15_000,
  ) {}

  private basic(): string | undefined {
    return this.creds ? `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}` : undefined;
  }

  private async authenticate(res: HttpResponse): Promise<boolean> {
    const wa = header(res, 'www-authenticate');
    if (!wa) return false;
    const { scheme, params } = parseChallenge(wa);
    if (scheme === 'basic') {
      const b = this.basic();
      if (!b || this.authorization === b) return false;
      this.authorization = b;
      return true;
    }
    if (scheme !== 'bearer' || !params.realm) return false;
    for (const s of (params.scope ?? '').split(' ').filter(Boolean)) this.scopes.add(s);
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set('service', params.service);
    for (const s of this.scopes) u.searchParams.append('scope', s);
    const b = this.basic();
    this.tokenRequests++;
    const tr = await httpRequest(u, {
      headers: { 'User-Agent': USER_AGENT, ...(b ? { Authorization: b } : {}) },
      caFile: this.reg.caFile,
      timeoutMs: this.timeoutMs,
    });
    if (tr.status !== 200) return false;
    const j = JSON.parse(tr.body.toString('utf8')) as { token?: string; access_token?: string };
    const tok = j.token ?? j.access_token;
    if (!tok) return false;
    const next = `Bearer ${tok}`;
    if (next === this.authorization && !params.scope) return false;
    this.authorization = next;
    return true;
  }

  /** Request a path (`/v2/...`) or absolute URL; re-tries once per auth challenge. */
  async request(method: string, pathOrUrl: string, opts: { headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<HttpResponse> {
    const url = new URL(pathOrUrl, this.reg.url);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { 'User-Agent': USER_AGENT, ...(opts.headers ?? {}) };
      if (this.authorization) headers.Authorization = this.authorization;
      const res = await httpRequest(url, {
        method,
        headers,
        body: opts.body,
        caFile: this.reg.caFile,
        timeoutMs: this.timeoutMs,
      });
      if (res.status !== 401 || attempt >= 2) return res;
      if (!(await this.authenticate(res))) return res;
    }
  }

  async expect(
    method: string,
    pathOrUrl: string,
    ok: number[],
    opts: { headers?: Record<string, string>; body?: Buffer | string } = {},
  ): Promise<HttpResponse> {
    const res = await this.request(method, pathOrUrl, opts);
    if (!ok.includes(res.status)) {
      throw new RegistryHttpError(method, new URL(pathOrUrl, this.reg.url).href, res.status, res.body.toString('utf8'));
    }
    return res;
  }

  /** HEAD, then (if missing) monolithic upload of one blob. */
  async pushBlob(repo: string, blob: Buffer, digest = sha256(blob)): Promise<string> {
    const head = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`);
    if (head.status === 200) return digest;
    const start = await this.expect('POST', `/v2/${repo}/blobs/uploads/`, [202]);
    const location = header(start, 'location');
    if (!location) throw new Error(`POST /v2/${repo}/blobs/uploads/: no Location header`);
    const u = new URL(location, this.reg.url);
    u.searchParams.set('digest', digest);
    await this.expect('PUT', u.href, [201], {
      headers: { 'Content-Type': 'application/octet-stream' },
      body: blob,
    });
    return digest;
  }

  async putManifest(repo: string, ref: string, body: Buffer, contentType: string): Promise<string> {
    const res = await this.expect('PUT', `/v2/${repo}/manifests/${ref}`, [201], {
      headers: { 'Content-Type': contentType },
      body,
    });
    const digest = sha256(body);
    const got = header(res, 'docker-content-digest');
    if (got && got !== digest) throw new Error(`manifest digest mismatch: registry says ${got}, computed ${digest}`);
    return digest;
  }
}

/** One regular file in a ustar archive, plus the end-of-archive blocks. */
function tarOneFile(name: string, content: Buffer): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (s: string, off: number, len: number): void => {
    h.write(s.slice(0, len), off, len, 'ascii');
  };
  const octal = (n: number, len: number): string => n.toString(8).padStart(len - 1, '0') + '\0';
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(content.length, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  h.fill(0x20, 148, 156); // checksum placeholder: spaces
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  const pad = (512 - (content.length % 512)) % 512;
  return Buffer.concat([h, content, Buffer.alloc(pad, 0), Buffer.alloc(1024, 0)]);
}

function parsePlatform(p: string): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = p.split('/');
  if (!os || !architecture) throw new Error(`bad platform ${p} (want os/arch[/variant])`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

export interface PushImageOptions {
  auth?: Credentials;
  /** deterministic content derived from this string (same variant -> same digest) */
  variant?: string;
  mediaType?: 'oci' | 'docker';
  /** os/arch[/variant] written to the config; default linux/amd64 */
  platform?: string;
  /** reuse a client (keeps its token) */
  client?: RegistryClient;
}

export interface PushedImage {
  digest: string;
  manifest: Buffer;
  mediaType: string;
  size: number;
  configDigest: string;
  layerDigest: string;
}

function clientFor(reg: RegistryTarget, opts: { auth?: Credentials; client?: RegistryClient }): RegistryClient {
  return opts.client ?? new RegistryClient(reg, opts.auth);
}

/**
 * Push a tiny single-platform image. Random content (unique digest) unless `variant` is given.
 * Tagged when `tag` is given, otherwise PUT by digest.
 */
export async function pushImage(reg: RegistryTarget, repo: string, tag: string | undefined, opts: PushImageOptions = {}): Promise<PushedImage> {
  const client = clientFor(reg, opts);
  const docker = opts.mediaType === 'docker';
  const platform = parsePlatform(opts.platform ?? 'linux/amd64');
  const content =
    opts.variant !== undefined
      ? Buffer.from(`signet test image, variant ${opts.variant}, ${opts.platform ?? 'linux/amd64'}\n`)
      : Buffer.from(`signet test image ${randomBytes(16).toString('hex')}\n`);
  const tar = tarOneFile('hello.txt', content);
  const layer = gzipSync(tar, { level: 6 }); // node's gzip header has mtime 0: deterministic
  const config = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created: '1970-01-01T00:00:00Z',
      config: {},
      rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'signet test kit' }],
    }),
  );
  const layerDigest = await client.pushBlob(repo, layer);
  const configDigest = await client.pushBlob(repo, config);
  const mediaType = docker ? MT.dockerManifest : MT.ociManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: docker ? MT.dockerConfig : MT.ociConfig, size: config.length, digest: configDigest },
      layers: [{ mediaType: docker ? MT.dockerLayer : MT.ociLayer, size: layer.length, digest: layerDigest }],
    }),
  );
  const digest = sha256(manifest);
  await client.putManifest(repo, tag ?? digest, manifest, mediaType);
  return { digest, manifest, mediaType, size: manifest.length, configDigest, layerDigest };
}

export interface PushedIndex {
  digest: string;
  children: string[];
  manifest: Buffer;
  mediaType: string;
}

/** Push one child per platform (by digest), then an OCI image index (or Docker manifest list) by tag. */
export async function pushIndex(
  reg: RegistryTarget,
  repo: string,
  tag: string | undefined,
  platforms: string[],
  opts: Omit<PushImageOptions, 'platform'> = {},
): Promise<PushedIndex> {
  const client = clientFor(reg, opts);
  const docker = opts.mediaType === 'docker';
  const entries: { mediaType: string; digest: string; size: number; platform: ReturnType<typeof parsePlatform> }[] = [];
  for (const p of platforms) {
    const child = await pushImage(reg, repo, undefined, { ...opts, client, platform: p });
    entries.push({ mediaType: child.mediaType, digest: child.digest, size: child.size, platform: parsePlatform(p) });
  }
  const mediaType = docker ? MT.dockerList : MT.ociIndex;
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: entries }));
  const digest = sha256(manifest);
  await client.putManifest(repo, tag ?? digest, manifest, mediaType);
  return { digest, children: entries.map((e) => e.digest), manifest, mediaType };
}

export interface FetchedManifest {
  status: number;
  body: Buffer;
  /** Docker-Content-Digest response header */
  digest: string | undefined;
  contentType: string | undefined;
}

/** GET a manifest by tag or digest (all OCI/Docker manifest and index types accepted). Does not throw on 404. */
export async function getManifest(
  reg: RegistryTarget,
  repo: string,
  ref: string,
  opts: { auth?: Credentials; client?: RegistryClient } = {},
): Promise<FetchedManifest> {
  const res = await clientFor(reg, opts).request('GET', `/v2/${repo}/manifests/${ref}`, {
    headers: { Accept: MANIFEST_ACCEPT },
  });
  return {
    status: res.status,
    body: res.body,
    digest: header(res, 'docker-content-digest'),
    contentType: header(res, 'content-type'),
  };
}

/** GET the manifest by digest and PUT the same bytes under another tag. Returns the digest. */
export async function tagExisting(
  reg: RegistryTarget,
  repo: string,
  digest: string,
  tag: string,
  opts: { auth?: Credentials; client?: RegistryClient } = {},
): Promise<string> {
  const client = clientFor(reg, opts);
  // distribution 2.8's filesystem driver rewrites a manifest's blob on every PUT of it, not
  // atomically: a GET racing a PUT of the same manifest under another tag can answer 500. Tagging
  // one digest under several tags at once is what some tests do on purpose, so retry that.
  let m = await getManifest(reg, repo, digest, { client });
  for (let i = 0; i < 5 && m.status >= 500; i++) {
    await new Promise((r) => setTimeout(r, 50 * (i + 1)));
    m = await getManifest(reg, repo, digest, { client });
  }
  if (m.status !== 200) throw new RegistryHttpError('GET', `${reg.url}/v2/${repo}/manifests/${digest}`, m.status, m.body.toString());
  return client.putManifest(repo, tag, m.body, m.contentType ?? MT.ociManifest);
}

/** DELETE a manifest by digest (the registry has delete enabled). */
export async function deleteManifest(
  reg: RegistryTarget,
  repo: string,
  digest: string,
  opts: { auth?: Credentials; client?: RegistryClient } = {},
): Promise<void> {
  await clientFor(reg, opts).expect('DELETE', `/v2/${repo}/manifests/${digest}`, [202]);
}

/** GET /v2/<repo>/tags/list; [] when the repository is unknown. */
export async function listTags(reg: RegistryTarget, repo: string, opts: { auth?: Credentials; client?: RegistryClient } = {}): Promise<string[]> {
  const res = await clientFor(reg, opts).request('GET', `/v2/${repo}/tags/list`);
  if (res.status === 404) return [];
  if (res.status !== 200) throw new RegistryHttpError('GET', `${reg.url}/v2/${repo}/tags/list`, res.status, res.body.toString());
  return ((JSON.parse(res.body.toString('utf8')) as { tags?: string[] | null }).tags ?? []).slice().sort();
}
