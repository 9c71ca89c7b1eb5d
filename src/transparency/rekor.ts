/**
 * A Rekor v1 client (public Rekor or a self-hosted instance): create an entry, fetch one by UUID.
 * Only the configured URL is contacted: a 409's Location must point back into it, and redirects
 * are not followed. 429, 5xx, network errors and timeouts become retryable REKOR_UNAVAILABLE
 * errors (retried a few times in-process, then by the job queue like any other dependency);
 * anything else Rekor refuses, or answers that signet cannot use, is REKOR_REJECTED.
 *
 * Wire format: sigstore/rekor openapi.yaml createLogEntry / getLogEntryByUUID. A created entry is
 * `201 {"<uuid>": LogEntry}`; an identical entry that already exists (RSA PKCS#1 v1.5 is
 * deterministic, so re-signing the same payload always collides) is `409` with `Location:` the
 * existing entry, which is then fetched (sigstore/cosign#3356).
 */
import { createHash, createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { ServiceClient, type ServiceReply } from '../edge/service-client.js';
import { z } from 'zod';
import { READ_LIMITS } from '../edge/read.js';
import { checkShape, parseShape } from '../edge/upstream-json.js';
import { SignetError } from '../errors.js';
import { upstreamText } from '../log.js';
import { canonicalize } from './jcs.js';

export interface RekorClientOptions {
  /** Base URL of the Rekor v1 API, e.g. https://rekor.sigstore.dev (a path prefix is kept). */
  url: string;
  /** Overall deadline of each request (connect, headers and the whole body). Default 10 s. */
  timeoutMs?: number;
  /** Attempts per call for retryable failures before the error is handed to the job queue. Default 3. */
  attempts?: number;
  /** Delays between those attempts (ms); jittered. Default [250, 1000]. */
  retryDelaysMs?: readonly number[];
  /** Rekor's public key (PEM, ECDSA). When set, every SET and logID is checked against it. */
  publicKeyPem?: string;
  dispatcher?: Dispatcher;
}

export interface InclusionProof {
  logIndex: number;
  /** hex */
  rootHash: string;
  treeSize: number;
  /** hex */
  hashes: string[];
  /** signed note */
  checkpoint: string;
}

export interface RekorLogEntry {
  uuid: string;
  /** base64 of the canonical entry body, exactly as Rekor serves it */
  body: string;
  integratedTime: number;
  logIndex: number;
  /** hex sha256 of the log's DER public key */
  logID: string;
  /** base64 DER ECDSA signature over JCS({body, integratedTime, logIndex, logID}) */
  signedEntryTimestamp: string;
  inclusionProof?: InclusionProof;
  /** true when Rekor answered 409 and this is the entry that was already there */
  existing: boolean;
}

/** Retry-After longer than this is not waited for in-process: the job queue waits instead. */
/** Largest Rekor answer read (an entry is a few KiB; its inclusion proof grows with log2 of the tree). */
const MAX_BODY_BYTES = READ_LIMITS.json;
const UUID_RE = /^[0-9a-f]{64}(?:[0-9a-f]{16})?$/;

const isBase64 = (s: string) => /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;
const base64 = z.string().refine(isBase64, 'not base64');
const hex = z.string().regex(/^[0-9a-f]*$/i, 'not hex');

/** One LogEntry of createLogEntry / getLogEntryByUUID (sigstore/rekor openapi.yaml). */
const logEntrySchema = z.object({
  body: base64,
  integratedTime: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  logIndex: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  logID: z.string().regex(/^[0-9a-f]{64}$/, 'not 64 hex digits'),
  verification: z
    .object(
      {
        signedEntryTimestamp: base64.min(1, 'empty').optional(),
        inclusionProof: z.unknown().optional(),
      },
      'not an object',
    )
    .optional(),
});

/** The inclusion proof, when Rekor sent a usable one (bundleTlogEntry refuses an entry without). */
const inclusionProofSchema = z.object({
  logIndex: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  rootHash: hex,
  treeSize: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  hashes: z.array(hex).max(64),
  checkpoint: z.string(),
});

/** Rekor's error body: `{"code": n, "message": "..."}`. */
const errorSchema = z.object({ message: z.string() });

export class RekorClient {
  readonly url: string;
  private readonly base: URL;
  /** The URL's path prefix without a trailing slash ('' for a bare host). */
  private readonly basePath: string;
  private readonly publicKey: KeyObject | undefined;
  private readonly logId: string | undefined;
  private readonly http: ServiceClient;

  constructor(opts: RekorClientOptions) {
    let base: URL;
    try {
      base = new URL(opts.url);
    } catch {
      throw new SignetError('CONFIG_INVALID', `rekor url "${opts.url}" is not a URL`);
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:') {
      throw new SignetError('CONFIG_INVALID', `rekor url must be http(s), not ${base.protocol}`);
    }
    base.search = '';
    base.hash = '';
    this.base = base;
    this.basePath = base.pathname.replace(/\/+$/, '');
    this.url = `${base.origin}${this.basePath}`;
    if (opts.publicKeyPem) {
      this.publicKey = rekorPublicKey(opts.publicKeyPem);
      this.logId = logIdOf(this.publicKey);
    }
    this.http = new ServiceClient({
      name: `rekor ${this.url}`,
      unavailable: 'REKOR_UNAVAILABLE',
      rejected: 'REKOR_REJECTED',
      timeoutMs: opts.timeoutMs ?? 10_000,
      maxBodyBytes: MAX_BODY_BYTES,
      attempts: opts.attempts,
      retryDelaysMs: opts.retryDelaysMs,
      dispatcher: opts.dispatcher,
      detail,
    });
  }

  /** Requests sent (for tests and metrics). */
  get requests(): number {
    return this.http.requests;
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  /**
   * POST a proposed entry (hashedrekord, dsse, ...). Returns the new entry, or on 409 the entry
   * that already exists (`existing: true`).
   */
  async createEntry(proposed: unknown): Promise<RekorLogEntry> {
    const body = Buffer.from(JSON.stringify(proposed));
    const r = await this.http.withRetry(() => this.send('POST', this.path('/api/v1/log/entries'), body));
    if (r.status === 201 || r.status === 200) return this.parseEntry(r.body, undefined, false);
    if (r.status === 409) {
      const uuid = this.existingUuid(r);
      return this.getEntry(uuid, true);
    }
    throw this.refused('create entry', r);
  }

  /** GET /api/v1/log/entries/{uuid}. */
  async getEntry(uuid: string, existing = false): Promise<RekorLogEntry> {
    if (!UUID_RE.test(uuid)) throw new SignetError('REKOR_REJECTED', `rekor ${this.url}: invalid entry UUID "${uuid.slice(0, 100)}"`);
    const r = await this.http.withRetry(async () => {
      const res = await this.send('GET', this.path(`/api/v1/log/entries/${uuid}`));
      // Rekor said the entry exists: a 404 now can only be replication lag. Retry it.
      if (res.status === 404) throw new SignetError('REKOR_UNAVAILABLE', `rekor ${this.url}: entry ${uuid} not found (yet)`, { status: 404 });
      return res;
    });
    if (r.status !== 200) throw this.refused(`get entry ${uuid}`, r);
    return this.parseEntry(r.body, uuid, existing);
  }

  // ---- internals ---------------------------------------------------------------------------

  private path(p: string): string {
    return `${this.basePath}${p}`;
  }

  /** The UUID of the existing entry a 409 points at (Location header, else the message). */
  private existingUuid(r: Reply): string {
    const location = header(r.headers['location']);
    if (location) {
      let u: URL;
      try {
        u = new URL(location, this.base);
      } catch {
        throw new SignetError('REKOR_REJECTED', `rekor ${this.url}: 409 with an unusable Location header`);
      }
      const prefix = this.path('/api/v1/log/entries/');
      if (u.origin !== this.base.origin || !u.pathname.startsWith(prefix)) {
        // Never follow Rekor somewhere else: only the configured URL is contacted.
        throw new SignetError('REKOR_REJECTED', `rekor ${this.url}: 409 points outside the configured Rekor (${u.origin}${u.pathname.slice(0, 100)})`);
      }
      return u.pathname.slice(prefix.length);
    }
    const m = /\b([0-9a-f]{80}|[0-9a-f]{64})\b/.exec(r.body.toString('utf8'));
    if (m) return m[1]!;
    throw new SignetError('REKOR_REJECTED', `rekor ${this.url}: 409 without a Location or UUID of the existing entry`);
  }

  private parseEntry(raw: Buffer, wantUuid: string | undefined, existing: boolean): RekorLogEntry {
    const bad = (why: string): never => {
      throw new SignetError('REKOR_REJECTED', `rekor ${this.url}: unusable log entry: ${why}`);
    };
    const doc = parseShape(raw, z.record(z.string(), z.unknown()));
    if (!doc.ok) return bad(doc.why === 'not JSON' ? 'not JSON' : 'not an object');
    const keys = Object.keys(doc.value);
    if (keys.length !== 1) bad(`expected one entry, got ${keys.length}`);
    const uuid = keys[0]!;
    if (!UUID_RE.test(uuid)) bad('invalid UUID');
    // sharded logs may prefix the tree ID; accept either form of the UUID we asked for
    if (wantUuid && uuid !== wantUuid && !uuid.endsWith(wantUuid) && !wantUuid.endsWith(uuid)) bad(`asked for ${wantUuid}, got ${uuid}`);
    const checked = checkShape(doc.value[uuid], logEntrySchema);
    if (!checked.ok) return bad(checked.why);
    const e = checked.value;
    const set = e.verification?.signedEntryTimestamp;
    if (!set) return bad('no signedEntryTimestamp (a Rekor v1 API is needed: v2 logs give no SET)');
    const entry: RekorLogEntry = {
      uuid,
      body: e.body,
      integratedTime: e.integratedTime,
      logIndex: e.logIndex,
      logID: e.logID,
      signedEntryTimestamp: set,
      existing,
    };
    const proof = checkShape(e.verification?.inclusionProof, inclusionProofSchema);
    if (proof.ok) {
      const p = proof.value;
      entry.inclusionProof = { ...p, rootHash: p.rootHash.toLowerCase(), hashes: p.hashes.map((h) => h.toLowerCase()) };
    }
    if (this.publicKey) {
      if (entry.logID !== this.logId) bad(`logID ${entry.logID} is not the configured Rekor key's (${this.logId})`);
      if (!verifySET(entry, this.publicKey)) bad('signedEntryTimestamp does not verify with the configured Rekor public key');
    }
    return entry;
  }

  private refused(what: string, r: Reply): SignetError {
    return new SignetError('REKOR_REJECTED', `rekor ${this.url}: ${what} answered HTTP ${r.status}${detail(r.body)}`, { status: r.status });
  }

  /** One HTTP exchange; throws retryable errors for 429/5xx/network/timeouts, returns the rest. */
  private async send(method: 'GET' | 'POST', path: string, body?: Buffer): Promise<Reply> {
    const url = new URL(`${this.base.origin}${path}`);
    if (url.origin !== this.base.origin) throw new SignetError('INTERNAL', 'rekor request outside the configured URL');
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body) headers['content-type'] = 'application/json';
    return this.http.send(url, { method, headers, body });
  }
}

type Reply = ServiceReply;

/** Parse and check a Rekor public key: cosign and containers/image accept only ECDSA for the SET. */
export function rekorPublicKey(pem: string): KeyObject {
  let k: KeyObject;
  try {
    k = createPublicKey(pem);
  } catch {
    throw new SignetError('CONFIG_INVALID', 'rekor publicKey is not a PEM public key');
  }
  if (k.asymmetricKeyType !== 'ec') {
    throw new SignetError('CONFIG_INVALID', `rekor publicKey must be ECDSA (cosign and containers/image refuse ${k.asymmetricKeyType} SETs)`);
  }
  return k;
}

/** Rekor's logID: hex sha256 of the DER SubjectPublicKeyInfo. */
export function logIdOf(key: KeyObject): string {
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** The SET check cosign (VerifySET) and containers/image (VerifyRekorSET) make. */
export function verifySET(e: Pick<RekorLogEntry, 'body' | 'integratedTime' | 'logIndex' | 'logID' | 'signedEntryTimestamp'>, key: KeyObject): boolean {
  const signed = canonicalize({ body: e.body, integratedTime: e.integratedTime, logIndex: e.logIndex, logID: e.logID });
  try {
    return verifySignature('sha256', Buffer.from(signed), key, Buffer.from(e.signedEntryTimestamp, 'base64'));
  } catch {
    return false;
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Rekor's own error message, redacted and bounded, for the error message. */
function detail(body: Buffer): string {
  if (!body.length) return '';
  const j = parseShape(body, errorSchema);
  return j.ok && j.value.message ? `: ${upstreamText(j.value.message)}` : '';
}
