/**
 * The zod schemas of registry answers: what is accepted (OCI and Docker manifests and indexes,
 * tag lists, catalog pages, token answers as registries send them) and what is refused, always
 * as REGISTRY_PROTOCOL (not retried).
 */
import { describe, expect, it } from 'vitest';
import {
  catalogSchema,
  errorDetail,
  parseManifest,
  parseRegistryJson,
  referrersIndexSchema,
  tagListSchema,
  tokenResponseSchema,
} from '../../../src/registry/schemas.js';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from '../../../src/registry/media-types.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const desc = (mediaType: string, c = 'a') => ({ mediaType, digest: d(c), size: 10 });
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

const ociManifest = {
  schemaVersion: 2,
  mediaType: OCI_MANIFEST,
  config: desc('application/vnd.oci.image.config.v1+json'),
  layers: [desc('application/vnd.oci.image.layer.v1.tar+gzip', 'b')],
};
const dockerList = {
  schemaVersion: 2,
  mediaType: DOCKER_MANIFEST_LIST,
  manifests: [{ ...desc(DOCKER_MANIFEST), platform: { architecture: 'amd64', os: 'linux' } }],
};

function refused(f: () => unknown, message: RegExp) {
  try {
    f();
  } catch (err) {
    expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL', retryable: false });
    expect((err as Error).message).toMatch(message);
    return;
  }
  throw new Error('not refused');
}

describe('parseManifest', () => {
  it('accepts OCI and Docker manifests and indexes, typed by Content-Type or by the body', () => {
    expect(parseManifest(json(ociManifest), OCI_MANIFEST, 'm')).toEqual({ mediaType: OCI_MANIFEST, document: ociManifest });
    expect(parseManifest(json(ociManifest), '', 'm').mediaType).toBe(OCI_MANIFEST);
    expect(parseManifest(json(dockerList), DOCKER_MANIFEST_LIST, 'm').document).toEqual(dockerList);
    const { mediaType: _, ...bare } = ociManifest; // OCI allows leaving mediaType out of the body
    expect(parseManifest(json(bare), OCI_MANIFEST, 'm').mediaType).toBe(OCI_MANIFEST);
    // unknown fields are kept
    expect(parseManifest(json({ ...ociManifest, extra: { x: 1 } }), OCI_MANIFEST, 'm').document).toMatchObject({ extra: { x: 1 } });
  });

  it('other types need only be a JSON object (the pipeline refuses to sign them)', () => {
    const schema1 = { schemaVersion: 1, name: 'x', fsLayers: [] };
    expect(parseManifest(json(schema1), 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'm').document).toEqual(schema1);
  });

  it('refuses what is not a manifest of its type', () => {
    refused(
      () => parseManifest(Buffer.from('42'), OCI_MANIFEST, 'registry r: manifest x'),
      /^registry r: manifest x: answered JSON of the wrong shape \(got a JSON number\)$/,
    );
    refused(() => parseManifest(Buffer.from('[]'), OCI_MANIFEST, 'm'), /got an array/);
    refused(() => parseManifest(Buffer.from('null'), '', 'm'), /got null/);
    refused(() => parseManifest(Buffer.from('{}'), OCI_MANIFEST, 'm'), /schemaVersion/);
    refused(() => parseManifest(Buffer.from('{}'), OCI_INDEX, 'm'), /schemaVersion/);
    refused(() => parseManifest(json({ ...ociManifest, schemaVersion: 1 }), OCI_MANIFEST, 'm'), /schemaVersion/);
    refused(
      () => parseManifest(json({ ...ociManifest, layers: [{ mediaType: 'x', digest: 'nope', size: 1 }] }), OCI_MANIFEST, 'm'),
      /layers\.0\.digest: not a digest/,
    );
    refused(() => parseManifest(json({ ...ociManifest, config: { ...ociManifest.config, size: -1 } }), OCI_MANIFEST, 'm'), /config\.size/);
    refused(() => parseManifest(json({ ...dockerList, manifests: 'all' }), DOCKER_MANIFEST_LIST, 'm'), /manifests/);
    refused(
      () => parseManifest(json(ociManifest), OCI_INDEX, 'm'),
      /served a application\/vnd\.oci\.image\.manifest\.v1\+json body as application\/vnd\.oci\.image\.index\.v1\+json/,
    );
    refused(() => parseManifest(Buffer.from('{"schemaVersion":2'), OCI_MANIFEST, 'm'), /malformed JSON/);
    refused(() => parseManifest(Buffer.from([0xff, 0xfe, 0x00]), OCI_MANIFEST, 'm'), /malformed JSON/);
  });
});

describe('listings and tokens', () => {
  it('tag lists and catalog pages: arrays of strings, null or absent for none', () => {
    expect(parseRegistryJson(json({ name: 'a', tags: ['v1'] }), tagListSchema, 't').tags).toEqual(['v1']);
    expect(parseRegistryJson(json({ name: 'a', tags: null }), tagListSchema, 't').tags).toBeNull();
    expect(parseRegistryJson(json({ repositories: ['a/b'] }), catalogSchema, 'c').repositories).toEqual(['a/b']);
    refused(() => parseRegistryJson(json({ tags: 42 }), tagListSchema, 't'), /tags/);
    refused(() => parseRegistryJson(json({ tags: ['v1', 7] }), tagListSchema, 't'), /tags\.1/);
    refused(() => parseRegistryJson(json({ repositories: 'a' }), catalogSchema, 'c'), /repositories/);
    refused(() => parseRegistryJson(Buffer.from('<html>'), catalogSchema, 'c'), /malformed JSON/);
  });

  it('referrers indexes are image indexes', () => {
    const idx = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ ...desc(OCI_MANIFEST), artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json', annotations: { a: 'b' } }],
    };
    expect(parseRegistryJson(json(idx), referrersIndexSchema, 'r')).toEqual(idx);
    refused(() => parseRegistryJson(json({ ...idx, manifests: [{ ...idx.manifests[0], annotations: { a: 1 } }] }), referrersIndexSchema, 'r'), /annotations/);
  });

  it('token answers: token or access_token; an unreadable expires_in is the default, no token is refused', () => {
    expect(parseRegistryJson(json({ token: 't', expires_in: 300 }), tokenResponseSchema, 'k')).toMatchObject({ token: 't', expires_in: 300 });
    expect(parseRegistryJson(json({ access_token: 'a' }), tokenResponseSchema, 'k')).toMatchObject({ access_token: 'a' });
    expect(parseRegistryJson(json({ token: 't', expires_in: 'soon' }), tokenResponseSchema, 'k').expires_in).toBeUndefined();
    refused(() => parseRegistryJson(json({ expires_in: 300 }), tokenResponseSchema, 'k'), /no token/);
    refused(() => parseRegistryJson(json({ token: '' }), tokenResponseSchema, 'k'), /wrong shape/);
  });

  it('error details: the first error, redacted and short; nothing from a body that is not one', () => {
    expect(errorDetail(json({ errors: [{ code: 'DENIED', message: 'see /v2/?access_token=abc' }] }))).toBe(': DENIED see /v2/?access_token=[redacted]');
    expect(errorDetail(json({ errors: [{ code: 'DENIED', message: 'use Bearer eyJhbGciOi.x.y' }] }))).toBe(': DENIED use Bearer [redacted]');
    expect(errorDetail(Buffer.from('<html>'))).toBe('');
    expect(errorDetail(json(42))).toBe('');
    expect(errorDetail(json({ errors: [{ code: 'X', message: 'm'.repeat(1000) }] })).length).toBe(300);
  });
});
