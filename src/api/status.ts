/**
 * GET /api/v1/images/{ref}/status: the signing status of an image, by tag or digest, like ECR's
 * DescribeImageSigningStatus. signet's own records in Redis are read first: the tag's push-level
 * entry and every entry of the digest (given, or named by the tag's entry). Only when they lead
 * to no digest is a tag resolved in the registry, and only when a rule covers its repository
 * (signet reads those repositories anyway; for any other the answer comes from the records alone,
 * so the API is no oracle on what else the registry credentials can see). When that resolution
 * fails and Redis holds something (a failed push, say, with the same wrong credentials), the
 * answer is what Redis holds plus `resolution: {code, error}`; with nothing recorded it is the
 * error. Every Redis read is bounded (REDIS_UNAVAILABLE after 2 s), and so is the registry lookup
 * (REGISTRY_UNAVAILABLE after 10 s).
 */
import type { RuleMatcher } from '../config/rules.js';
import { describeError, isSignetError, SignetError, type ErrorCode } from '../errors.js';
import { asRedisUnavailable } from '../queue/redis-errors.js';
import type { RegistryDirectory } from '../registry/directory.js';
import { parseReference } from '../registry/reference.js';
import type { StatusEntry, StatusStore } from '../status/store.js';

export interface ImageStatus {
  image: { reference: string; repository: string; tag?: string; digest?: string };
  /** The rule that applies now, or why none does. */
  rule?: { index: number; keys: string[] } | { none: string };
  /** One entry per (digest, rule, key), plus the push-level entry. */
  statuses: StatusEntry[];
  /** The tag could not be resolved in the registry (the statuses are what Redis holds). */
  resolution?: { code: ErrorCode; error: string };
}

/** How long a status read may wait for Redis. */
export const REDIS_DEADLINE_MS = 2000;
/** How long resolving a tag in the registry may take, all requests included. */
export const REGISTRY_DEADLINE_MS = 10_000;

export async function imageStatus(
  ref: string,
  deps: { registries: RegistryDirectory; rules: RuleMatcher; status: Pick<StatusStore, 'lookup'> },
): Promise<ImageStatus> {
  const r = parseReference(ref);
  const known = deps.registries.resolve(r.host);
  if (!known) throw new SignetError('REGISTRY_NOT_CONFIGURED', `registry ${r.host} is not in registries`);
  const host = known.config.host;
  const found = deps.rules.find(host, r.repository);
  const repository = `${host}/${r.repository}`;
  const read = (digest: string | undefined, tag: string | undefined) =>
    withDeadline(
      deps.status.lookup(repository, digest, tag).catch((err: unknown) => {
        const e = asRedisUnavailable(err, 'cannot read signing status');
        throw isSignetError(e)
          ? e
          : new SignetError('REDIS_UNAVAILABLE', `cannot read signing status from Redis (${err instanceof Error ? err.message : String(err)})`, { cause: err });
      }),
      REDIS_DEADLINE_MS,
      () => new SignetError('REDIS_UNAVAILABLE', `Redis did not answer within ${REDIS_DEADLINE_MS} ms`),
    );
  let { digest, entries: statuses } = await read(r.digest, r.tag);
  let resolution: ImageStatus['resolution'];
  if (!digest && r.tag && found) {
    const tag = r.tag;
    try {
      digest = await withDeadline(
        (async () => {
          const head = await known.client.headManifest(r.repository, tag);
          return head?.digest ?? (head ? (await known.client.getManifest(r.repository, tag))?.digest : undefined);
        })(),
        REGISTRY_DEADLINE_MS,
        () => new SignetError('REGISTRY_UNAVAILABLE', `${host} did not resolve ${r.repository}:${tag} within ${REGISTRY_DEADLINE_MS} ms`),
      );
      if (!digest) throw new SignetError('MANIFEST_NOT_FOUND', `${host}/${r.repository}:${r.tag} is not in the registry`);
    } catch (err) {
      if (statuses.length === 0) throw err;
      const code: ErrorCode = isSignetError(err) ? err.code : 'INTERNAL';
      resolution = { code, error: isSignetError(err) ? err.message : describeError(err).replace(/^INTERNAL: /, '') };
    }
    if (digest) statuses = (await read(digest, tag)).entries;
  }
  return {
    image: { reference: ref, repository, ...(r.tag ? { tag: r.tag } : {}), ...(digest ? { digest } : {}) },
    rule: found ? { index: found.index, keys: found.rule.keys } : { none: `no rule matches ${repository}` },
    statuses,
    ...(resolution ? { resolution } : {}),
  };
}

/** HTTP status per error code; a code not listed answers 503 when retryable, else 502 (an upstream's answer); a non-SignetError is a bug: 500. */
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_REFERENCE: 400,
  API_UNAUTHORIZED: 401,
  API_NOT_FOUND: 404,
  REGISTRY_NOT_CONFIGURED: 404,
  MANIFEST_NOT_FOUND: 404,
  TAG_NOT_FOUND: 404,
  REDIS_UNAVAILABLE: 503,
  REGISTRY_UNAVAILABLE: 503,
  REGISTRY_THROTTLED: 503,
};

/** The answer for an error: its HTTP status and `{error, code}` (a bug is `INTERNAL` with no detail). */
export function errorAnswer(given: unknown): { status: number; body: { error: string; code: ErrorCode } } {
  const err = asRedisUnavailable(given);
  if (!isSignetError(err)) return { status: 500, body: { error: 'internal error', code: 'INTERNAL' } };
  const status = HTTP_STATUS[err.code] ?? (err.code === 'INTERNAL' ? 500 : err.retryable ? 503 : 502);
  return { status, body: { error: err.message, code: err.code } };
}

function withDeadline<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), ms)))]).finally(() => clearTimeout(timer));
}
