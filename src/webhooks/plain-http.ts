/**
 * What the hook route needs from HTTP without express: read a request body under a size limit
 * (decoding gzip, deflate and br as express.raw did), and answer JSON.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** Why a body could not be read: the status to answer and the message for `{error}`. */
export class BodyError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

const DECODERS = new Map<string, () => Transform>([
  ['gzip', createGunzip],
  ['deflate', createInflate],
  ['br', createBrotliDecompress],
]);

/**
 * The body, at most `limit` bytes (after decoding). Past the limit the rest of the request is
 * read off and dropped before rejecting with 413, so that a sender still writing gets the answer.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: BodyError | undefined, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(body!);
    };
    const encoding = req.headers['content-encoding']?.toLowerCase() ?? 'identity';
    const decoder = encoding === 'identity' ? undefined : DECODERS.get(encoding)?.();
    const source: Readable = decoder ? req.pipe(decoder) : req;
    let chunks: Buffer[] = [];
    let size = 0;
    let keeping = true;
    /** Stop keeping bytes, read off the rest of the request, then fail with `err`. */
    const giveUp = (err: BodyError): void => {
      if (!keeping) return;
      keeping = false;
      chunks = [];
      if (decoder) {
        req.unpipe(decoder);
        decoder.destroy();
      }
      if (req.complete) finish(err);
      else {
        req.once('end', () => finish(err));
        req.resume();
      }
    };
    req.on('error', () => undefined); // an aborted request: handled on 'close'
    req.once('close', () => {
      if (!req.complete) finish(new BodyError(400, 'request aborted'));
    });
    source.on('data', (chunk: Buffer) => {
      if (!keeping) return;
      size += chunk.length;
      if (size > limit) giveUp(new BodyError(413, `body larger than ${limit} bytes`));
      else chunks.push(chunk);
    });
    source.once('end', () => {
      if (keeping) finish(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    if (decoder) decoder.on('error', () => giveUp(new BodyError(400, `body is not valid ${encoding}`)));
    if (encoding !== 'identity' && !decoder) giveUp(new BodyError(415, `unsupported content encoding "${encoding}"`));
    else if (!decoder && Number(req.headers['content-length']) > limit) giveUp(new BodyError(413, `body larger than ${limit} bytes`));
  });
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Answers `body` as JSON (serialized once, with its length). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: OutgoingHttpHeaders): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
