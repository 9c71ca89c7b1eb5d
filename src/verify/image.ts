/**
 * What an image is made of, for backfill and verify: the manifests the pipeline signs for a
 * manifest a tag or digest serves (an index and each child). What signatures each carries is
 * the formats' business (src/formats/).
 */
import { SignetError } from '../errors.js';
import type { Manifest } from '../registry/client.js';
import { IMAGE_MANIFEST_TYPES, INDEX_TYPES } from '../registry/media-types.js';
import { isValidDigest } from '../registry/reference.js';
import type { ImageIndex } from '../registry/schemas.js';

/** The pipeline's limit on index children. */
const MAX_CHILDREN = 256;

export interface SignedManifest {
  digest: string;
  role: 'image' | 'index' | 'child';
  /** os/arch[/variant] of an index child, when the index says. */
  platform?: string;
}

export type ImageShape =
  { kind: 'signable'; digest: string; mediaType: string; manifests: SignedManifest[] } | { kind: 'skip'; digest: string; reason: string };

/**
 * What the pipeline would sign for this manifest (as the registry client read it: `document`
 * already checked against its media type's schema): itself and, for an index, every child.
 */
export function imageShape(m: Pick<Manifest, 'document' | 'mediaType' | 'digest'>): ImageShape {
  const { mediaType, digest } = m;
  const doc: Record<string, unknown> = m.document;
  if (doc['subject']) return { kind: 'skip', digest, reason: 'manifest has a subject (an OCI referrer, e.g. a signature)' };
  if (IMAGE_MANIFEST_TYPES.has(mediaType)) return { kind: 'signable', digest, mediaType, manifests: [{ digest, role: 'image' }] };
  if (!INDEX_TYPES.has(mediaType)) return { kind: 'skip', digest, reason: `manifest type "${mediaType}" is not signed` };
  const manifests: SignedManifest[] = [{ digest, role: 'index' }];
  const seen = new Set<string>();
  for (const c of (m.document as ImageIndex).manifests) {
    if (seen.has(c.digest)) continue;
    if (!isValidDigest(c.digest)) throw new SignetError('UNSUPPORTED_MEDIA_TYPE', 'index lists an invalid child digest');
    seen.add(c.digest);
    const p = c.platform;
    const platform = p ? [p.os, p.architecture, ...(p.variant !== undefined ? [p.variant] : [])].join('/') : undefined;
    manifests.push({ digest: c.digest, role: 'child', ...(platform ? { platform } : {}) });
  }
  if (manifests.length - 1 > MAX_CHILDREN) throw new SignetError('UNSUPPORTED_MEDIA_TYPE', `index has ${manifests.length - 1} children (max ${MAX_CHILDREN})`);
  return { kind: 'signable', digest, mediaType, manifests };
}
