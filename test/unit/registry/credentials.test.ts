/**
 * Registry credential sources: caching until shortly before expiry, one fetch for concurrent
 * callers, refresh-once on a 401, Docker config.json parsing, the config schema's forms, and the
 * client's use of a source (asked only when a challenge needs it; identity tokens via the OAuth2
 * refresh-token grant).
 */
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ECRClient } from '@aws-sdk/client-ecr';
import type { TokenCredential } from '@azure/identity';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registrySchema } from '../../../src/config/schema.js';
import { MAX_RETRY_AFTER_SECONDS } from '../../../src/edge/retry-after.js';
import { RegistryClient } from '../../../src/registry/client.js';
import { createAcrSource } from '../../../src/registry/credentials/acr.js';
import { createDockerConfigSource, credentialsFromDockerConfig, dockerConfigPath } from '../../../src/registry/credentials/docker-config.js';
import { createEcrSource, ecrRegionOfHost } from '../../../src/registry/credentials/ecr.js';
import { createCredentialSource, credentialsSchema } from '../../../src/registry/credentials/index.js';
import { cachedCredentialSource, ExpiringCache, jwtExpiry, refreshMarginMs, type CredentialSource } from '../../../src/registry/credentials/source.js';
import { startEcrStandIn, type EcrStandIn } from '../../helpers/standins/ecr.js';
import { startGarTokenStandIn, type GarTokenStandIn } from '../../helpers/standins/gar-token.js';
import { createGarSource } from '../../../src/registry/credentials/gar.js';

const ctx = (host = 'registry.example.com') => ({ host, insecure: true, baseDir: '/', timeoutMs: 5000 });
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('caching until shortly before expiry', () => {
  it('refreshes 10 % of the lifetime (at most 5 minutes) before expiry', () => {
    expect(refreshMarginMs(12 * 3600_000)).toBe(300_000);
    expect(refreshMarginMs(60_000)).toBe(6_000);
  });

  it('serves the cached value until then, one fetch for concurrent callers, no caching of failures', async () => {
    let now = 1_000_000;
    let n = 0;
    let fail = false;
    const cache = new ExpiringCache(
      async () => {
        await new Promise((r) => setTimeout(r, 5));
        if (fail) throw new Error('down');
        n++;
        return { value: `v${n}`, expiresAt: now + 3600_000 };
      },
      { now: () => now },
    );
    const [a, b, c] = await Promise.all([cache.get(), cache.get(), cache.get()]);
    expect([a.value, b.value, c.value]).toEqual(['v1', 'v1', 'v1']);
    expect(cache.fetches).toBe(1);
    now += 3600_000 - 300_001; // just before the 5-minute margin
    expect((await cache.get()).value).toBe('v1');
    now += 2;
    expect((await cache.get()).value).toBe('v2');
    now += 3600_000 - 60_000; // inside the margin of v2: a failed refresh keeps v2 until it expires
    fail = true;
    expect((await cache.get()).value).toBe('v2');
    now += 60_000;
    await expect(cache.get()).rejects.toThrow('down');
    fail = false;
    expect((await cache.get()).value).toBe('v3');
  });

  it('invalidate() is worth a retry only when the refused value came from the cache', async () => {
    const src = cachedCredentialSource('test', async () => ({ value: { username: 'u', password: 'p' }, expiresAt: Date.now() + 3600_000 }));
    await src.get();
    expect(src.invalidate()).toBe(false); // freshly fetched: a retry would fetch the same
    await src.get();
    await src.get();
    expect(src.invalidate()).toBe(true); // came from the cache
    await src.get();
    expect(src.fetches).toBe(3);
  });

  it('jwtExpiry reads exp from a JWT, undefined otherwise', () => {
    expect(jwtExpiry(`x.${Buffer.from(JSON.stringify({ exp: 1700000000 })).toString('base64url')}.y`)).toBe(1700000000_000);
    expect(jwtExpiry('opaque-token')).toBeUndefined();
  });
});

describe('ECR source (GetAuthorizationToken answer handling, with a fake client)', () => {
  const fakeClient = (answer: () => unknown) => ({ send: async () => answer() }) as unknown as ECRClient;

  it('decodes AWS:<password>, keeps it until 5 minutes before expiresAt', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    let calls = 0;
    const client = fakeClient(() => {
      calls++;
      return {
        authorizationData: [{ authorizationToken: b64(`AWS:pw${calls}`), expiresAt: new Date(now + 12 * 3600_000), proxyEndpoint: 'https://evil.example.com' }],
      };
    });
    const src = createEcrSource({ ecr: { region: 'eu-west-1' } }, ctx(), { client, now: () => now });
    expect(await src.get()).toEqual({ username: 'AWS', password: 'pw1', expiresAt: now + 12 * 3600_000 });
    now += 11 * 3600_000 + 54 * 60_000;
    expect(await src.get()).toMatchObject({ password: 'pw1' });
    now += 2 * 60_000;
    expect(await src.get()).toMatchObject({ password: 'pw2' });
    expect(calls).toBe(2);
  });

  it('classifies SDK errors: throttling retryable, denial not', async () => {
    const err = (name: string, status: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
    const throttled = createEcrSource({ ecr: {} }, ctx(), { client: fakeClient(() => Promise.reject(err('ThrottlingException', 400))) });
    await expect(throttled.get()).rejects.toMatchObject({ code: 'REGISTRY_THROTTLED', retryable: true });
    const denied = createEcrSource({ ecr: {} }, ctx(), { client: fakeClient(() => Promise.reject(err('AccessDeniedException', 400))) });
    await expect(denied.get()).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', retryable: false });
    const down = createEcrSource({ ecr: {} }, ctx(), { client: fakeClient(() => Promise.reject(err('InternalServerException', 500))) });
    await expect(down.get()).rejects.toMatchObject({ code: 'REGISTRY_UNAVAILABLE', retryable: true });
    const empty = createEcrSource({ ecr: {} }, ctx(), { client: fakeClient(() => ({ authorizationData: [] })) });
    await expect(empty.get()).rejects.toMatchObject({ code: 'REGISTRY_PROTOCOL' });
  });

  it('reads the region from ECR host names', () => {
    expect(ecrRegionOfHost('123456789012.dkr.ecr.eu-west-1.amazonaws.com')).toBe('eu-west-1');
    expect(ecrRegionOfHost('123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com')).toBe('us-gov-west-1');
    expect(ecrRegionOfHost('123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn')).toBe('cn-north-1');
    expect(ecrRegionOfHost('123456789012.dkr-ecr.ap-south-1.on.aws')).toBe('ap-south-1');
    expect(ecrRegionOfHost('registry.example.com')).toBeUndefined();
  });
});

describe('ACR source (fake Entra credential, local /oauth2/exchange)', () => {
  it('POSTs the Entra token to /oauth2/exchange on the registry host and caches the refresh token until its exp', async () => {
    const forms: URLSearchParams[] = [];
    const now = Math.floor(Date.now() / 1000);
    const refresh = `h.${Buffer.from(JSON.stringify({ exp: now + 3 * 3600 })).toString('base64url')}.s`;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        forms.push(new URLSearchParams(body));
        res.writeHead(req.url === '/oauth2/exchange' && req.method === 'POST' ? 200 : 404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ refresh_token: refresh }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const scopes: string[] = [];
    const credential: TokenCredential = {
      getToken: async (scope) => (scopes.push(String(scope)), { token: 'entra-access-token', expiresOnTimestamp: Date.now() + 3600_000 }),
    };
    try {
      const src = createAcrSource({ acr: { tenantId: 'tenant-1' } }, ctx(host), { credential });
      const got = await src.get();
      expect(got).toEqual({ username: '00000000-0000-0000-0000-000000000000', password: refresh, expiresAt: (now + 3 * 3600) * 1000 });
      await src.get();
      expect(src.fetches).toBe(1);
      expect(scopes).toEqual(['https://containerregistry.azure.net/.default']);
      expect(Object.fromEntries(forms[0]!)).toEqual({ grant_type: 'access_token', service: host, access_token: 'entra-access-token', tenant: 'tenant-1' });
    } finally {
      server.close();
    }
  });
});

describe('ACR /oauth2/exchange at the edge: deadline, cap, shape, Retry-After, redaction', () => {
  const ENTRA = 'plain-entra-access-token-0451';
  const credential: TokenCredential = { getToken: async () => ({ token: ENTRA, expiresOnTimestamp: Date.now() + 3600_000 }) };
  let handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void = (_q, res) => res.end();
  let server: Server;
  let host: string;
  const timers = new Set<NodeJS.Timeout>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => handler(req, res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(() => {
    for (const t of timers) clearInterval(t);
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const fetchOnce = () => createAcrSource({ acr: { timeoutMs: 400 } }, ctx(host), { credential }).get();
  const failure = async () => {
    const err = await fetchOnce().then(
      () => undefined,
      (e: unknown) => e as Error & { code: string; retryable: boolean; retryAfterSeconds?: number },
    );
    expect(err).toBeDefined();
    expect(err!.message).not.toContain(ENTRA);
    return err!;
  };

  it('429 and 503 pass on a capped Retry-After', async () => {
    handler = (_q, res) => res.writeHead(429, { 'retry-after': '99999999' }).end('{}');
    expect(await failure()).toMatchObject({ code: 'REGISTRY_THROTTLED', retryable: true, retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
    handler = (_q, res) => res.writeHead(503, { 'retry-after': '12' }).end();
    expect(await failure()).toMatchObject({ code: 'REGISTRY_UNAVAILABLE', retryable: true, retryAfterSeconds: 12 });
  });

  it('an answer dripped a byte at a time hits the overall deadline', async () => {
    handler = (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const t = setInterval(() => res.write(' '), 50);
      timers.add(t);
      res.on('close', () => clearInterval(t));
    };
    const started = Date.now();
    const err = await failure();
    expect(err).toMatchObject({ code: 'REGISTRY_UNAVAILABLE', retryable: true, message: expect.stringMatching(/no complete answer within 400 ms/) });
    expect(Date.now() - started).toBeLessThan(10_000); // bounded (it would drip forever)
  }, 20_000);

  it('an answer over 64 KiB, or of the wrong shape, is REGISTRY_PROTOCOL (not retried)', async () => {
    handler = (_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ refresh_token: 'x'.repeat(1024 * 1024) }));
    expect(await failure()).toMatchObject({ code: 'REGISTRY_PROTOCOL', retryable: false, message: expect.stringMatching(/more than 65536 bytes/) });
    for (const [body, why] of [
      ['42', /refresh_token/],
      ['{"refresh_token": 42}', /refresh_token/],
      ['{"refresh_token": ""}', /refresh_token/],
      ['<html>', /invalid JSON/],
    ] as const) {
      handler = (_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      expect(await failure(), body).toMatchObject({ code: 'REGISTRY_PROTOCOL', retryable: false, message: expect.stringMatching(why) });
    }
  });

  it('a refusal echoing the Entra token sent never carries it into the message', async () => {
    handler = (_q, res) =>
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: `token ${ENTRA} is not valid here` }] }));
    const err = await failure();
    expect(err).toMatchObject({ code: 'REGISTRY_AUTH_FAILED', retryable: false, message: expect.stringContaining('token [redacted] is not valid here') });
  });
});

describe('ECR GetAuthorizationToken at the edge (real SDK, ECR stand-in): deadline, Retry-After', () => {
  let ecr: EcrStandIn;
  beforeAll(async () => {
    ecr = await startEcrStandIn({ password: 'ecr-password-1' });
  });
  afterAll(() => ecr.close());
  const source = () =>
    createEcrSource(
      { ecr: { region: ecr.region, endpoint: ecr.url, accessKeyId: ecr.accessKeyId, secretAccessKey: ecr.secretAccessKey, timeoutMs: 400 } },
      ctx(),
    );
  const failure = (src: CredentialSource) =>
    src.get().then(
      () => undefined,
      (e: unknown) => e as Error & { code: string; retryAfterSeconds?: number },
    );

  it('works, and a throttle passes on a capped Retry-After', async () => {
    expect(await source().get()).toMatchObject({ username: 'AWS', password: 'ecr-password-1' });
    ecr.fail({ type: 'ThrottlingException', status: 400, message: 'Rate exceeded', headers: { 'retry-after': '99999999' } });
    expect(await failure(source())).toMatchObject({ code: 'REGISTRY_THROTTLED', retryable: true, retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
  });

  it('an answer dripped a byte at a time hits the overall deadline (the SDK bounds only the headers)', async () => {
    ecr.fail({ type: 'x', status: 200, dripMs: 50 });
    const started = Date.now();
    expect(await failure(source())).toMatchObject({ code: 'REGISTRY_UNAVAILABLE', retryable: true, message: expect.stringMatching(/timed out/) });
    expect(Date.now() - started).toBeLessThan(10_000); // bounded (it would drip for ever)
  }, 20_000);
});

describe('GAR token at the edge (real google-auth-library, token stand-in): answer cap', () => {
  let gar: GarTokenStandIn;
  let dir: string;
  let keyFile: string;
  beforeAll(async () => {
    gar = await startGarTokenStandIn({ accessToken: 'ya29.small-token' });
    dir = mkdtempSync(path.join(tmpdir(), 'signet-gar-'));
    keyFile = gar.addServiceAccount(path.join(dir, 'sa.json'));
  });
  afterAll(async () => {
    await gar.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const source = () => createGarSource({ gar: { keyFile, tokenUrl: gar.tokenUrl, timeoutMs: 2000 } }, ctx());

  it('a token answer over 64 KiB (streamed without a Content-Length) is REGISTRY_PROTOCOL, not retried', async () => {
    expect(await source().get()).toMatchObject({ username: 'oauth2accesstoken', password: 'ya29.small-token' });
    gar.accessToken = `ya29.${'x'.repeat(100_000)}`;
    try {
      const err = await source()
        .get()
        .then(
          () => undefined,
          (e: unknown) => e as Error & { code: string; retryable: boolean },
        );
      expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL', retryable: false, message: expect.stringMatching(/more than 65536 bytes/) });
    } finally {
      gar.accessToken = 'ya29.small-token';
    }
  });
});

describe('Docker config.json', () => {
  const file = '/x/config.json';
  const host = 'registry.example.com:5000';

  it('auth (base64 user:password), username/password, identitytoken, registrytoken', () => {
    expect(credentialsFromDockerConfig({ auths: { [host]: { auth: b64('u:p:with:colons') } } }, host, file)).toEqual({
      username: 'u',
      password: 'p:with:colons',
    });
    expect(credentialsFromDockerConfig({ auths: { [host]: { username: 'u', password: 'p' } } }, host, file)).toEqual({ username: 'u', password: 'p' });
    expect(credentialsFromDockerConfig({ auths: { [host]: { auth: b64('u:p'), identitytoken: 'refresh' } } }, host, file)).toEqual({
      identityToken: 'refresh',
    });
    expect(credentialsFromDockerConfig({ auths: { [host]: { registrytoken: 'bearer' } } }, host, file)).toEqual({ token: 'bearer' });
  });

  it('matches keys as docker does: scheme and path dropped, Docker Hub names folded', () => {
    expect(credentialsFromDockerConfig({ auths: { [`https://${host}/v2/`]: { auth: b64('a:b') } } }, host, file)).toEqual({ username: 'a', password: 'b' });
    expect(credentialsFromDockerConfig({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } }, 'registry-1.docker.io', file)).toEqual({
      username: 'hub',
      password: 'pw',
    });
    expect(() => credentialsFromDockerConfig({ auths: { 'registry.example.com': { auth: b64('a:b') } } }, host, file)).toThrow(
      /no credentials for registry\.example\.com:5000/,
    );
  });

  it('clear errors for credential helpers, stores, empty entries and bad auth, never echoing secrets', () => {
    expect(() => credentialsFromDockerConfig({ credHelpers: { [host]: 'ecr-login' }, auths: {} }, host, file)).toThrow(
      /docker-credential-ecr-login.*does not run credential helpers/,
    );
    expect(() => credentialsFromDockerConfig({ auths: { [host]: {} }, credsStore: 'desktop' }, host, file)).toThrow(/credsStore "desktop"/);
    const bad = (() => {
      try {
        credentialsFromDockerConfig({ auths: { [host]: { auth: b64('no-colon-secret') } } }, host, file);
      } catch (e) {
        return e as Error & { code: string };
      }
      return undefined;
    })();
    expect(bad).toMatchObject({ code: 'REGISTRY_AUTH_FAILED' });
    expect(bad!.message).not.toContain('no-colon-secret');
    expect(() => credentialsFromDockerConfig([], host, file)).toThrow(/not a JSON object/);
  });

  describe('file', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'signet-dockercfg-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('default path: $DOCKER_CONFIG/config.json, else ~/.docker/config.json; a folder means its config.json', () => {
      expect(dockerConfigPath({ dockerConfig: {} }, '/base', { DOCKER_CONFIG: '/etc/docker-cfg' })).toBe('/etc/docker-cfg/config.json');
      expect(dockerConfigPath({ dockerConfig: {} }, '/base', {})).toMatch(/\.docker\/config\.json$/);
      expect(dockerConfigPath({ dockerConfig: 'auth.json' }, '/base')).toBe('/base/auth.json');
      expect(dockerConfigPath({ dockerConfig: { path: '.' } }, dir)).toBe(path.join(dir, 'config.json'));
    });

    it('is re-read when it changes; invalidate() says whether it changed', async () => {
      const f = path.join(dir, 'config.json');
      writeFileSync(f, JSON.stringify({ auths: { [host]: { auth: b64('u:one') } } }));
      const src = createDockerConfigSource({ dockerConfig: { path: '.' } }, { ...ctx(host), baseDir: dir });
      expect(await src.get()).toEqual({ username: 'u', password: 'one' });
      expect(src.invalidate()).toBe(false);
      expect(await src.get()).toEqual({ username: 'u', password: 'one' });
      writeFileSync(f, JSON.stringify({ auths: { [host]: { auth: b64('u:twotwo') } } }));
      utimesSync(f, new Date(), new Date(Date.now() + 5000));
      expect(src.invalidate()).toBe(true);
      expect(await src.get()).toEqual({ username: 'u', password: 'twotwo' });
      const missing = createDockerConfigSource({ dockerConfig: 'nope.json' }, { ...ctx(host), baseDir: dir });
      await expect(missing.get()).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', message: expect.stringContaining('ENOENT') });
    });
  });
});

describe('registries[].credentials schema', () => {
  it('keeps the two existing forms exactly', () => {
    expect(registrySchema.parse({ host: 'r.example.com', credentials: { username: 'u', password: '' } }).credentials).toEqual({ username: 'u', password: '' });
    expect(registrySchema.parse({ host: 'r.example.com', credentials: { token: 't' } }).credentials).toEqual({ token: 't' });
    expect(registrySchema.parse({ host: 'r.example.com' }).credentials).toBeUndefined();
    expect(registrySchema.safeParse({ host: 'r.example.com', credentials: { username: 'u', password: 'p', token: 't' } }).success).toBe(false);
  });

  it('accepts dockerConfig, ecr, acr, gar; reports mistakes at the field', () => {
    for (const c of [
      { dockerConfig: 'cfg.json' },
      { dockerConfig: {} },
      { ecr: { region: 'eu-west-1' } },
      { acr: { tenantId: 't', clientId: 'c', clientSecret: 's' } },
      { gar: { keyFile: 'sa.json' } },
      { gar: {} },
    ]) {
      expect(credentialsSchema.parse(c)).toEqual(c);
    }
    const issues = (v: unknown) => registrySchema.safeParse({ host: 'r.example.com', credentials: v }).error?.issues.map((i) => [i.path.join('.'), i.message]);
    expect(issues({ ecr: { accessKeyId: 'AKIA' } })).toEqual([['credentials.ecr.secretAccessKey', 'give accessKeyId and secretAccessKey together']]);
    expect(issues({ acr: { clientSecret: 's' } })).toEqual([['credentials.acr.clientSecret', 'clientSecret needs tenantId and clientId']]);
    expect(issues({ acr: { authorityHost: 'http://login.example.com' } })).toEqual([['credentials.acr.authorityHost', 'authorityHost must be https']]);
    expect(issues({ gar: { keyfile: 'x' } })?.[0]?.[0]).toBe('credentials.gar');
    expect(issues({ password: 'p' })?.[0]?.[1]).toMatch(/credentials must be one of/);
  });

  it('createCredentialSource routes each form to its source', () => {
    expect(createCredentialSource(undefined, ctx())).toBeUndefined();
    expect(createCredentialSource({ username: 'u', password: 'p' }, ctx())!.describe()).toContain('user "u"');
    expect(createCredentialSource({ ecr: { region: 'eu-west-1' } }, ctx())!.describe()).toContain('ECR');
    expect(createCredentialSource({ gar: {} }, ctx())!.describe()).toContain('Application Default Credentials');
  });
});

// ---- the client with a credential source, against a small in-process registry -----------------

const MANIFEST = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
      size: 2,
    },
    layers: [],
  }),
);

interface FakeRegistry {
  host: string;
  mode: 'anonymous' | 'basic' | 'bearer';
  /** the Basic password accepted now (mode basic) */
  password: string;
  /** the refresh token accepted at POST /token (mode bearer) */
  refreshToken: string;
  tokenPosts: URLSearchParams[];
  manifestGets: number;
}

let fake: FakeRegistry;
let server: Server;

beforeAll(async () => {
  fake = { host: '', mode: 'anonymous', password: 'A', refreshToken: 'rt-1', tokenPosts: [], manifestGets: 0 };
  server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/token' && req.method === 'POST') {
        const form = new URLSearchParams(body);
        fake.tokenPosts.push(form);
        const ok = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === fake.refreshToken;
        res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
        res.end(JSON.stringify(ok ? { access_token: 'access-1', expires_in: 300 } : { error: 'invalid_grant' }));
        return;
      }
      const auth = req.headers.authorization ?? '';
      const ok =
        fake.mode === 'anonymous' ||
        (fake.mode === 'basic' && auth === `Basic ${b64(`u:${fake.password}`)}`) ||
        (fake.mode === 'bearer' && auth === 'Bearer access-1');
      if (!ok) {
        const challenge = fake.mode === 'basic' ? 'Basic realm="fake"' : `Bearer realm="http://${fake.host}/token",service="fake-svc"`;
        res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      fake.manifestGets++;
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      res.end(MANIFEST);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
afterEach(() => {
  fake.mode = 'anonymous';
  fake.tokenPosts = [];
});

function clientWith(source: CredentialSource) {
  return new RegistryClient(registrySchema.parse({ host: fake.host, insecure: true }), { credentials: source });
}

describe('RegistryClient with a credential source', () => {
  it('asks for credentials only when a challenge needs them', async () => {
    let asked = 0;
    const client = clientWith({ describe: () => 'x', get: async () => (asked++, { username: 'u', password: 'A' }), invalidate: () => false });
    await client.getManifest('team/app', 'v1');
    expect(asked).toBe(0);
    await client.close();
  });

  it('a 401 after using cached credentials refreshes them once; a second refusal fails', async () => {
    fake.mode = 'basic';
    fake.password = 'A';
    let issue = 'A';
    const src = cachedCredentialSource('rotating', async () => ({ value: { username: 'u', password: issue }, expiresAt: Date.now() + 3600_000 }));
    const client = clientWith(src);
    await client.getManifest('team/app', 'v1');
    expect(src.fetches).toBe(1);

    fake.password = issue = 'B'; // rotated upstream: the cached A is refused
    await client.getManifest('team/app', 'v1');
    expect(src.fetches).toBe(2);

    fake.password = 'C'; // the source keeps handing out B: one refresh, then REGISTRY_AUTH_FAILED
    await expect(client.getManifest('team/app', 'v1')).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', status: 401 });
    expect(src.fetches).toBe(3);
    await client.close();
  });

  it('Docker identity tokens use the OAuth2 refresh-token grant at the token realm', async () => {
    fake.mode = 'bearer';
    const client = clientWith({ describe: () => 'docker config', get: async () => ({ identityToken: 'rt-1' }), invalidate: () => false });
    const m = await client.getManifest('team/app', 'v1');
    expect(m?.body.equals(MANIFEST)).toBe(true);
    expect(fake.tokenPosts.map((f) => Object.fromEntries(f))).toEqual([
      { grant_type: 'refresh_token', refresh_token: 'rt-1', client_id: 'signet', scope: 'repository:team/app:pull,push', service: 'fake-svc' },
    ]);
    await client.close();
  });

  it('a Basic challenge with only a bearer token configured is a clear REGISTRY_AUTH_FAILED', async () => {
    fake.mode = 'basic';
    const client = clientWith({ describe: () => 'a static bearer token', get: async () => ({ token: 't' }), invalidate: () => false });
    await expect(client.getManifest('team/app', 'v1')).rejects.toMatchObject({
      code: 'REGISTRY_AUTH_FAILED',
      message: expect.stringContaining('a static bearer token gave no username and password'),
    });
    await client.close();
  });
});
