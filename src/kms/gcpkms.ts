/**
 * The `gcpkms` key provider: an asymmetric signing key version in Google Cloud KMS, used through
 * `@google-cloud/kms` 5.x (the last major for Node 20).
 *
 * - The key VERSION is pinned (`cryptoKeyVersion: projects/P/locations/L/keyRings/R/cryptoKeys/K/
 *   cryptoKeyVersions/V`, or `ref: gcpkms://projects/.../cryptoKeyVersions/V`), so the public key
 *   exported at startup is the one every signature verifies with. (sigstore's client also takes a
 *   reference without a version and then signs with the newest enabled version; signet refuses
 *   that, because a rotation would silently change the signing key under a running service.)
 * - Startup: GetPublicKey once; the response's `pemCrc32c` and `name` are checked; the version's
 *   algorithm must be RSA_SIGN_PKCS1_{2048,3072,4096}_SHA256, RSA_SIGN_PSS_{2048,3072,4096}_SHA256
 *   or EC_SIGN_P256_SHA256, and the PEM must match it. SHA-512, raw-PKCS#1, P-384, secp256k1,
 *   Ed25519, decrypt keys etc. are refused with KEY_UNSUPPORTED.
 * - Padding: in Cloud KMS it is a property of the key version's algorithm, not of the call. An
 *   RSA_SIGN_PKCS1_* version signs PKCS#1 v1.5 only (cosign formats), an RSA_SIGN_PSS_* version
 *   RSASSA-PSS only (salt = digest length, 32 bytes: Notation). `paddings()` reports the one the
 *   version has, so the runtime refuses at startup a rule whose formats need the other one
 *   (checkPaddings in paddings.ts); `sign` with the other padding throws KEY_SIGN_FAILED naming
 *   the key and its algorithm, without calling Cloud KMS.
 * - `sign(digest)`: exactly one AsymmetricSign call with `digest.sha256` and `digestCrc32c`;
 *   `verifiedDigestCrc32c`, the signature's CRC32C and the returned `name` are checked (Google's
 *   data-integrity guidance, as sigstore's GCP signer does). Cloud KMS returns RSA PKCS#1 v1.5 and
 *   DER ECDSA signatures, so nothing is converted.
 * - The SDK's own retries are OFF (`retry: null`) and each call has a deadline (`timeoutSeconds`):
 *   the queue's backoff is the one retry policy.
 * - Credentials: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, workload
 *   identity, the metadata server, gcloud's ADC file), or `keyFilename` (a service-account or
 *   external-account JSON file). `endpoint` / `transport` / `insecureEndpoint` point the client at
 *   another endpoint (a private/regional endpoint, or a local stand-in in tests).
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { access, constants as fsConstants } from 'node:fs/promises';
import path from 'node:path';
import type { protos } from '@google-cloud/kms';
import type { ClientOptions } from 'google-gax';
import { z } from 'zod';
import { SignetError, type ErrorCode } from '../errors.js';
import { assertSha256Digest } from './digest-arg.js';
import { withDeadline } from '../edge/deadline.js';
import { MAX_RETRY_AFTER_SECONDS, parseRetryAfter } from '../edge/retry-after.js';
import { parseShape } from '../edge/upstream-json.js';
import { upstreamText } from '../log.js';
import { crc32c } from './crc32c.js';
import { defineKeyProvider, type KeyProviderContext } from './define.js';
import { derEcdsaToRaw } from './ecdsa.js';
import { verifyPssDigest } from './pss.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type KeyProvider, type RsaPadding, type SignOptions } from './types.js';

const VERSION_NAME = /^projects\/[^/\s]+\/locations\/[^/\s]+\/keyRings\/[^/\s]+\/cryptoKeys\/[^/\s]+\/cryptoKeyVersions\/[^/\s]+$/;
const VERSION_FORMAT = 'projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY/cryptoKeyVersions/VERSION';

export const gcpKmsKeySchema = z
  .object({
    name: z.string().min(1),
    provider: z.literal('gcpkms'),
    /** The full resource name of the key version. */
    cryptoKeyVersion: z.string().regex(VERSION_NAME, `must be ${VERSION_FORMAT}`),
    /** Service-account (or external-account) JSON; relative to the config file. Default: ADC. */
    keyFilename: z.string().min(1).optional(),
    /** API endpoint `host[:port]` (default cloudkms.googleapis.com:443), e.g. a regional endpoint. */
    endpoint: z
      .string()
      .regex(/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/, 'must be host or host:port (no scheme)')
      .optional(),
    /** `grpc` (the SDK's default) or `rest` (HTTP/1.1 + JSON, e.g. through HTTP-only proxies). */
    transport: z.enum(['grpc', 'rest']).default('grpc'),
    /** TEST/DEV ONLY: plaintext to `endpoint` (no TLS; on gRPC no credentials are sent at all). */
    insecureEndpoint: z.boolean().optional(),
    /** Deadline per KMS call, seconds. */
    timeoutSeconds: z.number().positive().max(600).default(30),
  })
  .strict()
  .refine((c) => !c.insecureEndpoint || c.endpoint !== undefined, {
    message: 'insecureEndpoint needs an endpoint',
    path: ['insecureEndpoint'],
  });
export type GcpKmsKeyConfig = z.infer<typeof gcpKmsKeySchema>;

/**
 * The SDK (and google-gax, which it loads anyway), loaded on first use so that importing this
 * module (config validation) stays cheap.
 */
async function loadSdk(): Promise<{ kms: typeof import('@google-cloud/kms'); gax: typeof import('google-gax') }> {
  const [kms, gax] = await Promise.all([import('@google-cloud/kms'), import('google-gax')]);
  return { kms, gax };
}

/**
 * Algorithms signet signs with: PKCS#1 v1.5 RSA and ECDSA P-256 (what cosign's verifiers accept),
 * and RSASSA-PSS RSA (what Notation's `notary.x509` needs; such a key cannot sign cosign formats).
 */
const SUPPORTED: Record<string, { algorithm: KeyAlgorithm; keyType: 'rsa' | 'ec'; bits: number; paddings: readonly RsaPadding[] }> = {
  RSA_SIGN_PKCS1_2048_SHA256: { algorithm: 'rsa-2048', keyType: 'rsa', bits: 2048, paddings: ['pkcs1v15'] },
  RSA_SIGN_PKCS1_3072_SHA256: { algorithm: 'rsa-2048', keyType: 'rsa', bits: 3072, paddings: ['pkcs1v15'] },
  RSA_SIGN_PKCS1_4096_SHA256: { algorithm: 'rsa-2048', keyType: 'rsa', bits: 4096, paddings: ['pkcs1v15'] },
  RSA_SIGN_PSS_2048_SHA256: { algorithm: 'rsa-2048', keyType: 'rsa', bits: 2048, paddings: ['pss'] },
  RSA_SIGN_PSS_3072_SHA256: { algorithm: 'rsa-2048', keyType: 'rsa', bits: 3072, paddings: ['pss'] },
  RSA_SIGN_PSS_4096_SHA256: { algorithm: 'rsa-2048', keyType: 'rsa', bits: 4096, paddings: ['pss'] },
  EC_SIGN_P256_SHA256: { algorithm: 'ecdsa-p256', keyType: 'ec', bits: 256, paddings: BOTH_PADDINGS },
};

const PADDING_NAME: Record<RsaPadding, string> = { pkcs1v15: 'PKCS#1 v1.5', pss: 'RSASSA-PSS' };

function whyUnsupported(alg: string): string {
  if (alg.startsWith('RSA_SIGN_RAW_PKCS1')) return 'raw PKCS#1 keys sign without a DigestInfo; create an RSA_SIGN_PKCS1_2048_SHA256 version';
  if (alg.endsWith('_SHA512') || alg.endsWith('_SHA384')) return 'signet signs SHA-256 digests; create a *_SHA256 version';
  if (alg.startsWith('RSA_DECRYPT') || alg.startsWith('GOOGLE_SYMMETRIC') || alg.startsWith('HMAC') || alg.startsWith('AES') || alg.startsWith('EXTERNAL'))
    return 'not an asymmetric signing key';
  return 'only RSA_SIGN_PKCS1_2048_SHA256, RSA_SIGN_PSS_2048_SHA256 (3072/4096 also accepted) and EC_SIGN_P256_SHA256 are supported';
}

/**
 * gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html), the values of
 * google-gax's `grpc.status`; spelled out so that classifying an error needs no SDK.
 */
const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** gRPC status names by number (0..16). */
const GRPC_NAMES = Object.fromEntries(Object.entries(GRPC_STATUS).map(([k, v]) => [v, k])) as Record<number, string>;

export interface GcpKmsKeyProvider extends KeyProvider {
  readonly algorithm: KeyAlgorithm;
  /** The Cloud KMS algorithm name, e.g. RSA_SIGN_PKCS1_2048_SHA256. */
  readonly kmsAlgorithm: string;
  readonly keyBits: number;
  /** Close the client's channel (tests, shutdown). */
  close(): Promise<void>;
}

type Op = 'GetPublicKey' | 'AsymmetricSign';

function parseEndpoint(endpoint: string): { host: string; port?: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(endpoint);
  if (!m) throw new SignetError('KEY_INVALID', `bad endpoint ${endpoint}`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  return m[2] ? { host, port: Number(m[2]) } : { host };
}

/** Numbers that may come as number, string or Long. */
function toNumber(v: unknown): number | undefined {
  if (v === null || v === undefined) return undefined;
  const n = Number(typeof v === 'object' ? String(v) : v);
  return Number.isFinite(n) ? n : undefined;
}

function toBuffer(v: Uint8Array | string | null | undefined): Buffer | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** `algorithms` is the SDK's CryptoKeyVersionAlgorithm enum (number -> name). */
function algorithmName(v: unknown, algorithms: Record<number, string>): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return algorithms[v] ?? `algorithm #${v}`;
  return 'CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED';
}

/** Whole seconds to wait, through the one Retry-After parser (so capped like every other upstream's). */
function waitSeconds(s: number): number | undefined {
  return Number.isFinite(s) && s > 0 ? parseRetryAfter(String(Math.min(Math.ceil(s), MAX_RETRY_AFTER_SECONDS))) : undefined;
}

/** Seconds from a google.rpc.RetryInfo detail, when the backend sent one. */
function retryAfterOf(err: { statusDetails?: unknown }): number | undefined {
  const details = Array.isArray(err.statusDetails) ? err.statusDetails : [];
  for (const d of details) {
    const delay = (d as { retryDelay?: { seconds?: unknown; nanos?: unknown } } | null)?.retryDelay;
    if (delay) {
      const s = waitSeconds((toNumber(delay.seconds) ?? 0) + (toNumber(delay.nanos) ?? 0) / 1e9);
      if (s !== undefined) return s;
    }
  }
  return undefined;
}

/** gRPC code for an HTTP status, as google-gax maps them. */
function grpcFromHttp(status: number): number {
  const map: Record<number, number> = {
    400: GRPC_STATUS.INVALID_ARGUMENT,
    401: GRPC_STATUS.UNAUTHENTICATED,
    403: GRPC_STATUS.PERMISSION_DENIED,
    404: GRPC_STATUS.NOT_FOUND,
    409: GRPC_STATUS.ABORTED,
    412: GRPC_STATUS.FAILED_PRECONDITION,
    416: GRPC_STATUS.OUT_OF_RANGE,
    429: GRPC_STATUS.RESOURCE_EXHAUSTED,
    499: GRPC_STATUS.CANCELLED,
    501: GRPC_STATUS.UNIMPLEMENTED,
    503: GRPC_STATUS.UNAVAILABLE,
    504: GRPC_STATUS.DEADLINE_EXCEEDED,
  };
  return map[status] ?? (status >= 500 ? GRPC_STATUS.INTERNAL : GRPC_STATUS.UNKNOWN);
}

/** The REST transport's error body: `{"error":{"code","message","status","details":[...]}}`. */
const restErrorSchema = z.object({
  error: z
    .object({
      message: z.string().optional(),
      status: z.string().optional(),
      details: z.array(z.object({ retryDelay: z.string().optional() }).nullable().catch(null)).optional(),
    })
    .optional(),
});

interface ErrorShape {
  code?: unknown;
  status?: unknown;
  details?: unknown;
  message?: unknown;
  statusDetails?: unknown;
  config?: { url?: unknown };
  response?: { status?: number; headers?: unknown };
}

/**
 * Read the parts that matter from the error shapes the client produces:
 * - gRPC: a GoogleError with a numeric `code`, `details` text and decoded `statusDetails`;
 * - REST (gax 5 + google-auth-library 10): the raw GaxiosError of the HTTP call, whose message is
 *   the JSON error body `{"error":{"code","message","status","details":[...]}}`.
 * Returns undefined for errors that did not come from the KMS API (credentials, network).
 */
function apiError(e: ErrorShape): { grpcCode: number; text: string; retryAfterSeconds?: number } | undefined {
  if (typeof e.code === 'number' && e.code >= 0 && e.code <= 16 && e.response === undefined) {
    const ra = retryAfterOf(e);
    const text = typeof e.details === 'string' && e.details ? e.details : String(e.message ?? '');
    return { grpcCode: e.code, text: text.replace(/^\d+ [A-Z_]+: /, ''), ...(ra !== undefined ? { retryAfterSeconds: ra } : {}) };
  }
  const httpStatus = typeof e.response?.status === 'number' ? e.response.status : typeof e.status === 'number' ? e.status : undefined;
  const url = typeof e.config?.url === 'string' ? e.config.url : String(e.config?.url ?? '');
  if (httpStatus === undefined || !/\/v1\/projects\//.test(url)) return undefined;
  // not JSON or not this shape (a proxy's HTML page, say): keep the HTTP status only
  const parsed = parseShape(String(e.message ?? ''), restErrorSchema);
  const body = parsed.ok ? parsed.value : {};
  const named = body.error?.status;
  const grpcCode = typeof named === 'string' && Object.hasOwn(GRPC_STATUS, named) ? GRPC_STATUS[named as keyof typeof GRPC_STATUS] : grpcFromHttp(httpStatus);
  let ra: number | undefined;
  for (const d of body.error?.details ?? []) {
    const m = typeof d?.retryDelay === 'string' ? /^(\d+(?:\.\d+)?)s$/.exec(d.retryDelay) : null;
    if (m) ra = waitSeconds(Number(m[1]));
  }
  const headers = e.response?.headers;
  const headerValue = headers instanceof Headers ? headers.get('retry-after') : (headers as Record<string, unknown> | undefined)?.['retry-after'];
  ra ??= parseRetryAfter(typeof headerValue === 'string' ? headerValue : undefined);
  return { grpcCode, text: body.error?.message ?? `HTTP ${httpStatus}`, ...(ra !== undefined ? { retryAfterSeconds: ra } : {}) };
}

/** Turn an SDK/transport error into a classified SignetError. Never includes credentials. */
export function classifyGcpError(err: unknown, cfg: Pick<GcpKmsKeyConfig, 'name' | 'cryptoKeyVersion'>, op: Op): SignetError {
  if (err instanceof SignetError) return err;
  const e = (err ?? {}) as ErrorShape;
  const who = `key "${cfg.name}" (gcpkms ${cfg.cryptoKeyVersion})`;
  const api = apiError(e);
  const text = upstreamText(api ? api.text : e.message);
  const make = (code: ErrorCode, why: string, extra: { retryAfterSeconds?: number; status?: number } = {}) =>
    new SignetError(code, `${who}: ${op} failed: ${why}${text ? ` (${text})` : ''}`, extra);

  if (api) {
    const grpcCode = api.grpcCode;
    const name = GRPC_NAMES[grpcCode] ?? String(grpcCode);
    const ra = api.retryAfterSeconds !== undefined ? { retryAfterSeconds: api.retryAfterSeconds } : {};
    switch (grpcCode) {
      case GRPC_STATUS.RESOURCE_EXHAUSTED:
        return make('KEY_THROTTLED', `throttled by Cloud KMS (${name})`, ra);
      case GRPC_STATUS.UNAVAILABLE:
      case GRPC_STATUS.DEADLINE_EXCEEDED:
      case GRPC_STATUS.INTERNAL:
      case GRPC_STATUS.UNKNOWN:
      case GRPC_STATUS.ABORTED:
      case GRPC_STATUS.CANCELLED:
      case GRPC_STATUS.DATA_LOSS:
        return make('KEY_UNAVAILABLE', `Cloud KMS unavailable (${name})`, ra);
      case GRPC_STATUS.PERMISSION_DENIED:
        return make(
          'KEY_DENIED',
          `permission denied (${name}); the principal needs cloudkms.cryptoKeyVersions.useToSign and .viewPublicKey on the key (roles/cloudkms.signer + roles/cloudkms.publicKeyViewer, or roles/cloudkms.signerVerifier); Cloud KMS also answers this for a key that does not exist`,
        );
      case GRPC_STATUS.UNAUTHENTICATED:
        return make('KEY_DENIED', `credentials rejected (${name}); check keyFilename / Application Default Credentials`);
      case GRPC_STATUS.NOT_FOUND:
        return make('KEY_NOT_FOUND', `key version not found (${name})`);
      case GRPC_STATUS.FAILED_PRECONDITION:
        return make('KEY_DISABLED', `key version is not usable (${name}): disabled, destroyed, scheduled for destruction or not yet generated`);
      case GRPC_STATUS.INVALID_ARGUMENT:
      case GRPC_STATUS.OUT_OF_RANGE:
        return make('KEY_INVALID', `request rejected (${name})`);
      case GRPC_STATUS.UNIMPLEMENTED:
        return make('KEY_UNSUPPORTED', `not supported by the endpoint (${name})`);
      default:
        return make('KEY_SIGN_FAILED', `unexpected status ${name}`);
    }
  }

  // google-auth-library / gaxios errors (token endpoint, metadata server) and plain network errors.
  const status = e.response?.status;
  if (typeof status === 'number') {
    if (status === 429) return make('KEY_THROTTLED', 'credential endpoint throttled (HTTP 429)', { status });
    if (status >= 500) return make('KEY_UNAVAILABLE', `credential endpoint unavailable (HTTP ${status})`, { status });
    return make('KEY_DENIED', `could not obtain Google credentials (HTTP ${status})`, { status });
  }
  const msg = String(e.message ?? '');
  if (/Could not load the default credentials|Unable to detect a Project Id|credential/i.test(msg) && !/timeout|ECONN|ENOTFOUND|EAI_AGAIN/i.test(msg)) {
    return make('KEY_DENIED', 'no usable Google credentials (set keyFilename, GOOGLE_APPLICATION_CREDENTIALS or run with a service account)');
  }
  if (typeof e.code === 'string' && /^E[A-Z]+/.test(e.code)) return make('KEY_UNAVAILABLE', `network error ${e.code}`);
  return make('KEY_UNAVAILABLE', 'unexpected client error');
}

function buildClientOptions(cfg: GcpKmsKeyConfig, ctx: KeyProviderContext, grpc: (typeof import('google-gax'))['grpc']): ClientOptions {
  const opts: ClientOptions = { fallback: cfg.transport === 'rest' };
  if (cfg.keyFilename) opts.keyFilename = path.resolve(ctx.baseDir, cfg.keyFilename);
  if (cfg.endpoint) {
    const { host, port } = parseEndpoint(cfg.endpoint);
    opts.apiEndpoint = host;
    if (port !== undefined) opts.port = port;
    else if (cfg.insecureEndpoint && cfg.transport === 'rest') opts.port = 80;
  }
  if (cfg.insecureEndpoint) {
    if (cfg.transport === 'rest') (opts as ClientOptions & { protocol?: string }).protocol = 'http';
    else opts.sslCreds = grpc.credentials.createInsecure();
  }
  return opts;
}

export async function createGcpKmsKeyProvider(cfg: GcpKmsKeyConfig, ctx: KeyProviderContext): Promise<GcpKmsKeyProvider> {
  const who = `key "${cfg.name}" (gcpkms ${cfg.cryptoKeyVersion})`;
  const versionName = cfg.cryptoKeyVersion;
  if (cfg.keyFilename) {
    const file = path.resolve(ctx.baseDir, cfg.keyFilename);
    try {
      await access(file, fsConstants.R_OK);
    } catch (err) {
      throw new SignetError('KEY_INVALID', `${who}: cannot read keyFilename ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const { kms, gax } = await loadSdk();
  const algorithms = kms.protos.google.cloud.kms.v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm as unknown as Record<number, string>;
  const client = new kms.KeyManagementServiceClient(buildClientOptions(cfg, ctx, gax.grpc));
  const timeoutMs = Math.round(cfg.timeoutSeconds * 1000);
  const callOptions = { retry: null, timeout: timeoutMs };
  const timeout = (op: Op) => new SignetError('KEY_UNAVAILABLE', `${who}: ${op} failed: no answer from Cloud KMS within ${cfg.timeoutSeconds}s`);

  try {
    // ---- startup: the public key and the version's algorithm, once
    let pub: protos.google.cloud.kms.v1.IPublicKey;
    try {
      [pub] = await withDeadline(client.getPublicKey({ name: versionName }, callOptions), timeoutMs, () => timeout('GetPublicKey'));
    } catch (err) {
      throw classifyGcpError(err, cfg, 'GetPublicKey');
    }
    const pem = pub.pem ?? '';
    const pemCrc = toNumber(pub.pemCrc32c?.value);
    if (pemCrc === undefined || pemCrc !== crc32c(pem)) {
      throw new SignetError(
        'KEY_UNAVAILABLE',
        `${who}: GetPublicKey response failed its integrity check (pemCrc32c ${pemCrc === undefined ? 'missing' : 'mismatch'}); retry`,
      );
    }
    if (pub.name && pub.name !== versionName) {
      throw new SignetError('KEY_INVALID', `${who}: GetPublicKey answered for a different key version (${upstreamText(pub.name)})`);
    }
    const kmsAlgorithm = algorithmName(pub.algorithm, algorithms);
    const spec = SUPPORTED[kmsAlgorithm];
    if (!spec) throw new SignetError('KEY_UNSUPPORTED', `${who} is ${kmsAlgorithm}: ${whyUnsupported(kmsAlgorithm)}`);

    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(pem);
    } catch (err) {
      throw new SignetError('KEY_INVALID', `${who}: GetPublicKey returned an unparsable PEM`, { cause: err });
    }
    const bits = publicKey.asymmetricKeyType === 'rsa' ? publicKey.asymmetricKeyDetails?.modulusLength : undefined;
    const curve = publicKey.asymmetricKeyDetails?.namedCurve;
    if (publicKey.asymmetricKeyType !== spec.keyType || (spec.keyType === 'rsa' ? bits !== spec.bits : curve !== 'prime256v1')) {
      throw new SignetError('KEY_INVALID', `${who}: public key (${publicKey.asymmetricKeyType} ${bits ?? curve ?? ''}) does not match ${kmsAlgorithm}`);
    }
    const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;

    return {
      name: cfg.name,
      algorithm: spec.algorithm,
      kmsAlgorithm,
      keyBits: spec.bits,
      async publicKeyPem() {
        return spkiPem;
      },
      async paddings() {
        return spec.paddings;
      },
      async sign(digest: Buffer, payload?: Buffer, opts?: SignOptions) {
        assertSha256Digest(cfg.name, digest);
        const wanted: RsaPadding = opts?.rsaPadding ?? 'pkcs1v15';
        const pss = spec.keyType === 'rsa' && wanted === 'pss';
        if (spec.keyType === 'rsa' && !spec.paddings.includes(wanted)) {
          throw new SignetError(
            'KEY_SIGN_FAILED',
            `${who} is ${kmsAlgorithm}: it cannot sign ${PADDING_NAME[wanted]} (Cloud KMS fixes the padding per key version; ` +
              `${wanted === 'pss' ? 'Notation needs an RSA_SIGN_PSS_*_SHA256 version' : 'cosign formats need an RSA_SIGN_PKCS1_*_SHA256 version'})`,
          );
        }
        let resp: protos.google.cloud.kms.v1.IAsymmetricSignResponse;
        try {
          [resp] = await withDeadline(
            client.asymmetricSign({ name: versionName, digest: { sha256: digest }, digestCrc32c: { value: crc32c(digest) } }, callOptions),
            timeoutMs,
            () => timeout('AsymmetricSign'),
          );
        } catch (err) {
          throw classifyGcpError(err, cfg, 'AsymmetricSign');
        }
        // Data-integrity checks (https://cloud.google.com/kms/docs/data-integrity-guidelines).
        if (resp.verifiedDigestCrc32c !== true) {
          throw new SignetError('KEY_UNAVAILABLE', `${who}: AsymmetricSign request corrupted in transit (verifiedDigestCrc32c is false); retry`);
        }
        const signature = toBuffer(resp.signature);
        if (!signature || signature.length === 0) {
          throw new SignetError('KEY_SIGN_FAILED', `${who}: AsymmetricSign returned no signature`);
        }
        if (toNumber(resp.signatureCrc32c?.value) !== crc32c(signature)) {
          throw new SignetError('KEY_UNAVAILABLE', `${who}: AsymmetricSign response corrupted in transit (signatureCrc32c mismatch); retry`);
        }
        if (resp.name !== versionName) {
          throw new SignetError('KEY_SIGN_FAILED', `${who}: AsymmetricSign answered for a different key version (${upstreamText(resp.name)})`);
        }
        if (spec.keyType === 'ec') derEcdsaToRaw(signature); // throws KEY_SIGN_FAILED unless strict DER
        // PSS is checked always (a public-key operation over the digest), with the salt pinned to 32.
        if (pss) {
          if (!verifyPssDigest(publicKey, digest, signature)) {
            throw new SignetError(
              'KEY_SIGN_FAILED',
              `${who}: the signature from Cloud KMS does not verify as RSASSA-PSS (SHA-256, 32-byte salt) with the key's public key`,
            );
          }
          return signature;
        }
        // With the message at hand, check the signature locally (cheap; catches a misbehaving backend).
        if (payload && createHash('sha256').update(payload).digest().equals(digest) && !verify('sha256', payload, publicKey, signature)) {
          throw new SignetError('KEY_SIGN_FAILED', `${who}: the signature from Cloud KMS does not verify with the key's public key`);
        }
        return signature;
      },
      async close() {
        await client.close().catch(() => undefined); // idempotent: a second close is a no-op
      },
    };
  } catch (err) {
    await client.close().catch(() => undefined);
    throw err;
  }
}

/**
 * `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V` (as cosign writes
 * it; `/versions/V` is accepted too, like sigstore). A reference without a version is refused:
 * signet pins the version.
 */
export function parseGcpKmsRef(ref: string): Record<string, unknown> | undefined {
  if (!ref.startsWith('gcpkms://')) return undefined;
  const m =
    /^gcpkms:\/\/(projects\/[^/\s?#]+\/locations\/[^/\s?#]+\/keyRings\/[^/\s?#]+\/cryptoKeys\/[^/\s?#]+)(?:\/(?:cryptoKeyVersions|versions)\/([^/\s?#]+))?$/.exec(
      ref,
    );
  if (!m) throw new Error(`expected gcpkms://${VERSION_FORMAT}`);
  if (!m[2]) {
    throw new Error(
      `names no key version; signet signs with a pinned version so the exported public key always matches: use gcpkms://${m[1]}/cryptoKeyVersions/N`,
    );
  }
  return { cryptoKeyVersion: `${m[1]}/cryptoKeyVersions/${m[2]}` };
}

export const gcpKmsProvider = defineKeyProvider({
  id: 'gcpkms',
  schema: gcpKmsKeySchema,
  create: createGcpKmsKeyProvider,
  parseRef: parseGcpKmsRef,
});
