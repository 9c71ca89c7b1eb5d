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
const anything = fc.oneof(fc.jsonValue(), fc.anything({ maxDepth: 4 }), distributionLike, harborLike);

describe.each(Object.entries(webhookAdapters))('%s adapter under fuzzing', (kind, adapter) => {
  const ctx = { integration: integrationSchema.parse({ name: 'f', kind, secret: '0123456789abcdef' }), headers: {} };
  it('returns events or refuses with WEBHOOK_MALFORMED, for any input', () => {
    fc.assert(
      fc.property(kind === 'harbor' ? fc.oneof(harborLike, anything) : fc.oneof(distributionLike, anything), (body) => {
        let result;
        try {
          result = adapter.parse(body, ctx);
        } catch (err) {
          expect(err).toBeInstanceOf(SignetError);
          expect((err as SignetError).code).toBe('WEBHOOK_MALFORMED');
          return;
        }
        expect(Array.isArray(result.events)).toBe(true);
        for (const e of result.events) {
          expect(typeof e.host).toBe('string');
          expect(typeof e.repository).toBe('string');
          // the adapter may pass odd strings on: the receiver validates them (see receiver fuzz)
        }
        for (const i of result.ignored) expect(typeof i.reason).toBe('string');
      }),
      { numRuns: 1500 },
    );
  });
});

describe('reference parsing under fuzzing', () => {
  it('parses into grammar-valid parts or refuses with INVALID_REFERENCE', () => {
    const refLike = fc
      .tuple(fc.constantFrom('', 'r.io/', '127.0.0.1:5000/', 'localhost/'), nasty, fc.constantFrom('', ':v1', ':', '@'), fc.oneof(fc.constant(''), digest.map((d) => `@${d}`), nasty))
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
