/** Harbor beyond the basics in adapters.test.ts: by-digest pushes, non-push events and auth through the receiver. */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const SECRET = 'harbor-secret-0123456789';
const A = 'sha256:48e6aed16ede5afb3855adb6aeb7c33ab69aeb08edf580c6fe28ab0b6278fc05';
const a = webhookAdapters.harbor;
const ctx = { integration: a.configSchema.parse({ name: 'h', kind: 'harbor', secret: SECRET }), headers: {} };

describe('harbor adapter', () => {
  it('push by digest (a multi-arch child: tag == digest, resource_url with @): no tag, operator as pusher', () => {
    expect(a.parse(fixture('harbor-push_artifact-by-digest.json'), ctx).events).toEqual([
      { host: 'harbor.example.com', repository: 'team-a/app/api', digest: A, pusher: 'robot$ci+pusher' },
    ]);
  });
  it('pull events are ignored; an empty operator is no pusher', () => {
    expect(a.parse(fixture('harbor-pull_artifact.json'), ctx).ignored[0]!.reason).toBe('event type "PULL_ARTIFACT" is not an artifact push');
    const p = fixture('harbor-push_artifact.json');
    p.operator = '';
    expect(a.parse(p, ctx).events[0]!.pusher).toBeUndefined();
  });
  it('without repository names, the repository comes from resource_url', () => {
    const p = fixture('harbor-push_artifact.json');
    delete p.event_data.repository;
    expect(a.parse(p, ctx).events[0]).toMatchObject({ host: 'harbor.example.com', repository: 'team-a/app/api', tag: 'v1.2.3' });
  });
});

describe('harbor through the receiver', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({ registries: [{ host: 'harbor.example.com' }], integrations: [{ name: 'harbor', kind: 'harbor', secret: SECRET }] });
  });
  afterAll(() => r.close());

  it("the policy's auth header is sent verbatim: bare secret or Bearer; wrong is 401", async () => {
    expect((await r.post('harbor', fixture('harbor-push_artifact.json'), { headers: { authorization: SECRET } })).status).toBe(202);
    expect(
      (
        await r.post('harbor', fixture('harbor-push_artifact-cloudevents.json'), {
          headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/cloudevents+json' },
        })
      ).status,
    ).toBe(202);
    expect(r.queued.at(-1)).toMatchObject({ eventId: '4b2f89a6-548d-4c12-9993-a1f5790b97d2', pusher: 'robot$ci+pusher' });
    expect((await r.post('harbor', fixture('harbor-push_artifact.json'), { headers: { authorization: 'wrong-secret-0123456789' } })).status).toBe(401);
    expect(await r.count('harbor', 'unauthorized')).toBe(1);
  });
  it('non-push events are 200 and counted as ignored; another Harbor host is refused', async () => {
    expect((await r.post('harbor', fixture('harbor-pull_artifact.json'), { headers: { authorization: SECRET } })).status).toBe(200);
    expect(await r.count('harbor', 'ignored')).toBe(1);
    const p = fixture('harbor-push_artifact.json');
    p.event_data.resources[0].resource_url = 'harbor.evil.example.com/team-a/app/api:v1.2.3';
    const res = await r.post('harbor', p, { headers: { authorization: SECRET } });
    expect(res.json.ignored[0].reason).toMatch(/harbor.evil.example.com is not in registries/);
    expect(await r.count('harbor', 'refused')).toBe(1);
  });
});
