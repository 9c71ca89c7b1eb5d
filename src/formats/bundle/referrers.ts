/**
 * Where bundles live: OCI 1.1 referrers of a manifest, listed by the referrers API where the
 * registry has one, else by the referrers fallback tag `sha256-<hex>` (an image index). Shared
 * by the bundle format's reader and writer (and by every referrer format that follows).
 */
import type { RegistryClient } from '../../registry/client.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../registry/media-types.js';
import type { ReferrersIndex } from '../../registry/schemas.js';
import { BUNDLE_V03, OCI_EMPTY, referrersTag } from '../../signing/bundle.js';
import { parseSigstoreBundle, type SigstoreBundle } from '../../signing/bundle-read.js';
import { getBlob, listReferrersApi, referrersIndex, type IndexDescriptor } from '../../signing/registry-ops.js';
import { bundleReferrerSchema } from '../../signing/schemas.js';

/**
 * Referrer descriptors that may hold a sigstore bundle: signet lists them with the bundle media
 * type, cosign 3 with the empty-config type `application/vnd.oci.empty.v1+json` (the bundle type
 * is only inside the referrer manifest); other artifact types (SBOMs, Notation) are not read.
 */
export function mayHoldBundle(d: { artifactType?: string | undefined }): boolean {
  return d.artifactType === undefined || d.artifactType === BUNDLE_V03 || d.artifactType === OCI_EMPTY;
}

export interface Listing {
  api: boolean;
  descriptors: IndexDescriptor[];
  /** Without the API: the fallback tag's index as read (undefined when the tag does not exist yet). */
  index?: ReferrersIndex | undefined;
}

/** The bundle a referrer holds, or undefined when it is absent or cannot be read. */
export type Checked = SigstoreBundle | undefined;

export async function readBundle(client: RegistryClient, repository: string, digest: string): Promise<Checked> {
  const m = await client.getManifest(repository, digest, OCI_MANIFEST);
  if (!m) return undefined;
  // anyone who can push can write a referrer: one that does not hold a bundle only does not count
  const r = bundleReferrerSchema.safeParse(m.document);
  if (!r.success) return undefined;
  const blob = await getBlob(client, repository, r.data.layers[0].digest);
  return blob.status === 'ok' ? parseSigstoreBundle(blob.data) : undefined;
}

export async function listReferrers(client: RegistryClient, repository: string, digest: string): Promise<Listing> {
  const api = await listReferrersApi(client, repository, digest);
  if (api) return { api: true, descriptors: api };
  const idx = await client.getManifest(repository, referrersTag(digest), OCI_INDEX);
  if (!idx) return { api: false, descriptors: [] };
  const index = fallbackIndex(client, repository, digest, idx.document);
  return { api: false, descriptors: index.manifests, index };
}

/** The referrers fallback tag's manifest, checked: REGISTRY_PROTOCOL when it is not a referrers index. */
export function fallbackIndex(client: RegistryClient, repository: string, digest: string, document: unknown): ReferrersIndex {
  return referrersIndex(document, `${client.host}/${repository}:${referrersTag(digest)} (the referrers fallback tag)`);
}
