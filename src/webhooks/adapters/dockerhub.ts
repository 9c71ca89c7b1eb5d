/**
 * Docker Hub repository webhooks. Body {callback_url, push_data{pushed_at, pusher, tag},
 * repository{repo_name, namespace, name, ...}}: they fire only on tag pushes, carry no digest
 * and no auth (put ?token=<secret> in the URL). Events are tag only, host docker.io; the worker
 * resolves the tag. A multi-arch push may be delivered several times for one tag (the queue
 * dedups them). Source: docker/docs content/manuals/docker-hub/repos/manage/webhooks.md;
 * docker/hub-feedback#2148 (a real delivery).
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, WebhookAdapter } from '../types.js';
import { parseOrThrow, refOf } from './common.js';

export const DOCKER_HUB_HOST = 'docker.io';

export const dockerhubPayloadSchema = z
  .object({
    push_data: z.object({ tag: z.string().optional(), pusher: z.string().optional() }).loose(),
    repository: z.object({ repo_name: z.string().optional(), namespace: z.string().optional(), name: z.string().optional() }).loose(),
  })
  .loose();

const config = integrationConfig('dockerhub');

export const dockerhubAdapter: WebhookAdapter<z.infer<typeof config>> = {
  kind: 'dockerhub',
  configSchema: config,
  contentTypes: [],
  parse(body): AdapterResult {
    const p = parseOrThrow(dockerhubPayloadSchema, body, 'dockerhub');
    const r = p.repository;
    let repository = r.repo_name ?? (r.namespace && r.name ? `${r.namespace}/${r.name}` : undefined);
    // official images are "library/<name>" in the registry API
    if (repository && !repository.includes('/')) repository = `library/${repository}`;
    const tag = p.push_data.tag;
    if (!repository || !tag) {
      return { events: [], ignored: [{ reason: 'push without repository or tag', ...refOf(repository, tag) }] };
    }
    return {
      events: [{ host: DOCKER_HUB_HOST, repository, tag, ...(p.push_data.pusher ? { pusher: p.push_data.pusher } : {}) }],
      ignored: [],
    };
  },
};
