/**
 * GitLab's container registry (self-managed; GitLab.com offers no registry push webhook). Its
 * registry is a fork of CNCF distribution and sends the same envelope: {events: [...]},
 * Content-Type application/vnd.docker.distribution.events.v1+json, one event per envelope,
 * manifest pushes from the QueueBridge (target.tag on pushes by tag), blobs, pulls and deletes
 * (tag deletes carry target.tag) to ignore. Extras: actor.user_type and actor.user (a Rails JWT,
 * never copied anywhere), meta. Auth: static headers from registry['notifications'] (e.g.
 * Authorization: Bearer <secret>). Sources: gitlab-org/container-registry notifications/
 * event.go, queue.go, http.go (mirror AllWorldIT/conarx-gitlab-registry @ 81453aac);
 * gitlabhq doc/administration/packages/container_registry.md.
 */
import type { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, WebhookAdapter } from '../types.js';
import { parseOrThrow } from './common.js';
import { distributionAdapter, distributionEnvelopeSchema } from './distribution.js';

const config = integrationConfig('gitlab');

export const gitlabAdapter: WebhookAdapter<z.infer<typeof config>> = {
  kind: 'gitlab',
  configSchema: config,
  contentTypes: ['application/vnd.docker.distribution.events.v1+json', 'application/vnd.docker.distribution.events.v2+json'],
  parse(body, ctx): AdapterResult {
    // validate as "gitlab" (error text names this kind), then map exactly as distribution does
    const envelope = parseOrThrow(distributionEnvelopeSchema, body, 'gitlab');
    return distributionAdapter.parse(envelope, ctx);
  },
};
