/**
 * zod schemas of the signature formats signet reads back from a registry (anyone who can push
 * can write them): the legacy `.sig` manifest's layers, a bundle referrer manifest, a sigstore
 * bundle blob, a simple-signing payload. Registry-level shapes (manifests, indexes, descriptors)
 * are in src/registry/schemas.ts; these add what the formats need on top. Callers decide what a
 * mismatch means (a referrer that does not hold a bundle does not count; a .sig whose layers are
 * not descriptors is REGISTRY_PROTOCOL).
 */
import { z } from 'zod';
import { descriptorSchema } from '../registry/schemas.js';

/** The legacy .sig manifest as signet reads it: its layers, when it has any, are descriptors. */
export const signatureManifestSchema = z.looseObject({ layers: z.array(descriptorSchema).optional() });

/** A bundle referrer (cosign's WriteReferrer layout): exactly one layer, a sigstore bundle. */
export const bundleReferrerSchema = z.looseObject({
  layers: z.tuple([descriptorSchema.extend({ mediaType: z.string().startsWith('application/vnd.dev.sigstore.bundle') })]),
});

/** cosign's simple-signing payload (sigstore/sigstore pkg/signature/payload): what verification reads. */
export const simpleSigningSchema = z.looseObject({
  critical: z.looseObject({
    identity: z.looseObject({ 'docker-reference': z.string() }),
    image: z.looseObject({ 'docker-manifest-digest': z.string() }),
  }),
  optional: z.record(z.string(), z.unknown()).nullish(),
});

/** JSON.parse that answers undefined for bytes that are not JSON (a blob anyone could have pushed). */
export function jsonOrUndefined(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
}
