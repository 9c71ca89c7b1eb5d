import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const SECRET = 'gitlab-secret-0123456789';
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const A = 'sha256:48e6aed16ede5afb3855adb6aeb7c33ab69aeb08edf580c6fe28ab0b6278fc05';
const HOST = 'registry.gitlab.example.com';
const a = webhookAdapters.gitlab;
const ctx = { integration: a.configSchema.parse({ name: 'gl', kind: 'gitlab', secret: SECRET }), headers: {} };
const V1 = 'application/vnd.docker.distribution.events.v1+json';

describe('gitlab adapter', () => {
  it("the fork's envelope: manifest push by tag, nested group path, actor name as pusher (the actor JWT is not copied)", () => {
    const r = a.parse(fixture('gitlab-registry-push.json'), ctx);
    expect(r).toEqual({
      events: [
        {
          host: HOST,
          repository: 'my-group/my-project/api',
          tag: 'v1.2.3',
          digest: A,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          pusher: 'ci-bot',
          eventId: 'd2698a16-f23e-44ad-b342-597421d06b46',
        },
      ],
      ignored: [],
    });
    expect(JSON.stringify(r)).not.toContain('eyJ');
  });
  it('multi-arch: a child by digest (no tag), then the index by tag', () => {
    const child = a.parse(fixture('gitlab-registry-push-by-digest.json'), ctx).events[0]!;
    expect(child).toMatchObject({ repository: 'my-group/my-project/api', digest: A });
    expect(child.tag).toBeUndefined();
    expect(a.parse(fixture('gitlab-registry-push-index.json'), ctx).events[0]).toMatchObject({
      tag: 'v1.2.3',
      digest: D,
      mediaType: 'application/vnd.oci.image.index.v1+json',
    });
  });
  it('blob pushes and tag deletes are ignored with a reason', () => {
    expect(a.parse(fixture('gitlab-registry-blob-push.json'), ctx).ignored[0]!.reason).toBe('blob push');
    expect(a.parse(fixture('gitlab-registry-tag-delete.json'), ctx).ignored).toEqual([
      { reason: 'action "delete" is not a push', ref: 'my-group/my-project/api:old' },
    ]);
  });
  it('refuses what is not an envelope, naming gitlab', () => {
    expect(() => a.parse({ event: {} }, ctx)).toThrow(/not a gitlab webhook payload/);
  });
});

describe('gitlab through the receiver', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({ registries: [{ host: HOST }], integrations: [{ name: 'gl', kind: 'gitlab', secret: SECRET }] });
  });
  afterAll(() => r.close());
  const post = (f: string, auth: string) => r.post('gl', fixture(f), { headers: { authorization: auth, 'content-type': V1 } });

  it('the static Authorization header from registry notifications; wrong is 401', async () => {
    expect((await post('gitlab-registry-push.json', SECRET)).status).toBe(202);
    expect((await post('gitlab-registry-push.json', `Bearer ${SECRET}`)).status).toBe(202);
    expect((await post('gitlab-registry-push.json', 'Bearer wrong-secret-0123456')).status).toBe(401);
    expect(await r.count('gl', 'unauthorized')).toBe(1);
  });
  it('blobs and deletes are 200 and counted as ignored; another host is refused', async () => {
    expect((await post('gitlab-registry-blob-push.json', SECRET)).status).toBe(200);
    expect((await post('gitlab-registry-tag-delete.json', SECRET)).status).toBe(200);
    expect(await r.count('gl', 'ignored')).toBe(2);
    const other = fixture('gitlab-registry-push.json');
    other.events[0].request.host = 'registry.other.example.com';
    const res = await r.post('gl', other, { headers: { authorization: SECRET } });
    expect(res.json.ignored[0].reason).toMatch(/not in registries/);
    expect(await r.count('gl', 'refused')).toBe(1);
  });
});
