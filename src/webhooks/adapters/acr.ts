/**
 * Azure Container Registry webhooks. Body {id, timestamp, action, target{mediaType, size, digest,
 * length, repository, tag?}, request{id, host, method, useragent}}; `action` is push, delete,
 * chart_push, chart_delete, quarantine or ping. Only `push` of an image manifest is a push; the
 * rest is answered 2xx and ignored. ACR adds no headers of its own: the secret travels in a
 * custom header set on the webhook (`header`, default Authorization; "Bearer " is optional).
 * Source: MicrosoftDocs container-registry-webhook-reference.md; ARM EventContent model.
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, WebhookAdapter } from '../types.js';
import { headerAuth, MANIFEST_MEDIA_TYPES, parseOrThrow, refOf, sharedSecretAuth } from './common.js';

export const acrPayloadSchema = z
  .object({
    id: z.string().optional(),
    action: z.string(),
    target: z
      .object({
        mediaType: z.string().optional(),
        digest: z.string().optional(),
        repository: z.string().optional(),
        tag: z.string().optional(),
      })
      .loose()
      .optional(),
    request: z.object({ host: z.string().optional() }).loose().optional(),
    actor: z.object({ name: z.string().optional() }).loose().optional(),
  })
  .loose();

const config = integrationConfig('acr', {
  /** Header that carries the secret (`az acr webhook create --headers "<header>=<secret>"`). */
  header: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name')
    .default('Authorization'),
});
type AcrConfig = z.infer<typeof config>;

export const acrAdapter: WebhookAdapter<AcrConfig> = {
  kind: 'acr',
  configSchema: config,
  contentTypes: [],
  authentication: (integration) => headerAuth((req) => sharedSecretAuth(req, integration, { header: integration.header })),
  parse(body): AdapterResult {
    const p = parseOrThrow(acrPayloadSchema, body, 'acr');
    const t = p.target ?? {};
    const ref = refOf(t.repository, t.tag, t.digest);
    if (p.action !== 'push') {
      // ping (portal "Ping", az acr webhook ping), delete, quarantine, chart_push, chart_delete
      return { events: [], ignored: [{ reason: `action "${p.action}" is not a push`, ...ref }] };
    }
    if (t.mediaType && !MANIFEST_MEDIA_TYPES.has(t.mediaType)) {
      return { events: [], ignored: [{ reason: `media type "${t.mediaType}" is not an image manifest`, ...ref }] };
    }
    const host = p.request?.host;
    if (!t.repository || !host) {
      return { events: [], ignored: [{ reason: 'push event without repository or host', ...ref }] };
    }
    return {
      events: [
        {
          host,
          repository: t.repository,
          ...(t.tag ? { tag: t.tag } : {}),
          ...(t.digest ? { digest: t.digest } : {}),
          ...(t.mediaType ? { mediaType: t.mediaType } : {}),
          ...(p.actor?.name ? { pusher: p.actor.name } : {}),
          ...(p.id ? { eventId: p.id } : {}),
        },
      ],
      ignored: [],
    };
  },
};
