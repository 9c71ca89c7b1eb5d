import { request as httpReq, type IncomingHttpHeaders } from 'node:http';
import { request as httpsReq } from 'node:https';
import { readFileSync } from 'node:fs';

/**
 * A minimal HTTP(S) client for test helpers. Node's global fetch cannot take a custom CA
 * (undici's Agent is not importable without the `undici` package), and the TLS registries in
 * the kit use a self-signed certificate, so the helpers use node:http/node:https directly.
 * No connection pooling (agent: false): nothing stays open after a request.
 */
export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** PEM CA bundle (contents) or a path to one (`caFile`), for https URLs. */
  ca?: string | Buffer;
  caFile?: string;
  /** Whole-request timeout; default 15 s. */
  timeoutMs?: number;
}

const caCache = new Map<string, Buffer>();

export function httpRequest(url: string | URL, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const isHttps = u.protocol === 'https:';
  if (!isHttps && u.protocol !== 'http:') return Promise.reject(new Error(`unsupported URL ${u.href}`));
  let ca = opts.ca;
  if (ca === undefined && opts.caFile !== undefined) {
    let cached = caCache.get(opts.caFile);
    if (cached === undefined) {
      cached = readFileSync(opts.caFile);
      caCache.set(opts.caFile, cached);
    }
    ca = cached;
  }
  const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-length')) {
    headers['Content-Length'] = String(body.length);
  }
  const method = opts.method ?? 'GET';
  if (body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH')) {
    headers['Content-Length'] ??= '0';
  }
  const timeoutMs = opts.timeoutMs ?? 15_000;

  return new Promise<HttpResponse>((resolve, reject) => {
    const reqOpts = {
      method,
      headers,
      agent: false as const,
      ...(isHttps && ca !== undefined ? { ca } : {}),
    };
    const req = (isHttps ? httpsReq : httpReq)(u, reqOpts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${u.href}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** First value of a response header, lower-case name. */
export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
