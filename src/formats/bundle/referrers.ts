/**
 * Where bundles live: OCI 1.1 referrers of a manifest, listed by the referrers API where the
 * registry has one, else by the referrers fallback tag `sha256-<hex>` (an image index). Shared
 * by the bundle format's reader and writer; the listing itself lives in src/formats/referrers/ (shared
 * with Notation).
 */
import type { RegistryClient } from '../../registry/client.js';
import { OCI_MANIFEST } from '../../registry/media-types.js';
import { BUNDLE_V03, OCI_EMPTY } from '../../signing/bundle.js';
import { parseSigstoreBundle, type SigstoreBundle } from '../../signing/bundle-read.js';
import { getBlob } from '../../signing/registry-ops.js';
import { bundleReferrerSchema } from '../../signing/schemas.js';

/**
 * Referrer descriptors that may hold a sigstore bundle: signet lists them with the bundle media
 * type, cosign 3 with the empty-config type `application/vnd.oci.empty.v1+json` (the bundle type
 * is only inside the referrer manifest); other artifact types (SBOMs, Notation) are not read.
 */
export function mayHoldBundle(d: { artifactType?: string | undefined }): boolean {
  return d.artifactType === undefined || d.artifactType === BUNDLE_V03 || d.artifactType === OCI_EMPTY;
}

export { fallbackIndex, listReferrers, type Listing } from '../referrers/index.js';

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
