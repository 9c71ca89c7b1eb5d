import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const SECRET = 'quay-secret-0123456789';
const a = webhookAdapters.quay;
const ctx = { integration: a.configSchema.parse({ name: 'q', kind: 'quay', secret: SECRET }), headers: {} };

describe('quay adapter', () => {
  it('repo_push: one tag-only event (no digest: the worker resolves the tag)', () => {
    expect(a.parse(fixture('quay-repo_push.json'), ctx)).toEqual({
      events: [{ host: 'quay.io', repository: 'myorg/api', tag: 'v1.2.3' }],
      ignored: [],
    });
  });
  it('one event per updated tag (legacy v1 pushes name several); host with port from docker_url', () => {
    expect(a.parse(fixture('quay-repo_push-multi-tag.json'), ctx).events.map((e) => e.tag)).toEqual(['v1.2.3', 'latest', 'stable']);
    expect(a.parse(fixture('quay-repo_push-self-hosted.json'), ctx).events).toEqual([
      { host: 'quay.internal.example.com:8443', repository: 'platform/api', tag: '2025.08.21' },
    ]);
  });
  it('build, vulnerability and test notifications are ignored with a reason', () => {
    expect(a.parse(fixture('quay-build_success.json'), ctx)).toEqual({
      events: [],
      ignored: [{ reason: 'not a repo_push notification (no updated_tags)', ref: 'myorg/api' }],
    });
    expect(a.parse(fixture('quay-vulnerability_found.json'), ctx)).toEqual({
      events: [],
      ignored: [{ reason: 'Quay vulnerability_found: not a push (and no scan gate can pass on it: Quay sends no event for a clean scan)', ref: 'myorg/api' }],
    });
    expect(a.parse(fixture('quay-test-notification.json'), ctx).ignored[0]!.reason).toBe('Quay test notification');
  });
  it('refuses what is not a Quay body', () => {
    expect(() => a.parse([], ctx)).toThrow(/not a quay webhook payload/);
    expect(() => a.parse({ updated_tags: 'v1' }, ctx)).toThrow(/not a quay webhook payload/);
  });
});

describe('quay through the receiver', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'quay.io' }],
      integrations: [
        { name: 'quay', kind: 'quay', secret: SECRET },
        { name: 'nosecret', kind: 'quay' },
      ],
    });
  });
  afterAll(() => r.close());

  it('?token=<secret> (Quay cannot set headers) is accepted; a wrong or missing one is 401', async () => {
    expect((await r.post('quay', fixture('quay-repo_push.json'), { query: `?token=${SECRET}` })).status).toBe(202);
    expect(r.queued.at(-1)).toMatchObject({ integration: 'quay', host: 'quay.io', repository: 'myorg/api', tag: 'v1.2.3' });
    expect((await r.post('quay', fixture('quay-repo_push.json'), { query: '?token=wrong-secret-0123456789' })).status).toBe(401);
    expect((await r.post('quay', fixture('quay-repo_push.json'))).status).toBe(401);
    expect((await r.post('nosecret', fixture('quay-repo_push.json'))).status).toBe(401);
    expect(await r.count('quay', 'unauthorized')).toBe(2);
  });
  it('non-push notifications get 200 and are counted as ignored', async () => {
    const res = await r.post('quay', fixture('quay-build_success.json'), { query: `?token=${SECRET}` });
    expect(res.status).toBe(200);
    expect(res.json.ignored[0].reason).toMatch(/not a repo_push/);
    expect(await r.count('quay', 'ignored')).toBe(1);
  });
  it('a host not in registries is refused and counted, nothing queued', async () => {
    const before = r.queued.length;
    const res = await r.post('quay', fixture('quay-repo_push-self-hosted.json'), { query: `?token=${SECRET}` });
    expect(res.status).toBe(200);
    expect(res.json.ignored[0].reason).toMatch(/not in registries/);
    expect(await r.count('quay', 'refused')).toBe(1);
    expect(r.queued.length).toBe(before);
  });
});
