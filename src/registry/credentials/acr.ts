/**
 * Azure Container Registry: a Microsoft Entra access token (real `@azure/identity`) exchanged at
 * the registry's own `POST https://<registry>/oauth2/exchange` for an ACR refresh token, which
 * is then the password of user `00000000-0000-0000-0000-000000000000` (what `az acr login`
 * does). The registry answers its challenges with it: Basic, or its bearer token service at
 * `/oauth2/token`, which takes the same pair.
 *
 * - Entra token scope: `https://containerregistry.azure.net/.default` (the ACR audience; it works
 *   also where the registry has "authentication-as-arm" disabled). `scope:
 *   https://management.azure.com/.default` gives the older ARM-audience token.
 * - Exchange form (application/x-www-form-urlencoded): `grant_type=access_token`,
 *   `service=<registry host>`, `access_token=<Entra token>`, and `tenant=<tenantId>` when set.
 *   Answer: `{"refresh_token": "<JWT>"}`; it is cached until shortly before the JWT's `exp`
 *   (when unreadable: the Entra token's expiry, at most one hour).
 * - Identity: `tenantId` + `clientId` + `clientSecret` (ClientSecretCredential), else
 *   DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI, ...),
 *   `clientId` alone choosing a user-assigned managed identity / workload identity client.
 * - `authorityHost` (https only: MSAL refuses others) for sovereign clouds or a test stand-in;
 *   instance discovery is skipped for authorities MSAL does not know. `caFile` adds CA
 *   certificates trusted for the authority.
 * - Hosts contacted: the Entra authority (the SDK's own endpoint) and the registry host itself.
 * - The exchange has an overall deadline (`timeoutMs`, headers and body) and its answer is read
 *   up to READ_LIMITS.token (64 KiB) and checked against a schema (REGISTRY_PROTOCOL otherwise);
 *   429/5xx pass a (capped) Retry-After on; a refusal's text is redacted and never echoes the
 *   Entra token sent.
 * - `@azure/identity` is loaded (and the Entra credential created) on the first credentials
 *   fetch, not when this module is imported; `caFile` is still read when the source is created,
 *   so a bad one is reported at startup.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import type { TokenCredential } from '@azure/identity';
import { request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { BodyTooLargeError, readCapped, READ_LIMITS } from '../../edge/read.js';
import { retryAfterOption } from '../../edge/retry-after.js';
import { parseShape } from '../../edge/upstream-json.js';
import { SignetError } from '../../errors.js';
import { cachedCredentialSource, errorSummary, jwtExpiry, type CredentialContext, type CredentialSource } from './source.js';

export const ACR_USERNAME = '00000000-0000-0000-0000-000000000000';
export const ACR_DEFAULT_SCOPE = 'https://containerregistry.azure.net/.default';
/** Authorities MSAL knows (instance discovery works); any other authorityHost skips discovery. */
const KNOWN_AUTHORITIES = ['login.microsoftonline.com', 'login.microsoftonline.us', 'login.chinacloudapi.cn', 'login.partner.microsoftonline.cn'];

export const acrCredentialsSchema = z
  .object({
    acr: z
      .object({
        tenantId: z.string().min(1).optional(),
        /** With clientSecret: a service principal. Alone: the user-assigned managed/workload identity. */
        clientId: z.string().min(1).optional(),
        /** Use `${ENV}` expansion; never put the secret in the file. */
        clientSecret: z.string().min(1).optional(),
        /** Microsoft Entra authority, e.g. https://login.microsoftonline.us (default: AZURE_AUTHORITY_HOST or public cloud). */
        authorityHost: z.string().url().optional(),
        /** Extra CA certificates (PEM) trusted for the authority, besides the system's. */
        caFile: z.string().min(1).optional(),
        /** Entra token scope. Default https://containerregistry.azure.net/.default. */
        scope: z.string().min(1).optional(),
        /** Per-request timeout, ms. */
        timeoutMs: z.number().int().positive().max(300_000).optional(),
      })
      .strict()
      .superRefine((c, ctx) => {
        if (c.clientSecret !== undefined && (c.tenantId === undefined || c.clientId === undefined)) {
          ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: 'clientSecret needs tenantId and clientId' });
        }
        if (c.authorityHost !== undefined && !c.authorityHost.startsWith('https://')) {
          ctx.addIssue({ code: 'custom', path: ['authorityHost'], message: 'authorityHost must be https' });
        }
      }),
  })
  .strict();
export type AcrCredentialsConfig = z.infer<typeof acrCredentialsSchema>;

function loadCa(cfg: AcrCredentialsConfig['acr'], baseDir: string, who: string): { ca: string[] } | undefined {
  if (!cfg.caFile) return undefined;
  const file = path.resolve(baseDir, cfg.caFile);
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SignetError('CONFIG_INVALID', `${who}: cannot read acr.caFile ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new SignetError('CONFIG_INVALID', `${who}: acr.caFile ${file} holds no PEM certificate`);
  return { ca: [...rootCertificates, pem] };
}

/** The SDK, loaded on first use so that importing this module (config validation) stays cheap. */
function loadSdk(): Promise<typeof import('@azure/identity')> {
  return import('@azure/identity');
}

export async function createAcrCredential(cfg: AcrCredentialsConfig['acr'], baseDir: string, who: string): Promise<TokenCredential> {
  return buildCredential(cfg, loadCa(cfg, baseDir, who));
}

async function buildCredential(cfg: AcrCredentialsConfig['acr'], tlsOptions: { ca: string[] } | undefined): Promise<TokenCredential> {
  const { ClientSecretCredential, DefaultAzureCredential } = await loadSdk();
  const host = cfg.authorityHost ? new URL(cfg.authorityHost).hostname : undefined;
  const common = {
    ...(cfg.authorityHost ? { authorityHost: cfg.authorityHost } : {}),
    ...(host && !KNOWN_AUTHORITIES.includes(host) ? { disableInstanceDiscovery: true } : {}),
    ...(tlsOptions ? { tlsOptions } : {}),
    retryOptions: { maxRetries: 0 },
  };
  if (cfg.clientSecret && cfg.tenantId && cfg.clientId) return new ClientSecretCredential(cfg.tenantId, cfg.clientId, cfg.clientSecret, common);
  return new DefaultAzureCredential({
    ...common,
    ...(cfg.tenantId ? { tenantId: cfg.tenantId } : {}),
    ...(cfg.clientId ? { managedIdentityClientId: cfg.clientId, workloadIdentityClientId: cfg.clientId } : {}),
  });
}

const NETWORK = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|socket hang up|timed? ?out|aborted/i;

function classifyEntra(err: unknown, who: string, secrets: readonly (string | undefined)[]): SignetError {
  const e = err as { name?: string; statusCode?: number; errorResponse?: { error?: string } };
  const status = typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  const detail = errorSummary(err, secrets);
  if (status === 429 || (status !== undefined && status >= 500)) {
    return new SignetError(status === 429 ? 'REGISTRY_THROTTLED' : 'REGISTRY_UNAVAILABLE', `${who}: Microsoft Entra token request failed (HTTP ${status})`, {
      cause: err,
      status,
    });
  }
  if (e?.name === 'CredentialUnavailableError' || e?.errorResponse?.error || (status !== undefined && status < 500 && status >= 400)) {
    return new SignetError('REGISTRY_AUTH_FAILED', `${who}: Microsoft Entra refused the token request (${detail})`, {
      cause: err,
      ...(status ? { status } : {}),
    });
  }
  if (NETWORK.test(String((err as Error)?.message ?? ''))) {
    return new SignetError('REGISTRY_UNAVAILABLE', `${who}: Microsoft Entra unreachable (${detail})`, { cause: err });
  }
  return new SignetError('REGISTRY_AUTH_FAILED', `${who}: no Microsoft Entra token (${detail})`, { cause: err });
}

/** The exchange's answer (what `az acr login` reads). */
const exchangeAnswerSchema = z.object({ refresh_token: z.string().min(1) });
/** A refusal: distribution's `{"errors":[{code,message}]}` or OAuth2's `{"error","error_description"}`. */
const exchangeErrorSchema = z.object({
  errors: z.array(z.object({ message: z.string().optional() })).optional(),
  error: z.string().optional(),
  error_description: z.string().optional(),
});

/** POST /oauth2/exchange on the registry host: Entra access token -> ACR refresh token. */
export async function exchangeForRefreshToken(opts: {
  host: string;
  insecure: boolean;
  accessToken: string;
  tenantId?: string;
  dispatcher?: Dispatcher;
  timeoutMs: number;
  who: string;
}): Promise<string> {
  const url = `${opts.insecure ? 'http' : 'https'}://${opts.host}/oauth2/exchange`;
  const form = new URLSearchParams({ grant_type: 'access_token', service: opts.host, access_token: opts.accessToken });
  if (opts.tenantId) form.set('tenant', opts.tenantId);
  const secrets = [opts.accessToken];
  let res: Dispatcher.ResponseData;
  let text: string;
  try {
    res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'user-agent': 'signet' },
      body: form.toString(),
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      // the overall deadline (undici's timers above are per chunk): it aborts the body read too
      signal: AbortSignal.timeout(opts.timeoutMs),
      ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
    });
    text = (await readCapped(res.body, READ_LIMITS.token, res.headers['content-length'])).toString('utf8');
  } catch (err) {
    if (err instanceof BodyTooLargeError) {
      throw new SignetError('REGISTRY_PROTOCOL', `${opts.who}: /oauth2/exchange answered more than ${READ_LIMITS.token} bytes`);
    }
    const e = err as { name?: string };
    const why = e?.name === 'TimeoutError' || e?.name === 'AbortError' ? `no complete answer within ${opts.timeoutMs} ms` : errorSummary(err, secrets);
    throw new SignetError('REGISTRY_UNAVAILABLE', `${opts.who}: ${opts.host}/oauth2/exchange unreachable (${why})`, { cause: err });
  }
  const status = res.statusCode;
  if (status === 429 || status >= 500) {
    throw new SignetError(status === 429 ? 'REGISTRY_THROTTLED' : 'REGISTRY_UNAVAILABLE', `${opts.who}: /oauth2/exchange answered HTTP ${status}`, {
      status,
      ...retryAfterOption(res.headers['retry-after']),
    });
  }
  if (status !== 200) {
    const j = parseShape(text, exchangeErrorSchema);
    const reason = j.ok ? (j.value.errors?.[0]?.message ?? j.value.error_description ?? j.value.error ?? '') : '';
    throw new SignetError(
      'REGISTRY_AUTH_FAILED',
      `${opts.who}: /oauth2/exchange refused the Entra token (HTTP ${status}${reason ? `: ${errorSummary(reason, secrets).slice(0, 200)}` : ''}); the identity needs the AcrPush role (or a data-plane role with read + write) on the registry`,
      { status },
    );
  }
  const body = parseShape(text, exchangeAnswerSchema);
  if (!body.ok) {
    throw new SignetError(
      'REGISTRY_PROTOCOL',
      `${opts.who}: /oauth2/exchange returned ${body.why === 'not JSON' ? 'invalid JSON' : `no usable refresh_token (${body.why})`}`,
    );
  }
  return body.value.refresh_token;
}

export function createAcrSource(
  cfg: AcrCredentialsConfig,
  ctx: CredentialContext,
  deps: { credential?: TokenCredential; now?: () => number } = {},
): CredentialSource & { readonly fetches: number } {
  const who = `registry ${ctx.host} (ACR credentials)`;
  // caFile is read now (a bad one fails startup); the SDK is loaded and the credential created on
  // the first fetch, and created again next time if that failed
  const tlsOptions = deps.credential ? undefined : loadCa(cfg.acr, ctx.baseDir, who);
  let credential: Promise<TokenCredential> | undefined = deps.credential ? Promise.resolve(deps.credential) : undefined;
  const credentialOnce = (): Promise<TokenCredential> =>
    (credential ??= buildCredential(cfg.acr, tlsOptions).catch((err: unknown) => {
      credential = undefined;
      throw err;
    }));
  const scope = cfg.acr.scope ?? ACR_DEFAULT_SCOPE;
  const timeoutMs = cfg.acr.timeoutMs ?? Math.min(ctx.timeoutMs, 30_000);
  const now = deps.now ?? Date.now;
  return cachedCredentialSource(
    `ACR token exchange at ${ctx.host} with a Microsoft Entra token${cfg.acr.clientId ? ` of client ${cfg.acr.clientId}` : ''}`,
    async () => {
      let aad;
      try {
        // a credential that cannot be created (e.g. a malformed tenantId) is reported like a refusal
        const c = await credentialOnce();
        aad = await c.getToken(scope, { abortSignal: AbortSignal.timeout(timeoutMs), ...(cfg.acr.tenantId ? { tenantId: cfg.acr.tenantId } : {}) });
      } catch (err) {
        throw classifyEntra(err, who, [cfg.acr.clientSecret]);
      }
      if (!aad?.token) throw new SignetError('REGISTRY_AUTH_FAILED', `${who}: Microsoft Entra returned no access token`);
      const refresh = await exchangeForRefreshToken({
        host: ctx.host,
        insecure: ctx.insecure,
        accessToken: aad.token,
        ...(cfg.acr.tenantId ? { tenantId: cfg.acr.tenantId } : {}),
        ...(ctx.dispatcher ? { dispatcher: ctx.dispatcher } : {}),
        timeoutMs,
        who,
      });
      const expiresAt = jwtExpiry(refresh) ?? Math.min(aad.expiresOnTimestamp, now() + 60 * 60_000);
      return { value: { username: ACR_USERNAME, password: refresh }, expiresAt };
    },
    { ...(deps.now ? { now: deps.now } : {}) },
  );
}
