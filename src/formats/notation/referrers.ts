/**
 * Notation signatures among a manifest's OCI 1.1 referrers (listed by src/formats/referrers/):
 * referrers with artifactType `application/vnd.cncf.notary.signature`, whose manifest holds one
 * `application/jose+json` layer, the envelope.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { RegistryClient } from '../../registry/client.js';
import { OCI_MANIFEST } from '../../registry/media-types.js';
import { descriptorSchema } from '../../registry/schemas.js';
import { getBlob, type IndexDescriptor } from '../../signing/registry-ops.js';
import { JWS_ENVELOPE, NOTATION_SIGNATURE, parseEnvelope, pemToDers, THUMBPRINT_ANNOTATION, type ParsedEnvelope } from './jws.js';

const notationReferrerSchema = z.looseObject({
  artifactType: z.literal(NOTATION_SIGNATURE),
  layers: z.tuple([descriptorSchema.extend({ mediaType: z.literal(JWS_ENVELOPE) })]),
});

export function isNotationReferrer(d: { artifactType?: string | undefined }): boolean {
  return d.artifactType === NOTATION_SIGNATURE;
}

/** Could this referrer be signed with this leaf certificate? (its thumbprint annotation, when it has one, is only a hint) */
export function mayBeByLeaf(d: IndexDescriptor, leafPem: string | undefined): boolean {
  const t = d.annotations?.[THUMBPRINT_ANNOTATION];
  if (t === undefined || leafPem === undefined) return true;
  const leaf = pemToDers(leafPem)[0];
  if (!leaf) return true;
  try {
    const list = JSON.parse(t) as unknown;
    return !Array.isArray(list) || list[0] === createHash('sha256').update(leaf).digest('hex');
  } catch {
    return true;
  }
}

/** The envelope a Notation referrer holds, or undefined when it is absent or cannot be read. */
export async function readEnvelope(client: RegistryClient, repository: string, digest: string): Promise<ParsedEnvelope | undefined> {
  const m = await client.getManifest(repository, digest, OCI_MANIFEST);
  if (!m) return undefined;
  const r = notationReferrerSchema.safeParse(m.document);
  if (!r.success) return undefined;
  const blob = await getBlob(client, repository, r.data.layers[0].digest);
  return blob.status === 'ok' ? parseEnvelope(blob.data) : undefined;
}
