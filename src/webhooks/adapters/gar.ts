/**
 * Google Artifact Registry (and Container Registry) notifications: Artifact Registry publishes
 * to the Pub/Sub topic "gcr"; a push subscription POSTs {message{data (base64), messageId,
 * attributes?, publishTime}, subscription}. The decoded data is {action: INSERT|DELETE,
 * digest?: "<host>/<path>@sha256:...", tag?: "<host>/<path>:<tag>"}; INSERT without tag is an
 * untagged push. A subscription with "payload unwrapping" sends the decoded data as the body.
 * Auth: with push authentication enabled Pub/Sub sends `Authorization: Bearer <OIDC JWT>`;
 * `jwt` verifies it (signature against `jwt.keys`, aud, iss, exp, and optionally the service
 * account email). `secret` (?token=<secret> in the push endpoint URL) works alone or on top.
 * Sources: cloud.google.com artifact-registry/docs/configure-notifications, pubsub/docs/push,
 * pubsub/docs/authenticate-push-subscriptions; keel-hq/keel trigger/pubsub/pubsub.go.
 */
import { createPublicKey, verify as cryptoVerify, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, IgnoredItem, RequestHead, WebhookAdapter } from '../types.js';
import { headerAuth, headerValue, parseOrThrow, refOf, sharedSecretAuth, splitImageRef } from './common.js';

const messageData = z
  .object({ action: z.string(), digest: z.string().optional(), tag: z.string().optional() })
  .loose();

const pushEnvelope = z
  .object({
    message: z
      .object({
        data: z.string().max(1_000_000).optional(),
        messageId: z.string().optional(),
        message_id: z.string().optional(),
        attributes: z.record(z.string(), z.unknown()).optional(),
      })
      .loose(),
    subscription: z.string().optional(),
  })
  .loose();

export const garPayloadSchema = z.union([pushEnvelope, messageData]);

const config = integrationConfig('gar', {
  /** Verify Pub/Sub's push JWT. Without it only `secret` (or insecure) authenticates. */
  jwt: z
    .object({
      /** The subscription's audience (default in Google: the push endpoint URL). */
      audience: z.string().min(1),
      /** Accepted `iss`; default Google's (https://accounts.google.com, accounts.google.com). */
      issuer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
      /** The push subscription's service account; when set, `email` must match and be verified. */
      email: z.string().min(3).optional(),
      /**
       * Signing keys: a file (absolute path, re-read when it changes) or inline text holding a
       * JWKS (https://www.googleapis.com/oauth2/v3/certs), a {kid: PEM} map (.../oauth2/v1/certs),
       * or PEM public keys / certificates.
       */
      keys: z.string().min(1),
      /** Clock skew allowed on exp/iat/nbf, seconds. */
      clockSkewSeconds: z.number().int().min(0).max(600).default(60),
    })
    .strict()
    .superRefine((j, ctx) => {
      if (!isInline(j.keys)) {
        // the receiver has no base directory to resolve against: a relative path would depend on the cwd
        if (!isAbsolute(j.keys)) ctx.addIssue({ code: 'custom', path: ['keys'], message: 'an absolute file path, or inline JWKS / PEM' });
        return;
      }
      try {
        parseKeys(j.keys);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['keys'], message: `no usable keys: ${(err as Error).message}` });
      }
    })
    .optional(),
});
type GarConfig = z.infer<typeof config>;
type JwtConfig = NonNullable<GarConfig['jwt']>;

export const garAdapter: WebhookAdapter<GarConfig> = {
  kind: 'gar',
  configSchema: config,
  contentTypes: [],
  hasCredentials: (integration) => Boolean(integration.jwt),
  // The push JWT (Authorization) signs no part of the body, and the secret is in the URL: both are
  // checked before the body is read.
  authentication: (integration) =>
    headerAuth(async (req) => {
      // Pub/Sub sets no headers of ours (Authorization carries its JWT): a secret comes in the URL
      if (!integration.jwt) return sharedSecretAuth(req, integration, { header: null });
      const secretOk = integration.secret ? sharedSecretAuth(req, integration, { header: null }) : true;
      const jwtOk = await verifyPushJwt(req, integration.jwt);
      return secretOk && jwtOk;
    }),
  parse(body, ctx): AdapterResult {
    const p = parseOrThrow(garPayloadSchema, body, 'gar');
    let data: z.infer<typeof messageData>;
    let eventId: string | undefined;
    if ('message' in p) {
      const m = (p as z.infer<typeof pushEnvelope>).message;
      eventId = m.messageId ?? m.message_id;
      const decoded = decodeData(m.data);
      if (!decoded) {
        // answered 2xx: Pub/Sub would otherwise redeliver it for days
        return { events: [], ignored: [{ reason: 'message data is not an Artifact Registry notification' }] };
      }
      data = decoded;
    } else {
      data = p as z.infer<typeof messageData>;
      const h = headerValue(ctx.headers, 'x-goog-pubsub-message-id');
      if (h) eventId = h;
    }
    return toEvents(data, eventId);
  },
};

function decodeData(b64: string | undefined): z.infer<typeof messageData> | undefined {
  if (!b64) return undefined;
  try {
    const r = messageData.safeParse(JSON.parse(Buffer.from(b64, 'base64').toString('utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

function toEvents(data: z.infer<typeof messageData>, eventId: string | undefined): AdapterResult {
  const byDigest = data.digest ? splitImageRef(data.digest) : undefined;
  const byTag = data.tag ? splitImageRef(data.tag) : undefined;
  const any = byTag ?? byDigest;
  const ref = refOf(any?.repository, byTag?.tag, byDigest?.digest);
  if (data.action !== 'INSERT') return { events: [], ignored: [{ reason: `action "${data.action}" is not a push`, ...ref }] };
  const ignored: IgnoredItem[] = [];
  if (!any || (data.digest && !byDigest?.digest) || (data.tag && !byTag?.tag)) {
    return { events: [], ignored: [{ reason: 'INSERT without a parsable image reference', ...ref }] };
  }
  if (byDigest && byTag && (byDigest.host !== byTag.host || byDigest.repository !== byTag.repository)) {
    return { events: [], ignored: [{ reason: 'digest and tag name different images', ...ref }] };
  }
  return {
    events: [
      {
        host: any.host,
        repository: any.repository,
        ...(byTag?.tag ? { tag: byTag.tag } : {}),
        ...(byDigest?.digest ? { digest: byDigest.digest } : {}),
        ...(eventId ? { eventId } : {}),
      },
    ],
    ignored,
  };
}

// ---- Pub/Sub push JWT (RS256 from Google; ES256 accepted too) ----

const GOOGLE_ISSUERS = ['https://accounts.google.com', 'accounts.google.com'];

interface KeySet {
  byKid: Map<string, KeyObject>;
  anonymous: KeyObject[];
}
const keyCache = new Map<string, { mtimeMs: number; keys: KeySet }>();

async function verifyPushJwt(req: RequestHead, cfg: JwtConfig): Promise<boolean> {
  const h = headerValue(req.headers, 'authorization');
  const m = h ? /^Bearer\s+([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\s*$/.exec(h) : null;
  if (!m) return false;
  const [, h64, p64, s64] = m as unknown as [string, string, string, string];
  const header = jsonPart(h64) as { alg?: unknown; kid?: unknown } | undefined;
  const claims = jsonPart(p64) as Record<string, unknown> | undefined;
  if (!header || !claims) return false;
  const alg = header.alg;
  if (alg !== 'RS256' && alg !== 'ES256') return false;
  const keys = await loadKeys(cfg.keys);
  const candidates = typeof header.kid === 'string' && keys.byKid.has(header.kid) ? [keys.byKid.get(header.kid)!] : [...keys.anonymous, ...(typeof header.kid === 'string' ? [] : keys.byKid.values())];
  const signed = Buffer.from(`${h64}.${p64}`);
  const sig = Buffer.from(s64, 'base64url');
  let sigOk = false;
  for (const key of candidates) {
    const wantType = alg === 'RS256' ? 'rsa' : 'ec';
    if (key.asymmetricKeyType !== wantType) continue;
    try {
      if (cryptoVerify('sha256', signed, alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, sig)) sigOk = true;
    } catch {
      /* malformed signature for this key */
    }
  }
  if (!sigOk) return false;

  const now = Math.floor(Date.now() / 1000);
  const skew = cfg.clockSkewSeconds;
  const aud = claims['aud'];
  const audOk = typeof aud === 'string' ? aud === cfg.audience : Array.isArray(aud) && aud.includes(cfg.audience);
  const issuers = cfg.issuer === undefined ? GOOGLE_ISSUERS : Array.isArray(cfg.issuer) ? cfg.issuer : [cfg.issuer];
  const issOk = typeof claims['iss'] === 'string' && issuers.includes(claims['iss']);
  const exp = claims['exp'];
  const expOk = typeof exp === 'number' && exp + skew > now;
  const iat = claims['iat'];
  const iatOk = iat === undefined || (typeof iat === 'number' && iat - skew <= now);
  const nbf = claims['nbf'];
  const nbfOk = nbf === undefined || (typeof nbf === 'number' && nbf - skew <= now);
  const emailOk = cfg.email === undefined || (claims['email'] === cfg.email && claims['email_verified'] === true);
  return audOk && issOk && expOk && iatOk && nbfOk && emailOk;
}

function jsonPart(b64: string): unknown {
  try {
    const v: unknown = JSON.parse(Buffer.from(b64, 'base64url').toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function isInline(keys: string): boolean {
  return /^\s*(?:\{|-----BEGIN )/.test(keys);
}

async function loadKeys(source: string): Promise<KeySet> {
  if (isInline(source)) {
    const hit = keyCache.get(source);
    if (hit) return hit.keys;
    const keys = parseKeys(source);
    keyCache.set(source, { mtimeMs: 0, keys });
    return keys;
  }
  const { mtimeMs } = await stat(source);
  const hit = keyCache.get(source);
  if (hit && hit.mtimeMs === mtimeMs) return hit.keys;
  const keys = parseKeys(await readFile(source, 'utf8'));
  keyCache.set(source, { mtimeMs, keys });
  return keys;
}

/** JWKS {keys:[...]}, a {kid: PEM} map, or concatenated PEM public keys / certificates. */
export function parseKeys(text: string): KeySet {
  const set: KeySet = { byKid: new Map(), anonymous: [] };
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const doc = JSON.parse(trimmed) as Record<string, unknown>;
    if (Array.isArray(doc['keys'])) {
      for (const jwk of doc['keys'] as (JsonWebKey & { kid?: string; use?: string })[]) {
        if (jwk.use !== undefined && jwk.use !== 'sig') continue;
        const key = createPublicKey({ key: jwk, format: 'jwk' });
        if (typeof jwk.kid === 'string') set.byKid.set(jwk.kid, key);
        else set.anonymous.push(key);
      }
    } else {
      for (const [kid, pem] of Object.entries(doc)) if (typeof pem === 'string') set.byKid.set(kid, createPublicKey(pem));
    }
    return set;
  }
  for (const block of trimmed.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? []) {
    set.anonymous.push(createPublicKey(block));
  }
  if (set.anonymous.length === 0) throw new Error('no keys found');
  return set;
}
