import { jsonOrUndefined, simpleSigningSchema } from './schemas.js';

/**
 * cosign's "simple signing" payload, byte-compatible with what `cosign sign` writes:
 * compact JSON, keys in Go struct order, `"optional":null` without annotations, sorted
 * annotation keys, no trailing newline (sigstore/sigstore pkg/signature/payload/payload.go).
 */
export function simpleSigningPayload(dockerReference: string, manifestDigest: string, annotations?: Readonly<Record<string, string>>): Buffer {
  let optional: Record<string, string> | null = null;
  if (annotations && Object.keys(annotations).length > 0) {
    optional = {};
    for (const k of Object.keys(annotations).sort()) optional[k] = annotations[k]!;
  }
  const doc = {
    critical: {
      identity: { 'docker-reference': dockerReference },
      image: { 'docker-manifest-digest': manifestDigest },
      type: 'cosign container image signature',
    },
    optional,
  };
  return Buffer.from(JSON.stringify(doc), 'utf8');
}

export interface ParsedPayload {
  dockerReference: string;
  manifestDigest: string;
  optional: Record<string, unknown> | null;
}

/** The payload's fields verification reads, or undefined when the bytes are not a simple-signing payload. */
export function parseSimpleSigningPayload(body: Buffer): ParsedPayload | undefined {
  const r = simpleSigningSchema.safeParse(jsonOrUndefined(body));
  if (!r.success) return undefined;
  const { critical, optional } = r.data;
  return { dockerReference: critical.identity['docker-reference'], manifestDigest: critical.image['docker-manifest-digest'], optional: optional ?? null };
}
