/**
 * JFrog Artifactory webhooks, domain "docker", event "pushed" (a tag pushed). Body
 * {domain, event_type, data{repo_key, path, name, sha256, image_name, tag, platforms[]},
 * subscription_key, jpd_origin, source}. The secret token arrives in X-JFrog-Event-Auth, either
 * as is (`signing: plain`, JFrog's default) or as the lowercase hex HMAC-SHA256 of the body
 * ("Use secret for payload signing", `signing: hmac`).
 * The image's registry address depends on the repository's Docker access method: `access`
 * (repositoryPath: <host>/<repo_key>/<image>; subdomain: <repo_key>.<host>/<image>;
 * port: <host>:<ports[repo_key]>/<image>), host = `registryHost` or the host of jpd_origin (set
 * only when Artifactory has a Custom Base URL).
 * Sources: JFrog "Event Types" and "Domain: Docker" docs; terraform-provider-artifactory
 * `use_secret_for_signing`; akuity/kargo pkg/webhook/external/artifactory.go (HMAC format).
 */
import { z } from 'zod';
import { integrationConfig } from '../integration-config.js';
import type { AdapterResult, RequestHead, WebhookAdapter } from '../types.js';
import { anySecretEquals, headerAuth, headerValue, hmacSha256Hex, parseOrThrow, refOf } from './common.js';

export const jfrogPayloadSchema = z
  .object({
    domain: z.string(),
    event_type: z.string(),
    data: z
      .object({
        repo_key: z.string().optional(),
        image_name: z.string().optional(),
        tag: z.string().optional(),
        sha256: z.string().optional(),
        name: z.string().optional(),
        path: z.string().optional(),
      })
      .loose()
      .optional(),
    jpd_origin: z.string().optional(),
    source: z.string().optional(),
  })
  .loose();

const host = z.string().regex(/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/, 'a host such as artifactory.example.com (no scheme, no path)');

const config = integrationConfig('jfrog', {
  /** plain: X-JFrog-Event-Auth is the secret; hmac: it is hex HMAC-SHA256(secret, body). */
  signing: z.enum(['plain', 'hmac']).default('plain'),
  /** Docker access method of the Artifactory repositories (Repository Path is JFrog's default). */
  access: z.enum(['repositoryPath', 'subdomain', 'port']).default('repositoryPath'),
  /** Registry host; default: the host of the payload's jpd_origin (Artifactory's Custom Base URL). */
  registryHost: host.optional(),
  /** access: port — the port of each repository key. */
  ports: z.record(z.string(), z.number().int().min(1).max(65535)).optional(),
});
type JfrogConfig = z.infer<typeof config>;

const HEX64 = /^[a-f0-9]{64}$/;
/** How Artifactory names a manifest stored by digest (an untagged push). */
const DIGEST_FOLDER = /^sha256(?::|__)([a-f0-9]{64})$/;

export const jfrogAdapter: WebhookAdapter<JfrogConfig> = {
  kind: 'jfrog',
  configSchema: config,
  contentTypes: [],
  authentication(integration) {
    const secret = integration.secret;
    if (!secret) return headerAuth(() => integration.insecure);
    // plain: the header is the secret, checked before the body; hmac: it signs the body
    if (integration.signing === 'plain') {
      return headerAuth((req) => {
        const p = headerValue(req.headers, 'x-jfrog-event-auth');
        return p !== undefined && anySecretEquals([p], secret);
      });
    }
    const presented = (req: RequestHead): string =>
      (headerValue(req.headers, 'x-jfrog-event-auth') ?? '')
        .trim()
        .toLowerCase()
        .replace(/^sha256=/, '');
    return {
      phase: 'body',
      present: (req) => HEX64.test(presented(req)),
      verify: (req) => anySecretEquals([presented(req)], hmacSha256Hex(secret, req.body)),
    };
  },
  parse(body, ctx): AdapterResult {
    const p = parseOrThrow(jfrogPayloadSchema, body, 'jfrog');
    const d = p.data ?? {};
    const ref = refOf(d.image_name, d.tag);
    if (p.domain !== 'docker' || p.event_type !== 'pushed') {
      return { events: [], ignored: [{ reason: `${p.domain} event "${p.event_type}" is not a docker push`, ...ref }] };
    }
    if (!d.repo_key || !d.image_name) {
      return { events: [], ignored: [{ reason: 'docker push without repo_key or image_name', ...ref }] };
    }
    const cfg = ctx.integration;
    const base = cfg.registryHost ?? originHost(p.jpd_origin);
    if (!base) {
      return { events: [], ignored: [{ reason: 'no registry host: set registryHost or a Custom Base URL in Artifactory', ...ref }] };
    }
    let hostName: string;
    let repository: string;
    if (cfg.access === 'repositoryPath') {
      hostName = base;
      repository = `${d.repo_key}/${d.image_name}`;
    } else if (cfg.access === 'subdomain') {
      hostName = `${d.repo_key}.${base}`;
      repository = d.image_name;
    } else {
      const port = cfg.ports?.[d.repo_key];
      if (!port) return { events: [], ignored: [{ reason: `no port configured for repository "${d.repo_key}"`, ...ref }] };
      hostName = `${base.replace(/:[0-9]+$/, '')}:${port}`;
      repository = d.image_name;
    }
    const byDigest = d.tag ? DIGEST_FOLDER.exec(d.tag) : null;
    const tag = d.tag && !byDigest ? d.tag : undefined;
    // sha256 of the stored manifest.json / list.manifest.json: the manifest digest (a hint; the worker re-reads)
    const hex = d.sha256 && HEX64.test(d.sha256) ? d.sha256 : byDigest?.[1];
    if (!tag && !hex) return { events: [], ignored: [{ reason: 'docker push without tag or digest', ...ref }] };
    return {
      events: [{ host: hostName, repository, ...(tag ? { tag } : {}), ...(hex ? { digest: `sha256:${hex}` } : {}) }],
      ignored: [],
    };
  },
};

function originHost(origin: string | undefined): string | undefined {
  if (!origin) return undefined;
  try {
    return new URL(origin).host || undefined;
  } catch {
    return undefined;
  }
}
