/**
 * The Notation format's writer: a Notary Project JWS signature (jws.ts) over the manifest's
 * descriptor for each of the plan's keys, stored as an OCI 1.1 referrer the way `notation sign`
 * stores it (notation-go registry PushSignature through oras PackManifest 1.1): a manifest with
 * artifactType `application/vnd.cncf.notary.signature`, the empty config, one layer (the
 * envelope, `application/jose+json`), `subject` the signed manifest and the annotations
 * `io.cncf.notary.x509chain.thumbprint#S256` and `org.opencontainers.image.created`; pushed by
 * digest and listed through the referrers API or the shared fallback index (src/formats/referrers/,
 * under the same per-digest lock as the bundle format, so neither loses the other's entries).
 *
 * Signing: RSA keys sign RSASSA-PSS SHA-256 (`rsaPadding: 'pss'`; a backend that answers with
 * anything else is caught by verifying the signature before it is stored), ECDSA keys return DER
 * which JWS wants as raw r||s. Under a rule with a timestamp authority the Signer's witness stamps
 * the signature bytes (what notation's countersignature covers: notation-core-go timestampJWS),
 * and the TimeStampToken goes into `io.cncf.notary.timestampSignature`. Notation has no
 * transparency log: a rule's Rekor setting does not apply to this format.
 *
 * Dedup: a listed Notation referrer whose envelope verifies with the key and its certificate over
 * this manifest (check.ts) counts as present; the thumbprint annotation only picks candidates.
 */
import { constants, verify as cryptoVerify } from 'node:crypto';
import { SignetError } from '../../errors.js';
import { derEcdsaToRaw } from '../../kms/ecdsa.js';
import { OCI_MANIFEST } from '../../registry/media-types.js';
import { CREATED_ANNOTATION, EMPTY_CONFIG, OCI_EMPTY } from '../../signing/bundle.js';
import type { SigningPlan } from '../../signing/plan.js';
import type { Signer } from '../../signing/signer.js';
import { sha256Digest } from '../../util/digest.js';
import type { IndexDescriptor } from '../../signing/registry-ops.js';
import type { SignResult, Subject, WriteContext } from '../types.js';
import { listReferrers, pushReferrers, referrersLockKey } from '../referrers/index.js';
import { notationMeets, type NotationNeeds } from './check.js';
import {
  algFor,
  b64url,
  buildEnvelope,
  certificateChainDers,
  JWS_ENVELOPE,
  notationPayload,
  NOTATION_SIGNATURE,
  protectedHeader,
  signingInput,
  THUMBPRINT_ANNOTATION,
  thumbprints,
  timestampToken,
  type ParsedEnvelope,
} from './jws.js';
import { notationNeedsOf } from './read.js';
import { isNotationReferrer, mayBeByLeaf, readEnvelope } from './referrers.js';

/** Referrers whose annotations fit a key, read and verified per listing (each costs two GETs). */
const MAX_CANDIDATES = 16;

interface Job {
  signer: Signer;
  result: SignResult;
  manifest?: Buffer;
  envelope?: Buffer;
  annotations?: Record<string, string>;
  done?: boolean;
}

type Reader = (digest: string) => Promise<ParsedEnvelope | undefined>;

export async function writeNotation(
  ctx: WriteContext,
  plan: SigningPlan,
  subject: Subject,
  opts: { now?: () => Date; apiReadbackMs?: number } = {},
): Promise<SignResult[]> {
  const { client, repository } = ctx;
  const needs = notationNeedsOf(plan, ctx);
  const cache = new Map<string, Promise<ParsedEnvelope | undefined>>();
  const read: Reader = (digest) => {
    let p = cache.get(digest);
    if (!p) cache.set(digest, (p = readEnvelope(client, repository, digest)));
    return p;
  };
  const want = { subject, annotations: plan.annotations };

  const listing = ctx.expectNew ? { api: false, descriptors: [] as IndexDescriptor[] } : await listReferrers(client, repository, subject.digest);
  const jobs: Job[] = [];
  for (const signer of ctx.signers) {
    const job: Job = { signer, result: { key: signer.key.name, outcome: 'signed', payloadDigest: '', format: 'notation' } };
    jobs.push(job);
    const found = await findPresent(listing.descriptors, signer, read, want, needs);
    if (found) {
      markPresent(job, found);
      continue;
    }
    await signOne(job, subject, plan, opts.now?.() ?? new Date());
  }
  const work = jobs.filter((j) => j.manifest);
  if (work.length === 0) return jobs.map((j) => j.result);

  return ctx.lock.withLock(referrersLockKey(client, repository, subject.digest), async () => {
    // another writer may have added an equivalent signature since we looked
    const now = await listReferrers(client, repository, subject.digest);
    for (const j of work) {
      const found = await findPresent(now.descriptors, j.signer, read, want, needs);
      if (found) {
        j.done = true;
        delete j.result.timestamp;
        markPresent(j, found);
      }
    }
    const todo = work.filter((j) => !j.done);
    if (todo.length === 0) return jobs.map((j) => j.result);
    // a fresh signature each (its signing time and signature are new)
    const items = todo.map((j) => ({ layer: j.envelope!, manifest: j.manifest!, annotations: j.annotations! }));
    await pushReferrers(client, repository, subject.digest, now, NOTATION_SIGNATURE, items, {
      verifyWrite: ctx.verifyWrite,
      apiReadbackMs: opts.apiReadbackMs,
      what: 'Notation signature',
    });
    return jobs.map((j) => j.result);
  });
}

function markPresent(job: Job, found: { digest: string; env: ParsedEnvelope }): void {
  job.result.outcome = 'present';
  job.result.referrer = found.digest;
  job.result.payloadDigest = sha256Digest(signingInput(found.env.protectedB64, found.env.payloadB64));
  if (job.signer.witnesses.timestamp) job.result.timestamp = { status: 'present' };
}

async function signOne(job: Job, subject: Subject, plan: SigningPlan, now: Date): Promise<void> {
  const { signer } = job;
  const key = signer.key;
  if (!key.certificate) {
    throw new SignetError('KEY_INVALID', `key "${key.name}" has no certificate: the notation format needs keys[].certificate (and chain)`);
  }
  const alg = algFor(key.publicKey, key.name);
  const protectedB64 = b64url(protectedHeader({ alg, signingTime: now }));
  const payloadB64 = b64url(notationPayload(subject, plan.annotations));
  const input = signingInput(protectedB64, payloadB64);
  job.result.payloadDigest = sha256Digest(input);

  let signature: Buffer;
  if (alg === 'PS256') {
    signature = await signer.sign(input, { rsaPadding: 'pss' });
    const ok = cryptoVerify(
      'sha256',
      input,
      { key: key.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
      signature,
    );
    if (!ok) throw new SignetError('KEY_INVALID', `key "${key.name}": the backend's signature is not RSASSA-PSS (Notation needs PSS)`);
  } else {
    signature = derEcdsaToRaw(await signer.sign(input), 32);
  }

  const w = await signer.witness(signature, undefined);
  let token: Buffer | undefined;
  if (w.timestamp) {
    job.result.timestamp = w.timestamp.status;
    if (w.timestamp.response) token = timestampToken(w.timestamp.response);
  }
  const x5c = certificateChainDers(key.certificate);
  job.envelope = buildEnvelope({ protectedB64, payloadB64, signature, x5c, timestampToken: token });
  job.annotations = {
    [THUMBPRINT_ANNOTATION]: thumbprints(x5c),
    [CREATED_ANNOTATION]: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  job.manifest = notationManifest(job.envelope, subject, job.annotations);
  job.result.referrer = sha256Digest(job.manifest);
}

/** The signature manifest (oras PackManifest 1.1 layout, as notation pushes it). */
export function notationManifest(envelope: Buffer, subject: Subject, annotations: Readonly<Record<string, string>>): Buffer {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(annotations).sort()) sorted[k] = annotations[k]!;
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: NOTATION_SIGNATURE,
      config: { mediaType: OCI_EMPTY, digest: sha256Digest(EMPTY_CONFIG), size: EMPTY_CONFIG.length },
      layers: [{ mediaType: JWS_ENVELOPE, digest: sha256Digest(envelope), size: envelope.length }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations: sorted,
    }),
  );
}

async function findPresent(
  descriptors: readonly IndexDescriptor[],
  signer: Signer,
  read: Reader,
  want: Parameters<typeof notationMeets>[1],
  needs: NotationNeeds,
): Promise<{ digest: string; env: ParsedEnvelope } | undefined> {
  let candidates = 0;
  for (const d of descriptors) {
    if (!isNotationReferrer(d) || !mayBeByLeaf(d, signer.key.certificate?.certificate)) continue;
    if (++candidates > MAX_CANDIDATES) break;
    const env = await read(d.digest);
    if (!env) continue;
    const v = notationMeets(env, want, signer.key, needs);
    if (v.signedBy && v.ok) return { digest: d.digest, env };
  }
  return undefined;
}
