/**
 * Stand-ins for Azure Container Registry's Microsoft Entra flow, driven by the real
 * `@azure/identity` ClientSecretCredential:
 *
 * - `startEntraStandIn`: a Microsoft Entra authority over https (MSAL refuses http authorities;
 *   the test trusts its self-signed certificate through `acr.caFile`): the tenant's
 *   `/v2.0/.well-known/openid-configuration` and the client-credentials token endpoint
 *   `/{tenant}/oauth2/v2.0/token`, which checks client_id/client_secret and records the scope.
 *   Issued access tokens are JWT-shaped (aud = the requested resource) and remembered.
 * - `startAcrFront`: the registry host as ACR presents it: `POST /oauth2/exchange` (form
 *   `grant_type=access_token&service=<this host>&access_token=<Entra token>[&tenant=]`) answers
 *   `{"refresh_token": <refreshToken>}` only for an access token the authority issued, for this
 *   service; every other request is proxied to a real docker-registry (Host header kept, so
 *   upload Locations point back here). The registry itself is configured to accept user
 *   `00000000-0000-0000-0000-000000000000` with that refresh token as password, so a push only
 *   succeeds with the token this flow produced.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** A JWT-shaped unsigned token with the given claims (what the stand-ins hand out). */
export function fakeJwt(claims: Record<string, unknown>): string {
  return `${b64url({ typ: 'JWT', alg: 'none' })}.${b64url(claims)}.`;
}

export interface EntraStandIn {
  /** https://127.0.0.1:PORT (the authorityHost) */
  url: string;
  tenantId: string;
  /** Access tokens issued, in order. */
  issued: string[];
  /** Token requests: client id, scope, accepted or not (secrets are not kept). */
  tokenRequests: { clientId: string; scope: string; ok: boolean }[];
  addClient(clientId: string, secret: string): void;
  close(): Promise<void>;
}

export async function startEntraStandIn(opts: { tenantId: string; certFile: string; keyFile: string; expiresIn?: number }): Promise<EntraStandIn> {
  const clients = new Map<string, string>();
  const t = opts.tenantId;
  const s: EntraStandIn = {
    url: '',
    tenantId: t,
    issued: [],
    tokenRequests: [],
    addClient: (id, secret) => void clients.set(id, secret),
    close: async () => undefined,
  };
  const server = createHttpsServer({ cert: readFileSync(opts.certFile), key: readFileSync(opts.keyFile) }, (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'https://stand-in');
      const body = await readBody(req);
      if (req.method === 'GET' && url.pathname === `/${t}/v2.0/.well-known/openid-configuration`) {
        json(res, 200, {
          token_endpoint: `${s.url}/${t}/oauth2/v2.0/token`,
          authorization_endpoint: `${s.url}/${t}/oauth2/v2.0/authorize`,
          device_authorization_endpoint: `${s.url}/${t}/oauth2/v2.0/devicecode`,
          end_session_endpoint: `${s.url}/${t}/oauth2/v2.0/logout`,
          jwks_uri: `${s.url}/${t}/discovery/v2.0/keys`,
          issuer: `${s.url}/${t}/v2.0`,
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        });
        return;
      }
      if (req.method === 'POST' && url.pathname === `/${t}/oauth2/v2.0/token`) {
        const form = new URLSearchParams(body);
        const clientId = form.get('client_id') ?? '';
        const scope = form.get('scope') ?? '';
        const ok = form.get('grant_type') === 'client_credentials' && clients.has(clientId) && clients.get(clientId) === form.get('client_secret');
        s.tokenRequests.push({ clientId, scope, ok });
        if (!ok) {
          json(res, 401, {
            error: 'invalid_client',
            error_description: `AADSTS7000215: Invalid client secret provided. Trace ID: ${randomUUID()}`,
            error_codes: [7000215],
            timestamp: new Date().toISOString(),
            trace_id: randomUUID(),
            correlation_id: randomUUID(),
          });
          return;
        }
        const expiresIn = opts.expiresIn ?? 3599;
        const resource =
          scope
            .split(' ')
            .find((x) => x.endsWith('/.default'))
            ?.replace(/\/\.default$/, '') ?? scope;
        const now = Math.floor(Date.now() / 1000);
        const token = fakeJwt({ aud: resource, tid: t, appid: clientId, iat: now, exp: now + expiresIn, uti: randomUUID() });
        s.issued.push(token);
        json(res, 200, { token_type: 'Bearer', expires_in: expiresIn, ext_expires_in: expiresIn, access_token: token });
        return;
      }
      json(res, 404, { error: 'not_found', error_description: `stand-in authority: no route ${req.method} ${url.pathname}` });
    })().catch((err) => {
      res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return s;
}

export interface AcrFront {
  /** 127.0.0.1:PORT: the registry host signet is configured with. */
  host: string;
  url: string;
  /** The refresh token the next exchange returns. */
  refreshToken: string;
  /** Exchange requests: the tenant and service sent, whether accepted. */
  exchanges: { service: string; tenant: string | null; ok: boolean; reason?: string }[];
  /** Requests proxied to the registry. */
  forwarded: number;
  close(): Promise<void>;
}

/**
 * The ACR login server: `/oauth2/exchange` here, everything else proxied to `upstream`
 * (127.0.0.1:PORT of a docker-registry). `acceptAccessToken` decides which Entra tokens are valid.
 */
export async function startAcrFront(opts: {
  upstream: string;
  refreshToken: string;
  acceptAccessToken: (token: string) => boolean;
  tenantId?: string;
}): Promise<AcrFront> {
  const f: AcrFront = { host: '', url: '', refreshToken: opts.refreshToken, exchanges: [], forwarded: 0, close: async () => undefined };
  const [upHost, upPort] = opts.upstream.split(':');
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/oauth2/exchange') {
      void (async () => {
        const form = new URLSearchParams(await readBody(req));
        const service = form.get('service') ?? '';
        const tenant = form.get('tenant');
        const token = form.get('access_token') ?? '';
        let reason: string | undefined;
        if (req.method !== 'POST') reason = 'method';
        else if (!/^application\/x-www-form-urlencoded/.test(String(req.headers['content-type'] ?? ''))) reason = 'content-type';
        else if (form.get('grant_type') !== 'access_token') reason = 'grant_type';
        else if (service !== f.host) reason = 'service';
        else if (opts.tenantId && tenant !== opts.tenantId) reason = 'tenant';
        else if (!opts.acceptAccessToken(token)) reason = 'access_token';
        f.exchanges.push({ service, tenant, ok: !reason, ...(reason ? { reason } : {}) });
        if (reason) {
          json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: `exchange refused (${reason})` }] });
          return;
        }
        json(res, 200, { refresh_token: f.refreshToken });
      })().catch((err) => res.writeHead(500).end(String(err)));
      return;
    }
    f.forwarded++;
    const up = httpRequest({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: { ...req.headers, host: f.host } }, (r) => {
      const headers = { ...r.headers };
      if (typeof headers.location === 'string') headers.location = headers.location.replace(`//${opts.upstream}`, `//${f.host}`);
      res.writeHead(r.statusCode ?? 502, headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  f.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  f.url = `http://${f.host}`;
  f.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return f;
}
