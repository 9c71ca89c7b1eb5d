/**
 * The receiver's node:http server, with the bounds a webhook endpoint wants: the headers within
 * server.headersTimeoutMs, the whole request within server.requestTimeoutMs (node answers 408 and
 * closes), idle keep-alive connections closed after server.keepAliveTimeoutMs, at most 100 headers
 * of 16 KiB in all, and at most server.maxConnections open at once (more are closed on arrival, so
 * that a flood of connections cannot take the descriptors Redis, registries and /healthz need).
 */
import { readFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics.js';

/** Descriptors kept for everything but client connections (Redis, registries, key backends, files). */
const FD_RESERVE = 256;
/** When the descriptor limit cannot be read. */
const FALLBACK_MAX_CONNECTIONS = 4096;

export function createReceiverServer(listener: RequestListener, server: Config['server'], metrics: Metrics): Server {
  const http = createServer(
    {
      headersTimeout: server.headersTimeoutMs,
      requestTimeout: server.requestTimeoutMs,
      keepAliveTimeout: server.keepAliveTimeoutMs,
      // how often node checks the two timeouts above (default 30 s: a 10 s timeout could take 40 s)
      connectionsCheckingInterval: 1000,
      maxHeaderSize: 16 * 1024,
    },
    listener,
  );
  http.maxHeadersCount = 100;
  http.maxConnections = server.maxConnections ?? defaultMaxConnections();
  http.on('connection', (socket) => {
    metrics.httpConnections.inc();
    socket.once('close', () => metrics.httpConnections.dec());
  });
  http.on('drop', () => metrics.httpConnectionsDropped.inc());
  return http;
}

/** The soft limit of open files less FD_RESERVE (Linux: /proc/self/limits), at least 64. */
export function defaultMaxConnections(limitsFile = '/proc/self/limits'): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(limitsFile, 'utf8'));
    if (m) return Math.max(64, Number(m[1]) - FD_RESERVE);
  } catch {
    /* not Linux */
  }
  return FALLBACK_MAX_CONNECTIONS;
}
