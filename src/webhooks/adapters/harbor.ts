/**
 * Harbor webhooks, Default JSON and CloudEvents (Harbor >= 2.8). Only PUSH_ARTIFACT /
 * harbor.artifact.pushed is a push; the first tag only is sent, and it equals the digest for a
 * push by digest. Source: goharbor/harbor src/pkg/notifier/model/event.go, formats/*.go.
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterEvent, AdapterResult, IgnoredItem, WebhookAdapter } from '../types.js';
import { parseOrThrow, splitImageRef } from './common.js';

const eventDataSchema = z
  .object({
    resources: z
      .array(z.object({ digest: z.string().optional(), tag: z.string().optional(), resource_url: z.string().optional() }).loose())
      .max(1000)
      .optional(),
    repository: z.object({ repo_full_name: z.string().optional(), namespace: z.string().optional(), name: z.string().optional() }).loose().optional(),
  })
  .loose();

const defaultFormat = z.object({ type: z.string(), operator: z.string().optional(), event_data: eventDataSchema.optional() }).loose();
const cloudEventsFormat = z
  .object({ specversion: z.string(), id: z.string().optional(), type: z.string(), operator: z.string().optional(), data: eventDataSchema.optional() })
  .loose();
export const harborPayloadSchema = z.union([cloudEventsFormat, defaultFormat]);

const PUSH_TYPES = new Set(['PUSH_ARTIFACT', 'harbor.artifact.pushed']);

export const harborAdapter: WebhookAdapter = {
  kind: 'harbor',
  configSchema: integrationConfig('harbor'),
  contentTypes: ['application/cloudevents+json'],
  parse(body): AdapterResult {
    const payload = parseOrThrow(harborPayloadSchema, body, 'harbor');
    const isCloudEvent = 'specversion' in payload;
    const data = isCloudEvent ? (payload as z.infer<typeof cloudEventsFormat>).data : (payload as z.infer<typeof defaultFormat>).event_data;
    const eventId = isCloudEvent ? (payload as z.infer<typeof cloudEventsFormat>).id : undefined;
    if (!PUSH_TYPES.has(payload.type)) {
      return { events: [], ignored: [{ reason: `event type "${payload.type}" is not an artifact push` }] };
    }
    const events: AdapterEvent[] = [];
    const ignored: IgnoredItem[] = [];
    const repoName = data?.repository?.repo_full_name ?? joinRepo(data?.repository?.namespace, data?.repository?.name);
    for (const r of data?.resources ?? []) {
      const url = r.resource_url ? splitImageRef(r.resource_url) : undefined;
      const repository = repoName ?? url?.repository;
      if (!url || !repository) {
        ignored.push({ reason: 'artifact push without resource_url or repository name' });
        continue;
      }
      // Pushed by digest (no tag): Harbor puts the digest in `tag` (a tag never contains ":").
      const tag = r.tag && !r.tag.includes(':') ? r.tag : undefined;
      events.push({
        host: url.host,
        repository,
        ...(tag ? { tag } : {}),
        ...(r.digest ? { digest: r.digest } : {}),
        ...(payload.operator ? { pusher: payload.operator } : {}),
        ...(eventId ? { eventId } : {}),
      });
    }
    if (events.length === 0 && ignored.length === 0) ignored.push({ reason: 'artifact push without resources' });
    return { events, ignored };
  },
};

function joinRepo(namespace: string | undefined, name: string | undefined): string | undefined {
  return namespace && name ? `${namespace}/${name}` : undefined;
}
