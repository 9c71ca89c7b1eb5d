/**
 * GET /api/v1/images/{ref}/status: the signing status of an image, by tag or digest (a tag is
 * resolved in the registry first), like ECR's DescribeImageSigningStatus.
 */
import type { RuleMatcher } from '../config/rules.js';
import { SignetError } from '../errors.js';
import type { RegistryDirectory } from '../registry/directory.js';
import { parseReference } from '../registry/reference.js';
import type { StatusEntry, StatusStore } from '../status/store.js';

export interface ImageStatus {
  image: { reference: string; repository: string; tag?: string; digest?: string };
  /** The rule that applies now, or why none does. */
  rule?: { index: number; keys: string[] } | { none: string };
  /** One entry per (digest, rule, key), plus the push-level entry. */
  statuses: StatusEntry[];
}

export async function imageStatus(
  ref: string,
  deps: { registries: RegistryDirectory; rules: RuleMatcher; status: StatusStore },
): Promise<ImageStatus> {
  const r = parseReference(ref);
  const known = deps.registries.resolve(r.host);
  if (!known) throw new SignetError('REGISTRY_NOT_CONFIGURED', `registry ${r.host} is not in registries`);
  const host = known.config.host;
  let digest = r.digest;
  if (!digest && r.tag) {
    const head = await known.client.headManifest(r.repository, r.tag);
    digest = head?.digest ?? (head ? (await known.client.getManifest(r.repository, r.tag))?.digest : undefined);
    if (!digest) throw new SignetError('MANIFEST_NOT_FOUND', `${host}/${r.repository}:${r.tag} is not in the registry`);
  }
  const found = deps.rules.find(host, r.repository);
  const repository = `${host}/${r.repository}`;
  return {
    image: { reference: ref, repository, ...(r.tag ? { tag: r.tag } : {}), ...(digest ? { digest } : {}) },
    rule: found ? { index: found.index, keys: found.rule.keys } : { none: `no rule matches ${repository}` },
    statuses: await deps.status.get(repository, digest, r.tag),
  };
}
