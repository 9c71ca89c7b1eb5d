import { describe, expect, it } from 'vitest';
import { buildSignatureManifest, parseSignatureManifest, SIGNATURE_CONFIG, signatureLayer } from '../../../src/signing/legacy-sig.js';
import { simpleSigningPayload } from '../../../src/signing/payload.js';
import { sha256Digest } from '../../../src/util/digest.js';

const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';

describe('simple signing payload', () => {
  it('is byte-identical to cosign (compact, Go field order, optional null)', () => {
    expect(simpleSigningPayload('r.example/team/api', D).toString()).toBe(
      `{"critical":{"identity":{"docker-reference":"r.example/team/api"},"image":{"docker-manifest-digest":"${D}"},"type":"cosign container image signature"},"optional":null}`,
    );
  });
  it('sorts annotation keys like Go maps', () => {
    const p = simpleSigningPayload('r/x', D, { team: 'platform', a: '1' }).toString();
    expect(p.endsWith('"optional":{"a":"1","team":"platform"}}')).toBe(true);
  });
});

describe('legacy .sig manifest', () => {
  it('matches the structure cosign writes; the config is the one constant shared by every .sig (ggcr empty.Image)', () => {
    const p = simpleSigningPayload('r/x', D);
    const l = signatureLayer(p, sha256Digest(p), 'c2ln');
    const { manifest, config } = buildSignatureManifest([l, l]);
    const m = JSON.parse(manifest.toString());
    expect(Object.keys(m)).toEqual(['schemaVersion', 'mediaType', 'config', 'layers']);
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(m.config).toEqual({ mediaType: 'application/vnd.oci.image.config.v1+json', size: config.length, digest: sha256Digest(config) });
    expect(m.layers[0]).toEqual({
      mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
      size: p.length,
      digest: sha256Digest(p),
      annotations: { 'dev.cosignproject.cosign/signature': 'c2ln' },
    });
    expect(config.toString()).toBe('{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}');
    expect(config).toBe(SIGNATURE_CONFIG);
    // the same bytes whatever the layers
    expect(buildSignatureManifest([l]).config.equals(config)).toBe(true);
    expect(parseSignatureManifest(JSON.parse(manifest.toString()), 'test .sig')).toEqual([l, l]);
  });
});
