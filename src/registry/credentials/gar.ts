/**
 * Google Artifact Registry (and Container Registry): an OAuth2 access token from the real
 * `google-auth-library`, used as the password of user `oauth2accesstoken` (what
 * `docker-credential-gcr` / `gcloud auth configure-docker` do), cached until shortly before it
 * expires (one hour after issue on Google).
 *
 * - `keyFile`: a credentials JSON (service-account key, external_account / workload identity
 *   federation, authorized_user, impersonated_service_account); relative to the config file.
 *   Without it: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC
 *   file, then the metadata server on GCE/GKE/Cloud Run).
 * - Scope: https://www.googleapis.com/auth/cloud-platform.
 * - `tokenUrl` replaces Google's OAuth2 token endpoint (https://oauth2.googleapis.com/token) for
 *   the token requests the library makes (e.g. a Private Service Connect endpoint, or a test
 *   stand-in). A service-account key file's own `token_uri` is NOT used by google-auth-library
 *   10 (its gtoken always posts to oauth2.googleapis.com), hence this option.
 * - Hosts contacted: Google's token endpoint (or `tokenUrl`), and whatever the credentials JSON
 *   names for its own type (STS, IAM credentials); never a host from a webhook payload.
 * - Bounds: `timeoutMs` is gaxios's `timeout`, an AbortSignal over fetch, so it covers the whole
 *   answer; the library's fetch is `cappedFetch(READ_LIMITS.token)`: an answer over 64 KiB,
 *   declared or streamed, is REGISTRY_PROTOCOL (gaxios's own maxContentLength checks only a
 *   declared Content-Length).
 * - google-auth-library is loaded on the first credentials fetch, not when this module is
 *   imported: config validation (and every process that never talks to GAR) does not pay for it.
 */
import path from 'node:path';
import type { GoogleAuthOptions } from 'google-auth-library';
import { z } from 'zod';
import { cappedFetch } from '../../edge/capped-fetch.js';
import { BodyTooLargeError, READ_LIMITS } from '../../edge/read.js';
import { retryAfterOption } from '../../edge/retry-after.js';
import { SignetError } from '../../errors.js';
import { cachedCredentialSource, errorSummary, type CredentialContext, type CredentialSource } from './source.js';

export const GAR_USERNAME = 'oauth2accesstoken';
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

export const garCredentialsSchema = z
  .object({
    gar: z
      .object({
        /** Google credentials JSON; default: Application Default Credentials. */
        keyFile: z.string().min(1).optional(),
        /** Replacement for https://oauth2.googleapis.com/token (PSC endpoint, test stand-in). */
        tokenUrl: z
          .string()
          .url()
          .refine((u) => /^https?:\/\//i.test(u), 'tokenUrl must be an http(s) URL')
          .optional(),
        /** Per-request timeout, ms. */
        timeoutMs: z.number().int().positive().max(300_000).optional(),
      })
      .strict(),
  })
  .strict();
export type GarCredentialsConfig = z.infer<typeof garCredentialsSchema>;

/** Minimal shape of the client google-auth-library hands out (AnyAuthClient). */
interface AuthClientLike {
  getAccessToken(): Promise<{ token?: string | null }>;
  credentials?: { expiry_date?: number | null };
  transporter?: {
    interceptors?: {
      request: { add(i: { resolved?: (o: { url: URL }) => Promise<{ url: URL }> }): unknown };
    };
  };
}

/** An error and its causes (gaxios wraps what fetch threw). */
function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) out.push(e);
  return out;
}

function classify(err: unknown, who: string): SignetError {
  const e = err as { status?: number; code?: unknown; response?: { status?: number; headers?: unknown }; message?: unknown };
  const status = e?.response?.status ?? (typeof e?.status === 'number' ? e.status : undefined);
  const detail = errorSummary(err);
  if (causes(err).some((c) => c instanceof BodyTooLargeError)) {
    return new SignetError('REGISTRY_PROTOCOL', `${who}: the Google token endpoint answered more than ${READ_LIMITS.token} bytes`, { cause: err });
  }
  if (status === 429 || (status !== undefined && status >= 500)) {
    const h = e?.response?.headers;
    const ra = retryAfterOption(h instanceof Headers ? h.get('retry-after') : (h as Record<string, string> | undefined)?.['retry-after']);
    return new SignetError(status === 429 ? 'REGISTRY_THROTTLED' : 'REGISTRY_UNAVAILABLE', `${who}: Google token request failed (HTTP ${status})`, {
      cause: err,
      status,
      ...ra,
    });
  }
  if (status !== undefined) {
    return new SignetError('REGISTRY_AUTH_FAILED', `${who}: Google refused the token request (HTTP ${status}: ${detail})`, { cause: err, status });
  }
  const msg = String(e?.message ?? '');
  if (/Could not load the default credentials|Unable to detect|ENOENT|no such file|Unexpected token|JSON|client_email|private_key|invalid_grant/i.test(msg)) {
    return new SignetError(
      'REGISTRY_AUTH_FAILED',
      `${who}: no usable Google credentials (${detail}); set credentials.gar.keyFile or Application Default Credentials`,
      { cause: err },
    );
  }
  return new SignetError('REGISTRY_UNAVAILABLE', `${who}: Google token request failed (${detail})`, { cause: err });
}

/** The library, loaded on first use so that importing this module (config validation) stays cheap. */
function loadSdk(): Promise<typeof import('google-auth-library')> {
  return import('google-auth-library');
}

export function createGarSource(
  cfg: GarCredentialsConfig,
  ctx: CredentialContext,
  deps: { auth?: { getClient(): Promise<unknown> }; now?: () => number } = {},
): CredentialSource & { readonly fetches: number } {
  const who = `registry ${ctx.host} (GAR credentials)`;
  const timeoutMs = cfg.gar.timeoutMs ?? Math.min(ctx.timeoutMs, 30_000);
  const keyFile = cfg.gar.keyFile ? path.resolve(ctx.baseDir, cfg.gar.keyFile) : undefined;
  const options: GoogleAuthOptions = {
    scopes: [CLOUD_PLATFORM],
    ...(keyFile ? { keyFile } : {}),
    clientOptions: { transporterOptions: { timeout: timeoutMs, fetchImplementation: cappedFetch(READ_LIMITS.token) } },
  };
  // GoogleAuth (and the library) is created on the first fetch, then kept like the client
  let auth = deps.auth;
  let client: Promise<AuthClientLike> | undefined;
  const clientOnce = (): Promise<AuthClientLike> =>
    (client ??= (async () => {
      auth ??= new (await loadSdk()).GoogleAuth(options);
      const c = (await auth.getClient()) as AuthClientLike;
      const tokenUrl = cfg.gar.tokenUrl;
      if (tokenUrl) {
        const interceptors = c.transporter?.interceptors;
        if (!interceptors) throw new SignetError('CONFIG_INVALID', `${who}: gar.tokenUrl is not supported for this kind of Google credentials`);
        interceptors.request.add({
          resolved: async (o) => {
            if (o.url.href === GOOGLE_TOKEN_URL) o.url = new URL(tokenUrl);
            return o;
          },
        });
      }
      return c;
    })().catch((err) => {
      client = undefined;
      throw err;
    }));
  return cachedCredentialSource(
    `Google access token${keyFile ? ` from ${keyFile}` : ' (Application Default Credentials)'}`,
    async () => {
      let token: string | null | undefined;
      let expiry: number | null | undefined;
      try {
        const c = await clientOnce();
        token = (await c.getAccessToken()).token;
        expiry = c.credentials?.expiry_date;
      } catch (err) {
        throw err instanceof SignetError ? err : classify(err, who);
      }
      if (!token) throw new SignetError('REGISTRY_AUTH_FAILED', `${who}: google-auth-library returned no access token`);
      return { value: { username: GAR_USERNAME, password: token }, ...(typeof expiry === 'number' && expiry > 0 ? { expiresAt: expiry } : {}) };
    },
    { defaultTtlMs: 30 * 60_000, ...(deps.now ? { now: deps.now } : {}) },
  );
}
