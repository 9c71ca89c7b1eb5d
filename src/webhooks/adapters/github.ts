/**
 * GitHub Packages (ghcr.io) webhooks: X-GitHub-Event `package` (repository and organization
 * hooks) or `registry_package` (GitHub Apps, payload key `registry_package`), action
 * `published` (a new version, i.e. a digest) or `updated`, package_type CONTAINER (older
 * payloads: docker). Each version fires, untagged ones (multi-arch children, signatures) with
 * container_metadata.tag.name "". Auth: X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret,
 * raw body)>. Sources: docs.github.com webhook-events-and-payloads and validating deliveries;
 * akuity/kargo pkg/webhook/external/github.go; a real multi-arch `package` delivery.
 */
import { z } from 'zod';
import { SignetError } from '../../errors.js';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, WebhookAdapter } from '../types.js';
import { anySecretEquals, headerAuth, headerValue, hmacSha256Hex, parseOrThrow, refOf, splitImageRef } from './common.js';

const packageSchema = z
  .object({
    name: z.string().optional(),
    namespace: z.string().optional(),
    package_type: z.string().optional(),
    ecosystem: z.string().optional(),
    package_version: z
      .object({
        name: z.string().optional(),
        version: z.string().optional(),
        package_url: z.string().optional(),
        container_metadata: z
          .object({
            tag: z.object({ name: z.string().optional(), digest: z.string().optional() }).loose().nullish(),
            manifest: z.object({ digest: z.string().optional(), media_type: z.string().optional() }).loose().nullish(),
          })
          .loose()
          .nullish(),
      })
      .loose()
      .nullish(),
  })
  .loose();

export const githubPayloadSchema = z
  .object({
    action: z.string().optional(),
    package: packageSchema.optional(),
    registry_package: packageSchema.optional(),
    sender: z.object({ login: z.string().optional() }).loose().optional(),
    zen: z.string().optional(),
  })
  .loose();

const config = integrationConfig('github');
const PACKAGE_EVENTS = new Set(['package', 'registry_package']);
const ACTIONS = new Set(['published', 'updated']);
const CONTAINER_TYPES = new Set(['container', 'docker']);
const SIGNATURE = /^sha256=[0-9a-f]{64}$/i;

export const githubAdapter: WebhookAdapter<z.infer<typeof config>> = {
  kind: 'github',
  configSchema: config,
  contentTypes: [],
  authentication(integration) {
    const secret = integration.secret;
    if (!secret) return headerAuth(() => integration.insecure);
    return {
      phase: 'body',
      // a call without a well-formed signature is refused before its body is read
      present: (req) => SIGNATURE.test(headerValue(req.headers, 'x-hub-signature-256')?.trim() ?? ''),
      verify(req) {
        const sig = headerValue(req.headers, 'x-hub-signature-256');
        return sig !== undefined && anySecretEquals([sig.trim().toLowerCase()], `sha256=${hmacSha256Hex(secret, req.body)}`);
      },
    };
  },
  parse(body, ctx): AdapterResult {
    const p = parseOrThrow(githubPayloadSchema, body, 'github');
    const event = headerValue(ctx.headers, 'x-github-event') ?? (p.registry_package ? 'registry_package' : p.package ? 'package' : p.zen ? 'ping' : 'unknown');
    if (event === 'ping') return { events: [], ignored: [{ reason: 'ping' }] };
    if (!PACKAGE_EVENTS.has(event)) return { events: [], ignored: [{ reason: `GitHub event "${event}" is not a package event` }] };
    const pkg = event === 'registry_package' ? (p.registry_package ?? p.package) : (p.package ?? p.registry_package);
    if (!pkg) throw new SignetError('WEBHOOK_MALFORMED', `not a github webhook payload: ${event}: missing`);
    const v = pkg.package_version ?? {};
    const cm = v.container_metadata ?? {};
    const tag = cm.tag?.name || undefined;
    const digest = [cm.tag?.digest, cm.manifest?.digest, v.name, v.version].find((d) => d?.startsWith('sha256:'));
    const ref = refOf(pkg.namespace && pkg.name ? `${pkg.namespace}/${pkg.name}` : pkg.name, tag, digest);
    if (!p.action || !ACTIONS.has(p.action)) return { events: [], ignored: [{ reason: `action "${p.action ?? ''}" is not a publish`, ...ref }] };
    const type = (pkg.package_type ?? pkg.ecosystem ?? '').toLowerCase();
    if (!CONTAINER_TYPES.has(type)) return { events: [], ignored: [{ reason: `package type "${type}" is not a container`, ...ref }] };
    // package_url "ghcr.io/<owner>/<name>:<tag>" (sometimes a trailing ":"); OCI names are lowercase
    const url = v.package_url ? splitImageRef(v.package_url.replace(/:$/, '')) : undefined;
    const host = (url?.host ?? (pkg.namespace && pkg.name ? 'ghcr.io' : undefined))?.toLowerCase();
    const repository = (url?.repository ?? (pkg.namespace && pkg.name ? `${pkg.namespace}/${pkg.name}` : undefined))?.toLowerCase();
    if (!host || !repository || (!tag && !digest)) {
      return { events: [], ignored: [{ reason: 'package event without image name or version', ...ref }] };
    }
    const mediaType = cm.manifest?.media_type || undefined;
    const delivery = headerValue(ctx.headers, 'x-github-delivery');
    return {
      events: [
        {
          host,
          repository,
          ...(tag ? { tag } : {}),
          ...(digest ? { digest } : {}),
          ...(mediaType ? { mediaType } : {}),
          ...(p.sender?.login ? { pusher: p.sender.login } : {}),
          ...(delivery ? { eventId: delivery } : {}),
        },
      ],
      ignored: [],
    };
  },
};
