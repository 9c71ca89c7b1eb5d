/**
 * OCI 1.1 referrers shared by every referrer format (the sigstore bundle, Notation): listing a
 * manifest's referrers through the referrers API where the registry has one, else through the
 * referrers fallback tag `sha256-<hex>` (an image index), and adding new referrers to that
 * listing. Every referrer format writes under the same per-digest lock (`referrersLockKey`) and
 * read-modify-writes the same fallback index, so formats writing side by side never lose each
 * other's entries. oras-go and cosign do the same dance, but without a lock shared across
 * signet's workers; hence our own.
 */
import { SignetError } from '../../errors.js';
import type { RegistryClient } from '../../registry/client.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../registry/media-types.js';
import type { ReferrersIndex } from '../../registry/schemas.js';
import { appendToIndex, EMPTY_CONFIG, referrersTag, type Descriptor } from '../../signing/bundle.js';
import { sha256Digest } from '../../util/digest.js';
import { listReferrersApi, referrersIndex, type IndexDescriptor } from '../../signing/registry-ops.js';

export interface Listing {
  api: boolean;
  descriptors: IndexDescriptor[];
  /** Without the API: the fallback tag's index as read (undefined when the tag does not exist yet). */
  index?: ReferrersIndex | undefined;
}

/** A referrer to list: its manifest descriptor, artifact type and annotations (copied into the fallback index). */
export type AddedReferrer = Descriptor & { artifactType: string; annotations: Record<string, string> };

const MAX_ATTEMPTS = 3;

/** The lock every referrer writer of `digest` holds while it read-modify-writes the listing. */
export function referrersLockKey(client: RegistryClient, repository: string, digest: string): string {
  return `${client.host}/${repository}@${digest}#referrers`;
}

export async function listReferrers(client: RegistryClient, repository: string, digest: string): Promise<Listing> {
  const api = await listReferrersApi(client, repository, digest);
  if (api) return { api: true, descriptors: api };
  const idx = await client.getManifest(repository, referrersTag(digest), OCI_INDEX);
  if (!idx) return { api: false, descriptors: [] };
  const index = fallbackIndex(client, repository, digest, idx.document);
  return { api: false, descriptors: index.manifests, index };
}

/** The referrers fallback tag's manifest, checked: REGISTRY_PROTOCOL when it is not a referrers index. */
export function fallbackIndex(client: RegistryClient, repository: string, digest: string, document: unknown): ReferrersIndex {
  return referrersIndex(document, `${client.host}/${repository}:${referrersTag(digest)} (the referrers fallback tag)`);
}

/**
 * Push new referrers and list them: the shared empty config, each referrer's one layer (fresh
 * content: uploaded without a HEAD) and its manifest by digest, then `publishReferrers`. Called
 * under the referrers lock, with the listing read under it.
 */
export async function pushReferrers(
  client: RegistryClient,
  repository: string,
  digest: string,
  now: Listing,
  artifactType: string,
  items: readonly { layer: Buffer; manifest: Buffer; annotations: Record<string, string> }[],
  opts: PublishOptions = {},
): Promise<void> {
  for (const it of items) {
    await client.uploadBlob(repository, it.layer, { fresh: true }); // a fresh signature: never there yet
    await client.putManifestWith(repository, sha256Digest(it.manifest), it.manifest, OCI_MANIFEST, EMPTY_CONFIG);
  }
  const added = items.map((it) => ({
    mediaType: OCI_MANIFEST,
    digest: sha256Digest(it.manifest),
    size: it.manifest.length,
    artifactType,
    annotations: it.annotations,
  }));
  await publishReferrers(client, repository, digest, now, added, opts);
}

export interface PublishOptions {
  /**
   * registries[].verifyWrites: confirm the new referrers are listed (the API lists them, or the
   * fallback index read back holds them; redone up to MAX_ATTEMPTS times when a writer outside
   * signet's lock replaced the index). Off (the default), the write is trusted as the registry
   * acknowledged it, as for the legacy `.sig`: signet's own writers are serialized by the lock.
   */
  verifyWrite?: boolean | undefined;
  /** How long to wait for a referrers API to list new referrers (verifyWrite). Default 3 s. */
  apiReadbackMs?: number | undefined;
  /** Names the referrers in errors. */
  what?: string;
}

/**
 * Make freshly pushed referrer manifests visible in the listing `now` (read under the lock):
 * with the API the registry lists them itself (with verifyWrite: wait until it does); without,
 * add them to the fallback index (the listing's read is the read of this read-modify-write),
 * and with verifyWrite read it back.
 */
export async function publishReferrers(
  client: RegistryClient,
  repository: string,
  digest: string,
  now: Listing,
  added: readonly AddedReferrer[],
  opts: PublishOptions = {},
): Promise<void> {
  if (now.api) {
    if (opts.verifyWrite)
      await apiReadback(
        client,
        repository,
        digest,
        added.map((a) => a.digest),
        opts.apiReadbackMs ?? 3000,
        opts.what ?? 'referrer',
      );
  } else await updateFallbackTag(client, repository, digest, added, now.index, Boolean(opts.verifyWrite));
}

async function apiReadback(client: RegistryClient, repository: string, digest: string, want: readonly string[], waitMs: number, what: string): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    const listed = (await listReferrersApi(client, repository, digest)) ?? [];
    if (want.every((w) => listed.some((d) => d.digest === w))) return;
    if (Date.now() > deadline) {
      throw new SignetError('SIGNATURE_READBACK_FAILED', `the referrers API of ${client.host}/${repository} does not list the new ${what} for ${digest}`);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

async function updateFallbackTag(
  client: RegistryClient,
  repository: string,
  digest: string,
  added: readonly AddedReferrer[],
  read: ReferrersIndex | undefined,
  verifyWrite: boolean,
): Promise<void> {
  const tag = referrersTag(digest);
  let current = read;
  for (let attempt = 1; ; attempt++) {
    if (attempt > 1) {
      const cur = await client.getManifest(repository, tag, OCI_INDEX);
      current = cur && fallbackIndex(client, repository, digest, cur.document);
    }
    const next = appendToIndex(current, added);
    if (next.changed) await client.putManifest(repository, tag, next.body, OCI_INDEX);
    if (!verifyWrite) return;
    const check = await client.getManifest(repository, tag, OCI_INDEX);
    const listed = check ? fallbackIndex(client, repository, digest, check.document).manifests : [];
    if (added.every((a) => listed.some((d) => d.digest === a.digest))) return;
    if (attempt >= MAX_ATTEMPTS) {
      throw new SignetError('SIGNATURE_READBACK_FAILED', `${repository}:${tag} changed under us ${MAX_ATTEMPTS} times (another writer outside signet?)`);
    }
  }
}
