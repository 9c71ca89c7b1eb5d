import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigError } from '../../../src/config/load.js';
import { GOOGLE_CERTS_URL } from '../../../src/webhooks/adapters/gar-jwt.js';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const SECRET = 'gar-secret-0123456789';
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const A = 'sha256:48e6aed16ede5afb3855adb6aeb7c33ab69aeb08edf580c6fe28ab0b6278fc05';
const HOST = 'us-west1-docker.pkg.dev';
const a = webhookAdapters.gar;
const ctx = { integration: a.configSchema.parse({ name: 'g', kind: 'gar', secret: SECRET }), headers: {} };
const wrap = (data: unknown, id = '1') => ({
  message: { data: Buffer.from(JSON.stringify(data)).toString('base64'), messageId: id },
  subscription: 'projects/p/subscriptions/s',
});

describe('gar config', () => {
  it("jwt.keys: a JWKS URL (https; http to loopback only), an absolute path or inline keys that parse; default Google's JWKS", () => {
    const cfg = (keys: string) => a.configSchema.safeParse({ name: 'g', kind: 'gar', jwt: { audience: 'https://x/hooks/g', keys } });
    expect(cfg('/etc/signet/google-certs.json').success).toBe(true);
    expect(cfg('https://keys.example.com/certs').success).toBe(true);
    expect(cfg('http://127.0.0.1:8081/certs').success).toBe(true);
    expect(cfg('http://localhost/certs').success).toBe(true);
    expect(cfg('http://keys.example.com/certs').success).toBe(false);
    expect(cfg('https://').success).toBe(false);
    expect(cfg('google-certs.json').success).toBe(false);
    expect(cfg('{"keys": [{"kty": "RSA"}]}').success).toBe(false);
    expect(cfg('-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----').success).toBe(false);
    const dflt = a.configSchema.parse({ name: 'g', kind: 'gar', jwt: { audience: 'https://x/hooks/g' } });
    expect(dflt.jwt?.keys).toBe(GOOGLE_CERTS_URL);
    expect(GOOGLE_CERTS_URL).toBe('https://www.googleapis.com/oauth2/v3/certs');
  });
});

describe('gar adapter', () => {
  it('a Pub/Sub push with base64 message.data, INSERT with digest and tag', () => {
    expect(a.parse(fixture('gar-pubsub-push.json'), ctx)).toEqual({
      events: [{ host: HOST, repository: 'my-project/my-repo/api', tag: 'v1.2.3', digest: D, eventId: '12571637251234567' }],
      ignored: [],
    });
  });
  it('INSERT with digest only (a multi-arch child, an untagged push) has no tag; gcr.io works alike', () => {
    expect(a.parse(fixture('gar-pubsub-push-untagged.json'), ctx).events).toEqual([
      { host: HOST, repository: 'my-project/my-repo/api', digest: A, eventId: '12571637251234568' },
    ]);
    expect(a.parse(fixture('gar-pubsub-push-gcr.json'), ctx).events[0]).toMatchObject({
      host: 'gcr.io',
      repository: 'my-project/tools/builder',
      tag: '2025.08',
    });
  });
  it('an unwrapped subscription (payload unwrapping) sends the data itself', () => {
    expect(a.parse(fixture('gar-insert-unwrapped.json'), { ...ctx, headers: { 'x-goog-pubsub-message-id': '42' } }).events).toEqual([
      { host: HOST, repository: 'my-project/my-repo/api', tag: 'v1.2.3', digest: D, eventId: '42' },
    ]);
  });
  it('DELETE, undecodable data and mismatched references are ignored (answered 2xx so Pub/Sub stops redelivering)', () => {
    expect(a.parse(fixture('gar-pubsub-delete.json'), ctx).ignored).toEqual([{ reason: 'action "DELETE" is not a push', ref: 'my-project/my-repo/api:old' }]);
    expect(a.parse({ message: { data: '!!!not-base64', messageId: '1' } }, ctx).ignored[0]!.reason).toBe(
      'message data is not an Artifact Registry notification',
    );
    expect(a.parse(wrap({ action: 'INSERT', digest: `${HOST}/p/r/a@${D}`, tag: `${HOST}/p/r/b:v1` }), ctx).ignored[0]!.reason).toBe(
      'digest and tag name different images',
    );
    expect(() => a.parse({ subscription: 'x' }, ctx)).toThrow(/not a gar webhook payload/);
  });
});

// ---- push authentication: Google-signed OIDC JWTs, here signed by a test key
const AUD = 'https://signet.example.com/hooks/gar';
const SA = 'pubsub-push@my-project.iam.gserviceaccount.com';
function jwt(key: KeyObject, claims: Record<string, unknown>, kid: string | undefined = 'k1', alg = 'RS256'): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg, ...(kid === undefined ? {} : { kid }), typ: 'JWT' })}.${b64(claims)}`;
  const sig = alg === 'ES256' ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }) : sign('sha256', Buffer.from(input), key);
  return `${input}.${sig.toString('base64url')}`;
}
function swapClaims(token: string, claims: Record<string, unknown>): string {
  const [h, , s] = token.split('.');
  return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
}
const now = () => Math.floor(Date.now() / 1000);
const good = () => ({ aud: AUD, iss: 'https://accounts.google.com', email: SA, email_verified: true, sub: '1234', iat: now(), exp: now() + 3600 });

describe('gar through the receiver', () => {
  let r: ReceiverHarness;
  let dir: string;
  let certsServer: Server;
  let certsFetched = 0;
  const google = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'signet-gar-'));
    const jwksDoc = { keys: [{ ...google.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' }] };
    const jwks = path.join(dir, 'certs.json');
    writeFileSync(jwks, JSON.stringify(jwksDoc));
    // Google's JWKS endpoint (oauth2/v3/certs), on loopback
    certsServer = createServer((req, res) => {
      if (req.url !== '/oauth2/v3/certs') return void res.writeHead(404).end();
      certsFetched++;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=20000' }).end(JSON.stringify(jwksDoc));
    });
    await new Promise<void>((resolve) => certsServer.listen(0, '127.0.0.1', resolve));
    const certsUrl = `http://127.0.0.1:${(certsServer.address() as AddressInfo).port}/oauth2/v3/certs`;
    const pem = google.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    r = await startReceiver({
      registries: [{ host: HOST }],
      integrations: [
        { name: 'gar-jwt', kind: 'gar', jwt: { audience: AUD, email: SA, keys: jwks } },
        { name: 'gar-url', kind: 'gar', jwt: { audience: AUD, email: SA, keys: certsUrl } },
        { name: 'gar-ec', kind: 'gar', jwt: { audience: AUD, keys: `${ecPem}${pem}` } },
        { name: 'gar-pem', kind: 'gar', jwt: { audience: AUD, keys: pem } },
        { name: 'gar-both', kind: 'gar', secret: SECRET, jwt: { audience: AUD, keys: pem } },
        { name: 'gar-token', kind: 'gar', secret: SECRET },
      ],
    });
  });
  afterAll(async () => {
    await r.close();
    await new Promise((resolve) => certsServer.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });
  const post = (name: string, token?: string, query = '') =>
    r.post(name, fixture('gar-pubsub-push.json'), { query, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('a valid push JWT (keys from a JWKS file, or inline PEM) is accepted', async () => {
    expect((await post('gar-jwt', jwt(google.privateKey, good()))).status).toBe(202);
    expect(r.queued.at(-1)).toMatchObject({ host: HOST, repository: 'my-project/my-repo/api', tag: 'v1.2.3', eventId: '12571637251234567' });
    expect((await post('gar-pem', jwt(google.privateKey, good()))).status).toBe(202);
  });
  it("keys from a JWKS URL (Google's oauth2/v3/certs, here on loopback): fetched once, then cached", async () => {
    expect((await post('gar-url', jwt(google.privateKey, good()))).status).toBe(202);
    expect((await post('gar-url', jwt(google.privateKey, good()))).status).toBe(202);
    expect((await post('gar-url', jwt(attacker.privateKey, good()))).status).toBe(401);
    expect(certsFetched).toBe(1);
  });
  it('ES256 and RS256 keys side by side (inline PEM, no kid): each token finds its key; alg none and HS256 are refused', async () => {
    expect((await post('gar-ec', jwt(ec.privateKey, good(), undefined, 'ES256'))).status).toBe(202);
    expect((await post('gar-ec', jwt(ec.privateKey, good(), 'some-kid', 'ES256'))).status).toBe(202);
    expect((await post('gar-ec', jwt(google.privateKey, good(), undefined))).status).toBe(202);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    expect((await post('gar-ec', `${b64({ alg: 'none' })}.${b64(good())}.x`)).status).toBe(401);
    expect((await post('gar-ec', jwt(ec.privateKey, good(), undefined, 'ES256').replace(/^[^.]+/, b64({ alg: 'HS256' })))).status).toBe(401);
  });
  it('bad signature, wrong audience, issuer or email, expired, unverified email, none: 401', async () => {
    const cases: [string, string | undefined][] = [
      ['other key', jwt(attacker.privateKey, good())],
      ['unknown kid', jwt(attacker.privateKey, good(), 'k2')],
      ['audience', jwt(google.privateKey, { ...good(), aud: 'https://elsewhere.example.com/' })],
      ['issuer', jwt(google.privateKey, { ...good(), iss: 'https://evil.example.com' })],
      ['email', jwt(google.privateKey, { ...good(), email: 'someone@else.iam.gserviceaccount.com' })],
      ['email_verified', jwt(google.privateKey, { ...good(), email_verified: false })],
      ['expired', jwt(google.privateKey, { ...good(), iat: now() - 7200, exp: now() - 3600 })],
      ['no exp', jwt(google.privateKey, { ...good(), exp: undefined })],
      ['not yet valid', jwt(google.privateKey, { ...good(), nbf: now() + 3600 })],
      ['issued in the future', jwt(google.privateKey, { ...good(), iat: now() + 3600, exp: now() + 7200 })],
      ['payload swapped under a valid signature', swapClaims(jwt(google.privateKey, { ...good(), aud: 'https://elsewhere.example.com/' }), good())],
      ['missing', undefined],
    ];
    for (const name of ['gar-jwt', 'gar-url']) {
      for (const [what, token] of cases) expect((await post(name, token)).status, `${name}: ${what}`).toBe(401);
    }
    expect(await r.count('gar-jwt', 'unauthorized')).toBe(cases.length);
  });
  it('secret and jwt together: both are required; secret alone: ?token=', async () => {
    expect((await post('gar-both', jwt(google.privateKey, good()), `?token=${SECRET}`)).status).toBe(202);
    expect((await post('gar-both', jwt(google.privateKey, good()))).status).toBe(401);
    expect((await post('gar-both', undefined, `?token=${SECRET}`)).status).toBe(401);
    expect((await post('gar-token', undefined, `?token=${SECRET}`)).status).toBe(202);
    expect((await post('gar-token', SECRET)).status).toBe(401);
  });
  it('DELETE is 200 and counted as ignored; an image on another host is refused', async () => {
    expect((await r.post('gar-token', fixture('gar-pubsub-delete.json'), { query: `?token=${SECRET}` })).status).toBe(200);
    expect(await r.count('gar-token', 'ignored')).toBe(1);
    const res = await r.post('gar-token', fixture('gar-pubsub-push-gcr.json'), { query: `?token=${SECRET}` });
    expect(res.json.ignored[0].reason).toMatch(/gcr.io is not in registries/);
    expect(await r.count('gar-token', 'refused')).toBe(1);
  });
});

describe('gar config', () => {
  it('a gar integration authenticated by its push JWT alone needs no secret; without jwt it does', async () => {
    const { parseConfigText } = await import('../../../src/config/load.js');
    const base = `registries: [{ host: us-west1-docker.pkg.dev }]
keys: [{ name: k, provider: file, path: k.pem }]
integrations:
  - name: gar
    kind: gar
`;
    expect(() =>
      parseConfigText(`${base}    jwt: { audience: "https://signet.example.com/hooks/gar", keys: "/etc/signet/google-certs.json" }\n`, 'x.yaml', {}),
    ).not.toThrow();
    let problems: string[] = [];
    try {
      parseConfigText(base, 'x.yaml', {});
    } catch (err) {
      problems = (err as ConfigError).problems.map((p) => p.path.join('.'));
    }
    expect(problems).toEqual(['integrations.0.secret']);
  });
});
