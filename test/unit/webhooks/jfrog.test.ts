import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const raw = (name: string) => readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8');
const fixture = (name: string) => JSON.parse(raw(name));
const SECRET = 'jfrog-secret-0123456789';
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const A = 'sha256:48e6aed16ede5afb3855adb6aeb7c33ab69aeb08edf580c6fe28ab0b6278fc05';
const a = webhookAdapters.jfrog;
const ctx = (extra: Record<string, unknown> = {}) => ({
  integration: a.configSchema.parse({ name: 'j', kind: 'jfrog', secret: SECRET, ...extra }),
  headers: {},
});

describe('jfrog adapter', () => {
  it('docker pushed (a multi-arch list.manifest.json): repository path access on the jpd_origin host', () => {
    expect(a.parse(fixture('jfrog-docker-pushed.json'), ctx())).toEqual({
      events: [{ host: 'mycompany.jfrog.io', repository: 'docker-local/team-a/api', tag: 'v1.2.3', digest: D }],
      ignored: [],
    });
    expect(a.parse(fixture('jfrog-docker-pushed-single.json'), ctx()).events).toEqual([
      { host: 'mycompany.jfrog.io', repository: 'docker-local/team-a/api', tag: 'v1.2.4', digest: A },
    ]);
  });
  it('subdomain and port access methods, registryHost override', () => {
    const p = fixture('jfrog-docker-pushed.json');
    expect(a.parse(p, ctx({ access: 'subdomain' })).events[0]).toMatchObject({ host: 'docker-local.mycompany.jfrog.io', repository: 'team-a/api' });
    expect(a.parse(p, ctx({ access: 'port', registryHost: 'artifactory.example.com', ports: { 'docker-local': 5001 } })).events[0]).toMatchObject({
      host: 'artifactory.example.com:5001',
      repository: 'team-a/api',
    });
    expect(a.parse(p, ctx({ access: 'port', ports: {} })).ignored[0]!.reason).toBe('no port configured for repository "docker-local"');
    delete p.jpd_origin;
    expect(a.parse(p, ctx()).ignored[0]!.reason).toMatch(/no registry host/);
    expect(a.parse(p, ctx({ registryHost: 'artifactory.example.com' })).events[0]!.host).toBe('artifactory.example.com');
  });
  it('a manifest stored by digest (sha256__<hex>) is an untagged push', () => {
    const p = fixture('jfrog-docker-pushed-single.json');
    p.data.tag = `sha256__${A.slice(7)}`;
    delete p.data.sha256;
    expect(a.parse(p, ctx()).events).toEqual([{ host: 'mycompany.jfrog.io', repository: 'docker-local/team-a/api', digest: A }]);
  });
  it('deleted, promoted and artifact-domain events are ignored with a reason', () => {
    expect(a.parse(fixture('jfrog-docker-deleted.json'), ctx()).ignored).toEqual([
      { reason: 'docker event "deleted" is not a docker push', ref: 'team-a/api:v1.2.3' },
    ]);
    expect(a.parse(fixture('jfrog-artifact-deployed.json'), ctx())).toEqual({
      events: [],
      ignored: [{ reason: 'artifact event "deployed" is not a docker push' }],
    });
  });
  it('refuses what is not a JFrog body', () => {
    expect(() => a.parse({ data: {} }, ctx())).toThrow(/not a jfrog webhook payload/);
  });
});

describe('jfrog through the receiver', () => {
  let r: ReceiverHarness;
  const body = raw('jfrog-docker-pushed.json');
  const hmac = (s: string, b: string) => createHmac('sha256', s).update(b).digest('hex');
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'mycompany.jfrog.io' }],
      integrations: [
        { name: 'plain', kind: 'jfrog', secret: SECRET },
        { name: 'signed', kind: 'jfrog', secret: SECRET, signing: 'hmac' },
      ],
    });
  });
  afterAll(() => r.close());

  it('plain: X-JFrog-Event-Auth is the secret', async () => {
    expect((await r.post('plain', body, { raw: true, headers: { 'x-jfrog-event-auth': SECRET } })).status).toBe(202);
    expect((await r.post('plain', body, { raw: true, headers: { 'x-jfrog-event-auth': 'not-the-secret-0123' } })).status).toBe(401);
    expect((await r.post('plain', body, { raw: true, headers: { authorization: `Bearer ${SECRET}` } })).status).toBe(401);
  });
  it('hmac: X-JFrog-Event-Auth is hex HMAC-SHA256 of the exact body bytes', async () => {
    expect((await r.post('signed', body, { raw: true, headers: { 'x-jfrog-event-auth': hmac(SECRET, body) } })).status).toBe(202);
    // the same JSON re-serialized is different bytes: refused
    const reserialized = JSON.stringify(JSON.parse(body));
    expect((await r.post('signed', reserialized, { raw: true, headers: { 'x-jfrog-event-auth': hmac(SECRET, body) } })).status).toBe(401);
    expect((await r.post('signed', body, { raw: true, headers: { 'x-jfrog-event-auth': hmac('another-secret-012345', body) } })).status).toBe(401);
    // plain secret is not accepted in hmac mode
    expect((await r.post('signed', body, { raw: true, headers: { 'x-jfrog-event-auth': SECRET } })).status).toBe(401);
    expect(await r.count('signed', 'unauthorized')).toBe(3);
  });
  it('non-push events are 200 and counted as ignored; an origin not in registries is refused', async () => {
    const del = raw('jfrog-docker-deleted.json');
    expect((await r.post('signed', del, { raw: true, headers: { 'x-jfrog-event-auth': hmac(SECRET, del) } })).status).toBe(200);
    expect(await r.count('signed', 'ignored')).toBe(1);
    const other = JSON.stringify({ ...JSON.parse(body), jpd_origin: 'https://other.jfrog.io' });
    const res = await r.post('signed', other, { raw: true, headers: { 'x-jfrog-event-auth': hmac(SECRET, other) } });
    expect(res.json.ignored[0].reason).toMatch(/other.jfrog.io is not in registries/);
    expect(await r.count('signed', 'refused')).toBe(1);
  });
});
