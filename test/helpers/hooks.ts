import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

/**
 * A tiny node:http listener that records every request (for distribution notifications and
 * other webhooks). Answers `status` (default 200) so the registry counts delivery as a success.
 */
export interface CapturedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** raw body bytes, exactly as received */
  raw: Buffer;
  /** parsed JSON body, undefined when not JSON */
  json: any;
  receivedAt: number;
}

export interface HookReceiver {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  requests: CapturedRequest[];
  /** status code answered from now on (e.g. 500 to test retries) */
  setStatus(code: number): void;
  /** resolves with the first captured request (already received or future) matching pred */
  waitFor(pred: (r: CapturedRequest) => boolean, timeoutMs?: number): Promise<CapturedRequest>;
  close(): Promise<void>;
}

export async function startHookReceiver(): Promise<HookReceiver> {
  const requests: CapturedRequest[] = [];
  const waiters = new Set<{ pred: (r: CapturedRequest) => boolean; resolve: (r: CapturedRequest) => void }>();
  let status = 200;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let json: unknown;
      try {
        json = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
      } catch {
        json = undefined;
      }
      const cap: CapturedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        raw,
        json,
        receivedAt: Date.now(),
      };
      requests.push(cap);
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end('ok');
      for (const w of [...waiters]) {
        if (w.pred(cap)) {
          waiters.delete(w);
          w.resolve(cap);
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('hook receiver: no address');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    port: addr.port,
    requests,
    setStatus: (c) => {
      status = c;
    },
    waitFor: (pred, timeoutMs = 10_000) => {
      const hit = requests.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: (r: CapturedRequest) => {
            clearTimeout(t);
            resolve(r);
          },
        };
        const t = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`hook receiver: no matching request within ${timeoutMs} ms (${requests.length} received)`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Distribution events from a captured envelope ({"events":[...]}); [] otherwise. */
export function eventsOf(r: CapturedRequest): any[] {
  return Array.isArray(r.json?.events) ? r.json.events : [];
}
