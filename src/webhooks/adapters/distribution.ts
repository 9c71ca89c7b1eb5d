/**
 * CNCF distribution (registry:2 / registry:3) notifications, also GitLab's registry fork.
 * Envelope {events: [...]}; keep action "push" of manifest media types; blobs, pulls, mounts and
 * deletes are ignored with a reason. Source: distribution notifications/event.go, bridge.go.
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterEvent, AdapterResult, IgnoredItem, WebhookAdapter } from '../types.js';
import { MANIFEST_MEDIA_TYPES, parseOrThrow } from './common.js';

const eventSchema = z
  .object({
    id: z.string().optional(),
    action: z.string(),
    target: z
      .object({
        mediaType: z.string().optional(),
        digest: z.string().optional(),
        repository: z.string().optional(),
        url: z.string().optional(),
        tag: z.string().optional(),
      })
      .loose(),
    request: z.object({ host: z.string().optional() }).loose().optional(),
    actor: z.object({ name: z.string().optional() }).loose().optional(),
  })
  .loose();

export const distributionEnvelopeSchema = z.object({ events: z.array(eventSchema).max(1000) }).loose();

export const distributionAdapter: WebhookAdapter = {
  kind: 'distribution',
  configSchema: integrationConfig('distribution'),
  contentTypes: ['application/vnd.docker.distribution.events.v1+json', 'application/vnd.docker.distribution.events.v2+json'],
  parse(body): AdapterResult {
    const envelope = parseOrThrow(distributionEnvelopeSchema, body, 'distribution');
    const events: AdapterEvent[] = [];
    const ignored: IgnoredItem[] = [];
    for (const e of envelope.events) {
      const t = e.target;
      const ref = t.repository ? `${t.repository}${t.tag ? `:${t.tag}` : t.digest ? `@${t.digest}` : ''}` : undefined;
      if (e.action !== 'push') {
        ignored.push({ reason: `action "${e.action}" is not a push`, ...(ref ? { ref } : {}) });
        continue;
      }
      const isBlob = (t.url ?? '').includes('/blobs/');
      if (isBlob || !t.mediaType || !MANIFEST_MEDIA_TYPES.has(t.mediaType)) {
        ignored.push({ reason: isBlob ? 'blob push' : `media type "${t.mediaType ?? ''}" is not an image manifest`, ...(ref ? { ref } : {}) });
        continue;
      }
      const host = e.request?.host || hostFromUrl(t.url);
      if (!t.repository || !host) {
        ignored.push({ reason: 'push event without repository or host', ...(ref ? { ref } : {}) });
        continue;
      }
      events.push({
        host,
        repository: t.repository,
        ...(t.tag ? { tag: t.tag } : {}),
        ...(t.digest ? { digest: t.digest } : {}),
        mediaType: t.mediaType,
        ...(e.actor?.name ? { pusher: e.actor.name } : {}),
        ...(e.id ? { eventId: e.id } : {}),
      });
    }
    return { events, ignored };
  },
};

function hostFromUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}
