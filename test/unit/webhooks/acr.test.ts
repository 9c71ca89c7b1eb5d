import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { integrationSchema } from '../../../src/config/schema.js';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const SECRET = 'acr-secret-0123456789';
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const A = 'sha256:48e6aed16ede5afb3855adb6aeb7c33ab69aeb08edf580c6fe28ab0b6278fc05';
const a = webhookAdapters.acr;
const ctx = { integration: a.configSchema.parse({ name: 'a', kind: 'acr', secret: SECRET }), headers: {} };

describe('acr adapter', () => {
  it('push by tag: host from request.host, digest and media type kept', () => {
    expect(a.parse(fixture('acr-push.json'), ctx)).toEqual({
      events: [
        {
          host: 'myregistry.azurecr.io',
          repository: 'team-a/api',
          tag: 'v1.2.3',
          digest: 'sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d',
          mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
          eventId: 'cb8c3971-9adc-488b-bdd8-43cbb4974ff5',
        },
      ],
      ignored: [],
    });
  });
  it('multi-arch: the index by tag, a child by digest (no tag)', () => {
    expect(a.parse(fixture('acr-push-index.json'), ctx).events[0]).toMatchObject({
      tag: 'v1.2.3',
      digest: D,
      mediaType: 'application/vnd.oci.image.index.v1+json',
    });
    const child = a.parse(fixture('acr-push-by-digest.json'), ctx).events[0]!;
    expect(child).toMatchObject({ repository: 'team-a/api', digest: A });
    expect(child.tag).toBeUndefined();
  });
  it('ping, delete, quarantine and chart_push are ignored with a reason', () => {
    for (const [f, action] of [
      ['acr-ping.json', 'ping'],
      ['acr-delete.json', 'delete'],
      ['acr-quarantine.json', 'quarantine'],
      ['acr-chart_push.json', 'chart_push'],
    ] as const) {
      const r = a.parse(fixture(f), ctx);
      expect(r.events).toEqual([]);
      expect(r.ignored[0]!.reason).toBe(`action "${action}" is not a push`);
    }
    expect(a.parse({ action: 'ping' }, ctx).ignored).toEqual([{ reason: 'action "ping" is not a push' }]);
  });
  it('refuses what is not an ACR body', () => {
    expect(() => a.parse({ target: {} }, ctx)).toThrow(/not a acr webhook payload/);
    expect(() => a.parse('push', ctx)).toThrow();
  });
  it('config: header defaults to Authorization; a custom header name is validated', () => {
    expect(integrationSchema.parse({ name: 'a', kind: 'acr', secret: SECRET })).toMatchObject({ header: 'Authorization' });
    expect(integrationSchema.safeParse({ name: 'a', kind: 'acr', secret: SECRET, header: 'bad header' }).success).toBe(false);
  });
});

describe('acr through the receiver', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'myregistry.azurecr.io' }],
      integrations: [
        { name: 'acr', kind: 'acr', secret: SECRET },
        { name: 'acr-custom', kind: 'acr', secret: SECRET, header: 'X-Signet-Token' },
      ],
    });
  });
  afterAll(() => r.close());

  it('the secret in Authorization (Bearer or bare) or in the configured custom header; wrong ones are 401', async () => {
    expect((await r.post('acr', fixture('acr-push.json'), { headers: { authorization: `Bearer ${SECRET}` } })).status).toBe(202);
    expect((await r.post('acr', fixture('acr-push.json'), { headers: { authorization: SECRET } })).status).toBe(202);
    expect((await r.post('acr', fixture('acr-push.json'), { headers: { authorization: 'Bearer nope-0123456789abcdef' } })).status).toBe(401);
    expect((await r.post('acr-custom', fixture('acr-push.json'), { headers: { 'x-signet-token': SECRET } })).status).toBe(202);
    // the custom header is required: the secret in Authorization does not count for it
    expect((await r.post('acr-custom', fixture('acr-push.json'), { headers: { authorization: `Bearer ${SECRET}` } })).status).toBe(401);
    expect((await r.post('acr-custom', fixture('acr-push.json'), { headers: { 'x-signet-token': 'wrong' } })).status).toBe(401);
    expect(await r.count('acr-custom', 'unauthorized')).toBe(2);
  });
  it('ping, delete and quarantine are answered 200 and counted as ignored', async () => {
    for (const f of ['acr-ping.json', 'acr-delete.json', 'acr-quarantine.json']) {
      const res = await r.post('acr', fixture(f), { headers: { authorization: `Bearer ${SECRET}` } });
      expect(res.status).toBe(200);
      expect(res.json.queued).toEqual([]);
    }
    expect(await r.count('acr', 'ignored')).toBe(3);
  });
  it('a login server not in registries is refused and counted', async () => {
    const body = fixture('acr-push.json');
    body.request.host = 'evil.azurecr.io';
    const before = r.queued.length;
    const res = await r.post('acr', body, { headers: { authorization: `Bearer ${SECRET}` } });
    expect(res.status).toBe(200);
    expect(res.json.ignored[0].reason).toMatch(/evil.azurecr.io is not in registries/);
    expect(await r.count('acr', 'refused')).toBe(1);
    expect(r.queued.length).toBe(before);
  });
});
