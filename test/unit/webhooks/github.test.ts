import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const raw = (name: string) => readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8');
const fixture = (name: string) => JSON.parse(raw(name));
const SECRET = 'github-secret-0123456789';
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const A = 'sha256:48e6aed16ede5afb3855adb6aeb7c33ab69aeb08edf580c6fe28ab0b6278fc05';
const a = webhookAdapters.github;
const integration = a.configSchema.parse({ name: 'gh', kind: 'github', secret: SECRET });
const ctx = (event: string, delivery?: string) => ({
  integration,
  headers: { 'x-github-event': event, ...(delivery ? { 'x-github-delivery': delivery } : {}) },
});

describe('github adapter', () => {
  it('package published (a multi-arch index by tag): host and repository from package_url', () => {
    expect(a.parse(fixture('github-package-published.json'), ctx('package', '72d3162e-cc78-11e3-81ab-4c9367dc0958'))).toEqual({
      events: [
        {
          host: 'ghcr.io',
          repository: 'myorg/api',
          tag: 'v1.2.3',
          digest: D,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          pusher: 'github-actions[bot]',
          eventId: '72d3162e-cc78-11e3-81ab-4c9367dc0958',
        },
      ],
      ignored: [],
    });
  });
  it('an untagged version (a platform child) has a digest and no tag', () => {
    const [e] = a.parse(fixture('github-package-published-untagged.json'), ctx('package')).events;
    expect(e).toMatchObject({ host: 'ghcr.io', repository: 'myorg/api', digest: A, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    expect(e!.tag).toBeUndefined();
  });
  it('registry_package (GitHub Apps) reads the registry_package key; names are lower-cased', () => {
    expect(a.parse(fixture('github-registry_package-published.json'), ctx('registry_package')).events[0]).toMatchObject({
      host: 'ghcr.io',
      repository: 'myorg/api',
      tag: 'v1.2.3',
      digest: D,
    });
  });
  it('ping, other events, other actions and non-container packages are ignored with a reason', () => {
    expect(a.parse(fixture('github-ping.json'), ctx('ping')).ignored).toEqual([{ reason: 'ping' }]);
    expect(a.parse({ action: 'opened' }, ctx('pull_request')).ignored).toEqual([{ reason: 'GitHub event "pull_request" is not a package event' }]);
    expect(a.parse(fixture('github-package-published-npm.json'), ctx('package')).ignored[0]!.reason).toBe('package type "npm" is not a container');
    const deleted = fixture('github-package-published.json');
    deleted.action = 'deleted';
    expect(a.parse(deleted, ctx('package')).ignored[0]!.reason).toBe('action "deleted" is not a publish');
  });
  it('without the event header the body decides; a package event without package is refused', () => {
    expect(a.parse(fixture('github-package-published.json'), { integration, headers: {} }).events).toHaveLength(1);
    expect(a.parse(fixture('github-ping.json'), { integration, headers: {} }).ignored).toEqual([{ reason: 'ping' }]);
    expect(() => a.parse({ action: 'published' }, ctx('package'))).toThrow(/not a github webhook payload/);
  });
});

describe('github through the receiver', () => {
  let r: ReceiverHarness;
  const sig = (s: string, b: string) => `sha256=${createHmac('sha256', s).update(b).digest('hex')}`;
  const h = (event: string, signature: string) => ({ 'x-github-event': event, 'x-github-delivery': 'd-1', 'x-hub-signature-256': signature });
  beforeAll(async () => {
    r = await startReceiver({ registries: [{ host: 'ghcr.io' }], integrations: [{ name: 'gh', kind: 'github', secret: SECRET }] });
  });
  afterAll(() => r.close());

  it('X-Hub-Signature-256 over the exact body: right 202, wrong key / other bytes / missing / bare shared secret 401', async () => {
    const body = raw('github-package-published.json');
    expect((await r.post('gh', body, { raw: true, headers: h('package', sig(SECRET, body)) })).status).toBe(202);
    expect(r.queued.at(-1)).toMatchObject({ host: 'ghcr.io', repository: 'myorg/api', tag: 'v1.2.3', eventId: 'd-1' });
    expect((await r.post('gh', body, { raw: true, headers: h('package', sig('wrong-secret-0123456789', body)) })).status).toBe(401);
    expect((await r.post('gh', body.replace('v1.2.3', 'v6.6.6'), { raw: true, headers: h('package', sig(SECRET, body)) })).status).toBe(401);
    expect((await r.post('gh', body, { raw: true, headers: { 'x-github-event': 'package' } })).status).toBe(401);
    expect((await r.post('gh', body, { raw: true, headers: { 'x-github-event': 'package', authorization: `Bearer ${SECRET}` } })).status).toBe(401);
    expect(await r.count('gh', 'unauthorized')).toBe(4);
  });
  it('ping and npm packages are 200 and counted as ignored', async () => {
    for (const [f, ev] of [
      ['github-ping.json', 'ping'],
      ['github-package-published-npm.json', 'package'],
    ] as const) {
      const body = raw(f);
      expect((await r.post('gh', body, { raw: true, headers: h(ev, sig(SECRET, body)) })).status).toBe(200);
    }
    expect(await r.count('gh', 'ignored')).toBe(2);
  });
  it('a package_url on another host is refused', async () => {
    const body = raw('github-package-published.json').replace('"ghcr.io/myorg/api:v1.2.3"', '"evil.example.com/myorg/api:v1.2.3"');
    const res = await r.post('gh', body, { raw: true, headers: h('package', sig(SECRET, body)) });
    expect(res.json.ignored[0].reason).toMatch(/evil.example.com is not in registries/);
    expect(await r.count('gh', 'refused')).toBe(1);
  });
});
