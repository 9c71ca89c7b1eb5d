import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { integrationSchema } from '../../../src/config/schema.js';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const SECRET = 'alibaba-secret-0123456789';
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const a = webhookAdapters['alibaba-acr'];
const ctx = (registryHost: string) => ({
  integration: a.configSchema.parse({ name: 'ali', kind: 'alibaba-acr', secret: SECRET, registryHost }),
  headers: {},
});

describe('alibaba-acr adapter', () => {
  it('the host comes from registryHost (the payload has only a region)', () => {
    expect(a.parse(fixture('alibaba-acr-push-index.json'), ctx('team-registry.cn-hangzhou.cr.aliyuncs.com'))).toEqual({
      events: [{ host: 'team-registry.cn-hangzhou.cr.aliyuncs.com', repository: 'team-a/api', tag: 'v1.2.3', digest: D }],
      ignored: [],
    });
  });
  it('"{region}" in registryHost takes the payload region', () => {
    expect(a.parse(fixture('alibaba-acr-push-index.json'), ctx('registry.{region}.aliyuncs.com')).events[0]!.host).toBe('registry.cn-hangzhou.aliyuncs.com');
    const bad = fixture('alibaba-acr-push-index.json');
    bad.repository.region = 'cn-hangzhou.evil.example/x';
    expect(a.parse(bad, ctx('registry.{region}.aliyuncs.com'))).toEqual({
      events: [],
      ignored: [{ reason: 'push without a valid region', ref: `team-a/api:v1.2.3` }],
    });
  });
  it("the documentation's own example passes through as is (its upper-case name is then refused by the receiver)", () => {
    expect(a.parse(fixture('alibaba-acr-push.json'), ctx('registry.{region}.aliyuncs.com')).events).toEqual([
      {
        host: 'registry.cn-hangzhou.aliyuncs.com',
        repository: 'namespace/repoTest',
        tag: 'latest',
        digest: 'sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917',
      },
    ]);
  });
  it('refuses what is not an Alibaba trigger body; registryHost is required', () => {
    expect(() => a.parse({ push_data: {} }, ctx('r.example.com'))).toThrow(/not a alibaba-acr webhook payload/);
    expect(integrationSchema.safeParse({ name: 'ali', kind: 'alibaba-acr', secret: SECRET }).success).toBe(false);
    expect(integrationSchema.safeParse({ name: 'ali', kind: 'alibaba-acr', secret: SECRET, registryHost: 'https://x/y' }).success).toBe(false);
  });
});

describe('alibaba-acr through the receiver', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'registry.cn-hangzhou.aliyuncs.com' }],
      integrations: [
        { name: 'ali', kind: 'alibaba-acr', secret: SECRET, registryHost: 'registry.{region}.aliyuncs.com' },
        { name: 'ali-open', kind: 'alibaba-acr', insecure: true, registryHost: 'registry.{region}.aliyuncs.com' },
      ],
    });
  });
  afterAll(() => r.close());

  it('the secret as URL token (?token= or ?secret=); wrong or missing is 401', async () => {
    const body = fixture('alibaba-acr-push-index.json');
    expect((await r.post('ali', body, { query: `?token=${SECRET}` })).status).toBe(202);
    expect((await r.post('ali', body, { query: `?secret=${SECRET}` })).status).toBe(202);
    expect(r.queued.at(-1)).toMatchObject({ host: 'registry.cn-hangzhou.aliyuncs.com', repository: 'team-a/api', tag: 'v1.2.3' });
    expect((await r.post('ali', body, { query: '?secret=0123456789abcdef0' })).status).toBe(401);
    expect((await r.post('ali', body)).status).toBe(401);
    expect((await r.post('ali-open', body)).status).toBe(202);
  });
  it('a region whose host is not in registries is refused and counted', async () => {
    const body = fixture('alibaba-acr-push-index.json');
    body.repository.region = 'cn-shanghai';
    const res = await r.post('ali', body, { query: `?token=${SECRET}` });
    expect(res.status).toBe(200);
    expect(res.json.ignored[0].reason).toMatch(/registry.cn-shanghai.aliyuncs.com is not in registries/);
    expect(await r.count('ali', 'refused')).toBe(1);
  });
  it('a push without tag or digest is answered 200 and counted as ignored', async () => {
    const res = await r.post(
      'ali',
      { push_data: { pushed_at: '2025-08-21 16:00:02' }, repository: { repo_full_name: 'team-a/api', region: 'cn-hangzhou' } },
      { query: `?token=${SECRET}` },
    );
    expect(res.status).toBe(200);
    expect(await r.count('ali', 'ignored')).toBe(1);
  });
});
