/**
 * cosign's "simple signing" payload, byte-compatible with what `cosign sign` writes:
 * compact JSON, keys in Go struct order, `"optional":null` without annotations, sorted
 * annotation keys, no trailing newline (sigstore/sigstore pkg/signature/payload/payload.go).
 */
export function simpleSigningPayload(
  dockerReference: string,
  manifestDigest: string,
  annotations?: Readonly<Record<string, string>>,
): Buffer {
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

export function parseSimpleSigningPayload(body: Buffer): ParsedPayload | undefined {
  try {
    const j = JSON.parse(body.toString('utf8')) as {
      critical?: { identity?: { 'docker-reference'?: string }; image?: { 'docker-manifest-digest'?: string } };
      optional?: Record<string, unknown> | null;
    };
    const ref = j.critical?.identity?.['docker-reference'];
    const dig = j.critical?.image?.['docker-manifest-digest'];
    if (typeof ref !== 'string' || typeof dig !== 'string') return undefined;
    return { dockerReference: ref, manifestDigest: dig, optional: j.optional ?? null };
  } catch {
    return undefined;
  }
}
