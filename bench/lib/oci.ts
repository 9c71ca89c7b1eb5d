/**
 * Registry traffic the bench generates itself, over a keep-alive undici Agent (like signet's own
 * client): cheap image pushes (blobs mounted from a base repository, one manifest PUT), the raw
 * signature-write loop that defines the registry's floor, signet's request sequences (legacy-only
 * and the default formats) replayed for comparison, and signature read-back checks.
 */
import { createHash, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import {
  appendToIndex,
  BUNDLE_V03,
  buildBundle,
  EMPTY_CONFIG,
  INTOTO_PAYLOAD_TYPE,
  pae,
  referrerAnnotations,
  referrerManifest,
  referrersTag,
  signStatement,
} from '../../src/signing/bundle.js';
import { buildSignatureManifest, signatureLayer, type SignatureLayer } from '../../src/signing/legacy-sig.js';
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
const floorPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const floorKey = floorPair.privateKey;
const floorPub = floorPair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/**
 * The `.sig` manifest as cosign lays it out, with a config unique to the signature set (rootfs
 * diff_ids and history following the layers): what signet wrote until round 5, and what the
 * floor keeps writing, so "the write-only floor" stays the same 5 writes as in round 4 (POST+PUT
 * payload, POST+PUT config, PUT .sig).
 */
function cosignSignatureManifest(layers: readonly SignatureLayer[]): { manifest: Buffer; config: Buffer } {
  const zero = '0001-01-01T00:00:00Z';
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: zero,
      history: layers.map(() => ({ created: zero })),
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, size: config.length, digest: sha256(config) },
      layers: layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest, annotations: l.annotations })),
    }),
  );
  return { manifest, config };
}

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
  /** Shared blobs (the .sig config, the empty config) uploaded per repository, as signet remembers them. */
  private readonly shared = new Map<string, Promise<string>>();
  /** Repositories the base blobs were mounted into. */
  private readonly mounted = new Map<string, Promise<void>>();

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

  private async mountBase(repo: string): Promise<void> {
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
  }

  /**
   * A distinct single-arch OCI image in `repo:tag`: the base layer and config mounted from
   * bench/base (once per repository), and a manifest made unique by an annotation (one request).
   */
  async pushCheap(repo: string, tag: string, unique: string): Promise<{ digest: string; size: number }> {
    await this.ensureBase();
    const b = this.base!;
    // once per repository (concurrent pushes to one repository share it): distribution answers
    // "blob unknown" to a manifest PUT while another request is linking the same blob there
    let mounted = this.mounted.get(repo);
    if (!mounted) this.mounted.set(repo, (mounted = this.mountBase(repo)));
    await mounted;
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
   * The floor: write one legacy cosign signature with no read at all, the payload blob, a config
   * blob unique to it (cosign's layout) and the manifest at sha256-<hex>.sig: 5 writes.
   */
  async writeSignature(repo: string, digest: string, identity: string): Promise<void> {
    const payload = simpleSigningPayload(identity, digest);
    const sig = cryptoSign('sha256', payload, floorKey).toString('base64');
    const layer = signatureLayer(payload, sha256(payload), sig);
    const built = cosignSignatureManifest([layer]);
    await this.uploadBlob(repo, payload);
    await this.uploadBlob(repo, built.config);
    await this.expect([201], 'PUT', `/v2/${repo}/manifests/${sigTag(digest)}`, built.manifest, { 'content-type': OCI_MANIFEST }, 'sig-manifest');
  }

  /** A shared blob uploaded once per repository (concurrent callers share the upload), as signet's client does. */
  private ensureShared(repo: string, data: Buffer): Promise<string> {
    const key = `${repo}@${sha256(data)}`;
    let p = this.shared.get(key);
    if (!p) this.shared.set(key, (p = this.uploadBlob(repo, data)));
    return p;
  }

  /**
   * signet's request sequence for one new legacy signature (src/formats/legacy/write.ts, as
   * bench/request-probe.mjs counts it): GET the manifest by tag (its bytes are checked against the
   * pushed digest), POST+PUT the payload blob, GET .sig under the lock (404), PUT .sig: 5
   * requests, plus the shared .sig config (POST+PUT) once per repository; `readBack`
   * (registries[].verifyWrites) adds the GET of the .sig after the PUT.
   */
  async signetSequence(repo: string, digest: string, tag: string, identity: string, o: { readBack?: boolean } = {}): Promise<void> {
    await this.expect([200], 'GET', `/v2/${repo}/manifests/${tag}`, undefined, { accept: ACCEPT }, 'manifest');
    await this.legacySequence(repo, digest, identity, o);
  }

  private async legacySequence(repo: string, digest: string, identity: string, o: { readBack?: boolean } = {}): Promise<void> {
    const payload = simpleSigningPayload(identity, digest);
    const layer = signatureLayer(payload, sha256(payload), cryptoSign('sha256', payload, floorKey).toString('base64'));
    await this.uploadBlob(repo, payload);
    await this.expect([404], 'GET', `/v2/${repo}/manifests/${sigTag(digest)}`, undefined, { accept: OCI_MANIFEST }, 'sig-manifest');
    const built = buildSignatureManifest([layer]);
    await this.ensureShared(repo, built.config);
    await this.expect([201], 'PUT', `/v2/${repo}/manifests/${sigTag(digest)}`, built.manifest, { 'content-type': OCI_MANIFEST }, 'sig-manifest');
    if (o.readBack) await this.expect([200], 'GET', `/v2/${repo}/manifests/${sigTag(digest)}`, undefined, { accept: OCI_MANIFEST }, 'sig-manifest');
  }

  /**
   * signet's sequence for one new image with the default formats on a registry without the
   * referrers API (src/formats/legacy/write.ts, then src/formats/bundle/write.ts and
   * src/formats/referrers/index.ts): the legacy sequence above, then GET the fallback index
   * `sha256-<hex>` under the lock (404), POST+PUT the bundle blob, PUT the referrer manifest by
   * digest, PUT the fallback index: 10 requests, plus the shared configs once per repository.
   */
  async signetDefaultSequence(repo: string, digest: string, size: number, tag: string, identity: string): Promise<void> {
    await this.expect([200], 'GET', `/v2/${repo}/manifests/${tag}`, undefined, { accept: ACCEPT }, 'manifest');
    await this.legacySequence(repo, digest, identity);
    const statement = signStatement(digest);
    const signature = cryptoSign('sha256', pae(INTOTO_PAYLOAD_TYPE, statement), floorKey);
    const bundle = buildBundle({ statement, signature, publicKeyPem: floorPub });
    const annotations = referrerAnnotations(statement, floorPub);
    const manifest = referrerManifest(bundle, { mediaType: OCI_MANIFEST, digest, size }, annotations);
    await this.expect([404], 'GET', `/v2/${repo}/manifests/${referrersTag(digest)}`, undefined, { accept: OCI_INDEX }, 'index');
    await this.ensureShared(repo, EMPTY_CONFIG);
    await this.uploadBlob(repo, bundle);
    await this.expect([201], 'PUT', `/v2/${repo}/manifests/${sha256(manifest)}`, manifest, { 'content-type': OCI_MANIFEST }, 'referrer');
    const index = appendToIndex(undefined, [
      { mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length, artifactType: BUNDLE_V03, annotations },
    ]);
    await this.expect([201], 'PUT', `/v2/${repo}/manifests/${referrersTag(digest)}`, index.body, { 'content-type': OCI_INDEX }, 'index');
  }

  /** Number of signature layers in repo's .sig for digest (0 when there is none). */
  async sigLayers(repo: string, digest: string): Promise<number> {
    const r = await this.call('GET', `/v2/${repo}/manifests/${sigTag(digest)}`, undefined, { accept: OCI_MANIFEST }, 'check');
    if (r.status === 404) return 0;
    if (r.status !== 200) throw new Error(`GET ${repo}:${sigTag(digest)} -> HTTP ${r.status}`);
    return ((JSON.parse(r.body.toString('utf8')) as { layers?: unknown[] }).layers ?? []).length;
  }
}
