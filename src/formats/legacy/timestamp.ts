/**
 * The RFC 3161 timestamp of a legacy `.sig` layer: the `dev.sigstore.cosign/rfc3161timestamp`
 * annotation cosign writes with `--timestamp-server-url` (cosign pkg/cosign/bundle/tsa.go
 * RFC3161Timestamp: `{"SignedRFC3161Timestamp": <base64 of the TSA's DER response>}`), over the
 * raw signature bytes.
 */
import type { TimestampStatus } from '../../signing/signer.js';
import { legacyRfc3161Annotation, RFC3161_TIMESTAMP_ANNOTATION } from '../../transparency/timestamp.js';

export const TIMESTAMP_ANNOTATION = RFC3161_TIMESTAMP_ANNOTATION;

export function timestampAnnotation(response: Buffer): string {
  return legacyRfc3161Annotation({ response });
}

/** The DER response in a layer's annotation, or undefined when it has none or it is malformed. */
export function parseTimestampAnnotation(value: string | undefined): Buffer | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value) as { SignedRFC3161Timestamp?: unknown };
    return typeof v.SignedRFC3161Timestamp === 'string' && v.SignedRFC3161Timestamp ? Buffer.from(v.SignedRFC3161Timestamp, 'base64') : undefined;
  } catch {
    return undefined;
  }
}

export function presentTimestamp(annotations: Readonly<Record<string, string>>): TimestampStatus {
  return annotations[TIMESTAMP_ANNOTATION] !== undefined ? { status: 'present' } : { status: 'unavailable' };
}
