/**
 * Google Artifact Registry (and Container Registry) notifications: Artifact Registry publishes
 * to the Pub/Sub topic "gcr"; a push subscription POSTs {message{data (base64), messageId,
 * attributes?, publishTime}, subscription}. The decoded data is {action: INSERT|DELETE,
 * digest?: "<host>/<path>@sha256:...", tag?: "<host>/<path>:<tag>"}; INSERT without tag is an
 * untagged push. A subscription with "payload unwrapping" sends the decoded data as the body.
 * Auth: with push authentication enabled Pub/Sub sends `Authorization: Bearer <OIDC JWT>`;
 * `jwt` verifies it with jose (gar-jwt.ts: signature against Google's JWKS or `jwt.keys`, aud, iss,
 * exp, and optionally the service account email). `secret` (?token=<secret> in the push endpoint
 * URL) works alone or on top.
 * Sources: cloud.google.com artifact-registry/docs/configure-notifications, pubsub/docs/push,
 * pubsub/docs/authenticate-push-subscriptions; keel-hq/keel trigger/pubsub/pubsub.go.
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, IgnoredItem, WebhookAdapter } from '../types.js';
import { headerAuth, headerValue, parseOrThrow, refOf, sharedSecretAuth, splitImageRef } from './common.js';
import { garJwtSchema, verifyPushJwt } from './gar-jwt.js';

const messageData = z.object({ action: z.string(), digest: z.string().optional(), tag: z.string().optional() }).loose();

const pushEnvelope = z
  .object({
    message: z
      .object({
        data: z.string().max(1_000_000).optional(),
        messageId: z.string().optional(),
        message_id: z.string().optional(),
        attributes: z.record(z.string(), z.unknown()).optional(),
      })
      .loose(),
    subscription: z.string().optional(),
  })
  .loose();

export const garPayloadSchema = z.union([pushEnvelope, messageData]);

const config = integrationConfig('gar', {
  /** Verify Pub/Sub's push JWT (gar-jwt.ts). Without it only `secret` (or insecure) authenticates. */
  jwt: garJwtSchema.optional(),
});
type GarConfig = z.infer<typeof config>;

export const garAdapter: WebhookAdapter<GarConfig> = {
  kind: 'gar',
  configSchema: config,
  contentTypes: [],
  hasCredentials: (integration) => Boolean(integration.jwt),
  // The push JWT (Authorization) signs no part of the body, and the secret is in the URL: both are
  // checked before the body is read.
  authentication: (integration) =>
    headerAuth(async (req) => {
      // Pub/Sub sets no headers of ours (Authorization carries its JWT): a secret comes in the URL
      if (!integration.jwt) return sharedSecretAuth(req, integration, { header: null });
      const secretOk = integration.secret ? sharedSecretAuth(req, integration, { header: null }) : true;
      const jwtOk = await verifyPushJwt(req, integration.jwt);
      return secretOk && jwtOk;
    }),
  parse(body, ctx): AdapterResult {
    const p = parseOrThrow(garPayloadSchema, body, 'gar');
    let data: z.infer<typeof messageData>;
    let eventId: string | undefined;
    if ('message' in p) {
      const m = (p as z.infer<typeof pushEnvelope>).message;
      eventId = m.messageId ?? m.message_id;
      const decoded = decodeData(m.data);
      if (!decoded) {
        // answered 2xx: Pub/Sub would otherwise redeliver it for days
        return { events: [], ignored: [{ reason: 'message data is not an Artifact Registry notification' }] };
      }
      data = decoded;
    } else {
      data = p as z.infer<typeof messageData>;
      const h = headerValue(ctx.headers, 'x-goog-pubsub-message-id');
      if (h) eventId = h;
    }
    return toEvents(data, eventId);
  },
};

function decodeData(b64: string | undefined): z.infer<typeof messageData> | undefined {
  if (!b64) return undefined;
  try {
    const r = messageData.safeParse(JSON.parse(Buffer.from(b64, 'base64').toString('utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

function toEvents(data: z.infer<typeof messageData>, eventId: string | undefined): AdapterResult {
  const byDigest = data.digest ? splitImageRef(data.digest) : undefined;
  const byTag = data.tag ? splitImageRef(data.tag) : undefined;
  const any = byTag ?? byDigest;
  const ref = refOf(any?.repository, byTag?.tag, byDigest?.digest);
  if (data.action !== 'INSERT') return { events: [], ignored: [{ reason: `action "${data.action}" is not a push`, ...ref }] };
  const ignored: IgnoredItem[] = [];
  if (!any || (data.digest && !byDigest?.digest) || (data.tag && !byTag?.tag)) {
    return { events: [], ignored: [{ reason: 'INSERT without a parsable image reference', ...ref }] };
  }
  if (byDigest && byTag && (byDigest.host !== byTag.host || byDigest.repository !== byTag.repository)) {
    return { events: [], ignored: [{ reason: 'digest and tag name different images', ...ref }] };
  }
  return {
    events: [
      {
        host: any.host,
        repository: any.repository,
        ...(byTag?.tag ? { tag: byTag.tag } : {}),
        ...(byDigest?.digest ? { digest: byDigest.digest } : {}),
        ...(eventId ? { eventId } : {}),
      },
    ],
    ignored,
  };
}
