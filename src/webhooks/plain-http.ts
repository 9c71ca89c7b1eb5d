/**
 * What the hook route needs from HTTP without express: read a request body under a size limit, a
 * deadline and a minimum rate (decoding gzip, deflate and br as express.raw did), answer JSON, and
 * refuse a call without reading its body.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** Why a body was not read whole; `reason` is the label of signet_webhook_rejected_total for the bounds. */
export class BodyError extends Error {
  constructor(
    readonly status: 400 | 408 | 413 | 415,
    message: string,
    readonly reason?: 'body_timeout' | 'too_slow' | 'body_too_large',
  ) {
    super(message);
  }
}

/** The bounds of one body read. */
export interface BodyLimits {
  /** Largest body, after decoding. */
  limit: number;
  /** The whole body must have arrived this many ms after the read started. */
  timeoutMs: number;
  /** From the first second of the read on, at least this many bytes per second on average (0: no minimum). */
  minBytesPerSecond: number;
  /**
   * Past the size limit, read off (and drop) the rest of the request before failing, so that a
   * sender still writing gets the 413 (within the deadline). Off for senders not yet
   * authenticated: their connection is closed instead.
   */
  drain: boolean;
}

/** The minimum rate is checked once a second, from this many ms after the read started. */
const RATE_GRACE_MS = 1000;

const DECODERS = new Map<string, () => Transform>([
  ['gzip', createGunzip],
  ['deflate', createInflate],
  ['br', createBrotliDecompress],
]);

/** The body within `limits`, or a BodyError (400 aborted or badly encoded, 408 too late or too slow, 413 too big, 415 unknown encoding). */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const { limit } = limits;
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = req.socket;
    const startBytes = socket.bytesRead;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: BodyError | undefined, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(body!);
    };
    const encoding = req.headers['content-encoding']?.toLowerCase() ?? 'identity';
    const decoder = encoding === 'identity' ? undefined : DECODERS.get(encoding)?.();
    const source: Readable = decoder ? req.pipe(decoder) : req;
    let chunks: Buffer[] = [];
    let size = 0;
    let keeping = true;
    /** The error a drain past the size limit ends with. */
    let draining: BodyError | undefined;
    /** Stop keeping bytes; read off the rest of the request (when draining) or stop reading; then fail with `err`. */
    const giveUp = (err: BodyError, drain = limits.drain): void => {
      if (!keeping) return;
      keeping = false;
      chunks = [];
      if (decoder) {
        req.unpipe(decoder);
        decoder.destroy();
      }
      if (req.complete || !drain) finish(err);
      else {
        draining = err;
        req.once('end', () => finish(err));
        req.resume();
      }
    };
    const tick = (): void => {
      if (settled) return;
      const elapsed = performance.now() - started;
      if (elapsed >= limits.timeoutMs) {
        // also ends a drain past the size limit (with its 413): nothing is read past the deadline
        const late = new BodyError(408, `body not received within ${limits.timeoutMs} ms`, 'body_timeout');
        if (keeping) giveUp(late, false);
        return finish(draining ?? late);
      }
      const received = socket.bytesRead - startBytes;
      if (keeping && limits.minBytesPerSecond > 0 && elapsed >= RATE_GRACE_MS && received < (limits.minBytesPerSecond * elapsed) / 1000) {
        return giveUp(new BodyError(408, `body arriving slower than ${limits.minBytesPerSecond} bytes/s`, 'too_slow'), false);
      }
      timer = setTimeout(tick, Math.min(1000, limits.timeoutMs - elapsed));
      timer.unref();
    };
    req.on('error', () => undefined); // an aborted request: handled on 'close'
    req.once('close', () => {
      if (!req.complete) finish(new BodyError(400, 'request aborted'));
    });
    source.on('data', (chunk: Buffer) => {
      if (!keeping) return;
      size += chunk.length;
      if (size > limit) giveUp(new BodyError(413, `body larger than ${limit} bytes`, 'body_too_large'));
      else chunks.push(chunk);
    });
    source.once('end', () => {
      if (keeping) finish(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    if (decoder) decoder.on('error', () => giveUp(new BodyError(400, `body is not valid ${encoding}`)));
    if (encoding !== 'identity' && !decoder) giveUp(new BodyError(415, `unsupported content encoding "${encoding}"`));
    else if (!decoder && declaredLength(req) > limit) giveUp(new BodyError(413, `body larger than ${limit} bytes`, 'body_too_large'));
    if (!settled) {
      timer = setTimeout(tick, Math.min(1000, limits.timeoutMs));
      timer.unref();
    }
  });
}

/** The Content-Length the sender declared (NaN when it sent none). */
export function declaredLength(req: IncomingMessage): number {
  return Number(req.headers['content-length']);
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Answers `body` as JSON (serialized once, with its length). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: OutgoingHttpHeaders): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** How long a refused connection may take to take its answer before it is destroyed. */
const REFUSE_LINGER_MS = 2000;

/**
 * Answers JSON with `connection: close` and frees the connection without reading the rest of the
 * request: node ends the socket once the answer is written, and destroys it (a sender still
 * writing gets a reset); one that does not take its answer is destroyed after 2 s.
 */
export function refuse(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers?: OutgoingHttpHeaders): void {
  const socket = req.socket;
  if (!res.headersSent && !socket.destroyed) sendJson(res, status, body, { ...headers, connection: 'close' });
  if (req.complete || socket.destroyed) return;
  const t = setTimeout(() => socket.destroy(), REFUSE_LINGER_MS);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}
