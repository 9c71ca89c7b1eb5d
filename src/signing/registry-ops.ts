/**
 * Registry operations the bundle format needs beyond RegistryClient's public surface: fetch a
 * blob, and list referrers through the OCI 1.1 referrers API (distribution-spec "Listing
 * Referrers"; a 404 means the registry has no such API and the fallback tag schema applies).
 *
 * They go through the client's own transport, `RegistryClient.call` (auth, host pinning,
 * 429/5xx -> retryable errors).
 */
import { SignetError } from '../errors.js';
import type { Call, RegistryClient } from '../registry/client.js';
import { OCI_INDEX } from '../registry/media-types.js';
import { isValidDigest } from '../registry/reference.js';
import { sha256Digest } from '../util/digest.js';

export interface IndexDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export type BlobResult = { status: 'ok'; data: Buffer } | { status: 'absent' } | { status: 'unreadable'; why: string };

/**
 * GET a blob and check its digest. Registries that redirect blob downloads to storage (S3, GCS)
 * are not followed (signet contacts only configured hosts): that reads as 'unreadable'.
 */
export async function getBlob(client: RegistryClient, repository: string, digest: string, maxBytes = 4 * 1024 * 1024): Promise<BlobResult> {
  if (!isValidDigest(digest)) return { status: 'unreadable', why: 'invalid digest' };
  const r = await client.call({
    method: 'GET',
    path: `/v2/${repository}/blobs/${digest}`,
    repository,
    push: false,
    ok: [200, 404, 301, 302, 303, 307, 308],
  });
  if (r.status === 404) return { status: 'absent' };
  if (r.status !== 200) return { status: 'unreadable', why: `HTTP ${r.status} (redirects to storage are not followed)` };
  if (r.body.length > maxBytes) return { status: 'unreadable', why: `larger than ${maxBytes} bytes` };
  if (sha256Digest(r.body) !== digest) throw new SignetError('DIGEST_MISMATCH', `registry ${client.host} served blob ${digest} with other content`);
  return { status: 'ok', data: r.body };
}

/**
 * The referrers of `digest` through the referrers API, or undefined when the registry does not
 * implement it (404, or any answer that is not an image index). Follows `Link: rel="next"` pages
 * on the same registry.
 */
export async function listReferrersApi(client: RegistryClient, repository: string, digest: string): Promise<IndexDescriptor[] | undefined> {
  const call = (c: Call) => client.call(c);
  const out: IndexDescriptor[] = [];
  let path: string | undefined = `/v2/${repository}/referrers/${digest}`;
  for (let page = 0; path && page < 20; page++) {
    const r = await call({
      method: 'GET',
      path,
      repository,
      push: false,
      headers: { accept: OCI_INDEX },
      ok: [200, 400, 404, 405, 406, 501],
    });
    if (r.status !== 200) return page === 0 ? undefined : out;
    const parsed = parseIndex(r.body);
    if (!parsed) return page === 0 ? undefined : out;
    out.push(...parsed);
    path = nextPage(r.headers['link'], client.host);
  }
  return out;
}

/** Parse an image index's `manifests` (undefined when the bytes are not an index). */
export function parseIndex(body: Buffer): IndexDescriptor[] | undefined {
  let j: { mediaType?: unknown; manifests?: unknown };
  try {
    j = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!j || typeof j !== 'object' || !Array.isArray(j.manifests)) return undefined;
  if (j.mediaType !== undefined && j.mediaType !== OCI_INDEX) return undefined;
  const out: IndexDescriptor[] = [];
  for (const m of j.manifests as Record<string, unknown>[]) {
    if (!m || typeof m.digest !== 'string' || typeof m.mediaType !== 'string' || typeof m.size !== 'number') continue;
    const d: IndexDescriptor = { mediaType: m.mediaType, digest: m.digest, size: m.size };
    if (typeof m.artifactType === 'string') d.artifactType = m.artifactType;
    if (m.annotations && typeof m.annotations === 'object') {
      const a: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.annotations as Record<string, unknown>)) if (typeof v === 'string') a[k] = v;
      d.annotations = a;
    }
    out.push(d);
  }
  return out;
}

function nextPage(link: string | string[] | undefined, host: string): string | undefined {
  const v = Array.isArray(link) ? link.join(', ') : link;
  if (!v) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(v);
  if (!m) return undefined;
  try {
    const u = new URL(m[1]!, `http://${host}`);
    if (u.host !== host) return undefined;
    return `${u.pathname}${u.search}`;
  } catch {
    return undefined;
  }
}
