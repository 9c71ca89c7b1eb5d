/** imageShape: what the pipeline signs for a manifest (src/verify/image.ts). */
import { describe, expect, it } from 'vitest';
import { OCI_INDEX, OCI_MANIFEST } from '../../../src/registry/media-types.js';
import { parseManifest } from '../../../src/registry/schemas.js';
import { imageShape } from '../../../src/verify/image.js';

const D = `sha256:${'a'.repeat(64)}`;

/** imageShape of `doc` as the registry client reads it (body parsed and checked against its media type). */
function shape(doc: object, mediaType: string) {
  return imageShape({ ...parseManifest(Buffer.from(JSON.stringify(doc)), mediaType, 'test manifest'), digest: D });
}

describe('imageShape: what the pipeline signs for a manifest', () => {
  it('an index and each child, with platforms; referrers and other types are skipped', () => {
    const c1 = `sha256:${'1'.repeat(64)}`;
    const c2 = `sha256:${'2'.repeat(64)}`;
    const desc = (digest: string, extra: object = {}) => ({ mediaType: OCI_MANIFEST, digest, size: 10, ...extra });
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [desc(c1, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }), desc(c2), desc(c1)],
    };
    expect(shape(index, OCI_INDEX)).toEqual({
      kind: 'signable',
      digest: D,
      mediaType: OCI_INDEX,
      manifests: [
        { digest: D, role: 'index' },
        { digest: c1, role: 'child', platform: 'linux/arm64/v8' },
        { digest: c2, role: 'child' },
      ],
    });
    const referrer = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc(c1), layers: [], subject: desc(c2) };
    expect(shape(referrer, OCI_MANIFEST)).toMatchObject({ kind: 'skip', reason: expect.stringContaining('subject') });
    expect(shape({}, 'application/vnd.docker.distribution.manifest.v1+prettyjws')).toMatchObject({ kind: 'skip' });
  });
});
