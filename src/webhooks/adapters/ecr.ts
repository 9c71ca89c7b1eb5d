/**
 * Amazon ECR pushes delivered by an EventBridge rule to an API destination. Body: the
 * EventBridge event {version, id, detail-type, source, account, time, region, resources, detail};
 * a push is detail-type "ECR Image Action" with detail.action-type PUSH and result SUCCESS
 * (image-tag is "" or absent for digest-only pushes such as multi-arch children). Host:
 * <account>.dkr.ecr.<region>.amazonaws.com (.amazonaws.com.cn in China regions).
 * Auth: the API destination's connection — Basic (`auth.type: basic`, password = secret) or an
 * API key header (`auth.type: apiKey`, header name = auth.header, value = secret).
 * Sources: awsdocs amazon-ecr-user-guide ecr-eventbridge.md; amazon-eventbridge-user-guide
 * eb-api-destinations.md.
 */
import { z } from 'zod';
import { secretEquals } from '../auth.js';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, WebhookAdapter } from '../types.js';
import { headerAuth, headerValue, parseOrThrow, refOf, sharedSecretAuth } from './common.js';

export const ecrEventSchema = z
  .object({
    id: z.string().optional(),
    'detail-type': z.string(),
    source: z.string().optional(),
    account: z.string().optional(),
    region: z.string().optional(),
    detail: z
      .object({
        'action-type': z.string().optional(),
        result: z.string().optional(),
        'repository-name': z.string().optional(),
        'image-digest': z.string().optional(),
        'image-tag': z.string().optional(),
        'manifest-media-type': z.string().optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

const config = integrationConfig('ecr', {
  /** How the EventBridge connection presents `secret`. Default: an API key in Authorization. */
  auth: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('basic'), username: z.string().min(1) }).strict(),
      z
        .object({
          type: z.literal('apiKey'),
          header: z
            .string()
            .regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name')
            .default('Authorization'),
        })
        .strict(),
    ])
    .default({ type: 'apiKey', header: 'Authorization' }),
});
type EcrConfig = z.infer<typeof config>;

const ACCOUNT = /^[0-9]{12}$/;
const REGION = /^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$/;

export const ecrAdapter: WebhookAdapter<EcrConfig> = {
  kind: 'ecr',
  configSchema: config,
  contentTypes: [],
  // Basic or an API key header: both decided before the body
  authentication: (integration) =>
    headerAuth((req) => {
      if (!integration.secret) return integration.insecure;
      const auth = integration.auth;
      if (auth.type === 'apiKey') return sharedSecretAuth(req, integration, { header: auth.header });
      const h = headerValue(req.headers, 'authorization');
      const m = h ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h) : null;
      if (!m) return false;
      const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
      // compare the whole "user:password" so neither part leaks through timing
      return secretEquals(decoded, `${auth.username}:${integration.secret}`);
    }),
  parse(body): AdapterResult {
    const e = parseOrThrow(ecrEventSchema, body, 'ecr');
    const d = e.detail ?? {};
    const repository = d['repository-name'];
    const tag = d['image-tag'] || undefined;
    const digest = d['image-digest'] || undefined;
    const ref = refOf(repository, tag, digest);
    if (e['detail-type'] !== 'ECR Image Action') {
      return { events: [], ignored: [{ reason: `"${e['detail-type']}" is not an ECR image action`, ...ref }] };
    }
    if (d['action-type'] !== 'PUSH') {
      return { events: [], ignored: [{ reason: `action-type "${d['action-type'] ?? ''}" is not a push`, ...ref }] };
    }
    if (d.result !== 'SUCCESS') {
      return { events: [], ignored: [{ reason: `push result "${d.result ?? ''}" is not SUCCESS`, ...ref }] };
    }
    if (!e.account || !ACCOUNT.test(e.account) || !e.region || !REGION.test(e.region)) {
      return { events: [], ignored: [{ reason: 'push without a valid account and region', ...ref }] };
    }
    if (!repository || (!tag && !digest)) {
      return { events: [], ignored: [{ reason: 'push without repository or image', ...ref }] };
    }
    const mediaType = d['manifest-media-type'];
    return {
      events: [
        {
          host: `${e.account}.dkr.ecr.${e.region}.amazonaws.com${e.region.startsWith('cn-') ? '.cn' : ''}`,
          repository,
          ...(tag ? { tag } : {}),
          ...(digest ? { digest } : {}),
          ...(mediaType ? { mediaType } : {}),
          ...(e.id ? { eventId: e.id } : {}),
        },
      ],
      ignored: [],
    };
  },
};
