/**
 * A loopback HTTP proxy in front of a real registry that injects faults on demand: answer N
 * requests with a status (500/503/429, optionally with Retry-After), drop connections, or
 * refuse a method/path. Counts what it forwarded.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Fault {
  /** Which requests it applies to; default all. */
  match?: (req: IncomingMessage) => boolean;
  /** How many matching requests get the fault (then it is used up). Infinity: until cleared. */
  times: number;
  status?: number;
  headers?: Record<string, string>;
  /** Destroy the socket instead of answering. */
  drop?: boolean;
  /** Forward normally, but only after this many milliseconds (a slow registry). */
  delayMs?: number;
}

export interface FaultProxy {
  host: string;
  url: string;
  faults: Fault[];
  /** Requests forwarded to the registry, and faults injected. */
  forwarded: number;
  injected: number;
  log: string[];
  close(): Promise<void>;
}

export async function startFaultProxy(target: string /* 127.0.0.1:PORT */): Promise<FaultProxy> {
  const proxy: FaultProxy = {
    host: '',
    url: '',
    faults: [],
    forwarded: 0,
    injected: 0,
    log: [],
    close: async () => undefined,
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const fault = proxy.faults.find((f) => f.times > 0 && (!f.match || f.match(req)));
    if (fault?.delayMs !== undefined) {
      fault.times--;
      proxy.log.push(`${req.method} ${req.url} -> delayed ${fault.delayMs} ms`);
      req.pause();
      setTimeout(() => {
        req.resume();
        forward(req, res);
      }, fault.delayMs);
      return;
    }
    if (fault) {
      fault.times--;
      proxy.injected++;
      proxy.log.push(`${req.method} ${req.url} -> ${fault.drop ? 'drop' : fault.status}`);
      req.resume();
      if (fault.drop) {
        req.socket.destroy();
        return;
      }
      res.writeHead(fault.status ?? 503, { 'content-type': 'application/json', ...fault.headers });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'injected fault' }] }));
      return;
    }
    proxy.log.push(`${req.method} ${req.url}`);
    forward(req, res);
  });
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    proxy.forwarded++;
    const [host, port] = target.split(':');
    const upstream = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers: { ...req.headers, host: proxy.host } }, (up) => {
      const headers = { ...up.headers };
      // keep Location pointing at the proxy so uploads go through it too
      if (typeof headers.location === 'string') headers.location = headers.location.replace(`//${target}`, `//${proxy.host}`);
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      res.writeHead(502).end();
    });
    req.pipe(upstream);
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  proxy.host = `127.0.0.1:${port}`;
  proxy.url = `http://${proxy.host}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
