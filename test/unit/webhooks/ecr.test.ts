import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const SECRET = 'ecr-secret-0123456789';
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const A = 'sha256:48e6aed16ede5afb3855adb6aeb7c33ab69aeb08edf580c6fe28ab0b6278fc05';
const HOST = '123456789012.dkr.ecr.us-east-1.amazonaws.com';
const a = webhookAdapters.ecr;
const ctx = { integration: a.configSchema.parse({ name: 'e', kind: 'ecr', secret: SECRET }), headers: {} };

describe('ecr adapter', () => {
  it('ECR Image Action PUSH/SUCCESS: host from account and region', () => {
    expect(a.parse(fixture('ecr-image_action-push.json'), ctx)).toEqual({
      events: [
        {
          host: HOST,
          repository: 'team-a/api',
          tag: 'v1.2.3',
          digest: D,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          eventId: 'fcf0ea66-968f-3eda-ca24-40dcd217003b',
        },
      ],
      ignored: [],
    });
    expect(a.parse(fixture('ecr-image_action-push-china.json'), ctx).events[0]!.host).toBe('210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn');
  });
  it('multi-arch: the index with its tag; a child with image-tag "" has no tag', () => {
    expect(a.parse(fixture('ecr-image_action-push-index.json'), ctx).events[0]).toMatchObject({
      tag: 'v1.2.3',
      mediaType: 'application/vnd.oci.image.index.v1+json',
    });
    const child = a.parse(fixture('ecr-image_action-push-untagged.json'), ctx).events[0]!;
    expect(child).toMatchObject({ host: HOST, repository: 'team-a/api', digest: A });
    expect(child.tag).toBeUndefined();
  });
  it("AWS's documentation example (no media type) parses", () => {
    expect(a.parse(fixture('ecr-image_action-push-docs.json'), ctx).events[0]).toMatchObject({
      host: '123456789012.dkr.ecr.us-west-2.amazonaws.com',
      repository: 'my-repository-name',
      tag: 'latest',
    });
  });
  it('DELETE, FAILURE and other detail-types are ignored with a reason', () => {
    expect(a.parse(fixture('ecr-image_action-delete.json'), ctx).ignored[0]!.reason).toBe('action-type "DELETE" is not a push');
    expect(a.parse(fixture('ecr-image_scan.json'), ctx).ignored[0]!.reason).toBe('"ECR Image Scan" is not an ECR image action');
    const failed = fixture('ecr-image_action-push.json');
    failed.detail.result = 'FAILURE';
    expect(a.parse(failed, ctx).ignored[0]!.reason).toBe('push result "FAILURE" is not SUCCESS');
  });
  it('an account or region that is not one cannot make a host', () => {
    const p = fixture('ecr-image_action-push.json');
    p.region = 'us-east-1.evil.example/';
    expect(a.parse(p, ctx)).toMatchObject({ events: [], ignored: [{ reason: 'push without a valid account and region' }] });
    expect(() => a.parse({ detail: {} }, ctx)).toThrow(/not a ecr webhook payload/);
  });
});

describe('ecr through the receiver', () => {
  let r: ReceiverHarness;
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: HOST }],
      integrations: [
        { name: 'ecr-key', kind: 'ecr', secret: SECRET, auth: { type: 'apiKey', header: 'X-Signet-Key' } },
        { name: 'ecr-basic', kind: 'ecr', secret: SECRET, auth: { type: 'basic', username: 'eventbridge' } },
        { name: 'ecr-default', kind: 'ecr', secret: SECRET },
      ],
    });
  });
  afterAll(() => r.close());

  it('API-key connection: the secret in the configured header', async () => {
    expect((await r.post('ecr-key', fixture('ecr-image_action-push.json'), { headers: { 'x-signet-key': SECRET } })).status).toBe(202);
    expect((await r.post('ecr-key', fixture('ecr-image_action-push.json'), { headers: { 'x-signet-key': 'wrong-0123456789abc' } })).status).toBe(401);
    expect((await r.post('ecr-default', fixture('ecr-image_action-push.json'), { headers: { authorization: `Bearer ${SECRET}` } })).status).toBe(202);
  });
  it('Basic connection: username and password (= secret) must both match', async () => {
    expect((await r.post('ecr-basic', fixture('ecr-image_action-push.json'), { headers: { authorization: basic('eventbridge', SECRET) } })).status).toBe(202);
    expect((await r.post('ecr-basic', fixture('ecr-image_action-push.json'), { headers: { authorization: basic('other', SECRET) } })).status).toBe(401);
    expect((await r.post('ecr-basic', fixture('ecr-image_action-push.json'), { headers: { authorization: basic('eventbridge', 'nope') } })).status).toBe(401);
    expect((await r.post('ecr-basic', fixture('ecr-image_action-push.json'), { headers: { authorization: `Bearer ${SECRET}` } })).status).toBe(401);
    expect(await r.count('ecr-basic', 'unauthorized')).toBe(3);
  });
  it("EventBridge's content type with charset; non-push events are 200 and ignored; another account is refused", async () => {
    const h = { 'x-signet-key': SECRET, 'content-type': 'application/json; charset=utf-8' };
    expect((await r.post('ecr-key', fixture('ecr-image_scan.json'), { headers: h })).status).toBe(200);
    expect(await r.count('ecr-key', 'ignored')).toBe(1);
    const other = fixture('ecr-image_action-push.json');
    other.account = '999999999999';
    const res = await r.post('ecr-key', other, { headers: h });
    expect(res.json.ignored[0].reason).toMatch(/999999999999.dkr.ecr.us-east-1.amazonaws.com is not in registries/);
    expect(await r.count('ecr-key', 'refused')).toBe(1);
  });
});
