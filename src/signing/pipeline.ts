/**
 * The signing pipeline for one push: registry -> rule (the signing plan) -> resolve what the
 * registry serves -> every manifest to sign (an index and its children) -> each of the plan's
 * formats writes what is missing, signing through the Signer chain (key -> Rekor / timestamp).
 * Used by the queue worker and by `signet sign` alike.
 *
 * Signing once across worker processes: each manifest's formats run under the signing lock of
 * (repository, digest) (lock.ts `signingLockName`), so one worker at a time reads what is there,
 * calls the key and logs to Rekor; a second job for the same digest (the same digest pushed
 * under two tags with `identity: repository`: the same payload) waits, then finds the first
 * one's signatures present and signs nothing. Measured before, 300 images under two tags with
 * 2 workers: 147 extra key calls and 147 extra Rekor entries, because the key call and the
 * upload happened before the storage lock (the legacy .sig lock, the referrers lock, which
 * still only guard the read-modify-write) and the signature memo is per process.
 * Why a lock rather than sharing signatures through Redis: the formats decide what is missing
 * (a present signature, an upgrade, a Rekor entry naming the certificate) by reading the
 * registry, and that read only settles the question when no other worker is signing the same
 * digest at that moment; a shared record of signatures would still need the same exclusion to
 * stop two workers from both calling the key, and would trust bytes from Redis. Different
 * digests still sign in parallel; KMS and Rekor round trips now hold the signing lock of their
 * own digest only. A job retried in another process after its signature was made (a .sig PUT
 * that failed) reuses that signature through Redis (shared-signatures.ts; Rekor then answers 409
 * with the same entry); in the same process the per-key memo (signature-memo.ts) does.
 */
import { SignetError } from '../errors.js';
import type { RuleMatcher } from '../config/rules.js';
import { attests, writeAttestations, type AttestationResult } from '../formats/attestation/index.js';
import { FORMATS, formatsFor } from '../formats/index.js';
import type { SignResult, Subject, WriteContext } from '../formats/types.js';
import type { SigningKey } from '../kms/signing-key.js';
import type { RegistryDirectory } from '../registry/directory.js';
import type { RegistryClient } from '../registry/client.js';
import { INDEX_TYPES, IMAGE_MANIFEST_TYPES } from '../registry/media-types.js';
import { isValidDigest, isValidRepository, isValidTag } from '../registry/reference.js';
import type { ImageIndex } from '../registry/schemas.js';
import { RekorClient } from '../transparency/rekor.js';
import type { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import { Semaphore } from '../util/semaphore.js';
import type { SignatureLimitMetrics } from './carry.js';
import { signingLockName, UNDER_SIGNING_LOCK, type DigestLock, type LockHeld } from './lock.js';
import { decideRule, planSigning, type FormatName, type SigningPlan } from './plan.js';
import type { RekorRuleConfig } from './rule-options.js';
import type { SharedSignatures } from './shared-signatures.js';
import { Signer, type Witnesses } from './signer.js';
import type { ScanSummary } from '../formats/attestation/statement.js';
import type { SignJobData } from '../queue/sign-queue.js';
import type { ScanCounts, ScanGate } from '../scan/gate.js';

export interface SignTarget {
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** The pusher the push's integration vouches for (src/config/rules.ts pusherPolicy); rule conditions are checked against it. */
  pusher?: string;
  /** A retried job: always read what is there before signing, whatever the history says. */
  retry?: boolean;
  /** The queued push this runs for: a scan gate (require.scan) remembers it, to decide it when the scan arrives. */
  job?: SignJobData;
}

/** What signet remembers of a digest (the status store): with no record, a signature is most likely new. */
export interface SigningHistory {
  /** Has signet recorded a signature by any key for this digest (written or found)? `repository` is host/repository. */
  hasRecord(repository: string, digest: string): Promise<boolean>;
}

export type SignReport =
  | { status: 'skipped'; reason: string; digest?: string; rule?: number; scan?: ScanCounts }
  /** A scan gate (require.scan) waits for the registry's scan of `digest` until `until` (epoch ms); nothing written yet. */
  | { status: 'waiting'; reason: string; digest: string; rule: number; until: number }
  | {
      status: 'signed';
      /** The pushed manifest (index or image). */
      digest: string;
      rule: number;
      identity: string;
      /** The formats the rule writes (legacy .sig, sigstore bundle referrer). */
      formats: FormatName[];
      /** The payload annotations, expanded for this push (absent when the rule has none). */
      annotations?: Record<string, string>;
      /** One entry per (manifest, key, format). */
      signatures: (SignResult & { digest: string })[];
      /** Rules with `attest: true`: one SLSA verification summary per (manifest, key), after the signatures. */
      attestations?: (AttestationResult & { digest: string })[];
      /** Rules with require.scan: the scan that passed the gate. */
      scan?: ScanCounts;
    };

export interface PipelineDeps {
  registries: RegistryDirectory;
  rules: RuleMatcher;
  keys: ReadonlyMap<string, SigningKey>;
  lock: DigestLock;
  /** Lets a new digest skip the .sig read before signing (one registry request less). */
  history?: SigningHistory;
  /** Where dropped .sig layers and refused writes are counted (carry.ts). */
  metrics?: SignatureLimitMetrics;
  /** The rules' timestamp authorities (clients for writing, chains for checking present signatures). */
  timestamps?: TimestampAuthorities;
  /** Signatures other workers made recently (a retry elsewhere reuses them: shared-signatures.ts). */
  signatures?: SharedSignatures;
  /** Decides rules with require.scan (src/scan/gate.ts); without it such a rule signs nothing (skipped). */
  scanGate?: Pick<ScanGate, 'check'>;
}

const MAX_CHILDREN = 256;
/**
 * How long a released signing lock tells the next holder "signed a moment ago": longer than a
 * worker takes from releasing it to recording the digest's status (milliseconds, or a Redis
 * blip); after that the status store answers.
 */
const SIGNED_MARK_MS = 5 * 60_000;
/** Index children read at once (each is a manifest of up to 4 MiB). */
const CHILD_READS = 8;

export class SigningPipeline {
  /** One Rekor client per distinct rule `rekor:` setting. */
  private readonly rekors = new Map<string, RekorClient>();

  constructor(private readonly deps: PipelineDeps) {}

  /** Close the Rekor clients' connections (registry clients and keys belong to the runtime). */
  async close(): Promise<void> {
    const all = [...this.rekors.values()];
    this.rekors.clear();
    await Promise.allSettled(all.map((r) => r.close()));
  }

  async sign(target: SignTarget): Promise<SignReport> {
    const { registries, rules } = this.deps;
    const known = registries.resolve(target.host);
    if (!known) {
      throw new SignetError('REGISTRY_NOT_CONFIGURED', `registry ${target.host} is not in registries: not contacted`);
    }
    const host = known.config.host;
    if (!isValidRepository(target.repository)) {
      throw new SignetError('INVALID_REFERENCE', `invalid repository name "${target.repository.slice(0, 200)}"`);
    }
    if (target.tag !== undefined && !isValidTag(target.tag)) throw new SignetError('INVALID_REFERENCE', 'invalid tag');
    if (target.digest !== undefined && !isValidDigest(target.digest)) throw new SignetError('INVALID_REFERENCE', 'invalid digest');
    const decided = decideRule(rules, host, target.repository, target.tag, { push: { pusher: target.pusher } });
    if ('skip' in decided) return { status: 'skipped', reason: decided.skip };

    const client = known.client;
    const manifest = await this.resolve(client, target);
    // the body as the registry client parsed it, checked against its media type's schema
    const document: Record<string, unknown> = manifest.document;
    if (document['subject']) {
      return { status: 'skipped', reason: 'manifest has a subject (an OCI referrer, e.g. a signature)', digest: manifest.digest };
    }
    if (!INDEX_TYPES.has(manifest.mediaType) && !IMAGE_MANIFEST_TYPES.has(manifest.mediaType)) {
      throw new SignetError('UNSUPPORTED_MEDIA_TYPE', `cannot sign manifest of type "${manifest.mediaType}"`);
    }

    // the scan gate: the registry's scan of the pushed manifest decides (or the push waits for it)
    let scanned: { summary: ScanSummary; scan: ScanCounts } | undefined;
    const scanCond = decided.rule.require?.scan;
    if (scanCond) {
      if (!this.deps.scanGate)
        return {
          status: 'skipped',
          reason: `rule ${decided.index}: require.scan cannot be checked here (no scan gate)`,
          digest: manifest.digest,
          rule: decided.index,
        };
      const job: SignJobData = target.job ?? {
        event: {
          integration: 'cli',
          host,
          repository: target.repository,
          ...(target.tag ? { tag: target.tag } : {}),
          digest: manifest.digest,
          receivedAt: new Date().toISOString(),
        },
        registry: host,
        requestId: 'cli',
      };
      const gate = await this.deps.scanGate.check({
        cond: scanCond,
        ruleIndex: decided.index,
        host,
        repository: target.repository,
        digest: manifest.digest,
        push: job,
      });
      if (gate.outcome === 'waiting')
        return { status: 'waiting', reason: `rule ${decided.index}: ${gate.reason}`, digest: manifest.digest, rule: decided.index, until: gate.until };
      if (gate.outcome === 'blocked')
        return { status: 'skipped', reason: `rule ${decided.index}: ${gate.reason}`, digest: manifest.digest, rule: decided.index, scan: gate.scan };
      scanned = { summary: gate.summary, scan: gate.scan };
    }

    // every manifest signed, as the registry serves it (an index's children read and hash-checked too)
    const served = new Map<string, Subject>([[manifest.digest, { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.body.length }]]);
    if (INDEX_TYPES.has(manifest.mediaType))
      for (const c of await this.children(client, target.repository, manifest.document as ImageIndex)) served.set(c.digest, c);
    const subjects = [...served.values()];
    const digests = [...served.keys()];

    const plan = planSigning(
      decided,
      { host, repository: target.repository, tag: target.tag, digest: manifest.digest, pusher: target.pusher, decidedAt: new Date(), scan: scanned?.summary },
      this.deps.keys,
    );
    const witnesses = this.witnessesFor(plan);
    const shared = this.deps.signatures;
    // A digest nobody has signed (no record, no retry, no recent holder of its lock) has no
    // signature in Redis to reuse: its signers keep theirs for a retry but do not look first
    // (one Redis round trip less per signature).
    const keepOnly: SharedSignatures | undefined = shared && { find: () => Promise.resolve(undefined), keep: (...a) => shared.keep(...a) };
    const signersFor = (fresh: boolean) => plan.keys.map((k) => new Signer(k, witnesses, fresh ? keepOnly : shared));
    const formats = formatsFor(plan.formats);
    const allKeys = [...this.deps.keys.values()];

    const signatures: (SignResult & { digest: string })[] = [];
    const attestations: (AttestationResult & { digest: string })[] = [];
    const repository = `${host}/${target.repository}`;
    await Promise.all(
      subjects.map((subject) =>
        // One worker at a time per (repository, digest) decides what is missing and signs it:
        // the key call and the Rekor entry happen once across processes (see the file comment).
        this.deps.lock.withLock(
          signingLockName(repository, subject.digest),
          async (held?: LockHeld) => {
            // with a witness the formats read what is there first anyway, so the history is not asked;
            // nor when another worker held this lock a moment ago (its status record may not be written yet)
            const witnessed = Boolean(witnesses.tlog || witnesses.timestamp);
            const expectNew =
              !target.retry && !witnessed && !held?.recent && this.deps.history ? !(await this.deps.history.hasRecord(repository, subject.digest)) : false;
            const ctx: WriteContext = {
              client,
              repository: target.repository,
              keys: allKeys,
              timestamps: this.deps.timestamps,
              // this digest's signing lock is held: the formats' storage locks would only repeat it
              lock: UNDER_SIGNING_LOCK,
              signers: signersFor(expectNew),
              expectNew,
              verifyWrite: known.config.verifyWrites,
              metrics: this.deps.metrics,
            };
            // in map order (legacy first, then the bundle): a verifier that finds a bundle referrer
            // and stops there (cosign v3's auto-detect) then sees a digest whose .sig is already complete
            for (const format of formats) {
              const results = await format.write(ctx, plan, subject);
              signatures.push(...results.map((r) => ({ ...r, digest: subject.digest })));
            }
            // the signed decision, once the signatures are there (same keys, same Signer chain)
            if (attests(plan)) attestations.push(...(await writeAttestations(ctx, plan, subject)).map((r) => ({ ...r, digest: subject.digest })));
          },
          { markMs: SIGNED_MARK_MS },
        ),
      ),
    );
    attestations.sort(
      (a, b) =>
        digests.indexOf(a.digest) - digests.indexOf(b.digest) || plan.keys.findIndex((k) => k.name === a.key) - plan.keys.findIndex((k) => k.name === b.key),
    );
    const order = Object.keys(FORMATS);
    signatures.sort((a, b) => digests.indexOf(a.digest) - digests.indexOf(b.digest) || order.indexOf(a.format) - order.indexOf(b.format));
    return {
      status: 'signed',
      digest: manifest.digest,
      rule: plan.ruleIndex,
      identity: plan.identity!,
      formats: plan.formats,
      ...(plan.annotations ? { annotations: plan.annotations } : {}),
      signatures,
      ...(attests(plan) ? { attestations } : {}),
      ...(scanned ? { scan: scanned.scan } : {}),
    };
  }

  /** The witnesses the plan's rule names, with one client per distinct setting. */
  private witnessesFor(plan: SigningPlan): Witnesses {
    const { rekor, timestamp } = plan.rule;
    const w: Witnesses = {};
    if (rekor) w.tlog = { rekor: this.rekorFor(rekor), required: rekor.required };
    if (timestamp) {
      if (!this.deps.timestamps) throw new SignetError('CONFIG_INVALID', `rule ${plan.ruleIndex} names a timestamp authority but none is loaded`);
      w.timestamp = { tsa: this.deps.timestamps.clientFor(timestamp), required: timestamp.required };
    }
    return w;
  }

  private rekorFor(cfg: RekorRuleConfig): RekorClient {
    const id = JSON.stringify([cfg.url, cfg.timeoutMs, cfg.publicKey ?? '']);
    let c = this.rekors.get(id);
    if (!c) {
      c = new RekorClient({ url: cfg.url, timeoutMs: cfg.timeoutMs, ...(cfg.publicKey ? { publicKeyPem: cfg.publicKey } : {}) });
      this.rekors.set(id, c);
    }
    return c;
  }

  /**
   * What the registry serves for this push. By digest: fetched and hash-checked; when a tag is
   * given too, the tag must still point at it. By tag only: the digest is computed from the bytes.
   */
  private async resolve(client: RegistryClient, t: SignTarget) {
    const ref = t.digest ?? t.tag;
    if (!ref) throw new SignetError('INVALID_REFERENCE', 'a push needs a tag or a digest');
    if (t.digest && t.tag) return this.resolveTagAndDigest(client, t.repository, t.tag, t.digest);
    const m = await soon(() => client.getManifest(t.repository, ref));
    if (!m) {
      // A tag may not be visible yet when the webhook comes first (retried); a digest that is gone stays gone.
      throw new SignetError(
        t.digest ? 'MANIFEST_NOT_FOUND' : 'TAG_NOT_FOUND',
        `${client.host}/${t.repository}${t.digest ? '@' : ':'}${ref} is not in the registry`,
      );
    }
    return m;
  }

  /**
   * A push that names both: the identity we sign names the tag, so the tag must serve the pushed
   * digest. One GET by tag proves it and gives the bytes (their sha256 is checked against the
   * digest). distribution notifies before it links the tag, so for about a second a missing tag,
   * or the tag's previous digest (a re-pushed `latest`), is waited out before concluding.
   */
  private async resolveTagAndDigest(client: RegistryClient, repository: string, tag: string, digest: string) {
    let seen: string | undefined;
    for (const wait of [0, 25, 75, 200, 700]) {
      if (wait) await new Promise((r) => setTimeout(r, wait));
      const byTag = await client.getManifest(repository, tag);
      if (byTag?.digest === digest) return byTag;
      seen = byTag?.digest;
    }
    if (seen) {
      throw new SignetError('TAG_MOVED', `tag ${tag} now points to ${seen}, not the pushed ${digest}; the newer push is signed on its own`);
    }
    const byDigest = await client.getManifest(repository, digest);
    if (!byDigest) throw new SignetError('MANIFEST_NOT_FOUND', `${client.host}/${repository}@${digest} is not in the registry`);
    throw new SignetError('TAG_NOT_FOUND', `tag ${tag} does not exist (yet) in ${client.host}/${repository}`);
  }

  /**
   * Child manifests of an index, each read by digest like the index itself (getManifest hashes
   * the bytes and refuses other content): signet signs only digests the registry serves. A HEAD
   * would take the registry's word for it. Their descriptors are the bundle subjects.
   */
  private async children(client: RegistryClient, repository: string, index: ImageIndex): Promise<Subject[]> {
    const list = index.manifests.map((m) => m.digest);
    if (list.length > MAX_CHILDREN) throw new SignetError('UNSUPPORTED_MEDIA_TYPE', `index has ${list.length} children (max ${MAX_CHILDREN})`);
    const unique = [...new Set(list)];
    for (const d of unique) if (!isValidDigest(d)) throw new SignetError('UNSUPPORTED_MEDIA_TYPE', `index lists an invalid child digest`);
    const reads = new Semaphore(CHILD_READS);
    return Promise.all(
      unique.map((d) =>
        reads.run(async (): Promise<Subject> => {
          const m = await client.getManifest(repository, d);
          if (!m) throw new SignetError('MANIFEST_NOT_FOUND', `index child ${d} is not served by ${client.host}/${repository} (GET by digest)`);
          return { mediaType: m.mediaType, digest: d, size: m.body.length };
        }),
      ),
    );
  }
}

/** Retries a lookup that found nothing a few times within ~1 s (webhooks can precede visibility). */
async function soon<T>(lookup: () => Promise<T | undefined>, delaysMs: readonly number[] = [25, 75, 200, 700]): Promise<T | undefined> {
  let v = await lookup();
  for (const d of delaysMs) {
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, d));
    v = await lookup();
  }
  return v;
}
