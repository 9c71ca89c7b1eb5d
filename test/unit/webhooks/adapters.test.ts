import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { integrationSchema } from '../../../src/config/schema.js';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const ctx = (kind: string) => ({ integration: integrationSchema.parse({ name: 'x', kind, secret: '0123456789abcdef' }), headers: {} });
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';

describe('distribution adapter', () => {
  const a = webhookAdapters.distribution;
  it('normalizes a manifest push by tag', () => {
    const r = a.parse(fixture('distribution-push.json'), ctx('distribution'));
    expect(r.events).toEqual([
      {
        host: 'registry.example.com',
        repository: 'team-a/api',
        tag: 'v1.2.3',
        digest: D,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        pusher: 'ci-bot',
        eventId: '50676354-46ce-40b7-b4c0-bf41922e7449',
      },
    ]);
    expect(r.ignored).toEqual([]);
  });
  it('ignores blob pushes, pulls and deletes with a reason', () => {
    const blob = a.parse(fixture('distribution-push-blob.json'), ctx('distribution'));
    expect(blob.events).toEqual([]);
    expect(blob.ignored[0]!.reason).toMatch(/blob|media type/);
    const env = fixture('distribution-push.json');
    env.events[0].action = 'pull';
    const pulled = a.parse(env, ctx('distribution'));
    expect(pulled.events).toEqual([]);
    expect(pulled.ignored[0]!.reason).toMatch(/not a push/);
  });
  it('keeps every event of a multi-event envelope, by-digest pushes without tag', () => {
    const env = fixture('distribution-push.json');
    const child = structuredClone(env.events[0]);
    delete child.target.tag;
    child.target.mediaType = 'application/vnd.oci.image.manifest.v1+json';
    env.events.unshift(child);
    const r = a.parse(env, ctx('distribution'));
    expect(r.events.map((e) => e.tag)).toEqual([undefined, 'v1.2.3']);
  });
  it('rejects what is not an envelope', () => {
    expect(() => a.parse({ hello: 'world' }, ctx('distribution'))).toThrow(/not a distribution webhook payload/);
    expect(() => a.parse([], ctx('distribution'))).toThrow();
    expect(() => a.parse({ events: [{ action: 3 }] }, ctx('distribution'))).toThrow();
  });
});

describe('harbor adapter', () => {
  const a = webhookAdapters.harbor;
  const expected = { host: 'harbor.example.com', repository: 'team-a/app/api', tag: 'v1.2.3', digest: D, pusher: 'robot$ci+pusher' };
  it('normalizes the default format', () => {
    expect(a.parse(fixture('harbor-push_artifact.json'), ctx('harbor')).events).toEqual([expected]);
  });
  it('normalizes CloudEvents, keeping the event id', () => {
    expect(a.parse(fixture('harbor-push_artifact-cloudevents.json'), ctx('harbor')).events).toEqual([
      { ...expected, eventId: '4b2f89a6-548d-4c12-9993-a1f5790b97d2' },
    ]);
  });
  it('treats tag == digest as a push by digest (no tag)', () => {
    const p = fixture('harbor-push_artifact.json');
    p.event_data.resources[0].tag = D;
    p.event_data.resources[0].resource_url = `harbor.example.com/team-a/app/api@${D}`;
    const [e] = a.parse(p, ctx('harbor')).events;
    expect(e).toEqual({ host: 'harbor.example.com', repository: 'team-a/app/api', digest: D, pusher: 'robot$ci+pusher' });
  });
  it('ignores other event types with a reason', () => {
    for (const type of ['PULL_ARTIFACT', 'DELETE_ARTIFACT', 'SCANNING_COMPLETED']) {
      const p = fixture('harbor-push_artifact.json');
      p.type = type;
      const r = a.parse(p, ctx('harbor'));
      expect(r.events).toEqual([]);
      expect(r.ignored[0]!.reason).toContain(type);
    }
    const ce = fixture('harbor-push_artifact-cloudevents.json');
    ce.type = 'harbor.artifact.deleted';
    expect(a.parse(ce, ctx('harbor')).events).toEqual([]);
  });
});
