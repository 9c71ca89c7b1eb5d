/**
 * What every registry credential source is: something that, when a registry challenge needs
 * credentials, hands the registry client a username/password, a bearer token or an identity
 * (OAuth2 refresh) token. Sources whose credentials expire (ECR, ACR, GAR) cache them until
 * shortly before they expire and fetch one set at a time however many requests ask at once.
 *
 * Sources only ever contact their cloud SDK's own endpoint (or, for ACR, the registry host
 * itself): the host comes from config, never from a webhook payload.
 */
import type { Dispatcher } from 'undici';
import { upstreamText } from '../../log.js';

export type RegistryCredentials = (
  | { username: string; password: string }
  | { token: string }
  /** Docker's `identitytoken`: an OAuth2 refresh token for the registry's token service. */
  | { identityToken: string; username?: string }
) & {
  /** Epoch ms after which the registry will refuse these credentials (when known). */
  expiresAt?: number;
};

export interface CredentialSource {
  /** One line for logs and error messages, never containing a secret. */
  describe(): string;
  get(): Promise<RegistryCredentials>;
  /**
   * The registry refused what get() returned. Drops anything cached; returns true when the
   * refused credentials came from a cache (or a changed file), so one retry with fresh ones is
   * worth it, false when a retry would send the same thing again.
   */
  invalidate(): boolean;
}

export interface CredentialContext {
  /** The registry host (`registries[].host`), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com. */
  host: string;
  /** Plain http to the registry (`registries[].insecure`). */
  insecure: boolean;
  /** Folder of the config file: relative paths resolve against it. */
  baseDir: string;
  /** The registry's own HTTP dispatcher (its caFile, timeouts), for requests to the registry host. */
  dispatcher?: Dispatcher;
  /** Per-request timeout for token requests, ms. */
  timeoutMs: number;
}

/** How long before expiry cached credentials are replaced: 10 % of their lifetime, at most 5 minutes. */
export function refreshMarginMs(lifetimeMs: number): number {
  return Math.max(0, Math.min(5 * 60_000, lifetimeMs * 0.1));
}

/**
 * One cached value with an expiry, fetched by one caller at a time (concurrent get()s share the
 * same fetch). Replaced `refreshMarginMs` before it expires (if that refresh fails, the old value
 * is used until it actually expires); without a known expiry it is kept for `defaultTtlMs`.
 */
export class ExpiringCache<T> {
  private value: { v: T; refreshAt: number; expiresAt: number | undefined } | undefined;
  private inflight: Promise<T> | undefined;
  private lastFromCache = false;
  /** Number of fetches made (for tests and stats). */
  fetches = 0;

  constructor(
    private readonly fetch: () => Promise<{ value: T; expiresAt?: number }>,
    private readonly opts: { defaultTtlMs?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  async get(): Promise<{ value: T; expiresAt: number | undefined }> {
    const cached = this.value;
    if (cached && this.now() < cached.refreshAt) {
      this.lastFromCache = true;
      return { value: cached.v, expiresAt: cached.expiresAt };
    }
    this.inflight ??= (async () => {
      try {
        const started = this.now();
        const { value, expiresAt } = await this.fetch();
        this.fetches++;
        const end = expiresAt ?? started + (this.opts.defaultTtlMs ?? 60 * 60_000);
        this.value = { v: value, expiresAt, refreshAt: end - refreshMarginMs(end - started) };
        return value;
      } finally {
        this.inflight = undefined;
      }
    })();
    let value: T;
    try {
      value = await this.inflight;
    } catch (err) {
      // a failed refresh inside the margin keeps using what has not expired yet
      if (cached && cached.expiresAt !== undefined && this.now() < cached.expiresAt && this.value === cached) {
        this.lastFromCache = true;
        return { value: cached.v, expiresAt: cached.expiresAt };
      }
      throw err;
    }
    this.lastFromCache = false;
    return { value, expiresAt: this.value?.expiresAt };
  }

  /** Forget the cached value. True when the last get() was answered from the cache. */
  invalidate(): boolean {
    const fromCache = this.lastFromCache && this.value !== undefined;
    this.value = undefined;
    this.lastFromCache = false;
    return fromCache;
  }
}

/** A CredentialSource over an ExpiringCache of username/password credentials. */
export function cachedCredentialSource(
  describe: string,
  fetch: () => Promise<{ value: { username: string; password: string }; expiresAt?: number }>,
  opts: { defaultTtlMs?: number; now?: () => number } = {},
): CredentialSource & { readonly fetches: number } {
  const cache = new ExpiringCache(fetch, opts);
  return {
    describe: () => describe,
    async get() {
      const { value, expiresAt } = await cache.get();
      return { ...value, ...(expiresAt !== undefined ? { expiresAt } : {}) };
    },
    invalidate: () => cache.invalidate(),
    get fetches() {
      return cache.fetches;
    },
  };
}

/** The `exp` claim of a JWT, in epoch ms, or undefined when the token is not a readable JWT. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length < 2) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A short, secret-free description of an error from an SDK or transport, for messages (redacted by
 * the one redaction in src/log.ts; `secrets` are values this request sent, masked if echoed).
 */
export function errorSummary(err: unknown, secrets: readonly (string | undefined)[] = []): string {
  const e = err as { name?: unknown; code?: unknown; message?: unknown };
  const parts = [typeof e?.name === 'string' && e.name !== 'Error' ? e.name : undefined, typeof e?.code === 'string' ? e.code : undefined]
    .filter(Boolean)
    .join(' ');
  const msg = upstreamText(e?.message ?? err ?? '', { secrets });
  return parts && msg ? `${parts}: ${msg}` : parts || msg || 'unknown error';
}
