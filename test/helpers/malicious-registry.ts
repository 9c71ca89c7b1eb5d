/**
 * A registry stand-in on 127.0.0.1 that misbehaves on purpose, where a real registry cannot:
 * answers that drip a byte at a time, huge (streamed, never materialised) bodies, bad JSON, a
 * manifest whose body is `42`, a 401 whose token realm is on a foreign host, `Retry-After:
 * 99999999`, endless `Link: rel="next"` chains. Each trick applies to the requests it matches,
 * `times` times. Requests no trick takes are forwarded to `upstream` (a real registry, see
 * registry.ts) when given, else answered like an empty registry (GET /v2/ 200, the rest 404).
 *
 * With `auth: true` it asks for a bearer token from its own realm (`/token`, which hands out one
 * fixed token) before forwarding, like a registry with a token service on its own host.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Trick = {
  /** Which requests it takes; default all. */
  match?: (req: IncomingMessage, url: URL) => boolean;
  /** How many matching requests it takes (then it is used up). Infinity: until removed. */
  times: number;
} & (
  | { kind: 'answer'; status: number; headers?: Record<string, string>; body?: string }
  /** Headers at once, then one byte every `everyMs`, forever (until the client gives up). */
  | { kind: 'drip'; everyMs: number; headers?: Record<string, string> }
  /** `bytes` bytes of body, streamed with backpressure; `declare` sends a content-length. */
  | { kind: 'huge'; bytes: number; declare?: boolean; headers?: Record<string, string> }
  /** A tag list or catalog page of `perPage` new names, each with a `Link: rel="next"` to one more page. */
  | { kind: 'endless-list'; perPage: number }
);

export interface MaliciousRegistry {
  host: string;
  tricks: Trick[];
  /** Every request, "METHOD path", in arrival order. */
  requests: string[];
  /** Responses being dripped or streamed right now. */
  open: number;
  /** Bytes of huge bodies written so far. */
  hugeBytesSent: number;
  /** Token requests answered at /token. */
  tokens: number;
  /** Ends every response being dripped or streamed (the connection is destroyed). */
  hangUp(): void;
  stop(): Promise<void>;
}

export const GOOD_TOKEN = 'malicious-stand-in-token';

export async function startMaliciousRegistry(opts: { upstream?: string; auth?: boolean } = {}): Promise<MaliciousRegistry> {
  const live = new Set<ServerResponse>();
  const state: MaliciousRegistry = {
    host: '',
    tricks: [],
    requests: [],
    open: 0,
    hugeBytesSent: 0,
    tokens: 0,
    hangUp: () => {
      for (const res of live) res.destroy();
    },
    stop: async () => undefined,
  };
  const timers = new Set<NodeJS.Timeout>();

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    state.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const trick = state.tricks.find((t) => t.times > 0 && (!t.match || t.match(req, url)));
    if (trick) {
      trick.times--;
      req.resume();
      return play(trick, req, url, res);
    }
    if (url.pathname === '/token') {
      state.tokens++;
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ token: GOOD_TOKEN, expires_in: 300 }));
    }
    if (opts.auth && req.headers.authorization !== `Bearer ${GOOD_TOKEN}`) {
      req.resume();
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${state.host}/token",service="stand-in"`, 'content-type': 'application/json' });
      return res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    }
    if (opts.upstream) return forward(req, res, opts.upstream);
    req.resume();
    if (url.pathname === '/v2/') return res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
  });

  const play = (t: Trick, req: IncomingMessage, url: URL, res: ServerResponse): void => {
    if (t.kind === 'answer') {
      res.writeHead(t.status, { 'content-type': 'application/json', ...t.headers });
      res.end(req.method === 'HEAD' ? undefined : (t.body ?? ''));
      return;
    }
    if (t.kind === 'endless-list') {
      const page = Number(url.searchParams.get('last')?.replace(/^p(\d+)-.*$/, '$1') ?? -1) + 1;
      const names = Array.from({ length: t.perPage }, (_, i) => `p${page}-${i}`);
      const catalog = url.pathname === '/v2/_catalog';
      const next = `${url.pathname}?n=${t.perPage}&last=${names[names.length - 1]}`;
      res.writeHead(200, { 'content-type': 'application/json', link: `<${next}>; rel="next"` });
      res.end(JSON.stringify(catalog ? { repositories: names.map((n) => `r/${n}`) } : { name: 'x', tags: names }));
      return;
    }
    state.open++;
    live.add(res);
    res.on('close', () => (state.open--, live.delete(res)));
    if (t.kind === 'drip') {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', ...t.headers });
      res.flushHeaders();
      const timer = setInterval(() => res.write(' '), t.everyMs);
      timers.add(timer);
      res.on('close', () => (clearInterval(timer), timers.delete(timer)));
      return;
    }
    // huge: one reused 64 KiB chunk, written as fast as the client reads
    res.writeHead(200, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
      ...(t.declare ? { 'content-length': String(t.bytes) } : {}),
      ...t.headers,
    });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let left = t.bytes;
    const pump = () => {
      while (left > 0 && !res.destroyed) {
        const n = Math.min(left, chunk.length);
        left -= n;
        state.hugeBytesSent += n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
      }
      if (left === 0) res.end();
    };
    pump();
  };

  const forward = (req: IncomingMessage, res: ServerResponse, target: string) => {
    const [host, port] = target.split(':');
    const headers = { ...req.headers, host: target };
    delete headers.authorization;
    const up = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers }, (r) => {
      const h = { ...r.headers };
      // keep Location pointing here so uploads come through the stand-in too
      if (typeof h.location === 'string') h.location = h.location.replace(`//${target}`, `//${state.host}`);
      res.writeHead(r.statusCode ?? 502, h);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.stop = () =>
    new Promise<void>((resolve) => {
      for (const t of timers) clearInterval(t);
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
