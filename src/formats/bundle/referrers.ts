/**
 * Where bundles live: OCI 1.1 referrers of a manifest, listed by the referrers API where the
 * registry has one, else by the referrers fallback tag `sha256-<hex>` (an image index). Shared
 * by the bundle format's reader and writer (and by every referrer format that follows).
 */
import type { RegistryClient } from '../../registry/client.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../registry/media-types.js';
import type { ReferrersIndex } from '../../registry/schemas.js';
import { parseBundle, referrersTag, type ParsedBundle } from '../../signing/bundle.js';
import { getBlob, listReferrersApi, referrersIndex, type IndexDescriptor } from '../../signing/registry-ops.js';
import { bundleReferrerSchema } from '../../signing/schemas.js';

export interface Listing {
  api: boolean;
  descriptors: IndexDescriptor[];
}

/** The bundle a referrer holds, or undefined when it is absent or cannot be read. */
export type Checked = ParsedBundle | undefined;

export async function readBundle(client: RegistryClient, repository: string, digest: string): Promise<Checked> {
  const m = await client.getManifest(repository, digest, OCI_MANIFEST);
  if (!m) return undefined;
  // anyone who can push can write a referrer: one that does not hold a bundle only does not count
  const r = bundleReferrerSchema.safeParse(m.document);
  if (!r.success) return undefined;
  const blob = await getBlob(client, repository, r.data.layers[0].digest);
  return blob.status === 'ok' ? parseBundle(blob.data) : undefined;
}

export async function listReferrers(client: RegistryClient, repository: string, digest: string): Promise<Listing> {
  const api = await listReferrersApi(client, repository, digest);
  if (api) return { api: true, descriptors: api };
  const idx = await client.getManifest(repository, referrersTag(digest), OCI_INDEX);
  if (!idx) return { api: false, descriptors: [] };
  return { api: false, descriptors: fallbackIndex(client, repository, digest, idx.document).manifests };
}

/** The referrers fallback tag's manifest, checked: REGISTRY_PROTOCOL when it is not a referrers index. */
export function fallbackIndex(client: RegistryClient, repository: string, digest: string, document: unknown): ReferrersIndex {
  return referrersIndex(document, `${client.host}/${repository}:${referrersTag(digest)} (the referrers fallback tag)`);
}
