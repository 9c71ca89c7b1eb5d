import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const SECRET = 'hub-secret-0123456789';
const a = webhookAdapters.dockerhub;
const ctx = { integration: a.configSchema.parse({ name: 'h', kind: 'dockerhub', secret: SECRET }), headers: {} };

describe('dockerhub adapter', () => {
  it('a push is tag only on docker.io (the worker resolves the digest)', () => {
    expect(a.parse(fixture('dockerhub-push.json'), ctx)).toEqual({
      events: [{ host: 'docker.io', repository: 'svendowideit/testhook', tag: 'latest', pusher: 'trustedbuilder' }],
      ignored: [],
    });
    // a multi-arch push: still one tag; repeated deliveries of it dedup in the queue
    expect(a.parse(fixture('dockerhub-push-multiarch.json'), ctx).events).toEqual([
      { host: 'docker.io', repository: 'myorg/api', tag: 'v1.2.3', pusher: 'ci-bot' },
    ]);
  });
  it('an official image name gets library/', () => {
    const p = fixture('dockerhub-push.json');
    p.repository.repo_name = 'nginx';
    expect(a.parse(p, ctx).events[0]!.repository).toBe('library/nginx');
  });
  it('a body without a tag is ignored; what is not a Docker Hub body is refused', () => {
    const p = fixture('dockerhub-push.json');
    delete p.push_data.tag;
    expect(a.parse(p, ctx)).toEqual({ events: [], ignored: [{ reason: 'push without repository or tag', ref: 'svendowideit/testhook' }] });
    expect(() => a.parse({ repository: {} }, ctx)).toThrow(/not a dockerhub webhook payload/);
  });
});

describe('dockerhub through the receiver', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'index.docker.io', aliases: ['docker.io', 'registry-1.docker.io'] }],
      integrations: [{ name: 'hub', kind: 'dockerhub', secret: SECRET }],
    });
  });
  afterAll(() => r.close());

  it('?token=<secret> is accepted and docker.io maps to the configured registry; wrong token is 401', async () => {
    expect((await r.post('hub', fixture('dockerhub-push-multiarch.json'), { query: `?token=${SECRET}` })).status).toBe(202);
    expect(r.queued.at(-1)).toMatchObject({ host: 'docker.io', repository: 'myorg/api', tag: 'v1.2.3' });
    expect((await r.post('hub', fixture('dockerhub-push-multiarch.json'), { query: '?token=x' })).status).toBe(401);
    expect(await r.count('hub', 'unauthorized')).toBe(1);
  });
  it('a push without tag is 200 and counted as ignored', async () => {
    const p = fixture('dockerhub-push.json');
    delete p.push_data.tag;
    expect((await r.post('hub', p, { query: `?token=${SECRET}` })).status).toBe(200);
    expect(await r.count('hub', 'ignored')).toBe(1);
  });
});

describe('dockerhub without docker.io in registries', () => {
  it('is refused (docker.io is never contacted)', async () => {
    const r = await startReceiver({ registries: [{ host: 'registry.example.com' }], integrations: [{ name: 'hub', kind: 'dockerhub', secret: SECRET }] });
    try {
      const res = await r.post('hub', fixture('dockerhub-push.json'), { query: `?token=${SECRET}` });
      expect(res.status).toBe(200);
      expect(res.json.ignored[0].reason).toMatch(/docker.io is not in registries/);
      expect(await r.count('hub', 'refused')).toBe(1);
    } finally {
      await r.close();
    }
  });
});
