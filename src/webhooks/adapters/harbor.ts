/**
 * Harbor webhooks, Default JSON and CloudEvents (Harbor >= 2.8). Only PUSH_ARTIFACT /
 * harbor.artifact.pushed is a push; the first tag only is sent, and it equals the digest for a
 * push by digest. Source: goharbor/harbor src/pkg/notifier/model/event.go, formats/*.go.
 *
 * Scan events for the scan gate (rules[].require.scan): SCANNING_COMPLETED / SCANNING_FAILED /
 * SCANNING_STOPPED (CloudEvents harbor.scan.completed|failed|stopped, formats/cloudevents.go
 * eventTypeMapping), built by src/controller/event/handler/webhook/scan/scan.go: one resource
 * with `digest`, `tag` (the tag the scan was asked for, may be empty), `resource_url` and
 * `scan_overview` (read by src/scan/harbor.ts), and `event_data.scan.scan_type` (`vulnerability`
 * or `sbom`; an SBOM scan decides nothing). A failed or stopped scan whose overview says nothing
 * is reported with the status its event type implies.
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import { reportFromOverview } from '../../scan/harbor.js';
import type { AdapterEvent, AdapterResult, IgnoredItem, ScanEvent, WebhookAdapter } from '../types.js';
import { parseOrThrow, splitImageRef } from './common.js';

const eventDataSchema = z
  .object({
    resources: z
      .array(
        z
          .object({ digest: z.string().optional(), tag: z.string().optional(), resource_url: z.string().optional(), scan_overview: z.unknown().optional() })
          .loose(),
      )
      .max(1000)
      .optional(),
    repository: z.object({ repo_full_name: z.string().optional(), namespace: z.string().optional(), name: z.string().optional() }).loose().optional(),
    scan: z.object({ scan_type: z.string().optional() }).loose().optional(),
  })
  .loose();

const defaultFormat = z.object({ type: z.string(), operator: z.string().optional(), event_data: eventDataSchema.optional() }).loose();
const cloudEventsFormat = z
  .object({ specversion: z.string(), id: z.string().optional(), type: z.string(), operator: z.string().optional(), data: eventDataSchema.optional() })
  .loose();
export const harborPayloadSchema = z.union([cloudEventsFormat, defaultFormat]);

const PUSH_TYPES = new Set(['PUSH_ARTIFACT', 'harbor.artifact.pushed']);
/** Scan event types, with the scan status a report without overview is given. */
const SCAN_TYPES: Readonly<Record<string, string>> = {
  SCANNING_COMPLETED: 'Success',
  'harbor.scan.completed': 'Success',
  SCANNING_FAILED: 'Error',
  'harbor.scan.failed': 'Error',
  SCANNING_STOPPED: 'Stopped',
  'harbor.scan.stopped': 'Stopped',
};

export const harborAdapter: WebhookAdapter = {
  kind: 'harbor',
  configSchema: integrationConfig('harbor'),
  contentTypes: ['application/cloudevents+json'],
  parse(body): AdapterResult {
    const payload = parseOrThrow(harborPayloadSchema, body, 'harbor');
    const isCloudEvent = 'specversion' in payload;
    const data = isCloudEvent ? (payload as z.infer<typeof cloudEventsFormat>).data : (payload as z.infer<typeof defaultFormat>).event_data;
    const eventId = isCloudEvent ? (payload as z.infer<typeof cloudEventsFormat>).id : undefined;
    const repoName = data?.repository?.repo_full_name ?? joinRepo(data?.repository?.namespace, data?.repository?.name);
    if (SCAN_TYPES[payload.type] !== undefined) return scanEvents(payload.type, data, repoName);
    if (!PUSH_TYPES.has(payload.type)) {
      return { events: [], ignored: [{ reason: `event type "${payload.type}" is not an artifact push` }] };
    }
    const events: AdapterEvent[] = [];
    const ignored: IgnoredItem[] = [];
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

/** The scan results of a SCANNING_* event (one resource in practice). */
function scanEvents(type: string, data: z.infer<typeof eventDataSchema> | undefined, repoName: string | undefined): AdapterResult {
  const scanType = data?.scan?.scan_type;
  if (scanType !== undefined && scanType !== 'vulnerability') {
    return { events: [], ignored: [{ reason: `${type} of a "${scanType.slice(0, 40)}" scan (only vulnerability scans decide a scan gate)` }] };
  }
  const scans: ScanEvent[] = [];
  const ignored: IgnoredItem[] = [];
  for (const r of data?.resources ?? []) {
    const url = r.resource_url ? splitImageRef(r.resource_url) : undefined;
    const repository = repoName ?? url?.repository;
    if (!url || !repository || !r.digest) {
      ignored.push({ reason: `${type} without resource_url, repository name or digest` });
      continue;
    }
    const fromOverview = reportFromOverview(r.scan_overview);
    const report = fromOverview ?? (SCAN_TYPES[type] === 'Success' ? undefined : { status: SCAN_TYPES[type]!, severity: '', counts: {} });
    if (!report) {
      ignored.push({ reason: `${type} without a vulnerability scan_overview`, ref: `${repository}@${r.digest}` });
      continue;
    }
    const tag = r.tag && !r.tag.includes(':') ? r.tag : undefined;
    scans.push({ host: url.host, repository, digest: r.digest, ...(tag ? { tag } : {}), report });
  }
  if (scans.length === 0 && ignored.length === 0) ignored.push({ reason: `${type} without resources` });
  return { events: [], ignored, scans };
}

function joinRepo(namespace: string | undefined, name: string | undefined): string | undefined {
  return namespace && name ? `${namespace}/${name}` : undefined;
}
