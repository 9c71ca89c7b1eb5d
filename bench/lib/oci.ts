/**
 * Registry traffic the bench generates itself, over a keep-alive undici Agent (like signet's own
 * client): cheap image pushes (blobs mounted from a base repository, one manifest PUT), the raw
 * signature-write loop that defines the registry's floor, signet's full request sequence for
 * comparison, and signature read-back checks.
 */
import { createHash, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { buildSignatureManifest, signatureLayer } from '../../src/signing/legacy-sig.js';
import { simpleSigningPayload } from '../../src/signing/payload.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ACCEPT = [
  OCI_MANIFEST,
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const sigTag = (digest: string): string => `${digest.replace(':', '-')}.sig`;

/** One throw-away P-256 key: the floor's signature annotations are real ECDSA signatures. */
const floorKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export class Oci {
  readonly agent: Agent;
  private base?: { layer: Buffer; layerDigest: string; config: Buffer; configDigest: string; repo: string };
  /** requests made, by "METHOD kind" */
  readonly counts: Record<string, number> = {};

  constructor(
    readonly url: string,
    connections = 128,
  ) {
    this.agent = new Agent({ connections, keepAliveTimeout: 30_000, headersTimeout: 30_000, bodyTimeout: 30_000 });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  async call(method: string, pathOrUrl: string, body?: Buffer, headers: Record<string, string> = {}, kind = 'other'): Promise<Reply> {
    this.counts[`${method} ${kind}`] = (this.counts[`${method} ${kind}`] ?? 0) + 1;
    const r = await request(pathOrUrl.startsWith('http') ? pathOrUrl : `${this.url}${pathOrUrl}`, {
      method: method as 'GET',
      headers: {
        'user-agent': 'signet-bench',
        ...headers,
        ...(body ? { 'content-length': String(body.length) } : method === 'POST' || method === 'PUT' ? { 'content-length': '0' } : {}),
      },
      ...(body ? { body } : {}),
      dispatcher: this.agent,
    });
    const b = method === 'HEAD' ? (await r.body.dump(), Buffer.alloc(0)) : Buffer.from(await r.body.arrayBuffer());
    return { status: r.statusCode, headers: r.headers, body: b };
  }

  private async expect(status: number[], method: string, p: string, body?: Buffer, headers?: Record<string, string>, kind?: string): Promise<Reply> {
    const r = await this.call(method, p, body, headers, kind);
    if (!status.includes(r.status)) throw new Error(`${method} ${p} -> HTTP ${r.status}: ${r.body.toString('utf8').slice(0, 300)}`);
    return r;
  }

  /** Monolithic blob upload: POST then PUT ?digest= (what signet and cosign do). */
  async uploadBlob(repo: string, data: Buffer): Promise<string> {
    const digest = sha256(data);
    const start = await this.expect([202], 'POST', `/v2/${repo}/blobs/uploads/`, undefined, {}, 'upload-start');
    const u = new URL(String(start.headers['location']), this.url);
    u.searchParams.set('digest', digest);
    await this.expect([201], 'PUT', u.href, data, { 'content-type': 'application/octet-stream' }, 'upload-put');
    return digest;
  }

  /** One base layer and config, uploaded once into `bench/base`; every cheap image mounts them. */
  async ensureBase(): Promise<void> {
    if (this.base) return;
    const repo = 'bench/base';
    const layer = gzipSync(Buffer.concat([Buffer.from('signet bench base layer\n'), Buffer.alloc(1024 - 24)]));
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: '1970-01-01T00:00:00Z',
        config: {},
        rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
      }),
    );
    const layerDigest = await this.uploadBlob(repo, layer);
    const configDigest = await this.uploadBlob(repo, config);
    this.base = { layer, layerDigest, config, configDigest, repo };
  }

  /**
   * A distinct single-arch OCI image in `repo:tag` for three requests: the base layer and config
   * mounted from bench/base, and a manifest made unique by an annotation.
   */
  async pushCheap(repo: string, tag: string, unique: string): Promise<{ digest: string; size: number }> {
    await this.ensureBase();
    const b = this.base!;
    for (const d of [b.layerDigest, b.configDigest]) {
      const r = await this.call('POST', `/v2/${repo}/blobs/uploads/?mount=${d}&from=${b.repo}`, undefined, {}, 'mount');
      if (r.status === 202) {
        // mount refused (should not happen on one registry): upload instead
        const u = new URL(String(r.headers['location']), this.url);
        u.searchParams.set('digest', d);
        await this.expect([201], 'PUT', u.href, d === b.layerDigest ? b.layer : b.config, { 'content-type': 'application/octet-stream' }, 'upload-put');
      } else if (r.status !== 201) throw new Error(`mount ${d} into ${repo} -> HTTP ${r.status}`);
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, size: b.config.length, digest: b.configDigest },
        layers: [{ mediaType: OCI_LAYER, size: b.layer.length, digest: b.layerDigest }],
        annotations: { 'dev.signet.bench.image': unique },
      }),
    );
    await this.expect([201], 'PUT', `/v2/${repo}/manifests/${tag}`, manifest, { 'content-type': OCI_MANIFEST }, 'manifest');
    return { digest: sha256(manifest), size: manifest.length };
  }

  /**
   * The floor: write one legacy cosign signature the way signet lays it out (payload blob, config
   * blob, manifest at sha256-<hex>.sig, byte-for-byte signet's format), with no read at all.
   */
  async writeSignature(repo: string, digest: string, identity: string): Promise<void> {
    const payload = simpleSigningPayload(identity, digest);
    const sig = cryptoSign('sha256', payload, floorKey).toString('base64');
    const layer = signatureLayer(payload, sha256(payload), sig);
    const built = buildSignatureManifest([layer]);
    await this.uploadBlob(repo, payload);
    await this.uploadBlob(repo, built.config);
    await this.expect([201], 'PUT', `/v2/${repo}/manifests/${sigTag(digest)}`, built.manifest, { 'content-type': OCI_MANIFEST }, 'sig-manifest');
  }

  /**
   * signet's request sequence for one new legacy signature, as bench/request-probe.mjs counts it
   * (src/signing/pipeline.ts + attach.ts): GET the manifest by tag (its bytes are checked against
   * the pushed digest), POST+PUT the payload blob, GET .sig under the lock (404), POST+PUT the
   * config blob, PUT .sig: 7 requests; `readBack` (registries[].verifyWrites) adds the GET of the
   * .sig after the PUT.
   */
  async signetSequence(repo: string, digest: string, tag: string, identity: string, o: { readBack?: boolean } = {}): Promise<void> {
    await this.expect([200], 'GET', `/v2/${repo}/manifests/${tag}`, undefined, { accept: ACCEPT }, 'manifest');
    const payload = simpleSigningPayload(identity, digest);
    const layer = signatureLayer(payload, sha256(payload), cryptoSign('sha256', payload, floorKey).toString('base64'));
    await this.uploadBlob(repo, payload);
    await this.expect([404], 'GET', `/v2/${repo}/manifests/${sigTag(digest)}`, undefined, { accept: OCI_MANIFEST }, 'sig-manifest');
    const built = buildSignatureManifest([layer]);
    await this.uploadBlob(repo, built.config);
    await this.expect([201], 'PUT', `/v2/${repo}/manifests/${sigTag(digest)}`, built.manifest, { 'content-type': OCI_MANIFEST }, 'sig-manifest');
    if (o.readBack) await this.expect([200], 'GET', `/v2/${repo}/manifests/${sigTag(digest)}`, undefined, { accept: OCI_MANIFEST }, 'sig-manifest');
  }

  /** Number of signature layers in repo's .sig for digest (0 when there is none). */
  async sigLayers(repo: string, digest: string): Promise<number> {
    const r = await this.call('GET', `/v2/${repo}/manifests/${sigTag(digest)}`, undefined, { accept: OCI_MANIFEST }, 'check');
    if (r.status === 404) return 0;
    if (r.status !== 200) throw new Error(`GET ${repo}:${sigTag(digest)} -> HTTP ${r.status}`);
    return ((JSON.parse(r.body.toString('utf8')) as { layers?: unknown[] }).layers ?? []).length;
  }
}
