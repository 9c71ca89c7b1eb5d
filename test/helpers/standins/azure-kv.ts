/**
 * A local stand-in for Azure Key Vault keys (data plane), enough for the real
 * `@azure/keyvault-keys` KeyClient.getKey and CryptographyClient.sign, plus an optional stand-in
 * Microsoft Entra ID authority for the real `@azure/identity` ClientSecretCredential.
 *
 * Vault (http, or https with a given cert):
 * - The challenge flow is mandatory, as in Azure: a request without `Authorization` gets
 *   `401` + `WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"`;
 *   the SDK then gets a token for `https://vault.azure.net/.default` and resends with it. Only tokens
 *   in `tokens` (added by the test, or issued by the authority stand-in) are accepted.
 * - `GET /keys/{name}[/{version}]` -> `{ key: JWK (base64url), attributes }`; a disabled key can still
 *   be read (like Azure); `POST /keys/{name}/{version}/sign` `{alg, value}` -> `{kid, value}`.
 *   RS256 signs DigestInfo||digest with `privateEncrypt`; ES256 returns RAW r||s (64 bytes) like
 *   Azure does. Signing with a disabled key is 403 Forbidden / innererror KeyDisabled.
 * - Errors use Key Vault's wire shape `{"error":{"code","message","innererror":{"code"}}}` (the SDK
 *   exposes it as `details.error.innerError`); 429 carries Retry-After.
 *
 * Authority (https only; MSAL refuses http authorities): the OpenID configuration document and a
 * client-credentials token endpoint that checks client_id/client_secret.
 */
import { signPssDigest } from '../../../src/kms/pss.js';
import { constants, generateKeyPairSync, privateEncrypt, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createP256DigestSigner, derEcdsaToRaw } from '../../../src/kms/ecdsa.js';

const DIGEST_INFO_SHA256 = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export type AzureKty = 'RSA' | 'RSA-HSM' | 'EC' | 'EC-HSM' | 'oct-HSM';

export interface AzureStandInKey {
  name: string;
  version: string;
  kty: AzureKty;
  crv?: 'P-256' | 'P-384' | 'P-521' | 'P-256K';
  bits?: number;
  keyOps: string[];
  enabled: boolean;
  /** Unix seconds. */
  exp?: number;
  nbf?: number;
  privateKey?: KeyObject;
  publicKey?: KeyObject;
  /** 'all': every call is 403; 'sign': reads work, signing is 403 (RBAC without keys/sign). */
  denied?: 'all' | 'sign';
}

export interface AzureFault {
  status: number;
  code: string;
  message?: string;
  innerCode?: string;
  /** Retry-After header value (seconds). */
  retryAfter?: number;
  /** Answer `status` and then drip the body one byte every this many ms, for ever. */
  dripMs?: number;
  times?: number;
}

export type AzureOp = 'getKey' | 'sign';

export interface AzureCall {
  op: AzureOp | 'other';
  method: string;
  path: string;
  /** Unauthenticated challenge probe (no Authorization header). */
  challenge: boolean;
  authorization?: string;
  status: number;
  at: number;
}

export interface AzureKvStandIn {
  /** The vault URL to give the client (http://127.0.0.1:PORT or https://...). */
  vaultUrl: string;
  keys: Map<string, AzureStandInKey[]>;
  calls: AzureCall[];
  /** Answer PS256 with a PKCS#1 v1.5 signature (a misbehaving server). */
  ps256AsRs256: boolean;
  /** Accepted bearer tokens. */
  tokens: Set<string>;
  /** The tenant named in the challenge (and used by the authority stand-in). */
  tenantId: string;
  addKey(
    name: string,
    spec: {
      kty: AzureKty;
      bits?: number;
      crv?: AzureStandInKey['crv'];
      keyOps?: string[];
      enabled?: boolean;
      exp?: number;
      nbf?: number;
      denied?: 'all' | 'sign';
    },
  ): AzureStandInKey;
  fail(op: AzureOp | '*', fault: AzureFault): void;
  hang(op: AzureOp | '*', times?: number): void;
  /** Operations that reached the key (authenticated), by op. */
  count(op: AzureOp, keyName?: string): number;
  close(): Promise<void>;
}

function jsonBody(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const b64u = (b: string | undefined) => (b === undefined ? undefined : Buffer.from(b, 'base64url'));

export async function startAzureKvStandIn(
  opts: { authority?: string; tenantId?: string; tls?: { cert: string; key: string }; tokens?: Set<string> } = {},
): Promise<AzureKvStandIn> {
  const keys = new Map<string, AzureStandInKey[]>();
  const calls: AzureCall[] = [];
  const tokens = opts.tokens ?? new Set<string>();
  const faults: { op: AzureOp | '*'; fault: AzureFault; left: number }[] = [];
  const hangs: { op: AzureOp | '*'; left: number }[] = [];
  const hung: ServerResponse[] = [];
  const tenantId = opts.tenantId ?? '72f988bf-0000-0000-0000-2d7cd011db47';
  const authority = opts.authority ?? 'https://login.microsoftonline.com';
  let vaultUrl = '';

  function bundle(k: AzureStandInKey) {
    const kid = `${vaultUrl}/keys/${k.name}/${k.version}`;
    const jwk: Record<string, unknown> = { kid, kty: k.kty, key_ops: k.keyOps };
    if (k.publicKey) {
      const pub = k.publicKey.export({ format: 'jwk' });
      if (k.kty.startsWith('RSA')) Object.assign(jwk, { n: pub.n, e: pub.e });
      else Object.assign(jwk, { crv: k.crv, x: pub.x, y: pub.y });
    }
    const now = Math.floor(Date.now() / 1000);
    return {
      key: jwk,
      attributes: {
        enabled: k.enabled,
        created: now - 3600,
        updated: now - 3600,
        recoveryLevel: 'Recoverable+Purgeable',
        recoverableDays: 90,
        ...(k.exp !== undefined ? { exp: k.exp } : {}),
        ...(k.nbf !== undefined ? { nbf: k.nbf } : {}),
      },
    };
  }

  function find(name: string, version: string | undefined): AzureStandInKey | undefined {
    const versions = keys.get(name);
    if (!versions?.length) return undefined;
    return version ? versions.find((v) => v.version === version) : versions[versions.length - 1];
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const body = await readBody(req);
    const auth = req.headers.authorization;
    const m = /^\/keys\/([^/]+)(?:\/([^/]*))?(\/sign)?\/?$/.exec(url.pathname);
    const op: AzureOp | 'other' = !m ? 'other' : m[3] ? 'sign' : req.method === 'GET' ? 'getKey' : 'other';
    const call: AzureCall = { op, method: req.method ?? '', path: url.pathname, challenge: !auth, authorization: auth, status: 0, at: Date.now() };
    calls.push(call);
    const send = (status: number, b: unknown, headers: Record<string, string> = {}) => {
      call.status = status;
      jsonBody(res, status, b, headers);
    };
    const apiVersion = url.searchParams.get('api-version');
    const challenge = { 'www-authenticate': `Bearer authorization="${authority}/${tenantId}", resource="https://vault.azure.net"` };
    if (!auth) {
      // The SDK's probe carries no body; the service answers 401 without executing anything.
      send(401, { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }, challenge);
      return;
    }
    const token = /^Bearer (.+)$/.exec(auth)?.[1];
    if (!token || !tokens.has(token)) {
      send(401, { error: { code: 'Unauthorized', message: 'AKV10032: Invalid issuer.' } }, challenge);
      return;
    }
    if (!apiVersion) {
      send(400, { error: { code: 'BadParameter', message: 'The api-version query parameter is missing' } });
      return;
    }
    if (op === 'other' || !m) {
      send(404, { error: { code: 'NotFound', message: `no route ${req.method} ${url.pathname}` } });
      return;
    }
    const h = hangs.find((x) => (x.op === op || x.op === '*') && x.left > 0);
    if (h) {
      h.left--;
      call.status = -1;
      hung.push(res);
      return;
    }
    const f = faults.find((x) => (x.op === op || x.op === '*') && x.left > 0);
    if (f) {
      f.left--;
      const { status, code, message, innerCode, retryAfter, dripMs } = f.fault;
      if (dripMs) {
        call.status = status;
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        const t = setInterval(() => res.write(' '), dripMs);
        res.on('close', () => clearInterval(t));
        return;
      }
      send(
        status,
        { error: { code, message: message ?? `injected ${code}`, ...(innerCode ? { innererror: { code: innerCode } } : {}) } },
        retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {},
      );
      return;
    }
    const name = decodeURIComponent(m[1]!);
    const version = m[2] ? decodeURIComponent(m[2]) : undefined;
    const key = find(name, version);
    if (!key) {
      send(404, {
        error: {
          code: 'KeyNotFound',
          message: `A key with (name/id) ${name}${version ? `/${version}` : ''} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.`,
        },
      });
      return;
    }
    if (key.denied === 'all' || (key.denied === 'sign' && op === 'sign')) {
      const action = op === 'sign' ? 'Microsoft.KeyVault/vaults/keys/sign/action' : 'Microsoft.KeyVault/vaults/keys/read';
      send(403, {
        error: {
          code: 'Forbidden',
          message: `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nAction: '${action}'\r\nResource: '/subscriptions/0000/resourcegroups/rg/providers/microsoft.keyvault/vaults/v/keys/${name}'`,
          innererror: { code: 'ForbiddenByRbac' },
        },
      });
      return;
    }
    if (op === 'getKey') {
      send(200, bundle(key));
      return;
    }
    // sign
    if (!version) {
      send(400, { error: { code: 'BadParameter', message: 'Key version is required for this operation in the stand-in' } });
      return;
    }
    if (!key.enabled) {
      send(403, { error: { code: 'Forbidden', message: 'Operation sign is not allowed on a disabled key.', innererror: { code: 'KeyDisabled' } } });
      return;
    }
    if (!key.keyOps.includes('sign')) {
      send(403, {
        error: {
          code: 'Forbidden',
          message: 'Operation sign is not allowed by the key operations of this key.',
          innererror: { code: 'KeyOperationForbidden' },
        },
      });
      return;
    }
    let req2: { alg?: string; value?: string };
    try {
      req2 = JSON.parse(body.toString('utf8')) as { alg?: string; value?: string };
    } catch {
      send(400, { error: { code: 'BadParameter', message: 'Request body is not JSON' } });
      return;
    }
    const digest = b64u(req2.value);
    if (!digest || digest.length !== 32) {
      send(400, { error: { code: 'BadParameter', message: 'Invalid length of the digest for the given algorithm.' } });
      return;
    }
    let sig: Buffer;
    if (req2.alg === 'RS256' && key.kty.startsWith('RSA') && key.privateKey) {
      sig = privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([DIGEST_INFO_SHA256, digest]));
    } else if (req2.alg === 'PS256' && key.kty.startsWith('RSA') && key.privateKey) {
      // RSASSA-PSS, SHA-256, MGF1-SHA-256, salt = hash length (RFC 7518 3.5)
      sig = standIn.ps256AsRs256
        ? privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([DIGEST_INFO_SHA256, digest]))
        : signPssDigest(key.privateKey, digest);
    } else if (req2.alg === 'ES256' && key.kty.startsWith('EC') && key.crv === 'P-256' && key.privateKey) {
      sig = derEcdsaToRaw(createP256DigestSigner(key.privateKey)(digest)); // Azure returns raw r||s
    } else {
      send(400, { error: { code: 'BadParameter', message: 'Key and signing algorithm are incompatible.' } });
      return;
    }
    send(200, { kid: `${vaultUrl}/keys/${key.name}/${key.version}`, value: sig.toString('base64url') });
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  };
  const server: Server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, listener) : createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  vaultUrl = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const standIn: AzureKvStandIn = {
    vaultUrl,
    keys,
    calls,
    ps256AsRs256: false,
    tokens,
    tenantId,
    addKey(name, spec) {
      let pair: { privateKey: KeyObject; publicKey: KeyObject } | undefined;
      if (spec.kty.startsWith('RSA')) pair = generateKeyPairSync('rsa', { modulusLength: spec.bits ?? 2048 });
      else if (spec.kty.startsWith('EC')) {
        const curve = { 'P-256': 'P-256', 'P-384': 'P-384', 'P-521': 'P-521', 'P-256K': 'secp256k1' }[spec.crv ?? 'P-256'];
        pair = generateKeyPairSync('ec', { namedCurve: curve });
      }
      const key: AzureStandInKey = {
        name,
        version: randomBytes(16).toString('hex'),
        kty: spec.kty,
        ...(spec.kty.startsWith('EC') ? { crv: spec.crv ?? 'P-256' } : {}),
        ...(spec.bits ? { bits: spec.bits } : {}),
        keyOps: spec.keyOps ?? ['sign', 'verify'],
        enabled: spec.enabled ?? true,
        ...(spec.exp !== undefined ? { exp: spec.exp } : {}),
        ...(spec.nbf !== undefined ? { nbf: spec.nbf } : {}),
        ...(pair ? { privateKey: pair.privateKey, publicKey: pair.publicKey } : {}),
        ...(spec.denied ? { denied: spec.denied } : {}),
      };
      const list = keys.get(name) ?? [];
      list.push(key);
      keys.set(name, list);
      return key;
    },
    fail(op, fault) {
      faults.push({ op, fault, left: fault.times ?? 1 });
    },
    hang(op, times = 1) {
      hangs.push({ op, left: times });
    },
    count(op, keyName) {
      return calls.filter((c) => c.op === op && !c.challenge && (!keyName || c.path.startsWith(`/keys/${keyName}/`) || c.path === `/keys/${keyName}`)).length;
    },
    async close() {
      for (const r of hung.splice(0)) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return standIn;
}

export interface AuthorityStandIn {
  /** https://127.0.0.1:PORT */
  url: string;
  /** Token requests seen (the secret is not kept). */
  tokenRequests: { clientId: string; scope: string; ok: boolean }[];
  addClient(clientId: string, secret: string): void;
  close(): Promise<void>;
}

/**
 * A Microsoft Entra ID stand-in for MSAL's client-credentials flow over https: the tenant's
 * OpenID configuration and `/{tenant}/oauth2/v2.0/token`. Issued tokens are added to `accept`.
 */
export async function startAuthorityStandIn(opts: { tls: { cert: string; key: string }; tenantId: string; accept: Set<string> }): Promise<AuthorityStandIn> {
  const clients = new Map<string, string>();
  const tokenRequests: AuthorityStandIn['tokenRequests'] = [];
  let base = '';
  const server = createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'https://stand-in');
      const body = (await readBody(req)).toString('utf8');
      const t = opts.tenantId;
      if (req.method === 'GET' && url.pathname === `/${t}/v2.0/.well-known/openid-configuration`) {
        jsonBody(res, 200, {
          token_endpoint: `${base}/${t}/oauth2/v2.0/token`,
          authorization_endpoint: `${base}/${t}/oauth2/v2.0/authorize`,
          device_authorization_endpoint: `${base}/${t}/oauth2/v2.0/devicecode`,
          end_session_endpoint: `${base}/${t}/oauth2/v2.0/logout`,
          jwks_uri: `${base}/${t}/discovery/v2.0/keys`,
          issuer: `${base}/${t}/v2.0`,
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          tenant_region_scope: 'EU',
        });
        return;
      }
      if (req.method === 'POST' && url.pathname === `/${t}/oauth2/v2.0/token`) {
        const form = new URLSearchParams(body);
        const clientId = form.get('client_id') ?? '';
        const scope = form.get('scope') ?? '';
        const ok = form.get('grant_type') === 'client_credentials' && clients.has(clientId) && clients.get(clientId) === form.get('client_secret');
        tokenRequests.push({ clientId, scope, ok });
        if (!ok) {
          jsonBody(res, 401, {
            error: 'invalid_client',
            error_description: `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID. Trace ID: ${randomUUID()}`,
            error_codes: [7000215],
            timestamp: new Date().toISOString(),
            trace_id: randomUUID(),
            correlation_id: randomUUID(),
          });
          return;
        }
        const token = `eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify({ aud: 'https://vault.azure.net', tid: t, appid: clientId, n: randomUUID() })).toString('base64url')}.`;
        opts.accept.add(token);
        jsonBody(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
        return;
      }
      jsonBody(res, 404, { error: 'not_found', error_description: `stand-in authority: no route ${req.method} ${url.pathname}` });
    })().catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: base,
    tokenRequests,
    addClient(clientId, secret) {
      clients.set(clientId, secret);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
