/**
 * The HTTP client of the `vault` key provider: one call under an overall deadline, its answer read
 * up to a cap and checked against a schema; network, TLS and HTTP errors mapped to signet's codes,
 * Vault's error text redacted so that no token or AppRole id it echoes reaches a message.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { BodyTooLargeError, readCapped, READ_LIMITS } from '../../edge/read.js';
import { retryAfterOption } from '../../edge/retry-after.js';
import { SignetError, type ErrorCode } from '../../errors.js';
import { upstreamText } from '../../log.js';

export const SIG_PATTERN = /^vault:v(\d+):([A-Za-z0-9+/]+={0,2})$/;

// ---------------------------------------------------------------------------------------------
// HTTP

export interface VaultResponse {
  status: number;
  body: unknown;
  retryAfterSeconds?: number;
}

/** The transit key read: `GET /v1/<mount>/keys/<key>` (the parts signet uses). */
export const keyReadSchema = z.object({
  data: z.object({
    type: z.string().min(1),
    latest_version: z.number().int().min(1),
    min_encryption_version: z.number().int().min(0).optional(),
    derived: z.boolean().optional(),
    supports_signing: z.boolean().optional(),
    // asymmetric keys: { "<version>": { public_key, ... } }; symmetric keys: { "<version>": <time> }
    keys: z.record(z.string(), z.unknown()),
  }),
});
export const keyVersionSchema = z.object({ public_key: z.string() });

/** `POST /v1/<mount>/sign/<key>`: `data.signature` = `vault:v<N>:<base64>`. */
export const signSchema = z.object({ data: z.object({ signature: z.string().regex(SIG_PATTERN, 'not a vault:vN: signature') }) });

/** Vault's `{"errors":[...]}` as one short, redacted line. */
export function vaultErrors(body: unknown, secrets: readonly string[]): string {
  const errs = (body as { errors?: unknown } | null)?.errors;
  if (Array.isArray(errs) && errs.length > 0) return upstreamText(errs.slice(0, 10).map(String).join('; '), { secrets });
  return '';
}

export const errCode = (err: unknown): string | undefined => {
  for (let e: unknown = err, i = 0; e && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
};

export const TLS_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME|ERR_TLS|ERR_SSL/;

export class VaultHttp {
  readonly dispatcher: Agent;
  /** Credentials sent lately (tokens, AppRole ids): masked should Vault (or a proxy) echo them. */
  private readonly sent: string[] = [];
  constructor(
    readonly keyName: string,
    readonly address: string,
    readonly namespace: string | undefined,
    readonly timeoutMs: number,
    ca: Buffer | undefined,
  ) {
    this.dispatcher = new Agent({
      keepAliveTimeout: 30_000,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect: { timeout: Math.min(timeoutMs, 10_000), ...(ca ? { ca } : {}) },
    });
  }

  /** Remember credentials this client sends, so that no error message can echo them. */
  secret(...values: string[]): void {
    for (const v of values) {
      if (this.sent.includes(v)) continue;
      this.sent.push(v);
      if (this.sent.length > 8) this.sent.shift();
    }
  }

  /**
   * One HTTP call under the overall deadline, its answer read up to `limit` bytes; network
   * failures become KEY_UNAVAILABLE, TLS failures KEY_INVALID, a larger answer `tooLarge`.
   */
  async call(
    method: 'GET' | 'POST',
    apiPath: string,
    what: string,
    token?: string,
    body?: unknown,
    read: { limit: number; tooLarge: ErrorCode } = { limit: READ_LIMITS.token, tooLarge: 'KEY_INVALID' },
  ): Promise<VaultResponse> {
    const headers: Record<string, string> = { 'x-vault-request': 'true' };
    if (token !== undefined) {
      this.secret(token);
      headers['x-vault-token'] = token;
    }
    if (this.namespace) headers['x-vault-namespace'] = this.namespace;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.address}${apiPath}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        dispatcher: this.dispatcher,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const code = errCode(err);
      if (code && TLS_ERRORS.test(code)) {
        throw new SignetError(
          'KEY_INVALID',
          `key "${this.keyName}": TLS verification of Vault at ${this.address} failed during ${what} (${code}); set caFile or VAULT_CACERT`,
          { cause: err },
        );
      }
      const timedOut = (err as Error)?.name === 'TimeoutError' || /TIMEOUT/.test(code ?? '');
      throw new SignetError(
        'KEY_UNAVAILABLE',
        `key "${this.keyName}": Vault at ${this.address} ${timedOut ? `did not answer within ${this.timeoutMs} ms` : `unreachable (${code ?? (err as Error)?.name ?? 'error'})`} during ${what}`,
        { cause: err },
      );
    }
    let text: string;
    try {
      text = (await readCapped(res.body, read.limit, res.headers['content-length'])).toString('utf8');
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        throw new SignetError(read.tooLarge, `key "${this.keyName}": Vault answer to ${what} is larger than ${read.limit} bytes (HTTP ${res.statusCode})`, {
          status: res.statusCode,
        });
      }
      const timedOut = (err as Error)?.name === 'TimeoutError' || (err as Error)?.name === 'AbortError';
      throw new SignetError(
        'KEY_UNAVAILABLE',
        `key "${this.keyName}": Vault response to ${what} ${timedOut ? `did not complete within ${this.timeoutMs} ms` : 'was cut off'}`,
        { cause: err },
      );
    }
    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    return { status: res.statusCode, body: parsed, ...retryAfterOption(res.headers['retry-after']) };
  }

  /** Vault's error text of an answer, redacted. */
  errors(body: unknown): string {
    return vaultErrors(body, this.sent);
  }

  /** Turn a non-2xx answer into a SignetError. `about` names the object (`transit key "k"`). */
  fail(res: VaultResponse, what: string, about: string): SignetError {
    const detail = this.errors(res.body);
    const suffix = detail ? `: ${detail}` : '';
    const opts = { status: res.status, ...(res.retryAfterSeconds !== undefined ? { retryAfterSeconds: res.retryAfterSeconds } : {}) };
    const prefix = `key "${this.keyName}": Vault ${what} for ${about} at ${this.address}`;
    const make = (code: ErrorCode, msg: string) => new SignetError(code, msg, opts);
    const s = res.status;
    if (s === 429) return make('KEY_THROTTLED', `${prefix} was throttled (HTTP 429)${suffix}`);
    if (s >= 500 || s === 412 || s === 473) {
      return make('KEY_UNAVAILABLE', `${prefix} failed with HTTP ${s}${suffix || (s === 503 ? ' (sealed or standby?)' : '')}`);
    }
    if (s === 401 || s === 403) {
      return make('KEY_DENIED', `${prefix} was denied (HTTP ${s})${suffix}; check the token's policy and namespace`);
    }
    if (s === 404) return make('KEY_NOT_FOUND', `${prefix}: not found (HTTP 404)${suffix}`);
    if (/not found/i.test(detail)) return make('KEY_NOT_FOUND', `${prefix}: not found (HTTP ${s})${suffix}`);
    if (/less than the minimum|min(imum)?_?encryption/i.test(detail)) {
      return make('KEY_DISABLED', `${prefix}: key version disabled (HTTP ${s})${suffix}; restart signet or raise keyVersion`);
    }
    if (/(greater|higher) than the latest|invalid key version|version.*does not exist/i.test(detail)) {
      return make('KEY_NOT_FOUND', `${prefix}: key version not found (HTTP ${s})${suffix}`);
    }
    return make('KEY_SIGN_FAILED', `${prefix} failed with HTTP ${s}${suffix}`);
  }
}
