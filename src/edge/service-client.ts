/**
 * The HTTP client of the services signet asks to witness a signature (Rekor, RFC 3161 timestamp
 * authorities): one configured base URL, an undici Agent of its own, an overall deadline per
 * request (it also aborts a trickling body), answers read capped, 429 and 5xx turned into the
 * service's retryable code with the one `Retry-After` parser, connection errors and timeouts too,
 * error text redacted, and a few in-process retries (a wait longer than 5 s goes back to the job
 * queue instead). Which code retries is decided by src/errors.ts RETRYABLE, nowhere else.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { SignetError, type ErrorCode } from '../errors.js';
import { upstreamText } from '../log.js';
import { BodyTooLargeError, readCapped } from './read.js';
import { retryAfterOption } from './retry-after.js';

/** Longer `Retry-After` waits are left to the job queue's backoff (the job is retried). */
const MAX_INLINE_WAIT_MS = 5_000;

export interface ServiceReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface ServiceClientOptions {
  /** How errors name the service, e.g. "rekor https://rekor.example". */
  name: string;
  /** Code for outages (timeouts, connection errors, 429, 5xx): retryable in src/errors.ts. */
  unavailable: ErrorCode;
  /** Code for answers that cannot be used (too large): not retryable. */
  rejected: ErrorCode;
  timeoutMs: number;
  maxBodyBytes: number;
  attempts?: number | undefined;
  retryDelaysMs?: readonly number[] | undefined;
  /** A dispatcher of the caller's (tests); by default the client owns an Agent. */
  dispatcher?: Dispatcher | undefined;
  /** Turns an error answer's body into a short, redacted detail (default: the first line of text). */
  detail?: ((body: Buffer) => string) | undefined;
}

export class ServiceClient {
  /** Requests sent (for tests and metrics). */
  requests = 0;
  private readonly attempts: number;
  private readonly delays: readonly number[];
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(private readonly opts: ServiceClientOptions) {
    this.attempts = Math.max(1, opts.attempts ?? 3);
    this.delays = opts.retryDelaysMs ?? [250, 1000];
    this.ownsDispatcher = !opts.dispatcher;
    this.dispatcher =
      opts.dispatcher ??
      new Agent({
        connections: 16,
        keepAliveTimeout: 10_000,
        headersTimeout: opts.timeoutMs,
        bodyTimeout: opts.timeoutMs,
        connect: { timeout: Math.min(opts.timeoutMs, 10_000) },
      });
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** Run `fn` again on a retryable error, up to the configured attempts, honouring Retry-After. */
  async withRetry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof SignetError) || !err.retryable || attempt >= this.attempts) throw err;
        const ra = err.retryAfterSeconds;
        if (ra !== undefined && ra * 1000 > MAX_INLINE_WAIT_MS) throw err;
        const base = ra !== undefined ? ra * 1000 : (this.delays[Math.min(attempt - 1, this.delays.length - 1)] ?? 500);
        await new Promise((r) => setTimeout(r, base * (0.75 + Math.random() * 0.5)));
      }
    }
  }

  /** One request; 429 and 5xx throw the service's unavailable code (with Retry-After), other statuses are the caller's to judge. */
  async send(
    url: URL,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: Buffer | undefined },
    what = `${init.method} ${url.pathname}`,
  ): Promise<ServiceReply> {
    const { name } = this.opts;
    let res: Dispatcher.ResponseData;
    try {
      this.requests++;
      res = await request(url, {
        method: init.method,
        headers: { 'user-agent': 'signet', ...init.headers },
        ...(init.body ? { body: init.body } : {}),
        dispatcher: this.dispatcher,
        // the overall deadline: it also aborts the body (undici's own timers are per chunk)
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (err) {
      throw this.unreachable(what, err);
    }
    let data: Buffer;
    try {
      data = await readCapped(res.body, this.opts.maxBodyBytes, res.headers['content-length']);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        throw new SignetError(this.opts.rejected, `${name}: ${what} answered more than ${this.opts.maxBodyBytes} bytes (HTTP ${res.statusCode})`, {
          status: res.statusCode,
        });
      }
      throw this.unreachable(what, err);
    }
    const status = res.statusCode;
    if (status === 429 || status >= 500) {
      const ra = retryAfterOption(res.headers['retry-after']);
      throw new SignetError(
        this.opts.unavailable,
        `${name}: ${what} answered HTTP ${status}${ra.retryAfterSeconds !== undefined ? ` (Retry-After ${ra.retryAfterSeconds}s)` : ''}${this.detail(data)}`,
        { status, ...ra },
      );
    }
    return { status, headers: res.headers, body: data };
  }

  /** A short, redacted detail of an error answer's body ('' when there is none worth showing). */
  detail(body: Buffer): string {
    return (this.opts.detail ?? textDetail)(body);
  }

  private unreachable(what: string, err: unknown): SignetError {
    const e = err as { code?: string; name?: string; message?: string };
    const why = e.name === 'TimeoutError' || e.name === 'AbortError' ? 'timed out' : upstreamText(e.code ?? e.message ?? String(err));
    return new SignetError(this.opts.unavailable, `${this.opts.name} unreachable (${what}): ${why}`, { cause: err });
  }
}

/** The start of a text body, redacted; binary answers give no detail. */
export function textDetail(body: Buffer): string {
  if (!body.length) return '';
  const s = body.subarray(0, 2048).toString('utf8');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(s)) return '';
  const t = upstreamText(s, { max: 200 });
  return t ? `: ${t}` : '';
}

/** A service's base URL in the config: http(s), no credentials, no query or fragment (`example` goes into the message). */
export function serviceUrlSchema(example: string) {
  return z.string().superRefine((u, ctx) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      ctx.addIssue({ code: 'custom', message: `must be an http(s) URL such as ${example}` });
      return;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL' });
    if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not carry credentials' });
    if (url.search || url.hash) ctx.addIssue({ code: 'custom', message: 'must not have a query or fragment' });
  });
}
