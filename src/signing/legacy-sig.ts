/**
 * cosign's legacy signature storage: one OCI manifest at tag sha256-<hex>.sig, one layer per
 * signature (the payload blob, annotated with its base64 signature). The layers are
 * byte-identical to cosign 2.5's (shared/research/cosign-format.md §2.2-2.3); the config is one
 * constant shared by every `.sig` (SIGNATURE_CONFIG below says why and why it is safe).
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

/**
 * The config of every `.sig` manifest signet writes: the config of go-containerregistry's
 * `empty.Image` (what cosign's `mutate.AppendSignatures` starts from) as ggcr marshals it, with
 * no `diff_ids` or `history` entries. Until 2026-12 signet wrote cosign's own config, whose
 * `diff_ids` and `history` list the layers: a config unique to each signature set, so every
 * signature cost a config upload (POST + PUT). This one is the same bytes for every `.sig` of a
 * repository: uploaded once per repository and remembered (RegistryClient.uploadBlob `shared`).
 *
 * Why it is safe (test/integration/legacy-sig-config.test.ts, real registry): cosign 2.5 and 3.1
 * (`verify`, and `sign` appending to such a .sig), containers/image (skopeo under a
 * sigstoreSigned policy) and `crane validate --fast` (manifest and config consistent, rootfs type
 * "layers") all accept it. None of them reads `diff_ids` of a `.sig`: cosign reads the layers
 * from the manifest and their bytes with `Compressed()`, containers/image reads the manifest's
 * layers. `crane validate` without `--fast` refuses cosign's own `.sig` as well (it gunzips every
 * layer, and a simple-signing payload is not gzip). The OCI empty descriptor (`{}`, media type
 * `application/vnd.oci.empty.v1+json`) was measured too and not kept: `crane validate --fast`
 * refuses it (rootfs type "" is not "layers").
 */
export const SIGNATURE_CONFIG: Buffer = Buffer.from(
  '{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}',
);
const SIGNATURE_CONFIG_DESCRIPTOR = { mediaType: OCI_CONFIG, size: SIGNATURE_CONFIG.length, digest: sha256Digest(SIGNATURE_CONFIG) };

export function buildSignatureManifest(layers: readonly SignatureLayer[]): SignatureManifest {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: SIGNATURE_CONFIG_DESCRIPTOR,
      layers: layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest, annotations: l.annotations })),
    }),
  );
  return { manifest, config: SIGNATURE_CONFIG };
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
