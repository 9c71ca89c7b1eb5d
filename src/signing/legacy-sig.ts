/**
 * cosign's legacy signature storage: one OCI manifest at tag sha256-<hex>.sig, one layer per
 * signature (the payload blob, annotated with its base64 signature), and a config whose
 * rootfs.diff_ids and history follow the layers (ggcr's mutate.Append on empty.Image).
 * Byte-identical to cosign 2.5's output (shared/research/cosign-format.md §2.2-2.3).
 */
import { COSIGN_SIMPLE_SIGNING, OCI_CONFIG, OCI_MANIFEST } from '../registry/media-types.js';
import { sha256Digest } from '../util/digest.js';

export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

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

/** The layers of an existing .sig manifest (any we do not understand are kept as they are). */
export function parseSignatureManifest(body: Buffer): SignatureLayer[] {
  const j = JSON.parse(body.toString('utf8')) as { layers?: Partial<SignatureLayer>[] };
  return (j.layers ?? [])
    .filter((l): l is SignatureLayer => typeof l.digest === 'string' && typeof l.mediaType === 'string' && typeof l.size === 'number')
    .map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest, annotations: { ...(l.annotations ?? {}) } }));
}

export function signatureLayer(payload: Buffer, payloadDigest: string, signatureB64: string, extra: Record<string, string> = {}): SignatureLayer {
  return {
    mediaType: COSIGN_SIMPLE_SIGNING,
    size: payload.length,
    digest: payloadDigest,
    annotations: { [SIGNATURE_ANNOTATION]: signatureB64, ...extra },
  };
}
