/**
 * The bench as the registry's notifier: distribution envelopes (one event per image, the shape
 * distribution 2.8 sends) POSTed straight to signet's /hooks/<name> over a keep-alive agent.
 */
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { OCI_MANIFEST } from './oci.js';

export const DISTRIBUTION_EVENTS = 'application/vnd.docker.distribution.events.v1+json';

export interface ImageRef {
  /** registry host, 127.0.0.1:PORT */
  host: string;
  repo: string;
  tag: string;
  digest: string;
  size?: number;
}

/** One manifest push event, as distribution's bridge writes it. */
export function pushEvent(img: ImageRef): Record<string, unknown> {
  return {
    id: randomUUID(),
    timestamp: new Date().toISOString(),
    action: 'push',
    target: {
      mediaType: OCI_MANIFEST,
      size: img.size ?? 500,
      digest: img.digest,
      length: img.size ?? 500,
      repository: img.repo,
      url: `http://${img.host}/v2/${img.repo}/manifests/${img.digest}`,
      tag: img.tag,
    },
    request: { id: randomUUID(), addr: '127.0.0.1:40000', host: img.host, method: 'PUT', useragent: 'signet-bench' },
    actor: {},
    source: { addr: 'bench:5000', instanceID: 'signet-bench' },
  };
}

export function envelope(imgs: readonly ImageRef[]): Buffer {
  return Buffer.from(JSON.stringify({ events: imgs.map(pushEvent) }));
}

export class HookPoster {
  private readonly agent: Agent;
  constructor(
    private readonly url: string,
    private readonly secret: string,
    connections = 64,
  ) {
    this.agent = new Agent({ connections, keepAliveTimeout: 30_000, headersTimeout: 30_000, bodyTimeout: 30_000 });
  }

  /** POST one envelope; resolves with the status and the acknowledgement time in ms. */
  async post(imgs: readonly ImageRef[]): Promise<{ status: number; ms: number; at: number }> {
    const body = envelope(imgs);
    const at = Date.now();
    const t0 = performance.now();
    const r = await request(this.url, {
      method: 'POST',
      headers: { 'content-type': DISTRIBUTION_EVENTS, authorization: `Bearer ${this.secret}`, 'content-length': String(body.length) },
      body,
      dispatcher: this.agent,
    });
    await r.body.dump();
    return { status: r.statusCode, ms: performance.now() - t0, at };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
