/**
 * A local stand-in for Google's OAuth2 token endpoint, for the real `google-auth-library` with a
 * service-account key: the JWT-bearer grant (`POST /token`, form
 * `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<RS256 JWT>`).
 *
 * The assertion is checked as Google checks it: RS256 signature with the public key of the
 * service account named by `iss` (registered with `addServiceAccount`), `aud` =
 * https://oauth2.googleapis.com/token, `exp` in the future, and a `scope`. The answer is
 * `{"access_token", "expires_in", "token_type": "Bearer"}`; `accessToken` is what the next
 * answer carries. Refusals are `{"error": "invalid_grant", ...}` with HTTP 400, like Google.
 *
 * google-auth-library 10 ignores the key file's `token_uri` (its gtoken always posts to
 * https://oauth2.googleapis.com/token): signet's `gar.tokenUrl` points the library here.
 */
import { generateKeyPairSync, randomUUID, verify, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const GOOGLE_TOKEN_AUD = 'https://oauth2.googleapis.com/token';

export interface GarTokenStandIn {
  /** http://127.0.0.1:PORT/token */
  tokenUrl: string;
  /** The access token the next grant returns. */
  accessToken: string;
  expiresIn: number;
  issued: number;
  /** Each grant request: the assertion's iss and scope, and whether it was accepted. */
  requests: { iss: string; scope: string; ok: boolean; reason?: string }[];
  /** Creates a service account (RSA key) and writes its key file; returns the path. */
  addServiceAccount(file: string, email?: string): string;
  close(): Promise<void>;
}

export async function startGarTokenStandIn(opts: { accessToken: string; expiresIn?: number }): Promise<GarTokenStandIn> {
  const accounts = new Map<string, KeyObject>();
  const s: GarTokenStandIn = {
    tokenUrl: '',
    accessToken: opts.accessToken,
    expiresIn: opts.expiresIn ?? 3599,
    issued: 0,
    requests: [],
    addServiceAccount(file, email = `signet@signet-test.iam.gserviceaccount.com`) {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      accounts.set(email, publicKey);
      const key = {
        type: 'service_account',
        project_id: 'signet-test',
        private_key_id: randomUUID().replace(/-/g, ''),
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        client_email: email,
        client_id: '100000000000000000001',
        auth_uri: 'https://accounts.google.com/o/oauth2/auth',
        token_uri: s.tokenUrl,
        auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
        universe_domain: 'googleapis.com',
      };
      writeFileSync(file, JSON.stringify(key, null, 2), { mode: 0o600 });
      return file;
    },
    close: async () => undefined,
  };
  const refuse = (res: ServerResponse, iss: string, scope: string, reason: string) => {
    s.requests.push({ iss, scope, ok: false, reason });
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'invalid_grant', error_description: reason }));
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || new URL(req.url ?? '/', 'http://x').pathname !== '/token') {
        res.writeHead(404).end();
        return;
      }
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return refuse(res, '', '', 'unsupported grant_type');
      const parts = (form.get('assertion') ?? '').split('.');
      if (parts.length !== 3) return refuse(res, '', '', 'malformed assertion');
      let header: { alg?: string };
      let claims: { iss?: string; aud?: string; scope?: string; exp?: number; iat?: number };
      try {
        header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
        claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
      } catch {
        return refuse(res, '', '', 'malformed assertion');
      }
      const iss = claims.iss ?? '';
      const scope = claims.scope ?? '';
      const key = accounts.get(iss);
      if (header.alg !== 'RS256' || !key) return refuse(res, iss, scope, 'Invalid JWT Signature.');
      const ok = verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2]!, 'base64url'));
      if (!ok) return refuse(res, iss, scope, 'Invalid JWT Signature.');
      if (claims.aud !== GOOGLE_TOKEN_AUD) return refuse(res, iss, scope, 'Invalid JWT: aud');
      if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return refuse(res, iss, scope, 'Invalid JWT: Token must be a short-lived token');
      if (!scope) return refuse(res, iss, scope, 'Invalid JWT: no scope');
      s.issued++;
      s.requests.push({ iss, scope, ok: true });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: s.accessToken, expires_in: s.expiresIn, token_type: 'Bearer' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.tokenUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  s.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return s;
}
