/**
 * Which layers of an existing `.sig` manifest signet carries forward when it merges its own
 * signature in, and the limits the result must meet before it is written (or counted as present).
 *
 * The simple-signing payload signet signs is deterministic, so anyone who can push can plant
 * layers that claim it (the same layer digest) with signatures by no key of ours: thousands of
 * them, to keep the worker verifying and to push the .sig past cosign's layer limit, after which
 * no verifier reads any signature in it. So:
 *
 * - a layer whose digest is the payload signet signs is a claim. Another signer's layer can be one
 *   (a second signet deployment with its own keys, or `cosign sign --key` with `identity:
 *   repository`: the same payload, a key signet does not know), so a .sig with a handful of claims
 *   (at most `MAX_CLAIMS_VERIFIED`) keeps them all: each is verified with this job's keys (which
 *   of them is ours), and one by an unknown key is carried as it is. A .sig with more claims than
 *   that is poisoned (legitimate signers write one layer per key and payload): only claims that
 *   verify with a configured key (the rule's keys, then the other configured keys, so a retired
 *   key kept in `keys:` keeps its signatures) are carried; only the first `MAX_CLAIMS_VERIFIED`
 *   are verified and the rest are dropped unchecked. Verification runs on libuv's thread pool
 *   (crypto.verify with a callback), never on the event loop, and is bounded per read.
 * - every other layer (another tool's signature, another payload) is carried as it is.
 * - the merged result must fit cosign's and the registry's limits (legacy-sig.ts); when it cannot,
 *   the job fails with SIGNATURE_LIMIT_EXCEEDED: a signature no verifier can read is never
 *   reported as signed or present.
 */
import { verify as verifySignature } from 'node:crypto';
import { SignetError } from '../errors.js';
import type { SigningKey } from '../kms/signing-key.js';
import type { Metrics } from '../metrics.js';
import { COSIGN_SIMPLE_SIGNING } from '../registry/media-types.js';
import {
  buildSignatureManifest,
  SIGNATURE_ANNOTATION,
  COSIGN_MAX_LAYERS,
  COSIGN_MAX_PAYLOAD_BYTES,
  MAX_MANIFEST_BYTES,
  type SignatureLayer,
  type SignatureManifest,
} from './legacy-sig.js';

/**
 * Does `layer` hold a signature by `key` over exactly `payload` (digest, and the size cosign
 * reads by)? The check runs on libuv's thread pool (crypto.verify with a callback).
 */
export async function layerSignedBy(layer: SignatureLayer, payload: Buffer, payloadDigest: string, key: Pick<SigningKey, 'publicKey'>): Promise<boolean> {
  if (layer.digest !== payloadDigest || layer.size !== payload.length || layer.mediaType !== COSIGN_SIMPLE_SIGNING) return false;
  const b64 = layer.annotations[SIGNATURE_ANNOTATION];
  if (!b64) return false;
  return new Promise((resolve) => {
    try {
      verifySignature('sha256', payload, key.publicKey, Buffer.from(b64, 'base64'), (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

/** Claims of signet's payload verified per .sig read; a .sig with more is poisoned (see above). */
export const MAX_CLAIMS_VERIFIED = 16;

/** The metrics the carry-forward decisions are counted in (the runtime's; absent in unit tests). */
export type SignatureLimitMetrics = Pick<Metrics, 'signatureLayersDropped' | 'signatureLimitExceeded'>;

export interface Carried {
  layer: SignatureLayer;
  /** The signing keys (of this job) whose signature over signet's payload this layer holds. */
  signers: SigningKey[];
}

export interface Triage {
  carried: Carried[];
  /** Claims of a poisoned .sig dropped: verified with no configured key, or past the verification bound. */
  invalid: number;
  unchecked: number;
}

/**
 * Sort the layers of a .sig read from the registry. `payloads` maps each payload digest signet
 * signs here to its bytes; `signing` are this job's keys, `others` the rest of the configured keys.
 */
export async function triageLayers(
  layers: readonly SignatureLayer[],
  payloads: ReadonlyMap<string, Buffer>,
  signing: readonly SigningKey[],
  others: readonly SigningKey[] = [],
): Promise<Triage> {
  const out: Triage = { carried: [], invalid: 0, unchecked: 0 };
  const poisoned = layers.filter((l) => payloads.has(l.digest)).length > MAX_CLAIMS_VERIFIED;
  let checked = 0;
  for (const layer of layers) {
    const payload = payloads.get(layer.digest);
    if (!payload) {
      out.carried.push({ layer, signers: [] });
      continue;
    }
    if (checked >= MAX_CLAIMS_VERIFIED) {
      out.unchecked++;
      continue;
    }
    checked++;
    const signers: SigningKey[] = [];
    for (const k of signing) if (await layerSignedBy(layer, payload, layer.digest, k)) signers.push(k);
    let keep = signers.length > 0 || !poisoned;
    for (const k of others) {
      if (keep) break;
      keep = await layerSignedBy(layer, payload, layer.digest, k);
    }
    if (keep) out.carried.push({ layer, signers });
    else out.invalid++;
  }
  return out;
}

/** Count what a triage dropped. */
export function countDropped(t: Triage, metrics: SignatureLimitMetrics | undefined): void {
  if (t.invalid) metrics?.signatureLayersDropped.inc({ reason: 'invalid' }, t.invalid);
  if (t.unchecked) metrics?.signatureLayersDropped.inc({ reason: 'unchecked' }, t.unchecked);
}

type Limit = 'layers' | 'payload_bytes' | 'manifest_bytes';

function limitExceeded(limit: Limit, where: string, why: string, metrics: SignatureLimitMetrics | undefined): SignetError {
  metrics?.signatureLimitExceeded.inc({ limit });
  return new SignetError('SIGNATURE_LIMIT_EXCEEDED', `${where}: ${why}; not written, and not reported as signed (no verifier would read it)`);
}

/** Throws SIGNATURE_LIMIT_EXCEEDED when a payload signet signs is larger than cosign reads. */
export function checkPayloadSize(where: string, payload: Buffer, metrics: SignatureLimitMetrics | undefined): void {
  if (payload.length > COSIGN_MAX_PAYLOAD_BYTES) {
    throw limitExceeded('payload_bytes', where, `the payload is ${payload.length} bytes, cosign reads none over ${COSIGN_MAX_PAYLOAD_BYTES}`, metrics);
  }
}

/**
 * Throws SIGNATURE_LIMIT_EXCEEDED when a .sig with these layers would be refused by cosign or by
 * the registry; otherwise returns it built (manifest and config, for the write).
 */
export function checkSignatureLimits(where: string, layers: readonly SignatureLayer[], metrics: SignatureLimitMetrics | undefined): SignatureManifest {
  if (layers.length > COSIGN_MAX_LAYERS) {
    throw limitExceeded(
      'layers',
      where,
      `the .sig would have ${layers.length} layers and cosign reads none of a .sig with more than ${COSIGN_MAX_LAYERS} (the layers besides signet's own claims are not signet's to drop)`,
      metrics,
    );
  }
  const built = buildSignatureManifest(layers);
  if (built.manifest.length > MAX_MANIFEST_BYTES) {
    throw limitExceeded(
      'manifest_bytes',
      where,
      `the .sig manifest would be ${built.manifest.length} bytes and registries take at most ${MAX_MANIFEST_BYTES}`,
      metrics,
    );
  }
  return built;
}
