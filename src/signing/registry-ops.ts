/**
 * Registry operations the bundle format needs beyond RegistryClient's public surface: fetch a
 * blob, and list referrers through the OCI 1.1 referrers API (distribution-spec "Listing
 * Referrers"; a 404 means the registry has no such API and the fallback tag schema applies).
 *
 * They go through the client's own transport, `RegistryClient.call` (auth, host pinning,
 * deadline, capped reads, 429/5xx -> retryable errors); referrers indexes are checked against
 * the registry module's schema and pages followed with its one Link parser.
 */
import { BodyTooLargeError } from '../edge/read.js';
import { SignetError } from '../errors.js';
import { nextLink, type RegistryClient } from '../registry/client.js';
import { OCI_INDEX } from '../registry/media-types.js';
import { isValidDigest } from '../registry/reference.js';
import { checkRegistryJson, parseRegistryJson, referrersIndexSchema, type Descriptor, type ReferrersIndex } from '../registry/schemas.js';
import { sha256Digest } from '../util/digest.js';

export type IndexDescriptor = Descriptor;

export type BlobResult = { status: 'ok'; data: Buffer } | { status: 'absent' } | { status: 'unreadable'; why: string };

/** Pages of one referrers listing followed (a registry serving an endless `Link` chain stops here). */
export const MAX_REFERRER_PAGES = 20;

/**
 * GET a blob and check its digest. The body is read up to `maxBytes` while it streams (the
 * transport's cap): a larger blob is 'unreadable', never buffered. Registries that redirect blob
 * downloads to storage (S3, GCS) are not followed (signet contacts only configured hosts): that
 * reads as 'unreadable' too.
 */
export async function getBlob(client: RegistryClient, repository: string, digest: string, maxBytes = 4 * 1024 * 1024): Promise<BlobResult> {
  if (!isValidDigest(digest)) return { status: 'unreadable', why: 'invalid digest' };
  let r;
  try {
    r = await client.call({
      method: 'GET',
      path: `/v2/${repository}/blobs/${digest}`,
      repository,
      push: false,
      ok: [200, 404, 301, 302, 303, 307, 308],
      maxBytes,
    });
  } catch (err) {
    if (err instanceof SignetError && err.cause instanceof BodyTooLargeError) return { status: 'unreadable', why: `larger than ${maxBytes} bytes` };
    throw err;
  }
  if (r.status === 404) return { status: 'absent' };
  if (r.status !== 200) return { status: 'unreadable', why: `HTTP ${r.status} (redirects to storage are not followed)` };
  if (sha256Digest(r.body) !== digest) throw new SignetError('DIGEST_MISMATCH', `registry ${client.host} served blob ${digest} with other content`);
  return { status: 'ok', data: r.body };
}

/**
 * Registries that answered the referrers API with "not supported" (404, 405, 406, 501), and when.
 * Support is a property of the registry, not of a digest: asked again after the TTL (an upgrade
 * is noticed), never per listing. A registry that gains the API meanwhile indexes the referrers
 * signet pushed anyway (they carry `subject`).
 */
const noReferrersApi = new WeakMap<RegistryClient, number>();
const REFERRERS_PROBE_TTL_MS = 10 * 60_000;

/**
 * The referrers of `digest` through the referrers API, or undefined when the registry does not
 * implement it (404 and the like, or a first answer that is not a referrers index: see
 * parseIndex). Follows `Link: rel="next"` pages on the same registry, at most
 * MAX_REFERRER_PAGES; a later page that is not a referrers index ends the listing.
 */
export async function listReferrersApi(client: RegistryClient, repository: string, digest: string): Promise<IndexDescriptor[] | undefined> {
  // a registry without the API says so once (per REFERRERS_PROBE_TTL_MS): no probe per listing
  const known = noReferrersApi.get(client);
  if (known !== undefined && Date.now() - known < REFERRERS_PROBE_TTL_MS) return undefined;
  const out: IndexDescriptor[] = [];
  const seen = new Set<string>();
  let path: string | undefined = `/v2/${repository}/referrers/${digest}`;
  for (let page = 0; path && !seen.has(path) && page < MAX_REFERRER_PAGES; page++) {
    seen.add(path);
    const r = await client.call({
      method: 'GET',
      path,
      repository,
      push: false,
      headers: { accept: OCI_INDEX },
      ok: [200, 400, 404, 405, 406, 501],
    });
    if (r.status !== 200) {
      if (page === 0 && r.status !== 400) noReferrersApi.set(client, Date.now());
      return page === 0 ? undefined : out;
    }
    let parsed: IndexDescriptor[];
    try {
      parsed = parseIndex(r.body, `registry ${client.host}: GET ${path}`);
    } catch (err) {
      if (err instanceof SignetError && err.code === 'REGISTRY_PROTOCOL') return page === 0 ? undefined : out;
      throw err;
    }
    out.push(...parsed);
    path = nextLink(r.headers['link'], client.base);
  }
  return out;
}

/**
 * The entries of a referrers index (an OCI image index whose every entry is a descriptor):
 * REGISTRY_PROTOCOL when the bytes are not JSON, not such an index, or an entry is not a descriptor.
 */
export function parseIndex(body: Buffer, what: string): IndexDescriptor[] {
  return parseRegistryJson(body, referrersIndexSchema, what).manifests;
}

/** A manifest's parsed `document` checked as a referrers index (the fallback tag): REGISTRY_PROTOCOL when it is not one. */
export function referrersIndex(document: unknown, what: string): ReferrersIndex {
  return checkRegistryJson(document, referrersIndexSchema, what);
}
