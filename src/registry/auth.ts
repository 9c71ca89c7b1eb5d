/**
 * Registry authentication: anonymous, Basic, a static bearer token, and the distribution spec's
 * bearer-token challenge (WWW-Authenticate: Bearer realm=...,service=...,scope=...).
 * Tokens are cached per scope until shortly before they expire. The token realm must be the
 * registry itself or one of its `authHosts`: signet contacts no host that is not in config.
 */
import { SignetError } from '../errors.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses one WWW-Authenticate header value (RFC 7235 auth-params, quoted or token values). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2] ?? '')) !== null) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

export function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Remembers which auth header works for which scope on one registry. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  /** How a registry asked us to authenticate last time (so later requests skip the 401). */
  challenge: Challenge | undefined;

  get(scope: string, now = Date.now()): string | undefined {
    const t = this.tokens.get(scope);
    if (!t) return undefined;
    if (t.expiresAt <= now) {
      this.tokens.delete(scope);
      return undefined;
    }
    return t.header;
  }

  set(scope: string, header: string, ttlSeconds: number, now = Date.now()): void {
    // Refresh 30 s (or 10 %) before expiry so a token never expires mid-job.
    const margin = Math.min(30, ttlSeconds * 0.1);
    this.tokens.set(scope, { header, expiresAt: now + Math.max(1, ttlSeconds - margin) * 1000 });
  }

  clear(scope: string): void {
    this.tokens.delete(scope);
  }
}

/** Validates a bearer realm URL against the hosts we may contact. */
export function checkRealm(realm: string, allowedHosts: readonly string[], insecure: boolean): URL {
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new SignetError('REGISTRY_PROTOCOL', `registry sent an invalid token realm "${realm.slice(0, 200)}"`);
  }
  if (!allowedHosts.includes(url.host)) {
    throw new SignetError('REGISTRY_NOT_CONFIGURED', `token realm host ${url.host} is not this registry; add it to registries[].authHosts to allow it`);
  }
  if (url.protocol !== 'https:' && !(insecure && url.protocol === 'http:')) {
    throw new SignetError('REGISTRY_PROTOCOL', `token realm ${url.host} must use https (or set insecure: true)`);
  }
  return url;
}
