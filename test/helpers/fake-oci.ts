/**
 * An in-memory OCI registry on 127.0.0.1 with the OCI 1.1 referrers API (which the kit's real
 * docker-registry 2.8 lacks): manifests and blobs by digest or tag, monolithic uploads, and
 * GET /v2/<repo>/referrers/<digest> built from the `subject` of stored manifests (annotations and
 * artifactType copied as the distribution spec says). No auth.
 *
 * Switches: `referrersApi` (off: 404 like distribution 2.x), `singlePost` (the distribution
 * spec's single-POST monolithic upload, `POST .../blobs/uploads/?digest=` with the body -> 201;
 * off: 202 and the body ignored, like distribution 2.8), `redirectBlobs` (blob GETs answer 307 to
 * another host, like registries backed by S3/GCS), and a request log.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryClient } from '../../src/registry/client.js';

export interface FakeOci {
  host: string;
  referrersApi: boolean;
  singlePost: boolean;
  redirectBlobs: boolean;
  requests: string[];
  manifests: Map<string, { body: Buffer; mediaType: string }>;
  tags: Map<string, string>;
  blobs: Map<string, Buffer>;
  stop(): Promise<void>;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function startFakeOci(): Promise<FakeOci> {
  const state: Omit<FakeOci, 'host' | 'stop'> = {
    referrersApi: true,
    singlePost: false,
    redirectBlobs: false,
    requests: [],
    manifests: new Map(),
    tags: new Map(),
    blobs: new Map(),
  };
  let uploads = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const u = new URL(req.url ?? '/', 'http://x');
      state.requests.push(`${req.method} ${u.pathname}`);
      const send = (status: number, data: Buffer | string = '', headers: Record<string, string> = {}) => {
        res.writeHead(status, headers);
        res.end(req.method === 'HEAD' ? undefined : data);
      };
      if (u.pathname === '/v2/') return send(200, '{}');
      let m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(u.pathname);
      if (m) {
        const [, repo, ref] = m;
        if (req.method === 'PUT') {
          const digest = sha(body);
          state.manifests.set(`${repo}@${digest}`, { body, mediaType: String(req.headers['content-type'] ?? '') });
          if (!ref!.startsWith('sha256:')) state.tags.set(`${repo}:${ref}`, digest);
          const subject = (JSON.parse(body.toString()) as { subject?: { digest?: string } }).subject?.digest;
          return send(201, '', { 'docker-content-digest': digest, ...(subject && state.referrersApi ? { 'oci-subject': subject } : {}) });
        }
        const digest = ref!.startsWith('sha256:') ? ref! : state.tags.get(`${repo}:${ref}`);
        const found = digest ? state.manifests.get(`${repo}@${digest}`) : undefined;
        if (!found) return send(404, '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return send(200, found.body, { 'content-type': found.mediaType, 'docker-content-digest': digest!, 'content-length': String(found.body.length) });
      }
      m = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})$/.exec(u.pathname);
      if (m) {
        if (!state.referrersApi) return send(404, '404 page not found');
        const [, repo, subject] = m;
        const manifests = [];
        for (const [key, v] of state.manifests) {
          if (!key.startsWith(`${repo}@`)) continue;
          const doc = JSON.parse(v.body.toString()) as {
            subject?: { digest?: string };
            artifactType?: string;
            config?: { mediaType?: string };
            annotations?: Record<string, string>;
          };
          if (doc.subject?.digest !== subject) continue;
          manifests.push({
            mediaType: v.mediaType,
            digest: key.slice(repo!.length + 1),
            size: v.body.length,
            artifactType: doc.artifactType ?? doc.config?.mediaType,
            annotations: doc.annotations,
          });
        }
        return send(200, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }), {
          'content-type': 'application/vnd.oci.image.index.v1+json',
        });
      }
      m = /^\/v2\/(.+)\/blobs\/uploads\/(\d+)?$/.exec(u.pathname);
      if (m) {
        const single = u.searchParams.get('digest');
        if (req.method === 'POST' && single && state.singlePost) {
          if (sha(body) !== single) return send(400, '{"errors":[{"code":"DIGEST_INVALID"}]}');
          state.blobs.set(single, body);
          return send(201, '', { 'docker-content-digest': single, location: `/v2/${m[1]}/blobs/${single}` });
        }
        if (req.method === 'POST') return send(202, '', { location: `/v2/${m[1]}/blobs/uploads/${++uploads}` });
        if (req.method === 'PUT') {
          const digest = u.searchParams.get('digest')!;
          if (sha(body) !== digest) return send(400, '{"errors":[{"code":"DIGEST_INVALID"}]}');
          state.blobs.set(digest, body);
          return send(201, '', { 'docker-content-digest': digest });
        }
      }
      m = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(u.pathname);
      if (m) {
        const blob = state.blobs.get(m[2]!);
        if (!blob) return send(404);
        if (state.redirectBlobs && req.method === 'GET') return send(307, '', { location: `http://storage.invalid/${m[2]}` });
        return send(200, blob, { 'content-length': String(blob.length), 'docker-content-digest': m[2]! });
      }
      return send(404);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    host,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  }) as FakeOci;
}

export interface FakeOciClient {
  reg: FakeOci;
  client: RegistryClient;
  /** Closes the client, then stops the registry. */
  stop(): Promise<void>;
}

/** A fake registry and signet's registry client for it (plain http, 8 connections, 5 s timeout, no write verification). */
export async function startFakeOciClient(): Promise<FakeOciClient> {
  const reg = await startFakeOci();
  const client = new RegistryClient({ host: reg.host, insecure: true, aliases: [], authHosts: [], maxConcurrency: 8, timeoutMs: 5000, verifyWrites: false });
  return {
    reg,
    client,
    async stop() {
      await client.close();
      await reg.stop();
    },
  };
}
