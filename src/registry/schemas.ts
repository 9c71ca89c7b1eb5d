/**
 * What a registry (and its token service) may answer, as zod schemas: image manifests and
 * indexes (OCI image-spec v1.1, Docker schema 2), tag lists and catalog pages (distribution
 * spec), referrers indexes, token responses. Every JSON body signet reads from a registry goes
 * through `parseRegistryJson`: malformed JSON, or JSON of the wrong shape (a manifest whose body is
 * `42`, `[]`, `{}`), is REGISTRY_PROTOCOL, which is not retried: the registry answered something
 * signet cannot use, and asking again gets the same bytes. Unknown fields are kept (loose objects).
 */
import { z } from 'zod';
import { SignetError } from '../errors.js';
import { checkShape } from '../edge/upstream-json.js';
import { redactText } from '../log.js';
import { IMAGE_MANIFEST_TYPES, INDEX_TYPES, OCI_INDEX } from './media-types.js';

/** OCI image-spec digest grammar (algorithm:encoded); sha256 is checked where it matters. */
const digest = z.string().regex(/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, 'not a digest');
const stringMap = z.record(z.string(), z.string());

export const descriptorSchema = z.looseObject({
  mediaType: z.string().min(1),
  digest,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: stringMap.optional(),
  artifactType: z.string().optional(),
  platform: z.looseObject({ os: z.string(), architecture: z.string(), variant: z.string().optional(), 'os.version': z.string().optional() }).optional(),
});

/** An image manifest (OCI or Docker schema 2). */
export const imageManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: stringMap.optional(),
});

/** An image index (OCI) or manifest list (Docker); also what the referrers API answers. */
export const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: stringMap.optional(),
});

/**
 * GET /v2/<name>/referrers/<digest> (distribution spec "Listing Referrers") and the referrers
 * fallback tag `sha256-<hex>`: an OCI image index (no Docker manifest list), every entry a descriptor.
 */
export const referrersIndexSchema = indexSchema.extend({ mediaType: z.literal(OCI_INDEX).optional() });

/** GET /v2/<name>/tags/list (distribution answers `"tags": null` for a repository without tags). */
export const tagListSchema = z.looseObject({ name: z.string().optional(), tags: z.array(z.string()).nullish() });

/** GET /v2/_catalog. */
export const catalogSchema = z.looseObject({ repositories: z.array(z.string()).nullish() });

/** A token service's answer (distribution token spec; `access_token` is the OAuth2 spelling). */
export const tokenResponseSchema = z
  .looseObject({
    token: z.string().min(1).optional(),
    access_token: z.string().min(1).optional(),
    // a lifetime signet cannot read is the spec's default (60 s), not a refusal
    expires_in: z.number().positive().optional().catch(undefined),
  })
  .refine((t) => t.token !== undefined || t.access_token !== undefined, 'no token');

/** The distribution spec's error body, read only for a message. */
const errorBodySchema = z.looseObject({
  errors: z.array(z.looseObject({ code: z.unknown().optional(), message: z.unknown().optional() })).optional(),
});

export type ImageManifest = z.infer<typeof imageManifestSchema>;
export type ImageIndex = z.infer<typeof indexSchema>;
export type Descriptor = z.infer<typeof descriptorSchema>;
export type ReferrersIndex = z.infer<typeof referrersIndexSchema>;

/** `what` answered JSON signet cannot use: REGISTRY_PROTOCOL (not retried). */
function protocolError(what: string, why: string): SignetError {
  return new SignetError('REGISTRY_PROTOCOL', redactText(`${what}: ${why}`).slice(0, 500));
}

function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw protocolError(what, 'answered malformed JSON');
  }
}

function check<S extends z.ZodType>(v: unknown, schema: S, what: string): z.infer<S> {
  const r = checkShape(v, schema);
  if (r.ok) return r.value;
  throw protocolError(what, `answered JSON of the wrong shape (${r.why})`);
}

/** Checks JSON already parsed (a manifest's `document`) against `schema`, like parseRegistryJson. */
export function checkRegistryJson<S extends z.ZodType>(value: unknown, schema: S, what: string): z.infer<S> {
  return check(value, schema, what);
}

/** Parses `body` as JSON of `schema`; `what` names the answer in the error ("registry h: GET /v2/..."). */
export function parseRegistryJson<S extends z.ZodType>(body: Buffer, schema: S, what: string): z.infer<S> {
  return check(parseJson(body, what), schema, what);
}

export type ManifestDocument = ImageManifest | ImageIndex | Record<string, unknown>;

/**
 * Checks a manifest body against the schema of its media type: the Content-Type the registry
 * sent (parameters dropped), else the body's own `mediaType`. An image manifest or index type
 * must parse as one, and a body naming another manifest type than the header is refused
 * (distribution refuses such a push). Other types (Docker schema 1, artifacts) need only be a
 * JSON object: the pipeline refuses to sign them (UNSUPPORTED_MEDIA_TYPE).
 */
export function parseManifest(body: Buffer, contentType: string | undefined, what: string): { mediaType: string; document: ManifestDocument } {
  const json = parseJson(body, what);
  const document = check(json, z.record(z.string(), z.unknown()), what);
  const own = typeof document['mediaType'] === 'string' ? document['mediaType'] : undefined;
  const mediaType = contentType || own || '';
  const known = (t: string | undefined) => t !== undefined && (IMAGE_MANIFEST_TYPES.has(t) || INDEX_TYPES.has(t));
  if (known(own) && known(mediaType) && own !== mediaType) {
    throw protocolError(what, `served a ${own} body as ${mediaType}`);
  }
  if (IMAGE_MANIFEST_TYPES.has(mediaType)) return { mediaType, document: check(json, imageManifestSchema, what) };
  if (INDEX_TYPES.has(mediaType)) return { mediaType, document: check(json, indexSchema, what) };
  return { mediaType, document };
}

/** `: CODE message` from a distribution error body, for error messages (redacted, short); '' when there is none. */
export function errorDetail(body: Buffer): string {
  if (!body.length) return '';
  try {
    const e = errorBodySchema.safeParse(JSON.parse(body.toString('utf8'))).data?.errors?.[0];
    if (e) return redactText(`: ${String(e.code ?? '')} ${String(e.message ?? '')}`.trimEnd()).slice(0, 300);
  } catch {
    /* not JSON */
  }
  return '';
}
