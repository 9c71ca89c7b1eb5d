/**
 * zod schemas of a sigstore bundle (protobuf-specs sigstore_bundle.proto, v0.1 to v0.3) as
 * protobuf JSON, for reading bundles that anyone who can push may have written: cosign 3's
 * `cosign sign`, `cosign attest`, signet's own, or junk. Used by bundle-read.ts.
 *
 * Why not @sigstore/bundle: its guards (isBundleWithDsseEnvelope, assertBundle...) check presence
 * of fields, not bounds, and neither it nor sigstore-go's reader accepts everything protojson
 * does (int64 as numbers or strings, bytes as standard or URL-safe base64, snake_case field names),
 * which is the form the Go writers' bytes may take. Here every field is bounded and decoded once.
 *
 * protojson rules followed (google.golang.org/protobuf/encoding/protojson, what cosign and
 * sigstore-go use): default values are omitted (an absent int64 is 0, an absent repeated field is
 * empty), int64 is a JSON string (a number is accepted too), bytes are base64 (standard or
 * URL-safe, padding optional), enums are names (or their numbers), and field names are lowerCamel
 * (the proto snake_case name is accepted too). Unknown fields are ignored here (protojson would
 * refuse them; they carry nothing signet reads).
 */
import { z } from 'zod';

/** Largest bundle blob read (a cosign sign bundle is under 10 KiB; one with a certificate chain and Rekor entries a few). */
export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;
/** sigstore-go internal/limits: MaxAllowedTlogEntries, MaxAllowedTimestamps. */
export const MAX_TLOG_ENTRIES = 32;
export const MAX_TIMESTAMPS = 32;
const MAX_CERTIFICATES = 10;
const MAX_DSSE_SIGNATURES = 8;
/** An RFC 6962 audit path for 2^64 leaves. */
const MAX_PROOF_HASHES = 64;
const MAX_CHECKPOINT = 16 * 1024;

export const BUNDLE_MEDIA_TYPES = {
  '0.1': ['application/vnd.dev.sigstore.bundle+json;version=0.1'],
  '0.2': ['application/vnd.dev.sigstore.bundle+json;version=0.2'],
  '0.3': ['application/vnd.dev.sigstore.bundle+json;version=0.3', 'application/vnd.dev.sigstore.bundle.v0.3+json'],
} as const;

export type BundleVersion = keyof typeof BUNDLE_MEDIA_TYPES;

/** The version a bundle media type names, or undefined (v0.4 and later are not read: sigstore-go refuses them too). */
export function bundleVersion(mediaType: string): BundleVersion | undefined {
  for (const [v, types] of Object.entries(BUNDLE_MEDIA_TYPES) as [BundleVersion, readonly string[]][]) if (types.includes(mediaType)) return v;
  // sigstore-go getBundleVersion: "application/vnd.dev.sigstore.bundle.v<semver>+json"
  return /^application\/vnd\.dev\.sigstore\.bundle\.v0\.3\.\d+\+json$/.test(mediaType) ? '0.3' : undefined;
}

/** protobuf JSON bytes: base64, standard or URL-safe alphabet, padding optional. */
const bytes = z
  .string()
  .max(MAX_BUNDLE_BYTES)
  .regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'not base64')
  .refine((s) => s.replace(/=+$/, '').length % 4 !== 1, 'not base64')
  .transform((s) => Buffer.from(s, 'base64'));

const nonEmptyBytes = bytes.refine((b) => b.length > 0, 'empty');

/** protobuf JSON int64/uint64: a decimal string or a number, here non-negative and safe. */
const int64 = z
  .union([z.string().regex(/^\d{1,16}$/, 'not a non-negative integer'), z.number().int().min(0)])
  .transform((v) => Number(v))
  .refine((n) => Number.isSafeInteger(n), 'too large');

const HASH_ALGORITHMS = ['HASH_ALGORITHM_UNSPECIFIED', 'SHA2_256', 'SHA2_384', 'SHA2_512', 'SHA3_256', 'SHA3_384'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];
const hashAlgorithm = z
  .union([
    z.enum(HASH_ALGORITHMS),
    z
      .number()
      .int()
      .min(0)
      .max(HASH_ALGORITHMS.length - 1),
  ])
  .transform((v): HashAlgorithm => (typeof v === 'number' ? HASH_ALGORITHMS[v]! : v));

const x509Certificate = z.looseObject({ rawBytes: nonEmptyBytes });

const tlogEntrySchema = z.looseObject({
  logIndex: int64.default(0),
  logId: z.looseObject({ keyId: nonEmptyBytes }),
  kindVersion: z.looseObject({ kind: z.string().min(1).max(64), version: z.string().min(1).max(32) }),
  integratedTime: int64.default(0),
  inclusionPromise: z.looseObject({ signedEntryTimestamp: nonEmptyBytes }).optional(),
  inclusionProof: z
    .looseObject({
      logIndex: int64.default(0),
      rootHash: nonEmptyBytes,
      treeSize: int64.default(0),
      hashes: z.array(nonEmptyBytes).max(MAX_PROOF_HASHES).default([]),
      checkpoint: z.looseObject({ envelope: z.string().min(1).max(MAX_CHECKPOINT) }),
    })
    .optional(),
  canonicalizedBody: nonEmptyBytes,
});

export type TlogEntryJson = z.output<typeof tlogEntrySchema>;

export const bundleJsonSchema = z.looseObject({
  mediaType: z.string().max(200),
  verificationMaterial: z.looseObject({
    publicKey: z.looseObject({ hint: z.string().max(1024).optional() }).optional(),
    x509CertificateChain: z.looseObject({ certificates: z.array(x509Certificate).min(1).max(MAX_CERTIFICATES) }).optional(),
    certificate: x509Certificate.optional(),
    tlogEntries: z.array(tlogEntrySchema).max(MAX_TLOG_ENTRIES).default([]),
    timestampVerificationData: z
      .looseObject({
        rfc3161Timestamps: z
          .array(z.looseObject({ signedTimestamp: nonEmptyBytes }))
          .max(MAX_TIMESTAMPS)
          .default([]),
      })
      .optional(),
  }),
  dsseEnvelope: z
    .looseObject({
      payload: nonEmptyBytes,
      payloadType: z.string().min(1).max(200),
      signatures: z
        .array(z.looseObject({ sig: nonEmptyBytes, keyid: z.string().max(1024).optional() }))
        .min(1)
        .max(MAX_DSSE_SIGNATURES),
    })
    .optional(),
  messageSignature: z
    .looseObject({
      messageDigest: z.looseObject({ algorithm: hashAlgorithm.default('HASH_ALGORITHM_UNSPECIFIED'), digest: nonEmptyBytes }).optional(),
      signature: nonEmptyBytes,
    })
    .optional(),
});

export type BundleJson = z.output<typeof bundleJsonSchema>;

/**
 * protojson accepts a field's proto name (snake_case) as well as its JSON name (lowerCamel):
 * rewrite the bundle's keys to lowerCamel. Undefined when both spellings of a field are present
 * (protojson refuses duplicates) or the document nests deeper than a bundle does.
 */
export function camelKeys(v: unknown, depth = 0): unknown {
  if (depth > 12) throw new Error('too deep');
  if (Array.isArray(v)) return v.map((x) => camelKeys(x, depth + 1));
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const key = k.includes('_') ? k.replace(/(?<=[a-z0-9])_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()) : k;
    if (Object.prototype.hasOwnProperty.call(out, key)) throw new Error(`duplicate field ${key}`);
    // defineProperty: a "__proto__" key stays an (ignored) own field instead of setting the prototype
    Object.defineProperty(out, key, { value: camelKeys(x, depth + 1), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** An in-toto Statement (v1, or v0.1 which cosign < 2 wrote) as far as a signature claim goes. */
export const statementSchema = z.looseObject({
  _type: z.string().max(200),
  subject: z
    .array(
      z.looseObject({
        name: z.string().max(4096).optional(),
        digest: z.record(z.string().max(64), z.string().max(1024)),
        // protobuf Struct: any JSON values; cosign writes strings (`-a k=v`)
        annotations: z.record(z.string().max(4096), z.unknown()).optional(),
      }),
    )
    .min(1)
    .max(1024),
  predicateType: z.string().max(1024),
});
