/**
 * cosign's legacy signature storage: one OCI manifest at tag sha256-<hex>.sig, one layer per
 * signature (the payload blob, annotated with its base64 signature), and a config whose
 * rootfs.diff_ids and history follow the layers (ggcr's mutate.Append on empty.Image).
 * Byte-identical to cosign 2.5's output (shared/research/cosign-format.md §2.2-2.3).
 */
import { READ_LIMITS } from '../edge/read.js';
import { COSIGN_SIMPLE_SIGNING, OCI_CONFIG, OCI_MANIFEST } from '../registry/media-types.js';
import { checkRegistryJson } from '../registry/schemas.js';
import { sha256Digest } from '../util/digest.js';
import { signatureManifestSchema } from './schemas.js';

export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

/**
 * What verifiers accept, applied when signet reads a .sig and before it writes one:
 *
 * - `COSIGN_MAX_LAYERS`: cosign refuses a whole .sig with more layers ("number of layers (N)
 *   exceeded the limit (1000)"): `const maxLayers = 1000` in sigstore/cosign pkg/oci/remote/
 *   signatures.go (sigs.Get, on read) and pkg/oci/mutate/signatures.go (sigAppender.Get, on
 *   write), the same in v2.5.0 and v3.1.2.
 * - `COSIGN_MAX_PAYLOAD_BYTES`: cosign refuses to read a payload layer whose descriptor size is
 *   larger: `defaultMaxSize = 134217728 // 128MiB` in internal/pkg/cosign/payload/size/size.go
 *   (CheckSize, called from pkg/oci/internal/signature/layer.go Payload; COSIGN_MAX_ATTACHMENT_SIZE
 *   overrides it on the verifier's side, so signet keeps to the default).
 * - `MAX_MANIFEST_BYTES`: distribution refuses a manifest PUT over 4 MiB (and signet's registry
 *   client reads none larger).
 */
export const COSIGN_MAX_LAYERS = 1000;
export const COSIGN_MAX_PAYLOAD_BYTES = 128 * 1024 * 1024;
export const MAX_MANIFEST_BYTES = READ_LIMITS.manifest;

export interface SignatureLayer {
  mediaType: string;
  size: number;
  digest: string;
  annotations: Record<string, string>;
}

export interface SignatureManifest {
  manifest: Buffer;
  config: Buffer;
}

export function buildSignatureManifest(layers: readonly SignatureLayer[]): SignatureManifest {
  const zero = '0001-01-01T00:00:00Z';
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: zero,
      history: layers.map(() => ({ created: zero })),
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, size: config.length, digest: sha256Digest(config) },
      layers: layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest, annotations: l.annotations })),
    }),
  );
  return { manifest, config };
}

/**
 * The layers of an existing .sig manifest (`document`: its body as the registry client parsed
 * it). A manifest without layers holds no signature; layers that are not descriptors are
 * REGISTRY_PROTOCOL (`what` names the .sig), as for any manifest of that shape.
 */
export function parseSignatureManifest(document: unknown, what: string): SignatureLayer[] {
  const { layers } = checkRegistryJson(document, signatureManifestSchema, what);
  return (layers ?? []).map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest, annotations: { ...(l.annotations ?? {}) } }));
}

export function signatureLayer(payload: Buffer, payloadDigest: string, signatureB64: string, extra: Record<string, string> = {}): SignatureLayer {
  return {
    mediaType: COSIGN_SIMPLE_SIGNING,
    size: payload.length,
    digest: payloadDigest,
    annotations: { [SIGNATURE_ANNOTATION]: signatureB64, ...extra },
  };
}
