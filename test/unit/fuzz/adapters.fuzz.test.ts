/**
 * Property-based fuzzing (fast-check) of every webhook adapter and of reference parsing: any
 * input either parses into well-formed events or is refused with a stable code; nothing else
 * escapes (no TypeError, no crash), and what comes out is safe to put in a registry URL.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { integrationSchema } from '../../../src/config/schema.js';
import { SignetError } from '../../../src/errors.js';
import { isValidDigest, isValidRepository, isValidTag, parseReference } from '../../../src/registry/reference.js';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import type { WebhookAdapter } from '../../../src/webhooks/types.js';

const digest = fc.stringMatching(/^[a-f0-9]{64}$/).map((h) => `sha256:${h}`);
const nasty = fc.oneof(
  fc.string(),
  fc.constantFrom('../../etc/passwd', '..', '%2e%2e', 'a/../b', 'UPPER/case', '', ' ', '\u0000', 'a//b', 'x'.repeat(300), '${env}', '__proto__'),
  digest,
);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

/** Payloads shaped like the real ones, with hostile values in every field. */
const distributionLike = fc.record({
  events: fc.array(
    fc.record({
      id: maybe(fc.string()),
      action: fc.oneof(fc.constantFrom('push', 'pull', 'delete', 'mount'), fc.string()),
      target: fc.record({
        mediaType: maybe(fc.oneof(fc.constantFrom('application/vnd.oci.image.manifest.v1+json', 'application/octet-stream'), fc.string())),
        digest: maybe(fc.oneof(digest, nasty)),
        repository: maybe(nasty),
        url: maybe(fc.oneof(fc.webUrl(), nasty)),
        tag: maybe(nasty),
      }),
      request: maybe(fc.record({ host: maybe(nasty) })),
      actor: maybe(fc.record({ name: maybe(fc.string()) })),
    }),
    { maxLength: 5 },
  ),
});
const harborLike = fc.record({
  type: fc.oneof(fc.constantFrom('PUSH_ARTIFACT', 'harbor.artifact.pushed', 'PULL_ARTIFACT'), fc.string()),
  specversion: maybe(fc.constant('1.0')),
  operator: maybe(fc.string()),
  event_data: maybe(
    fc.record({
      resources: maybe(fc.array(fc.record({ digest: maybe(fc.oneof(digest, nasty)), tag: maybe(nasty), resource_url: maybe(nasty) }), { maxLength: 3 })),
      repository: maybe(fc.record({ repo_full_name: maybe(nasty), namespace: maybe(nasty), name: maybe(nasty) })),
    }),
  ),
});
const str = (...known: string[]) => fc.oneof(fc.constantFrom(...known), nasty);
const imageRef = fc
  .tuple(
    fc.constantFrom('us-west1-docker.pkg.dev/', 'gcr.io/', '', 'ghcr.io/', 'h:5000/'),
    nasty,
    fc.constantFrom('', ':v1', ':', '@'),
    fc.oneof(fc.constant(''), digest, nasty),
  )
  .map((p) => p.join(''));
const quayLike = fc.record({
  repository: maybe(nasty),
  namespace: maybe(nasty),
  name: maybe(nasty),
  docker_url: maybe(fc.oneof(imageRef, nasty)),
  homepage: maybe(fc.oneof(fc.webUrl(), nasty)),
  updated_tags: maybe(fc.oneof(fc.array(nasty, { maxLength: 4 }), fc.dictionary(nasty, fc.string(), { maxKeys: 3 }))),
  pruned_image_count: maybe(fc.nat()),
  build_id: maybe(fc.string()),
});
const acrLike = fc.record({
  id: maybe(fc.string()),
  action: str('push', 'ping', 'delete', 'quarantine', 'chart_push'),
  target: maybe(
    fc.record({
      mediaType: maybe(str('application/vnd.oci.image.manifest.v1+json', 'application/vnd.acr.helm.chart')),
      digest: maybe(fc.oneof(digest, nasty)),
      repository: maybe(nasty),
      tag: maybe(nasty),
    }),
  ),
  request: maybe(fc.record({ host: maybe(nasty) })),
});
const alibabaLike = fc.record({
  push_data: fc.record({ digest: maybe(fc.oneof(digest, nasty)), tag: maybe(nasty), pushed_at: maybe(fc.string()) }),
  repository: fc.record({
    repo_full_name: maybe(nasty),
    namespace: maybe(nasty),
    name: maybe(nasty),
    region: maybe(str('cn-hangzhou', 'cn-hangzhou.evil/x', 'ap-southeast-1')),
  }),
});
const dockerhubLike = fc.record({
  push_data: fc.record({ tag: maybe(nasty), pusher: maybe(fc.string()), pushed_at: maybe(fc.nat()) }),
  repository: fc.record({ repo_name: maybe(nasty), namespace: maybe(nasty), name: maybe(nasty) }),
});
const jfrogLike = fc.record({
  domain: str('docker', 'artifact', 'build'),
  event_type: str('pushed', 'deleted', 'promoted', 'deployed'),
  data: maybe(
    fc.record({
      repo_key: maybe(nasty),
      image_name: maybe(nasty),
      tag: maybe(
        fc.oneof(
          nasty,
          digest.map((d) => d.replace(':', '__')),
        ),
      ),
      sha256: maybe(
        fc.oneof(
          digest.map((d) => d.slice(7)),
          nasty,
        ),
      ),
    }),
  ),
  jpd_origin: maybe(fc.oneof(fc.webUrl(), nasty)),
});
const ecrLike = fc.record({
  id: maybe(fc.string()),
  'detail-type': str('ECR Image Action', 'ECR Image Scan'),
  source: maybe(fc.constant('aws.ecr')),
  account: maybe(str('123456789012', '12345678901a')),
  region: maybe(str('us-east-1', 'cn-north-1', 'us-east-1.evil/')),
  detail: maybe(
    fc.record({
      'action-type': maybe(str('PUSH', 'DELETE')),
      result: maybe(str('SUCCESS', 'FAILURE')),
      'repository-name': maybe(nasty),
      'image-digest': maybe(fc.oneof(digest, nasty)),
      'image-tag': maybe(nasty),
      'manifest-media-type': maybe(fc.string()),
    }),
  ),
});
const garData = fc.record({ action: str('INSERT', 'DELETE'), digest: maybe(imageRef), tag: maybe(imageRef) });
const garLike = fc.oneof(
  fc.record({
    message: fc.record({
      data: maybe(
        fc.oneof(
          garData.map((d) => Buffer.from(JSON.stringify(d)).toString('base64')),
          fc.base64String(),
          nasty,
        ),
      ),
      messageId: maybe(fc.string()),
    }),
    subscription: maybe(fc.string()),
  }),
  garData,
);
const githubPackage = fc.record({
  name: maybe(nasty),
  namespace: maybe(nasty),
  package_type: maybe(str('CONTAINER', 'docker', 'npm')),
  package_version: maybe(
    fc.record({
      name: maybe(fc.oneof(digest, nasty)),
      package_url: maybe(fc.oneof(imageRef, nasty)),
      container_metadata: maybe(
        fc.record({
          tag: maybe(fc.record({ name: maybe(nasty), digest: maybe(fc.oneof(digest, nasty)) })),
          manifest: maybe(fc.record({ digest: maybe(fc.oneof(digest, nasty)), media_type: maybe(fc.string()) })),
        }),
      ),
    }),
  ),
});
const githubLike = fc.record({
  action: maybe(str('published', 'updated', 'deleted')),
  package: maybe(githubPackage),
  registry_package: maybe(githubPackage),
  zen: maybe(fc.string()),
});

/** Per kind: payloads shaped like its own, and the config it needs. */
const shaped: Record<string, fc.Arbitrary<unknown>> = {
  distribution: distributionLike,
  gitlab: distributionLike,
  harbor: harborLike,
  quay: quayLike,
  acr: acrLike,
  'alibaba-acr': alibabaLike,
  dockerhub: dockerhubLike,
  jfrog: jfrogLike,
  ecr: ecrLike,
  gar: garLike,
  github: githubLike,
};
const extraConfig: Record<string, Record<string, unknown>> = { 'alibaba-acr': { registryHost: 'registry.{region}.aliyuncs.com' } };
const anything = fc.oneof(fc.jsonValue(), fc.anything({ maxDepth: 4 }), ...Object.values(shaped));
const headersArb = fc.dictionary(
  fc.constantFrom('authorization', 'x-github-event', 'x-github-delivery', 'x-hub-signature-256', 'x-jfrog-event-auth', 'x-goog-pubsub-message-id', 'x-other'),
  fc.oneof(fc.string(), fc.constantFrom('package', 'registry_package', 'ping', 'Bearer a.b.c', 'Basic Og==', 'sha256=00')),
);

it('every registered adapter has a shaped fuzz input', () => {
  expect(Object.keys(webhookAdapters).sort()).toEqual(Object.keys(shaped).sort());
});

describe.each(Object.entries(webhookAdapters as Record<string, WebhookAdapter<any>>))('%s adapter under fuzzing', (kind, adapter) => {
  const integration = integrationSchema.parse({ name: 'f', kind, secret: '0123456789abcdef', ...extraConfig[kind] });
  it('returns events or refuses with WEBHOOK_MALFORMED, for any input', () => {
    fc.assert(
      fc.property(fc.oneof(shaped[kind]!, anything), headersArb, (body, headers) => {
        let result;
        try {
          result = adapter.parse(body, { integration, headers });
        } catch (err) {
          expect(err).toBeInstanceOf(SignetError);
          expect((err as SignetError).code).toBe('WEBHOOK_MALFORMED');
          return;
        }
        expect(Array.isArray(result.events)).toBe(true);
        for (const e of result.events) {
          expect(typeof e.host).toBe('string');
          expect(typeof e.repository).toBe('string');
          for (const k of ['tag', 'digest', 'mediaType', 'pusher', 'eventId'] as const) if (e[k] !== undefined) expect(typeof e[k]).toBe('string');
          // the adapter may pass odd strings on: the receiver validates them (see receiver fuzz)
        }
        for (const i of result.ignored) expect(typeof i.reason).toBe('string');
      }),
      { numRuns: 1000 },
    );
  });
  it('never authenticates a random request when a secret is configured', async () => {
    if (!adapter.authentication) return; // the receiver's shared-secret check (auth.ts) applies
    const auth = adapter.authentication(integration);
    await fc.assert(
      fc.asyncProperty(
        headersArb,
        fc.dictionary(fc.constantFrom('token', 'secret', 'x'), fc.string()),
        fc.uint8Array({ maxLength: 256 }),
        async (headers, query, body) => {
          const ok =
            auth.phase === 'headers'
              ? await auth.verify({ headers, query })
              : auth.present({ headers, query }) && auth.verify({ headers, query, body: Buffer.from(body) });
          expect(ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('reference parsing under fuzzing', () => {
  it('parses into grammar-valid parts or refuses with INVALID_REFERENCE', () => {
    const refLike = fc
      .tuple(
        fc.constantFrom('', 'r.io/', '127.0.0.1:5000/', 'localhost/'),
        nasty,
        fc.constantFrom('', ':v1', ':', '@'),
        fc.oneof(
          fc.constant(''),
          digest.map((d) => `@${d}`),
          nasty,
        ),
      )
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.string(), refLike), (s) => {
        try {
          const r = parseReference(s);
          expect(isValidRepository(r.repository)).toBe(true);
          expect(r.repository.split('/')).not.toContain('..');
          if (r.tag !== undefined) expect(isValidTag(r.tag)).toBe(true);
          if (r.digest !== undefined) expect(isValidDigest(r.digest)).toBe(true);
        } catch (err) {
          expect((err as SignetError).code).toBe('INVALID_REFERENCE');
        }
      }),
      { numRuns: 5000 },
    );
  });
});
