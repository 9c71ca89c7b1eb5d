/**
 * Alibaba Cloud Container Registry triggers (Personal and Enterprise Edition). Body
 * {push_data{digest, pushed_at, tag}, repository{name, namespace, region, repo_full_name, ...}}:
 * triggers fire only on tag pushes, so there is no event type. The payload names no registry
 * host, only a region: the host comes from `registryHost` (which may contain "{region}").
 * No auth header can be set: the secret travels in the URL (?token=<secret>, or ?secret= as in
 * Alibaba's documentation). Source: alibabacloud.com help 60949 (trigger payload example).
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, WebhookAdapter } from '../types.js';
import { headerAuth, parseOrThrow, refOf, sharedSecretAuth } from './common.js';

export const alibabaPayloadSchema = z
  .object({
    push_data: z.object({ digest: z.string().optional(), tag: z.string().optional(), pushed_at: z.unknown().optional() }).loose(),
    repository: z
      .object({
        repo_full_name: z.string().optional(),
        namespace: z.string().optional(),
        name: z.string().optional(),
        region: z.string().optional(),
      })
      .loose(),
  })
  .loose();

const config = integrationConfig('alibaba-acr', {
  /**
   * The registry host the pushes happened on, e.g. registry.cn-hangzhou.aliyuncs.com
   * (Personal Edition) or myinstance-registry.cn-hangzhou.cr.aliyuncs.com (Enterprise Edition).
   * "{region}" is replaced by the payload's region: registry.{region}.aliyuncs.com.
   */
  registryHost: z
    .string()
    .regex(/^(?:[A-Za-z0-9.-]|\{region\})+(?::[0-9]{1,5})?$/, 'a registry host such as registry.{region}.aliyuncs.com (no scheme, no path)'),
});
type AlibabaConfig = z.infer<typeof config>;

const REGION = /^[a-z]{2,}(?:-[a-z0-9]+){1,4}$/;

export const alibabaAcrAdapter: WebhookAdapter<AlibabaConfig> = {
  kind: 'alibaba-acr',
  configSchema: config,
  contentTypes: [],
  authentication: (integration) => headerAuth((req) => sharedSecretAuth(req, integration, { query: ['token', 'secret'] })),
  parse(body, ctx): AdapterResult {
    const p = parseOrThrow(alibabaPayloadSchema, body, 'alibaba-acr');
    const r = p.repository;
    const repository = r.repo_full_name ?? (r.namespace && r.name ? `${r.namespace}/${r.name}` : undefined);
    const { tag, digest } = p.push_data;
    const ref = refOf(repository, tag, digest);
    if (!repository || (!tag && !digest)) {
      return { events: [], ignored: [{ reason: 'push without repository or tag', ...ref }] };
    }
    let host = ctx.integration.registryHost;
    if (host.includes('{region}')) {
      if (!r.region || !REGION.test(r.region)) return { events: [], ignored: [{ reason: 'push without a valid region', ...ref }] };
      host = host.replaceAll('{region}', r.region);
    }
    return {
      events: [{ host, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) }],
      ignored: [],
    };
  },
};
