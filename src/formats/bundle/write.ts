/**
 * The bundle format's writer: sigstore bundle v0.3 signatures for one digest as OCI 1.1 referrers.
 *
 * Where the registry has the referrers API (GET /v2/<repo>/referrers/<digest> answers 200 with an
 * index), the referrer manifest is pushed by digest and the API lists it. Where it does not
 * (distribution 2.x, many others), signet also maintains the referrers fallback tag
 * `sha256-<hex>`: an image index read-modify-written under the per-digest lock and read back,
 * exactly like the legacy .sig manifest (concurrent writers lose entries otherwise). Listing, the
 * lock's name and the index update live in src/formats/referrers/, shared with the notation
 * format, so bundles and Notation signatures on one digest never drop each other's entries.
 *
 * Dedup: a referrer whose bundle holds the same statement signed by the same key counts as
 * present. signet's referrers carry the statement digest and key id as annotations, so the
 * candidates are found from the index alone, but annotations are only a hint (anyone who can push
 * can write them): the bundle blob is downloaded, digest-checked and its signature verified with
 * the key before it counts. A bundle that cannot be read (a registry that redirects blob
 * downloads to S3/GCS storage, which signet does not follow) never counts: signet writes its own.
 * At most MAX_BUNDLE_CANDIDATES referrers are read per key and listing. With Rekor on, a present
 * bundle without a tlog entry does not count: a new, logged bundle is added next to it.
 */
import type { RegistryClient } from '../../registry/client.js';
import { bundleTlogEntry, checkDsseBody, proposedDsse } from '../../transparency/entries.js';
import { sha256Digest } from '../../util/digest.js';
import type { SignResult, Subject, WriteContext } from '../types.js';
import {
  BUNDLE_PREDICATE_ANNOTATION,
  BUNDLE_V03,
  buildBundle,
  COSIGN_SIGN_PREDICATE,
  envelopeJson,
  INTOTO_PAYLOAD_TYPE,
  KEY_ANNOTATION,
  pae,
  referrerAnnotations,
  referrerManifest,
  signStatement,
  type Descriptor,
} from '../../signing/bundle.js';
import type { Exclusion } from '../../signing/lock.js';
import type { IndexDescriptor } from '../../signing/registry-ops.js';
import { bundleMeets, type BundleNeeds } from './check.js';
import { needsOf } from './read.js';
import { listReferrers, pushReferrers, referrersLockKey, type Listing } from '../referrers/index.js';
import { mayHoldBundle, readBundle, type Checked } from './referrers.js';
import type { SigningPlan } from '../../signing/plan.js';
import type { Signer } from '../../signing/signer.js';

export interface BundleRequest {
  signer: Signer;
  /** The in-toto statement (see bundle.ts signStatement). */
  statement: Buffer;
  /** The annotations the statement's subject carries (what a present bundle must carry too). */
  annotations?: Readonly<Record<string, string>> | undefined;
  /** The statement's predicateType (default cosign's sign predicate; src/formats/attestation writes the SLSA VSA). */
  predicateType?: string | undefined;
  /** What else a present bundle's verified statement must say (e.g. an attestation's decision), beyond subject and predicate type. */
  sameClaim?: ((statement: Buffer) => boolean) | undefined;
}

export interface BundleAttachOptions {
  /** signet has no record of this digest and the rule has no witness: skip the listing before signing (the one under the lock decides). */
  expectNew?: boolean | undefined;
  /** registries[].verifyWrites: confirm the new referrer is listed (src/formats/referrers). */
  verifyWrite?: boolean | undefined;
  /** How long to wait for a referrers API to list a new referrer (verifyWrite). Default 3 s. */
  apiReadbackMs?: number;
  /** Rekor key / timestamp verification for present bundles (the rule's). */
  needs?: Pick<BundleNeeds, 'rekorKey' | 'verifyTimestamp'>;
}

/** The bundle format's `write`: the plan's statement about this manifest, signed by each of the plan's signers. */
export function writeBundles(ctx: WriteContext, plan: SigningPlan, subject: Subject): Promise<SignResult[]> {
  const statement = signStatement(subject.digest, plan.annotations);
  const needs = needsOf(plan, ctx);
  return attachBundles(
    ctx.client,
    ctx.repository,
    subject,
    ctx.signers.map((signer) => ({ signer, statement, annotations: plan.annotations })),
    ctx.lock,
    {
      expectNew: ctx.expectNew,
      verifyWrite: ctx.verifyWrite,
      needs: { rekorKey: needs.rekorKey, verifyTimestamp: needs.verifyTimestamp },
    },
  );
}

/** Referrers whose annotations fit a plan, read and verified per listing (each costs two GETs). */
const MAX_BUNDLE_CANDIDATES = 16;

interface Plan {
  req: BundleRequest;
  result: SignResult;
  statementDigest: string;
  keyId: string;
  keyPem: string;
  manifest?: Buffer;
  annotations?: Record<string, string>;
  bundle?: Buffer;
  done?: boolean;
}

export async function attachBundles(
  client: RegistryClient,
  repository: string,
  subject: Descriptor,
  requests: readonly BundleRequest[],
  lock: Exclusion,
  opts: BundleAttachOptions = {},
): Promise<SignResult[]> {
  const cache = new Map<string, Promise<Checked>>();
  const read = (digest: string): Promise<Checked> => {
    let p = cache.get(digest);
    if (!p) {
      p = readBundle(client, repository, digest);
      cache.set(digest, p);
    }
    return p;
  };

  // A new digest (no record, no witness: the pipeline's expectNew) is not listed before signing:
  // the listing under the lock merges whatever is there (a bundle that was there after all costs
  // one key call, and ours is dropped in its favour), as the legacy and Notation writers do.
  const witnessed = requests.some((r) => r.signer.witnesses.tlog || r.signer.witnesses.timestamp);
  const listing: Listing = opts.expectNew && !witnessed ? { api: false, descriptors: [] } : await listReferrers(client, repository, subject.digest);
  const plans = await Promise.all(requests.map((req) => planBundle(req, listing, read, subject, opts)));
  const work = plans.filter((p) => p.manifest);
  if (work.length === 0) return plans.map((p) => p.result);

  return lock.withLock(referrersLockKey(client, repository, subject.digest), async () => {
    // Another writer may have added an equivalent bundle since we looked.
    const now = await listReferrers(client, repository, subject.digest);
    for (const p of work) {
      const found = await findPresent(now.descriptors, p, read, subject, opts);
      if (found) {
        p.done = true;
        p.result.outcome = 'present';
        p.result.referrer = found;
        delete p.result.timestamp;
        if (p.req.signer.witnesses.tlog) p.result.tlog = { status: 'present' };
        if (p.req.signer.witnesses.timestamp) p.result.timestamp = { status: 'present' };
      }
    }
    const todo = work.filter((p) => !p.done);
    if (todo.length === 0) return plans.map((p) => p.result);

    // the listing read under the lock is the read of the fallback index's read-modify-write
    const items = todo.map((p) => ({ layer: p.bundle!, manifest: p.manifest!, annotations: p.annotations! }));
    await pushReferrers(client, repository, subject.digest, now, BUNDLE_V03, items, {
      verifyWrite: opts.verifyWrite,
      apiReadbackMs: opts.apiReadbackMs,
      what: 'bundle',
    });
    return plans.map((p) => p.result);
  });
}

async function planBundle(
  req: BundleRequest,
  listing: Listing,
  read: (digest: string) => Promise<Checked>,
  subject: Descriptor,
  opts: BundleAttachOptions,
): Promise<Plan> {
  const { signer } = req;
  const key = signer.key;
  const { tlog, timestamp } = signer.witnesses;
  const statementDigest = sha256Digest(req.statement);
  const plan: Plan = {
    req,
    statementDigest,
    keyId: key.keyId,
    keyPem: key.publicKeyPem,
    result: { key: key.name, outcome: 'signed', payloadDigest: statementDigest, format: 'bundle' },
  };
  const found = await findPresent(listing.descriptors, plan, read, subject, opts);
  if (found) {
    plan.result.outcome = 'present';
    plan.result.referrer = found;
    if (tlog) plan.result.tlog = { status: 'present' };
    if (timestamp) plan.result.timestamp = { status: 'present' };
    return plan;
  }

  const preAuth = pae(INTOTO_PAYLOAD_TYPE, req.statement);
  const signature = await signer.sign(preAuth);
  // the dsse entry names what the bundle's verification material carries (sigstore-go compares them)
  const pem = key.verifierPem;
  const w = await signer.witness(signature, () => ({
    proposed: proposedDsse(envelopeJson(req.statement, signature), pem),
    check: (e) => {
      checkDsseBody(e, req.statement, signature, pem);
      bundleTlogEntry(e, 'dsse'); // throws when there is no inclusion proof
    },
  }));
  const tlogEntries: Record<string, unknown>[] = [];
  if (w.tlog) {
    plan.result.tlog = w.tlog.status;
    if (w.tlog.entry) tlogEntries.push(bundleTlogEntry(w.tlog.entry, 'dsse'));
  }
  const timestamps: Buffer[] = [];
  if (w.timestamp) {
    plan.result.timestamp = w.timestamp.status;
    if (w.timestamp.response) timestamps.push(w.timestamp.response);
  }
  plan.bundle = buildBundle({
    statement: req.statement,
    signature,
    publicKeyPem: key.publicKeyPem,
    certificatePem: key.certificate?.certificate,
    tlogEntries,
    timestamps,
  });
  plan.annotations = referrerAnnotations(req.statement, key.publicKeyPem);
  if (req.predicateType) plan.annotations[BUNDLE_PREDICATE_ANNOTATION] = req.predicateType;
  plan.manifest = referrerManifest(plan.bundle, subject, plan.annotations);
  plan.result.referrer = sha256Digest(plan.manifest);
  return plan;
}

/**
 * The digest of a referrer holding a valid signature by this plan's key over its statement's
 * claim (what the rule's witnesses add included), if one is listed: signet's own or another
 * writer's (cosign 3). Candidates whose annotations name another statement or key are skipped
 * unread (signet's own annotations); only verified content counts.
 */
async function findPresent(
  descriptors: readonly IndexDescriptor[],
  p: Plan,
  read: (d: string) => Promise<Checked>,
  subject: Descriptor,
  opts: BundleAttachOptions,
): Promise<string | undefined> {
  const { tlog, timestamp } = p.req.signer.witnesses;
  const needs: BundleNeeds = { tlog: Boolean(tlog), timestamp: Boolean(timestamp), ...opts.needs };
  let candidates = 0;
  for (const d of descriptors) {
    if (!mayHoldBundle(d)) continue;
    const a = d.annotations ?? {};
    const predicateType = p.req.predicateType ?? COSIGN_SIGN_PREDICATE;
    if (a[BUNDLE_PREDICATE_ANNOTATION] !== undefined && a[BUNDLE_PREDICATE_ANNOTATION] !== predicateType) continue;
    if (a[KEY_ANNOTATION] !== undefined && a[KEY_ANNOTATION] !== p.keyId) continue;
    if (++candidates > MAX_BUNDLE_CANDIDATES) break;
    const b = await read(d.digest);
    if (!b) continue;
    const v = await bundleMeets(b, { digest: subject.digest, annotations: p.req.annotations, predicateType }, p.req.signer.key, needs);
    if (v.signedBy && v.ok && (!p.req.sameClaim || (b.content.kind === 'dsse' && p.req.sameClaim(b.content.payload)))) return d.digest;
  }
  return undefined;
}
