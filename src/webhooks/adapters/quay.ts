/**
 * Quay (quay.io, Red Hat Quay) "Repository Push" notifications with the Webhook POST method.
 * The body is the event data only: {repository, namespace, name, docker_url, homepage,
 * updated_tags[]}; no event name, no digest, no auth header (put ?token=<secret> in the URL).
 * One event per updated tag, tag only: the worker resolves each tag from the registry.
 * `vulnerability_found` (notificationevent.py VulnerabilityFoundEvent: {tags, image,
 * vulnerability: {id, priority, ...}}) is sent only when the security scanner finds something at
 * or above the notification's level, never for a clean scan: a scan gate (require.scan) cannot
 * pass on Quay's notifications, so it is ignored with that reason (docs/conditions.md).
 * Source: quay/quay notifications/__init__.py (build_repository_event_data),
 * notifications/notificationevent.py, endpoints/v2/manifest.py (repo_push with updated_tags).
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterEvent, AdapterResult, IgnoredItem, WebhookAdapter } from '../types.js';
import { parseOrThrow, splitResourceUrl } from './common.js';

export const quayPayloadSchema = z
  .object({
    repository: z.string().optional(),
    namespace: z.string().optional(),
    name: z.string().optional(),
    docker_url: z.string().optional(),
    homepage: z.string().optional(),
    // v2 pushes send one tag; legacy v1 pushes may send several; a 2013-era format used {tag: imageId}
    updated_tags: z.union([z.array(z.string()).max(1000), z.record(z.string(), z.unknown())]).optional(),
    pruned_image_count: z.unknown().optional(),
    vulnerability: z.unknown().optional(),
  })
  .loose();

const config = integrationConfig('quay');

export const quayAdapter: WebhookAdapter<z.infer<typeof config>> = {
  kind: 'quay',
  configSchema: config,
  contentTypes: [],
  parse(body): AdapterResult {
    const p = parseOrThrow(quayPayloadSchema, body, 'quay');
    const repository = p.repository ?? (p.namespace && p.name ? `${p.namespace}/${p.name}` : undefined);
    const ref = repository ? { ref: repository } : {};
    if (p.updated_tags === undefined && p.vulnerability !== undefined) {
      return {
        events: [],
        ignored: [{ reason: 'Quay vulnerability_found: not a push (and no scan gate can pass on it: Quay sends no event for a clean scan)', ...ref }],
      };
    }
    if (p.updated_tags === undefined) {
      // build_*, vulnerability_found, repo_mirror_*, repo_image_expiry, quota_*: not pushes
      return { events: [], ignored: [{ reason: 'not a repo_push notification (no updated_tags)', ...ref }] };
    }
    if (p.pruned_image_count !== undefined) {
      // Quay's "Test Notification" sends sample data (tags "latest" and "foo") that names no real push.
      return { events: [], ignored: [{ reason: 'Quay test notification', ...ref }] };
    }
    const host = hostOf(p.docker_url) ?? hostOf(p.homepage);
    if (!repository || !host) {
      return { events: [], ignored: [{ reason: 'repo_push without repository or docker_url', ...ref }] };
    }
    const tags = Array.isArray(p.updated_tags) ? p.updated_tags : Object.keys(p.updated_tags);
    const events: AdapterEvent[] = [];
    const ignored: IgnoredItem[] = [];
    for (const tag of new Set(tags)) {
      if (!tag) ignored.push({ reason: 'empty tag', ref: repository });
      else events.push({ host, repository, tag });
    }
    if (events.length === 0 && ignored.length === 0) ignored.push({ reason: 'repo_push without tags', ref: repository });
    return { events, ignored };
  },
};

/** docker_url is "<SERVER_HOSTNAME>/ns/repo" (no scheme); homepage is "<scheme>://<SERVER_HOSTNAME>/repository/...". */
function hostOf(url: string | undefined): string | undefined {
  return url ? splitResourceUrl(url)?.host : undefined;
}
