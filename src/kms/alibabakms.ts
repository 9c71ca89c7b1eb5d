/**
 * The `alibabakms` key provider: an asymmetric Alibaba Cloud KMS key (`@alicloud/kms20160120`,
 * the RPC-style client; the key type of Alibaba ACR's own auto-signing).
 *
 * - Startup: DescribeKey (KeySpec, KeyUsage, KeyState, the key id behind an alias, and
 *   PrimaryKeyVersion), then GetPublicKey for the version. Without `keyVersionId` the version is
 *   PrimaryKeyVersion, or, when DescribeKey does not report one, the only version ListKeyVersions
 *   returns (more than one: set keyVersionId). The key id and version are pinned at startup, so
 *   signatures always match the cached public key.
 *   Accepted: KeyUsage SIGN/VERIFY and KeySpec RSA_2048 (RSA_PKCS1_SHA_256; RSA_3072 is accepted
 *   too, cosign verifies it) or EC_P256 (ECDSA_SHA_256, DER). Refused with KEY_UNSUPPORTED:
 *   EC_P256K (secp256k1), EC_SM2, symmetric keys, and `algorithm: RSA_PSS_SHA_256` (which ACR's
 *   own signing offers, but cosign verifies RSA as PKCS#1 v1.5). A key that is not Enabled is
 *   refused with KEY_DISABLED.
 *   `sign(…, { rsaPadding: 'pss' })` (Notation) asks for RSA_PSS_SHA_256 (RSASSA-PSS, SHA-256,
 *   MGF1-SHA-256). The AsymmetricSign reference does not state the salt length, so each PSS
 *   answer is checked against the public key with a 32-byte salt (what `notary.x509` needs)
 *   and refused with KEY_SIGN_FAILED if it does not verify.
 * - Signing: exactly one AsymmetricSign per signature with the base64 digest. The SDK retries
 *   only when RuntimeOptions.autoretry is set, which we never do: the queue's backoff is the one
 *   retry policy. `timeoutMs` (default 10 s) is the overall deadline of each call, body included.
 * - Endpoint: `endpoint` (host[:port] or http(s)://host[:port]), else
 *   `kms.<regionId>.aliyuncs.com` (regionId from the config or ALIBABA_CLOUD_REGION_ID). The SDK
 *   (1.2.0) cannot derive it itself: without an endpoint it builds `undefined.<region>.aliyuncs.com`.
 * - Credentials: accessKeyId/accessKeySecret[/securityToken] from the config (use `${VAR}`), else
 *   the SDK's default chain (@alicloud/credentials: ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET[/
 *   SECURITY_TOKEN], OIDC role (ACK RRSA), ~/.aliyun/config.json, ~/.alibabacloud/credentials,
 *   ECS RAM role, ALIBABA_CLOUD_CREDENTIALS_URI).
 * - Errors: Throttling* / HTTP 429 -> KEY_THROTTLED; 5xx, timeouts, network -> KEY_UNAVAILABLE
 *   (retryable); Forbidden.KeyNotFound/AliasNotFound/ResourceNotFound -> KEY_NOT_FOUND;
 *   Rejected.Disabled/PendingDeletion/PendingImport -> KEY_DISABLED; Forbidden.*, bad access
 *   keys, SignatureDoesNotMatch -> KEY_DENIED. The SDK's own messages are never passed on as
 *   they are: transport errors quote the request URL (AccessKeyId, Signature, SecurityToken) and
 *   SignatureDoesNotMatch quotes the string to sign (AccessKeyId, SecurityToken).
 * - Key reference: Alibaba has no cosign scheme; signet reads its own
 *   `alibabakms://REGION_OR_ENDPOINT/KEY_ID|alias/NAME[/versions/VERSION_ID]`, and also the
 *   layout of the unmerged sigstore proposal, `alibabakms://ENDPOINT/[INSTANCE_ID]/KEY_ID/versions/VERSION_ID`
 *   (the instance id is not needed for signing and is ignored).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type * as alikms from '@alicloud/kms20160120';
import { z } from 'zod';
import { withDeadline } from '../edge/deadline.js';
import { SignetError, type ErrorCode } from '../errors.js';
import { upstreamText } from '../log.js';
import { assertSha256Digest } from './digest-arg.js';
import { defineKeyProvider } from './define.js';
import { derEcdsaToRaw, rawEcdsaToDer } from './ecdsa.js';
import { verifyPssDigest } from './pss.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type KeyProvider, type SignOptions } from './types.js';

export const alibabaKmsKeySchema = z
  .object({
    name: z.string().min(1),
    provider: z.literal('alibabakms'),
    /** Key id (CMK id) or alias (`alias/name`). */
    keyId: z.string().min(1),
    /** Key version; default: the primary (or only) version, resolved at startup. */
    keyVersionId: z.string().min(1).optional(),
    regionId: z.string().min(1).optional(),
    /** host[:port] or http(s)://host[:port]; default kms.<regionId>.aliyuncs.com over https. */
    endpoint: z.string().min(1).optional(),
    accessKeyId: z.string().min(1).optional(),
    accessKeySecret: z.string().min(1).optional(),
    securityToken: z.string().min(1).optional(),
    /** Optional; only RSA_PKCS1_SHA_256 (RSA) or ECDSA_SHA_256 (EC_P256) are accepted. */
    algorithm: z.string().min(1).optional(),
    /** Connect and read timeout per request, ms. */
    timeoutMs: z.number().int().positive().max(300_000).optional(),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    if ((cfg.accessKeyId === undefined) !== (cfg.accessKeySecret === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'give accessKeyId and accessKeySecret together (or neither, for the default credential chain)',
        path: [cfg.accessKeyId === undefined ? 'accessKeyId' : 'accessKeySecret'],
      });
    }
    if (cfg.securityToken !== undefined && cfg.accessKeyId === undefined) {
      ctx.addIssue({ code: 'custom', message: 'securityToken needs accessKeyId and accessKeySecret (STS credentials)', path: ['securityToken'] });
    }
  });
export type AlibabaKmsKeyConfig = z.infer<typeof alibabaKmsKeySchema>;

export interface AlibabaKmsKeyProvider extends KeyProvider {
  /** 'rsa-2048' means RSA PKCS#1 v1.5 SHA-256 (also for RSA_3072; see keyBits). */
  readonly algorithm: KeyAlgorithm;
  readonly keyBits: number;
  /** The key id (not an alias) and version every AsymmetricSign call uses. */
  readonly keyId: string;
  readonly keyVersionId: string;
  readonly keySpec: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

const SUPPORTED_SPECS: Record<string, { algorithm: KeyAlgorithm; signing: string; bits: number }> = {
  RSA_2048: { algorithm: 'rsa-2048', signing: 'RSA_PKCS1_SHA_256', bits: 2048 },
  RSA_3072: { algorithm: 'rsa-2048', signing: 'RSA_PKCS1_SHA_256', bits: 3072 },
  EC_P256: { algorithm: 'ecdsa-p256', signing: 'ECDSA_SHA_256', bits: 256 },
};

// ---------------------------------------------------------------------------------------------
// SDK access. Both packages are CommonJS with the class in `exports.default`: Node's ESM loader
// gives `ns.default === module.exports` (class at `ns.default.default`), bundler-style interop
// (vitest, tsx) gives the class at `ns.default`. The request classes are named exports in both.
// They are loaded on first use (loadSdk), so that importing this module (config validation)
// stays cheap.

type KmsModule = typeof alikms;
type KmsClientCtor = KmsModule['default']['default'];
type KmsClient = InstanceType<KmsClientCtor>;
type KmsClientConfig = ConstructorParameters<KmsClientCtor>[0];

function cjsDefaultClass<T>(ns: unknown): T {
  const d = (ns as { default?: unknown }).default;
  if (typeof d === 'function') return d as T;
  const dd = (d as { default?: unknown } | undefined)?.default;
  if (typeof dd === 'function') return dd as T;
  throw new Error('unexpected module shape');
}

interface AlibabaSdk {
  /** The request classes (DescribeKeyRequest, ...). */
  sdk: KmsModule;
  KmsClientClass: KmsClientCtor;
  /** @alicloud/credentials' `Credential`; without a config it is the SDK's default chain. */
  CredentialClass: new () => object;
}

async function loadSdk(): Promise<AlibabaSdk> {
  const [kms, creds] = await Promise.all([import('@alicloud/kms20160120'), import('@alicloud/credentials')]);
  return {
    sdk: kms as KmsModule,
    KmsClientClass: cjsDefaultClass<KmsClientCtor>(kms),
    CredentialClass: cjsDefaultClass<new () => object>(creds),
  };
}

/** The calls this provider makes; tests may pass another implementation. */
export interface AlibabaKmsApi {
  describeKey(keyId: string): Promise<{ keyId?: string; keySpec?: string; keyUsage?: string; keyState?: string; primaryKeyVersion?: string }>;
  listKeyVersions(keyId: string): Promise<string[]>;
  getPublicKey(keyId: string, keyVersionId: string): Promise<string | undefined>;
  asymmetricSign(keyId: string, keyVersionId: string, algorithm: string, digestB64: string): Promise<string | undefined>;
}

/** Endpoint and protocol from `endpoint` (scheme optional) or the region. */
export function alibabaEndpoint(
  cfg: Pick<AlibabaKmsKeyConfig, 'endpoint' | 'regionId'>,
  env: NodeJS.ProcessEnv = process.env,
): { endpoint: string; protocol: 'http' | 'https' } {
  if (cfg.endpoint) {
    const m = /^(https?):\/\/([^/?#\s]+)\/?$/i.exec(cfg.endpoint);
    if (m) return { endpoint: m[2]!, protocol: m[1]!.toLowerCase() as 'http' | 'https' };
    if (/^[^/?#\s:]+(:\d+)?$/.test(cfg.endpoint)) return { endpoint: cfg.endpoint, protocol: 'https' };
    throw new SignetError('KEY_INVALID', `endpoint "${cfg.endpoint.slice(0, 100)}" must be host[:port] or http(s)://host[:port]`);
  }
  const region = cfg.regionId ?? env.ALIBABA_CLOUD_REGION_ID;
  if (!region) {
    throw new SignetError('KEY_INVALID', 'no Alibaba Cloud region: set keys[].regionId (or ALIBABA_CLOUD_REGION_ID) or keys[].endpoint');
  }
  if (!/^[a-z0-9-]+$/.test(region)) throw new SignetError('KEY_INVALID', `regionId "${region.slice(0, 50)}" is not a region id such as cn-hangzhou`);
  return { endpoint: `kms.${region}.aliyuncs.com`, protocol: 'https' };
}

export async function createAlibabaKmsApi(cfg: AlibabaKmsKeyConfig): Promise<AlibabaKmsApi> {
  const { endpoint, protocol } = alibabaEndpoint(cfg);
  const { sdk, KmsClientClass, CredentialClass } = await loadSdk();
  const timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const region = cfg.regionId ?? process.env.ALIBABA_CLOUD_REGION_ID;
  const options = {
    endpoint,
    protocol,
    ...(region ? { regionId: region } : {}),
    readTimeout: timeoutMs,
    connectTimeout: Math.min(timeoutMs, 5_000),
    ...(cfg.accessKeyId && cfg.accessKeySecret
      ? { accessKeyId: cfg.accessKeyId, accessKeySecret: cfg.accessKeySecret, ...(cfg.securityToken ? { securityToken: cfg.securityToken } : {}) }
      : { credential: new CredentialClass() }),
  };
  const client: KmsClient = new KmsClientClass(options as unknown as KmsClientConfig);
  // The SDK's readTimeout does not reach the body: an answer dripped a byte at a time held a call
  // for ever. Each call gets an overall deadline (the SDK cannot cancel the request itself).
  const deadline = <T>(p: Promise<T>) =>
    withDeadline(p, timeoutMs, () => Object.assign(new Error(`no complete answer within ${timeoutMs} ms`), { name: 'RequestTimeoutError' }));
  return {
    async describeKey(keyId) {
      const r = await deadline(client.describeKey(new sdk.DescribeKeyRequest({ keyId })));
      return r.keyMetadata ?? {};
    },
    async listKeyVersions(keyId) {
      const r = await deadline(client.listKeyVersions(new sdk.ListKeyVersionsRequest({ keyId, pageNumber: 1, pageSize: 100 })));
      return (r.keyVersions?.keyVersion ?? []).map((v) => v.keyVersionId).filter((v): v is string => typeof v === 'string' && v.length > 0);
    },
    async getPublicKey(keyId, keyVersionId) {
      const r = await deadline(client.getPublicKey(new sdk.GetPublicKeyRequest({ keyId, keyVersionId })));
      return r.publicKey;
    },
    async asymmetricSign(keyId, keyVersionId, algorithm, digest) {
      const r = await deadline(client.asymmetricSign(new sdk.AsymmetricSignRequest({ keyId, keyVersionId, algorithm, digest })));
      return r.value;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Key references (signet's own scheme; see the header)

const ID_RE = /^[A-Za-z0-9_-]+$/;
const REF_FORMAT =
  "expected alibabakms://REGION_OR_ENDPOINT/KEY_ID[/versions/VERSION_ID] or alibabakms://REGION_OR_ENDPOINT/alias/NAME[/versions/VERSION_ID] (signet's own format; REGION e.g. cn-hangzhou, ENDPOINT e.g. kms.cn-hangzhou.aliyuncs.com)";

export function parseAlibabaKmsRef(ref: string): Record<string, string> | undefined {
  if (!/^alibabakms:/i.test(ref)) return undefined;
  const bad = (why: string): never => {
    throw new Error(`"${ref.slice(0, 200)}": ${why}; ${REF_FORMAT}`);
  };
  const m = /^alibabakms:\/\/([^/]*)\/(.+)$/.exec(ref);
  if (!m) return bad('no key');
  const host = m[1]!;
  let segs = m[2]!.split('/');
  let keyVersionId: string | undefined;
  if (segs.length >= 3 && segs[segs.length - 2] === 'versions') {
    keyVersionId = segs[segs.length - 1]!;
    segs = segs.slice(0, -2);
    if (!ID_RE.test(keyVersionId)) bad(`bad version id "${keyVersionId}"`);
  }
  let keyId: string | undefined;
  const aliasAt = segs[0] === 'alias' ? 0 : segs[1] === 'alias' ? 1 : -1;
  if (aliasAt >= 0) {
    const aliasName = segs.slice(aliasAt + 1).join('/');
    if (!/^[A-Za-z0-9:/_-]+$/.test(aliasName)) bad('bad alias name');
    keyId = `alias/${aliasName}`;
  } else if (segs.length === 1 || segs.length === 2) {
    // [INSTANCE_ID/]KEY_ID (the instance segment, possibly empty, is the sigstore proposal's)
    keyId = segs[segs.length - 1]!;
    if (!ID_RE.test(keyId)) bad(`bad key id "${keyId}"`);
    if (segs.length === 2 && segs[0] !== '' && !ID_RE.test(segs[0]!)) bad(`bad instance id "${segs[0]}"`);
  } else {
    bad('too many path segments');
  }
  const out: Record<string, string> = { keyId: keyId! };
  if (keyVersionId) out.keyVersionId = keyVersionId;
  if (host) {
    if (/^[a-z]+(-[a-z0-9]+)+$/.test(host)) out.regionId = host;
    else if (/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(host) && /[.:]/.test(host)) out.endpoint = host;
    else bad(`"${host}" is neither a region id nor an endpoint host`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Errors

interface TeaLikeError {
  name?: string;
  code?: string;
  message?: string;
  data?: unknown;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/**
 * An Alibaba error message made safe to show: SignatureDoesNotMatch quotes the string to sign
 * (with the AccessKeyId and SecurityToken), transport errors quote the signed URL.
 */
function safeMessage(msg: unknown): string {
  if (typeof msg !== 'string' || !msg) return '';
  const trimmed = msg
    .split('\n')[0]!
    .replace(/\s*server string to sign is:.*$/i, '')
    .replace(/\s*(?:requestid|request id)\s*:.*$/i, '')
    .replace(/https?:\/\/\S+/gi, '[url]');
  return upstreamText(trimmed, { max: 200 });
}

/** Turn an SDK error into a SignetError; `what` names the key and the call. */
export function classifyAlibabaKmsError(err: unknown, what: string, fallback: ErrorCode = 'KEY_SIGN_FAILED'): SignetError {
  if (err instanceof SignetError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as TeaLikeError;
  const rawCode = typeof e.code === 'string' ? e.code : '';
  // Service errors: code "<Code>Error", message "<Code>Error: code: <status>, <Message> requestid: <id>",
  // data = the JSON error body.
  const statusMatch = /^\S*: code: (\d{3}),/.exec(typeof e.message === 'string' ? e.message : '');
  const isService = statusMatch !== null && typeof e.data === 'object' && e.data !== null;
  if (!isService) {
    const net = NETWORK_CODES.has(rawCode) ? rawCode : undefined;
    if (e.name === 'RequestTimeoutError' || net || e.name === 'SyntaxError' || /^(ERR_[A-Z_]+|E[A-Z]+)$/.test(rawCode)) {
      const why =
        e.name === 'RequestTimeoutError'
          ? `Alibaba Cloud KMS timed out`
          : e.name === 'SyntaxError'
            ? 'Alibaba Cloud KMS answered with something that is not JSON (a proxy or gateway error?)'
            : `Alibaba Cloud KMS unreachable (${rawCode})`;
      return new SignetError('KEY_UNAVAILABLE', `${what}: ${why}`);
    }
    const msg = typeof e.message === 'string' ? e.message : String(err);
    if (/credential/i.test(msg)) {
      return new SignetError(
        'KEY_DENIED',
        `${what}: no usable Alibaba Cloud credentials (set keys[].accessKeyId/accessKeySecret, or ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET, an OIDC role, a credentials file or an ECS RAM role)`,
      );
    }
    return new SignetError('KEY_UNAVAILABLE', `${what}: ${safeMessage(msg) || 'request failed'}`);
  }

  const data = e.data as { Code?: unknown; code?: unknown; RequestId?: unknown; Message?: unknown; message?: unknown };
  const code = String(data.Code ?? data.code ?? (rawCode.replace(/Error$/, '') || 'Unknown')).slice(0, 100);
  const status = Number(statusMatch![1]);
  const requestId = typeof data.RequestId === 'string' && /^[A-Za-z0-9-]{1,64}$/.test(data.RequestId) ? data.RequestId : undefined;
  const detail = safeMessage(data.Message ?? data.message);
  const tail = `(${code}, HTTP ${status}${requestId ? `, RequestId ${requestId}` : ''})${detail ? `: ${detail}` : ''}`;
  const opts = { status };

  if (/throttl/i.test(code) || status === 429) {
    return new SignetError('KEY_THROTTLED', `${what}: throttled by Alibaba Cloud KMS ${tail}`, opts);
  }
  if (/NotFound$/i.test(code) && /^(Forbidden\.(Key|Alias|Resource|KeyVersion)NotFound|EntityNotExist)/i.test(code)) {
    return new SignetError('KEY_NOT_FOUND', `${what}: key or key version not found ${tail}`, opts);
  }
  if (/^(Rejected|Rejetced)\.(Disabled|PendingDeletion|PendingImport|StateModifiedFailed)$|KeyNotEnabled|KeyDisabled/i.test(code)) {
    return new SignetError('KEY_DISABLED', `${what}: key is not enabled ${tail}`, opts);
  }
  if (
    /^Forbidden|^InvalidAccessKeyId|^SignatureDoesNotMatch|^IncompleteSignature|^InvalidSecurityToken|NoPermission|^Unauthorized|^AccessDenied|^InvalidTimeStamp|^SignatureNonceUsed/i.test(
      code,
    ) ||
    status === 401 ||
    status === 403
  ) {
    const credentials = /^(InvalidAccessKeyId|SignatureDoesNotMatch|IncompleteSignature|InvalidSecurityToken|InvalidTimeStamp|SignatureNonceUsed)/i.test(code);
    return new SignetError(
      'KEY_DENIED',
      credentials
        ? `${what}: the credentials were refused ${tail}; check the AccessKey pair or STS token (and the clock)`
        : `${what}: access denied ${tail}; the RAM principal needs kms:DescribeKey, kms:GetPublicKey and kms:AsymmetricSign on the key`,
      opts,
    );
  }
  if (status >= 500 || /^(InternalFailure|InternalError|ServiceUnavailable|SerivceUnavailable|ServiceBusy|Rejected\.Unavailable)/i.test(code)) {
    return new SignetError('KEY_UNAVAILABLE', `${what}: Alibaba Cloud KMS unavailable ${tail}`, opts);
  }
  if (/^Rejected\.UnsupportedOperation$/i.test(code)) {
    return new SignetError('KEY_UNSUPPORTED', `${what}: the key cannot sign ${tail}`, opts);
  }
  return new SignetError(fallback, `${what}: Alibaba Cloud KMS refused the request ${tail}`, opts);
}

// ---------------------------------------------------------------------------------------------
// Provider

function describePublicKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') return `RSA-${d?.modulusLength ?? '?'}`;
  if (key.asymmetricKeyType === 'ec') return `EC ${d?.namedCurve ?? '?'}`;
  return key.asymmetricKeyType ?? 'unknown';
}

export async function createAlibabaKmsKeyProvider(cfg: AlibabaKmsKeyConfig, deps: { api?: AlibabaKmsApi } = {}): Promise<AlibabaKmsKeyProvider> {
  const label = `key "${cfg.name}" (alibabakms ${cfg.keyId}${cfg.keyVersionId ? ` version ${cfg.keyVersionId}` : ''})`;
  let api: AlibabaKmsApi;
  try {
    api = deps.api ?? (await createAlibabaKmsApi(cfg));
  } catch (err) {
    if (err instanceof SignetError) throw new SignetError(err.code, `${label}: ${err.message}`);
    // The SDK validates its config in the constructor (ParameterMissing etc.); its messages carry no secrets.
    throw new SignetError('KEY_INVALID', `${label}: cannot create the Alibaba Cloud KMS client: ${safeMessage((err as Error)?.message) || 'unknown error'}`);
  }

  let meta;
  try {
    meta = await api.describeKey(cfg.keyId);
  } catch (err) {
    throw classifyAlibabaKmsError(err, `${label}: DescribeKey`, 'KEY_INVALID');
  }
  const keyId = meta.keyId || cfg.keyId;
  const keySpec = meta.keySpec || 'unknown';
  const keyUsage = meta.keyUsage || 'unknown';
  const what = `${label} is ${keySpec} ${keyUsage}${keyId !== cfg.keyId ? ` (key ${keyId})` : ''}`;
  const refuse = (why: string): never => {
    throw new SignetError('KEY_UNSUPPORTED', `${what}: ${why}`);
  };

  if (meta.keyState && meta.keyState !== 'Enabled') {
    throw new SignetError('KEY_DISABLED', `${what}: key state is ${meta.keyState}, not Enabled`);
  }
  if (keyUsage !== 'SIGN/VERIFY') refuse('signet needs an asymmetric key with KeyUsage SIGN/VERIFY');
  const spec = SUPPORTED_SPECS[keySpec];
  if (!spec) {
    refuse(
      keySpec === 'EC_P256K'
        ? 'secp256k1 keys are not verifiable by cosign; use EC_P256 or RSA_2048'
        : keySpec === 'EC_SM2'
          ? 'SM2 signatures are not verifiable by cosign; use EC_P256 or RSA_2048'
          : 'only RSA_2048 (also RSA_3072) and EC_P256 signing keys are supported',
    );
  }
  const { algorithm, signing, bits } = spec!;
  if (cfg.algorithm !== undefined && cfg.algorithm !== signing) {
    refuse(
      /PSS/i.test(cfg.algorithm)
        ? `algorithm ${cfg.algorithm} is not supported: cosign verifies RSA signatures as PKCS#1 v1.5; use ${signing} (or leave algorithm out)`
        : `algorithm ${cfg.algorithm} does not fit this key; use ${signing} (or leave algorithm out)`,
    );
  }

  let keyVersionId = cfg.keyVersionId ?? meta.primaryKeyVersion;
  if (!keyVersionId) {
    let versions: string[];
    try {
      versions = await api.listKeyVersions(keyId);
    } catch (err) {
      throw classifyAlibabaKmsError(err, `${what}: ListKeyVersions (no keyVersionId configured)`, 'KEY_INVALID');
    }
    if (versions.length === 0) throw new SignetError('KEY_NOT_FOUND', `${what}: the key has no versions`);
    if (versions.length > 1) {
      throw new SignetError(
        'KEY_INVALID',
        `${what}: the key has ${versions.length} versions and no primary version; set keys[].keyVersionId (one of ${versions.slice(0, 5).join(', ')})`,
      );
    }
    keyVersionId = versions[0]!;
  }

  let pem: string | undefined;
  try {
    pem = await api.getPublicKey(keyId, keyVersionId);
  } catch (err) {
    throw classifyAlibabaKmsError(err, `${what}: GetPublicKey (version ${keyVersionId})`, 'KEY_INVALID');
  }
  if (!pem) throw new SignetError('KEY_INVALID', `${what}: GetPublicKey returned no public key`);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new SignetError('KEY_INVALID', `${what}: GetPublicKey returned a public key that does not parse as PEM`, { cause: err });
  }
  const pubOk =
    algorithm === 'ecdsa-p256'
      ? publicKey.asymmetricKeyType === 'ec' && publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1'
      : publicKey.asymmetricKeyType === 'rsa' && publicKey.asymmetricKeyDetails?.modulusLength === bits;
  if (!pubOk) {
    throw new SignetError('KEY_INVALID', `${what}: the public key is ${describePublicKey(publicKey)}, which does not match its KeySpec`);
  }
  const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const signLabel = `key "${cfg.name}" (alibabakms ${keyId} version ${keyVersionId}): AsymmetricSign`;

  return {
    name: cfg.name,
    algorithm,
    keyBits: bits,
    keyId,
    keyVersionId,
    keySpec,
    async publicKeyPem() {
      return spkiPem;
    },
    async paddings() {
      return BOTH_PADDINGS;
    },
    async sign(digest: Buffer, _payload?: Buffer, opts?: SignOptions): Promise<Buffer> {
      assertSha256Digest(cfg.name, digest);
      const pss = algorithm === 'rsa-2048' && opts?.rsaPadding === 'pss';
      let value: string | undefined;
      try {
        value = await api.asymmetricSign(keyId, keyVersionId, pss ? 'RSA_PSS_SHA_256' : signing, digest.toString('base64'));
      } catch (err) {
        throw classifyAlibabaKmsError(err, signLabel);
      }
      const sig = value ? Buffer.from(value, 'base64') : Buffer.alloc(0);
      if (sig.length === 0) throw new SignetError('KEY_SIGN_FAILED', `${signLabel}: Alibaba Cloud KMS returned no signature`);
      if (algorithm === 'rsa-2048') {
        if (sig.length !== bits / 8) {
          throw new SignetError('KEY_SIGN_FAILED', `${signLabel}: RSA signature is ${sig.length} bytes, expected ${bits / 8}`);
        }
        if (pss && !verifyPssDigest(publicKey, digest, sig)) {
          throw new SignetError('KEY_SIGN_FAILED', `${signLabel}: the RSA_PSS_SHA_256 signature does not verify as RSASSA-PSS with SHA-256 and a 32-byte salt`);
        }
        return sig;
      }
      try {
        derEcdsaToRaw(sig, 32);
        return sig;
      } catch (err) {
        if (sig.length === 64) return rawEcdsaToDer(sig);
        throw new SignetError('KEY_SIGN_FAILED', `${signLabel}: Alibaba Cloud KMS returned a malformed ECDSA signature`, { cause: err });
      }
    },
  };
}

export const alibabaKmsProvider = defineKeyProvider({
  id: 'alibabakms',
  schema: alibabaKmsKeySchema,
  create: (cfg) => createAlibabaKmsKeyProvider(cfg),
  parseRef: parseAlibabaKmsRef,
});
