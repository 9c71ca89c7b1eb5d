/**
 * The `awskms` key provider: an asymmetric AWS KMS key (`@aws-sdk/client-kms`).
 *
 * - Key reference, as cosign/sigstore parse it (sigstore pkg/signature/kms/aws/client.go):
 *   `awskms://[ENDPOINT]/ID|ALIAS|ARN`, e.g. `awskms:///alias/signing`,
 *   `awskms:///1234abcd-12ab-34cd-56ef-1234567890ab`, `awskms:///mrk-...` (multi-region),
 *   `awskms:///arn:aws:kms:us-east-2:111122223333:key/<uuid>`, `awskms:///arn:...:alias/x`, and
 *   each with an endpoint host, `awskms://localhost:4566/alias/x`, which (as in sigstore) means
 *   `https://localhost:4566`. Without an endpoint the reference has three slashes.
 * - Startup: one GetPublicKey, which also gives KeySpec, KeyUsage and SigningAlgorithms.
 *   Accepted: KeyUsage SIGN_VERIFY with KeySpec RSA_2048 (RSASSA_PKCS1_V1_5_SHA_256; RSA_3072 and
 *   RSA_4096 are accepted too, since cosign verifies them, as for the file provider) or
 *   ECC_NIST_P256 (ECDSA_SHA_256, DER). Anything else, and a `signingAlgorithm` other than those
 *   two (RSASSA_PSS_*: cosign verifies RSA as PKCS#1 v1.5), is refused with KEY_UNSUPPORTED.
 *   `sign(…, { rsaPadding: 'pss' })` (Notation) uses RSASSA_PSS_SHA_256 instead, whose salt is
 *   the hash length (32 bytes) in AWS KMS, as `notary.x509` needs; offered when the key's
 *   SigningAlgorithms list it (every RSA KMS key does), reported by `paddings()`.
 *   An alias is resolved once: signatures are made with the key ARN GetPublicKey returned, so
 *   they always match the cached public key even if the alias is re-pointed later.
 * - Signing: exactly one `Sign` call per signature, `MessageType: DIGEST` (never RAW, which
 *   would hash the digest again). The SDK's own retries are off (`maxAttempts: 1`): the queue's
 *   backoff is the one retry policy. Requests time out after `timeoutMs` (default 10 s).
 * - Credentials: the SDK's default chain (env, shared config/SSO, web identity/IRSA, ECS, IMDS)
 *   unless `credentials` is given; region from `region`, else the key ARN's region, else the
 *   SDK's (AWS_REGION, profile). AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL work as usual.
 * - Errors: throttling -> KEY_THROTTLED, 5xx/timeouts/network -> KEY_UNAVAILABLE (retryable);
 *   AccessDenied/bad credentials -> KEY_DENIED, NotFound -> KEY_NOT_FOUND, Disabled/pending
 *   deletion -> KEY_DISABLED (not retryable). Messages name the key and never carry credentials.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { KMSClient, KMSClientConfig } from '@aws-sdk/client-kms';
import { z } from 'zod';
import { SignetError, type ErrorCode } from '../errors.js';
import { retryAfterOption } from '../edge/retry-after.js';
import { upstreamText } from '../log.js';
import { assertSha256Digest } from './digest-arg.js';
import { defineKeyProvider } from './define.js';
import { derEcdsaToRaw, rawEcdsaToDer } from './ecdsa.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type KeyProvider, type RsaPadding, type SignOptions } from './types.js';

export const awsKmsKeySchema = z
  .object({
    name: z.string().min(1),
    provider: z.literal('awskms'),
    /** Key id, key ARN, alias name (`alias/x`) or alias ARN. */
    keyId: z.string().min(1),
    region: z.string().min(1).optional(),
    /** Endpoint URL, e.g. https://kms-fips.us-east-1.amazonaws.com or a VPC endpoint. */
    endpoint: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//i.test(u), 'endpoint must be an http(s) URL')
      .optional(),
    /** Static credentials (use `${VAR}` expansion); otherwise the SDK's default chain. */
    credentials: z
      .object({
        accessKeyId: z.string().min(1),
        secretAccessKey: z.string().min(1),
        sessionToken: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    /** Optional; only RSASSA_PKCS1_V1_5_SHA_256 (RSA) or ECDSA_SHA_256 (P-256) are accepted. */
    signingAlgorithm: z.string().min(1).optional(),
    /** Per-request timeout (connect + response), ms. */
    timeoutMs: z.number().int().positive().max(300_000).optional(),
  })
  .strict();
export type AwsKmsKeyConfig = z.infer<typeof awsKmsKeySchema>;

export interface AwsKmsKeyProvider extends KeyProvider {
  /** 'rsa-2048' means RSA PKCS#1 v1.5 SHA-256 (also for 3072/4096-bit keys; see keyBits). */
  readonly algorithm: KeyAlgorithm;
  readonly keyBits: number;
  /** The key ARN the public key came from; every Sign call uses it. */
  readonly keyArn: string;
  readonly keySpec: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

const SUPPORTED_SPECS: Record<string, { algorithm: KeyAlgorithm; signing: string; bits: number }> = {
  RSA_2048: { algorithm: 'rsa-2048', signing: 'RSASSA_PKCS1_V1_5_SHA_256', bits: 2048 },
  RSA_3072: { algorithm: 'rsa-2048', signing: 'RSASSA_PKCS1_V1_5_SHA_256', bits: 3072 },
  RSA_4096: { algorithm: 'rsa-2048', signing: 'RSASSA_PKCS1_V1_5_SHA_256', bits: 4096 },
  ECC_NIST_P256: { algorithm: 'ecdsa-p256', signing: 'ECDSA_SHA_256', bits: 256 },
};

// ---------------------------------------------------------------------------------------------
// Key references (sigstore's regexes, pkg/signature/kms/aws/client.go)

const UUID_RE = 'm?r?k?-?[A-Fa-f0-9]{8}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{12}';
const ARN_RE = 'arn:(?:aws|aws-us-gov|aws-cn):kms:[a-z0-9-]+:\\d{12}:';
const HOST_RE = '([^/]*)/';
const REF_RES = [
  new RegExp(`^awskms://${HOST_RE}(${UUID_RE})$`),
  new RegExp(`^awskms://${HOST_RE}(${ARN_RE}key/${UUID_RE})$`),
  new RegExp(`^awskms://${HOST_RE}(alias/.+)$`),
  new RegExp(`^awskms://${HOST_RE}(${ARN_RE}alias/.+)$`),
];
const REF_FORMAT =
  'expected awskms://[ENDPOINT]/ID|ALIAS|ARN, e.g. awskms:///alias/signing, awskms:///1234abcd-12ab-34cd-56ef-1234567890ab or awskms:///arn:aws:kms:us-east-1:111122223333:key/<id> (three slashes when there is no endpoint)';

/** `awskms://[ENDPOINT]/ID|ALIAS|ARN` -> `{ keyId, endpoint? }`; undefined for other schemes. */
export function parseAwsKmsRef(ref: string): { keyId: string; endpoint?: string } | undefined {
  if (!/^awskms:/i.test(ref)) return undefined;
  for (const re of REF_RES) {
    const m = re.exec(ref);
    if (!m) continue;
    const host = m[1]!;
    const keyId = m[2]!;
    if (!host) return { keyId };
    let url: URL;
    try {
      url = new URL(`https://${host}`);
    } catch {
      throw new Error(`bad endpoint "${host}" in ${ref.slice(0, 200)}: ${REF_FORMAT}`);
    }
    if (url.username || url.password || /[\s@?#\\]/.test(host)) {
      throw new Error(`bad endpoint "${host}" in ${ref.slice(0, 200)}: ${REF_FORMAT}`);
    }
    return { keyId, endpoint: `https://${host}` };
  }
  throw new Error(`"${ref.slice(0, 200)}": ${REF_FORMAT}`);
}

/** The region inside a key or alias ARN, if keyId is one. */
export function regionOfArn(keyId: string): string | undefined {
  return /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:/.exec(keyId)?.[1];
}

// ---------------------------------------------------------------------------------------------
// Errors

interface AwsLikeError {
  name?: string;
  code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string | undefined> };
  $retryable?: { throttling?: boolean };
}

const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestThrottledException',
  'RequestLimitExceeded',
  'SlowDown',
  'LimitExceededException',
]);
const UNAVAILABLE = new Set([
  'KMSInternalException',
  'DependencyTimeoutException',
  'KeyUnavailableException',
  'CloudHsmClusterNotActiveException',
  'CustomKeyStoreInvalidStateException',
  'XksProxyUriUnreachableException',
  'XksProxyInvalidResponseException',
  'XksProxyVpcEndpointServiceNotFoundException',
  'InternalFailure',
  'InternalError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'AbortError',
]);
const DENIED = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'InvalidClientTokenId',
  'ExpiredTokenException',
  'ExpiredToken',
  'RequestExpired',
  'InvalidGrantTokenException',
  'MissingAuthenticationToken',
  'OptInRequired',
  'NotAuthorized',
  'CredentialsProviderError',
]);
const NOT_FOUND = new Set(['NotFoundException', 'ResourceNotFoundException']);
const DISABLED = new Set(['DisabledException', 'KMSInvalidStateException']);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

/** An upstream message made safe for logs: one line, bounded, no access key ids or tokens. */
function safeMessage(msg: string | undefined): string {
  return msg ? upstreamText(msg.split('\n')[0]) : '';
}

function retryAfter(err: AwsLikeError): { retryAfterSeconds?: number } {
  return retryAfterOption(err.$response?.headers?.['retry-after'] ?? err.$response?.headers?.['Retry-After']);
}

/**
 * Turn an SDK error into a SignetError. `what` names the key and the call, e.g.
 * `key "release" (awskms alias/release): Sign`.
 */
export function classifyAwsKmsError(err: unknown, what: string, fallback: ErrorCode = 'KEY_SIGN_FAILED'): SignetError {
  if (err instanceof SignetError) return err;
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as AwsLikeError;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const detail = safeMessage(e.message);
  const opts = {
    cause: err,
    ...(status !== undefined ? { status } : {}),
  };
  const say = (why: string) => `${what}: ${why}${detail && !why.includes(detail) ? `: ${detail}` : ''}`;

  if (THROTTLING.has(name) || status === 429 || e.$retryable?.throttling) {
    return new SignetError('KEY_THROTTLED', say(`throttled by AWS KMS (${name})`), { ...opts, ...retryAfter(e) });
  }
  if (name === 'CredentialsProviderError') {
    return new SignetError(
      'KEY_DENIED',
      `${what}: no usable AWS credentials (set keys[].credentials or use the SDK's standard sources: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, ECS/EC2 roles)`,
      opts,
    );
  }
  if (/region is missing/i.test(e.message ?? '')) {
    return new SignetError('KEY_INVALID', `${what}: no AWS region (set keys[].region or AWS_REGION, or use a key ARN)`, opts);
  }
  if (DENIED.has(name) || status === 401 || status === 403) {
    const why =
      name === 'AccessDeniedException' || name === 'AccessDenied'
        ? `access denied (${name}); the principal needs kms:GetPublicKey and kms:Sign on the key`
        : `the credentials were refused (${name}); check the access key, secret, session token (and the clock)`;
    return new SignetError('KEY_DENIED', say(why), opts);
  }
  if (NOT_FOUND.has(name) || status === 404) {
    return new SignetError('KEY_NOT_FOUND', say(`key not found (${name})`), opts);
  }
  if (DISABLED.has(name)) {
    return new SignetError('KEY_DISABLED', say(`key is disabled or not usable in its current state (${name})`), opts);
  }
  if (name === 'InvalidKeyUsageException' || name === 'UnsupportedOperationException') {
    return new SignetError('KEY_UNSUPPORTED', say(`key cannot sign this way (${name})`), opts);
  }
  const netCode = typeof e.code === 'string' ? e.code : undefined;
  if (UNAVAILABLE.has(name) || e.$fault === 'server' || (status !== undefined && status >= 500) || (netCode && NETWORK_CODES.has(netCode))) {
    const timedOut = netCode === 'ETIMEDOUT' || (name === 'TimeoutError' && netCode !== 'ECONNRESET');
    const why =
      status !== undefined
        ? `AWS KMS unavailable (${name}, HTTP ${status})`
        : timedOut
          ? `AWS KMS timed out (${netCode ?? name})`
          : `AWS KMS unreachable (${netCode ?? name})`;
    return new SignetError('KEY_UNAVAILABLE', say(why), { ...opts, ...retryAfter(e) });
  }
  if (status === undefined) {
    // No HTTP answer at all (socket errors without a code, DNS, TLS): treat as transient.
    return new SignetError('KEY_UNAVAILABLE', say(`AWS KMS unreachable (${netCode ?? name})`), opts);
  }
  return new SignetError(fallback, say(`AWS KMS refused the request (${name}, HTTP ${status})`), opts);
}

// ---------------------------------------------------------------------------------------------
// Provider

function describePublicKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') return `RSA-${d?.modulusLength ?? '?'}`;
  if (key.asymmetricKeyType === 'ec') return `EC ${d?.namedCurve ?? '?'}`;
  return key.asymmetricKeyType ?? 'unknown';
}

/** The SDK, loaded on first use so that importing this module (config validation) stays cheap. */
function loadSdk(): Promise<typeof import('@aws-sdk/client-kms')> {
  return import('@aws-sdk/client-kms');
}

export async function createAwsKmsClient(cfg: AwsKmsKeyConfig): Promise<KMSClient> {
  const { KMSClient } = await loadSdk();
  const region = cfg.region ?? regionOfArn(cfg.keyId);
  const timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const options: KMSClientConfig = {
    maxAttempts: 1,
    requestHandler: {
      requestTimeout: timeoutMs,
      connectionTimeout: Math.min(timeoutMs, 5_000),
      throwOnRequestTimeout: true,
    },
    ...(region ? { region } : {}),
    ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
    ...(cfg.credentials ? { credentials: { ...cfg.credentials } } : {}),
  };
  return new KMSClient(options);
}

export async function createAwsKmsKeyProvider(cfg: AwsKmsKeyConfig, deps: { client?: KMSClient } = {}): Promise<AwsKmsKeyProvider> {
  const { GetPublicKeyCommand, SignCommand } = await loadSdk();
  const client = deps.client ?? (await createAwsKmsClient(cfg));
  const label = `key "${cfg.name}" (awskms ${cfg.keyId})`;
  // the overall deadline of each call: the SDK's requestTimeout stops at the response headers and
  // its socket timeout is an idle timer, so a body dripped a byte at a time held a call for ever
  const timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const classify = (err: unknown, signal: AbortSignal, what: string, fallback?: ErrorCode): SignetError =>
    signal.aborted
      ? new SignetError('KEY_UNAVAILABLE', `${what}: AWS KMS timed out (no complete answer within ${timeoutMs} ms)`, { cause: err })
      : classifyAwsKmsError(err, what, fallback);

  let out;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    out = await client.send(new GetPublicKeyCommand({ KeyId: cfg.keyId }), { abortSignal: signal });
  } catch (err) {
    throw classify(err, signal, `${label}: GetPublicKey`, 'KEY_INVALID');
  }

  const keyArn = out.KeyId ?? cfg.keyId;
  const keySpec = String(out.KeySpec ?? out.CustomerMasterKeySpec ?? 'unknown');
  const keyUsage = String(out.KeyUsage ?? 'unknown');
  const what = `${label} is ${keySpec} ${keyUsage}${keyArn !== cfg.keyId ? ` (${keyArn})` : ''}`;
  const refuse = (why: string): never => {
    throw new SignetError('KEY_UNSUPPORTED', `${what}: ${why}`);
  };

  if (keyUsage !== 'SIGN_VERIFY') refuse('signet needs an asymmetric key with KeyUsage SIGN_VERIFY');
  const spec = SUPPORTED_SPECS[keySpec];
  if (!spec) {
    refuse(
      keySpec === 'ECC_SECG_P256K1'
        ? 'secp256k1 keys are not verifiable by cosign; use ECC_NIST_P256 or RSA_2048'
        : 'only RSA_2048 (also RSA_3072/RSA_4096) and ECC_NIST_P256 signing keys are supported',
    );
  }
  const { algorithm, signing, bits } = spec!;
  if (cfg.signingAlgorithm !== undefined && cfg.signingAlgorithm !== signing) {
    refuse(
      /PSS/i.test(cfg.signingAlgorithm)
        ? `signingAlgorithm ${cfg.signingAlgorithm} is not supported: cosign verifies RSA signatures as PKCS#1 v1.5; use ${signing} (or leave signingAlgorithm out)`
        : `signingAlgorithm ${cfg.signingAlgorithm} does not fit this key; use ${signing} (or leave signingAlgorithm out)`,
    );
  }
  const algorithms = (out.SigningAlgorithms ?? []).map(String);
  if (algorithms.length > 0 && !algorithms.includes(signing)) {
    refuse(`the key does not offer ${signing} (it offers ${algorithms.join(', ')}); cosign verifies only PKCS#1 v1.5 RSA and ECDSA P-256 signatures`);
  }

  if (!out.PublicKey || out.PublicKey.length === 0) {
    throw new SignetError('KEY_INVALID', `${what}: GetPublicKey returned no public key`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(out.PublicKey), format: 'der', type: 'spki' });
  } catch (err) {
    throw new SignetError('KEY_INVALID', `${what}: GetPublicKey returned a public key that does not parse as SPKI DER`, { cause: err });
  }
  const pubOk =
    algorithm === 'ecdsa-p256'
      ? publicKey.asymmetricKeyType === 'ec' && publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1'
      : publicKey.asymmetricKeyType === 'rsa' && publicKey.asymmetricKeyDetails?.modulusLength === bits;
  if (!pubOk) {
    throw new SignetError('KEY_INVALID', `${what}: the public key is ${describePublicKey(publicKey)}, which does not match its KeySpec`);
  }
  const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const signLabel = `key "${cfg.name}" (awskms ${keyArn}): Sign`;
  const PSS = 'RSASSA_PSS_SHA_256';
  const pssOffered = algorithm === 'rsa-2048' && (algorithms.length === 0 || algorithms.includes(PSS));
  const paddings: readonly RsaPadding[] = algorithm === 'ecdsa-p256' || pssOffered ? BOTH_PADDINGS : ['pkcs1v15'];

  return {
    name: cfg.name,
    algorithm,
    keyBits: bits,
    keyArn,
    keySpec,
    async publicKeyPem() {
      return spkiPem;
    },
    async paddings() {
      return paddings;
    },
    async sign(digest: Buffer, _payload?: Buffer, opts?: SignOptions): Promise<Buffer> {
      assertSha256Digest(cfg.name, digest);
      const pss = algorithm === 'rsa-2048' && opts?.rsaPadding === 'pss';
      if (pss && !pssOffered) {
        throw new SignetError('KEY_SIGN_FAILED', `${signLabel}: the key does not offer ${PSS} (it offers ${algorithms.join(', ')})`);
      }
      let res;
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        res = await client.send(
          new SignCommand({ KeyId: keyArn, Message: digest, MessageType: 'DIGEST', SigningAlgorithm: (pss ? PSS : signing) as 'ECDSA_SHA_256' }),
          { abortSignal: signal },
        );
      } catch (err) {
        throw classify(err, signal, signLabel);
      }
      if (!res.Signature || res.Signature.length === 0) {
        throw new SignetError('KEY_SIGN_FAILED', `${signLabel}: AWS KMS returned no signature`);
      }
      const sig = Buffer.from(res.Signature);
      if (algorithm === 'rsa-2048') {
        if (sig.length !== bits / 8) {
          throw new SignetError('KEY_SIGN_FAILED', `${signLabel}: RSA signature is ${sig.length} bytes, expected ${bits / 8}`);
        }
        return sig;
      }
      // AWS returns DER (RFC 3279); check it, and accept raw r||s defensively.
      try {
        derEcdsaToRaw(sig, 32);
        return sig;
      } catch (err) {
        if (sig.length === 64) return rawEcdsaToDer(sig);
        throw new SignetError('KEY_SIGN_FAILED', `${signLabel}: AWS KMS returned a malformed ECDSA signature`, { cause: err });
      }
    },
  };
}

export const awsKmsProvider = defineKeyProvider({
  id: 'awskms',
  schema: awsKmsKeySchema,
  create: (cfg) => createAwsKmsKeyProvider(cfg),
  parseRef: parseAwsKmsRef,
});
