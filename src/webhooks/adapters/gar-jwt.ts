/**
 * The Pub/Sub push JWT of the `gar` integration: Pub/Sub, with push authentication on, sends
 * `Authorization: Bearer <OIDC ID token>` signed by Google (RS256). The token is verified with
 * `jose` (signature, alg allow-list RS256/ES256, exp/nbf with clock skew, aud, iss); an iat in
 * the future and the service account email (`email`, `email_verified`) are checked here.
 *
 * Keys (`jwt.keys`): Google's JWKS URL by default (https://www.googleapis.com/oauth2/v3/certs,
 * fetched by jose's remote key set: cached, re-fetched on an unknown kid, body capped), another
 * URL (https, or http to loopback only), an absolute file path (re-read when it changes) or
 * inline text, holding a JWKS, a {kid: PEM} map (.../oauth2/v1/certs) or PEM public keys /
 * certificates. Keys without a kid (PEM) are tried for any token; a token whose kid names a key
 * is checked against that key only.
 * Source: cloud.google.com/pubsub/docs/authenticate-push-subscriptions.
 *
 * jose (46 modules) is loaded on the first push token only: the config schema imports this file
 * in every process, and a worker or a receiver without a `gar` integration never needs it.
 */
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { errors, JSONWebKeySet, JWK, JWTVerifyGetKey, JWTVerifyOptions } from 'jose';
import { z } from 'zod';
import { cappedFetch } from '../../edge/capped-fetch.js';
import type { RequestHead } from '../types.js';
import { headerValue } from './common.js';

export const GOOGLE_CERTS_URL = 'https://www.googleapis.com/oauth2/v3/certs';
const GOOGLE_ISSUERS = ['https://accounts.google.com', 'accounts.google.com'];
/** Google's JWKS is ~2 KB; a key set endpoint answering more than this is refused. */
const JWKS_BODY_LIMIT = 256 * 1024;

export const garJwtSchema = z
  .object({
    /** The subscription's audience (default in Google: the push endpoint URL). */
    audience: z.string().min(1),
    /** Accepted `iss`; default Google's (https://accounts.google.com, accounts.google.com). */
    issuer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    /** The push subscription's service account; when set, `email` must match and be verified. */
    email: z.string().min(3).optional(),
    /**
     * Signing keys: Google's JWKS URL (the default), another JWKS URL, a file (absolute path,
     * re-read when it changes) or inline text holding a JWKS, a {kid: PEM} map or PEM keys / certificates.
     */
    keys: z.string().min(1).default(GOOGLE_CERTS_URL),
    /** Clock skew allowed on exp/iat/nbf, seconds. */
    clockSkewSeconds: z.number().int().min(0).max(600).default(60),
  })
  .strict()
  .superRefine((j, ctx) => {
    const problem = keysProblem(j.keys);
    if (problem) ctx.addIssue({ code: 'custom', path: ['keys'], message: problem });
  });
export type GarJwtConfig = z.infer<typeof garJwtSchema>;

function keysProblem(keys: string): string | undefined {
  if (isUrl(keys)) {
    let u: URL;
    try {
      u = new URL(keys.trim());
    } catch {
      return 'not a valid URL';
    }
    if (u.protocol === 'https:') return undefined;
    // plain http only where nobody can sit in between (a test or a local mirror)
    return u.protocol === 'http:' && isLoopback(u.hostname) ? undefined : 'a key set URL must be https (http only to a loopback address)';
  }
  if (!isInline(keys)) {
    // the receiver has no base directory to resolve against: a relative path would depend on the cwd
    return isAbsolute(keys) ? undefined : 'a JWKS URL, an absolute file path, or inline JWKS / PEM';
  }
  try {
    parseKeys(keys);
    return undefined;
  } catch (err) {
    return `no usable keys: ${(err as Error).message}`;
  }
}

const isUrl = (keys: string) => /^\s*https?:\/\//i.test(keys);
const isInline = (keys: string) => /^\s*(?:\{|-----BEGIN )/.test(keys);
const isLoopback = (host: string) => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

type Jose = typeof import('jose');
let josePromise: Promise<Jose> | undefined;
const loadJose = (): Promise<Jose> => (josePromise ??= import('jose'));

/** True when the request carries a push JWT that verifies under `cfg`. Never throws. */
export async function verifyPushJwt(req: RequestHead, cfg: GarJwtConfig): Promise<boolean> {
  const h = headerValue(req.headers, 'authorization');
  const m = h ? /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$/.exec(h) : null;
  if (!m) return false;
  const token = m[1]!;
  const options: JWTVerifyOptions = {
    algorithms: ['RS256', 'ES256'],
    audience: cfg.audience,
    issuer: cfg.issuer ?? GOOGLE_ISSUERS,
    clockTolerance: cfg.clockSkewSeconds,
    requiredClaims: ['exp'],
  };
  let claims: Record<string, unknown>;
  try {
    const jose = await loadJose();
    const getKey = await keyResolver(jose, cfg.keys);
    try {
      claims = (await jose.jwtVerify(token, getKey, options)).payload;
    } catch (err) {
      // several keys fit the token's header (no kid, or a kid shared): each is tried in turn
      if (!(err instanceof jose.errors.JWKSMultipleMatchingKeys)) throw err;
      claims = await verifyWithAny(jose, token, err, options);
    }
  } catch {
    return false;
  }
  // jose checks iat only against a maximum age; a token issued in the future is refused here
  const iat = claims['iat'];
  if (typeof iat === 'number' && iat - cfg.clockSkewSeconds > Date.now() / 1000) return false;
  return cfg.email === undefined || (claims['email'] === cfg.email && claims['email_verified'] === true);
}

async function verifyWithAny(
  jose: Jose,
  token: string,
  candidates: errors.JWKSMultipleMatchingKeys,
  options: JWTVerifyOptions,
): Promise<Record<string, unknown>> {
  let last: unknown = new jose.errors.JWSSignatureVerificationFailed();
  for await (const key of candidates) {
    try {
      return (await jose.jwtVerify(token, key, options)).payload;
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

const remote = new Map<string, JWTVerifyGetKey>();
const local = new Map<string, { mtimeMs: number; getKey: JWTVerifyGetKey }>();

async function keyResolver(jose: Jose, source: string): Promise<JWTVerifyGetKey> {
  if (isUrl(source)) {
    const url = source.trim();
    let getKey = remote.get(url);
    if (!getKey) {
      getKey = jose.createRemoteJWKSet(new URL(url), {
        timeoutDuration: 5000,
        cooldownDuration: 30_000,
        cacheMaxAge: 600_000,
        [jose.customFetch]: cappedFetch(JWKS_BODY_LIMIT),
      });
      remote.set(url, getKey);
    }
    return getKey;
  }
  const mtimeMs = isInline(source) ? 0 : (await stat(source)).mtimeMs;
  const hit = local.get(source);
  if (hit && hit.mtimeMs === mtimeMs) return hit.getKey;
  const getKey = localResolver(jose, parseKeys(isInline(source) ? source : await readFile(source, 'utf8')));
  local.set(source, { mtimeMs, getKey });
  return getKey;
}

/** A token whose kid names a key: that key; otherwise the keys without a kid (no kid in the token: every key). */
function localResolver(jose: Jose, set: JSONWebKeySet): JWTVerifyGetKey {
  const kids = new Set(set.keys.flatMap((k) => (typeof k.kid === 'string' ? [k.kid] : [])));
  const all = jose.createLocalJWKSet(set);
  const anonymous = jose.createLocalJWKSet({ keys: set.keys.filter((k) => typeof k.kid !== 'string') });
  return (header) => {
    if (typeof header.kid === 'string' && kids.has(header.kid)) return all(header);
    return (typeof header.kid === 'string' ? anonymous : all)({ ...header, kid: undefined });
  };
}

/** JWKS {keys:[...]}, a {kid: PEM} map, or concatenated PEM public keys / certificates, as a JWKS. */
export function parseKeys(text: string): JSONWebKeySet {
  const keys: JWK[] = [];
  const toJwk = (pem: string, kid?: string): JWK => ({ ...(createPublicKey(pem).export({ format: 'jwk' }) as JWK), ...(kid ? { kid } : {}) });
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const doc = JSON.parse(trimmed) as Record<string, unknown>;
    if (Array.isArray(doc['keys'])) {
      for (const jwk of doc['keys'] as JWK[]) {
        if (jwk.use !== undefined && jwk.use !== 'sig') continue;
        createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }); // throws on a key that is not one
        keys.push(jwk);
      }
    } else {
      for (const [kid, pem] of Object.entries(doc)) if (typeof pem === 'string') keys.push(toJwk(pem, kid));
    }
  } else {
    for (const block of trimmed.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? []) keys.push(toJwk(block));
  }
  if (keys.length === 0) throw new Error('no keys found');
  return { keys };
}
