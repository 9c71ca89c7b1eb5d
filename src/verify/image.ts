/**
 * Reading what an image is made of and what signatures it carries, for backfill and verify: the
 * manifest a tag or digest serves, the manifests the pipeline signs for it (an index and each
 * child), the layers of each one's `sha256-<hex>.sig`, and the payload bytes behind a layer.
 */
import { SignetError } from '../errors.js';
import type { Manifest, RegistryClient } from '../registry/client.js';
import { IMAGE_MANIFEST_TYPES, INDEX_TYPES, OCI_MANIFEST } from '../registry/media-types.js';
import { isValidDigest, signatureTag } from '../registry/reference.js';
import type { ImageIndex } from '../registry/schemas.js';
import { COSIGN_MAX_LAYERS, parseSignatureManifest, type SignatureLayer } from '../signing/legacy-sig.js';
import { getBlob } from '../signing/registry-ops.js';
import type { PayloadReader } from './requirements.js';

/** The pipeline's limit on index children. */
const MAX_CHILDREN = 256;
/** Payloads larger than this are not read (cosign's own are a few hundred bytes). */
const MAX_PAYLOAD_BYTES = 1024 * 1024;

export interface SignedManifest {
  digest: string;
  role: 'image' | 'index' | 'child';
  /** os/arch[/variant] of an index child, when the index says. */
  platform?: string;
}

export type ImageShape =
  | { kind: 'signable'; digest: string; mediaType: string; manifests: SignedManifest[] }
  | { kind: 'skip'; digest: string; reason: string };

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

export interface SignatureRead {
  /** The layers a verifier reads ([] when there is no .sig, or when cosign refuses it). */
  layers: SignatureLayer[];
  /** Why cosign reads no signature of this .sig (over its limits), when it does not. */
  refused?: string;
}

/** The legacy `.sig` manifest for `digest`, as cosign reads it (its limits applied: legacy-sig.ts). */
export async function readSignatures(client: RegistryClient, repository: string, digest: string): Promise<SignatureRead> {
  const m = await client.getManifest(repository, signatureTag(digest), OCI_MANIFEST);
  if (!m) return { layers: [] };
  const layers = parseSignatureManifest(m.document, `${client.host}/${repository}:${signatureTag(digest)}`);
  if (layers.length > COSIGN_MAX_LAYERS) {
    return { layers: [], refused: `the .sig has ${layers.length} layers and cosign reads none of a .sig with more than ${COSIGN_MAX_LAYERS}` };
  }
  return { layers };
}

/** The layers of the legacy `.sig` manifest for `digest` that a verifier reads. */
export async function signatureLayers(client: RegistryClient, repository: string, digest: string): Promise<SignatureLayer[]> {
  return (await readSignatures(client, repository, digest)).layers;
}

/** Reads payload blobs once each (digest-checked); undefined when the registry cannot serve them. */
export function payloadReader(client: RegistryClient, repository: string): PayloadReader {
  const cache = new Map<string, Promise<Buffer | undefined>>();
  return (layer) => {
    let p = cache.get(layer.digest);
    if (!p) {
      p =
        layer.size > MAX_PAYLOAD_BYTES
          ? Promise.resolve(undefined)
          : getBlob(client, repository, layer.digest, MAX_PAYLOAD_BYTES).then((b) => (b.status === 'ok' ? b.data : undefined));
      cache.set(layer.digest, p);
    }
    return p;
  };
}
