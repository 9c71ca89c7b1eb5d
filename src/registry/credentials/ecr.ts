/**
 * Amazon ECR: `GetAuthorizationToken` through the real `@aws-sdk/client-ecr`.
 *
 * - The answer's `authorizationData[0].authorizationToken` is base64 `AWS:<password>`; the pair is
 *   used as Basic credentials (what `docker login` does) until shortly before `expiresAt`
 *   (12 hours after issue on AWS). `proxyEndpoint` is ignored: signet only talks to the
 *   configured registry host.
 * - Region: `ecr.region`, else the one in the registry host (`<account>.dkr.ecr.<region>.amazonaws.com`,
 *   `.amazonaws.com.cn`, `-fips`, dual-stack `<account>.dkr-ecr.<region>.on.aws`), else the SDK's
 *   (AWS_REGION, profile).
 * - Credentials: `accessKeyId` + `secretAccessKey` (+ `sessionToken`), else the SDK's default chain
 *   (env, shared config/SSO, web identity/IRSA, ECS, EC2 instance metadata).
 * - `endpoint` points the SDK at another ECR API endpoint (a VPC endpoint, or a test stand-in);
 *   it is the only other host this source contacts.
 * - The SDK's own retries are off: the job queue's backoff is the retry policy.
 * - The SDK is loaded on the first credentials fetch, not when this module is imported: config
 *   validation (and every process that never talks to ECR) does not pay for it.
 */
import type { ECRClient, ECRClientConfig } from '@aws-sdk/client-ecr';
import { z } from 'zod';
import { retryAfterOption } from '../../edge/retry-after.js';
import { SignetError } from '../../errors.js';
import { cachedCredentialSource, errorSummary, type CredentialContext, type CredentialSource } from './source.js';

export const ecrCredentialsSchema = z
  .object({
    ecr: z
      .object({
        region: z
          .string()
          .regex(/^[a-z0-9-]+$/, 'must be an AWS region such as eu-west-1')
          .optional(),
        /** ECR API endpoint URL, e.g. https://api.ecr.eu-west-1.amazonaws.com or a VPC endpoint. */
        endpoint: z
          .string()
          .url()
          .refine((u) => /^https?:\/\//i.test(u), 'endpoint must be an http(s) URL')
          .optional(),
        /** Static AWS credentials (use `${ENV}`); otherwise the SDK's default chain. */
        accessKeyId: z.string().min(1).optional(),
        secretAccessKey: z.string().min(1).optional(),
        sessionToken: z.string().min(1).optional(),
        /** Per-request timeout, ms. */
        timeoutMs: z.number().int().positive().max(300_000).optional(),
      })
      .strict()
      .superRefine((c, ctx) => {
        if ((c.accessKeyId === undefined) !== (c.secretAccessKey === undefined)) {
          ctx.addIssue({
            code: 'custom',
            path: [c.accessKeyId === undefined ? 'accessKeyId' : 'secretAccessKey'],
            message: 'give accessKeyId and secretAccessKey together',
          });
        }
        if (c.sessionToken !== undefined && c.accessKeyId === undefined) {
          ctx.addIssue({ code: 'custom', path: ['sessionToken'], message: 'sessionToken needs accessKeyId and secretAccessKey' });
        }
      }),
  })
  .strict();
export type EcrCredentialsConfig = z.infer<typeof ecrCredentialsSchema>;

const HOST_RES = [
  /^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?::\d+)?$/i,
  /^(\d{12})\.dkr-ecr(?:-fips)?\.([a-z0-9-]+)\.on\.aws(?::\d+)?$/i,
];

/** The region in an ECR registry host name, if it is one. */
export function ecrRegionOfHost(host: string): string | undefined {
  for (const re of HOST_RES) {
    const m = re.exec(host);
    if (m) return m[2]!.toLowerCase();
  }
  return undefined;
}

const THROTTLING = new Set(['ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'ProvisionedThroughputExceededException']);
const DENIED = new Set([
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'CredentialsProviderError',
]);

function classify(err: unknown, who: string): SignetError {
  const e = err as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    $response?: { statusCode?: number; headers?: Record<string, string | undefined> };
  };
  const name = e?.name ?? '';
  const status = e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
  const detail = errorSummary(err);
  if (THROTTLING.has(name) || status === 429) {
    return new SignetError('REGISTRY_THROTTLED', `${who}: ECR GetAuthorizationToken was throttled (${detail})`, {
      cause: err,
      ...(status ? { status } : {}),
      ...retryAfterOption(e?.$response?.headers?.['retry-after']),
    });
  }
  if (name === 'CredentialsProviderError') {
    return new SignetError(
      'REGISTRY_AUTH_FAILED',
      `${who}: no usable AWS credentials (set credentials.ecr.accessKeyId/secretAccessKey or use the SDK's standard sources)`,
      { cause: err },
    );
  }
  if (/region is missing/i.test(String((err as Error)?.message ?? ''))) {
    return new SignetError(
      'REGISTRY_AUTH_FAILED',
      `${who}: no AWS region (set credentials.ecr.region or AWS_REGION, or use the ECR host name as registry host)`,
      { cause: err },
    );
  }
  if (DENIED.has(name) || status === 401 || status === 403) {
    return new SignetError('REGISTRY_AUTH_FAILED', `${who}: ECR refused GetAuthorizationToken (${detail}); the identity needs ecr:GetAuthorizationToken`, {
      cause: err,
      ...(status ? { status } : {}),
    });
  }
  if (status !== undefined && status < 500) {
    return new SignetError('REGISTRY_AUTH_FAILED', `${who}: ECR GetAuthorizationToken answered HTTP ${status} (${detail})`, { cause: err, status });
  }
  return new SignetError('REGISTRY_UNAVAILABLE', `${who}: ECR GetAuthorizationToken failed (${detail})`, {
    cause: err,
    ...(status ? { status } : {}),
    ...retryAfterOption(e?.$response?.headers?.['retry-after']),
  });
}

/** The SDK, loaded on first use so that importing this module (config validation) stays cheap. */
function loadSdk(): Promise<typeof import('@aws-sdk/client-ecr')> {
  return import('@aws-sdk/client-ecr');
}

const ecrTimeoutMs = (cfg: EcrCredentialsConfig['ecr'], fallbackTimeoutMs: number) => cfg.timeoutMs ?? Math.min(fallbackTimeoutMs, 30_000);

export async function createEcrClient(cfg: EcrCredentialsConfig['ecr'], host: string, fallbackTimeoutMs: number): Promise<ECRClient> {
  const { ECRClient } = await loadSdk();
  const region = cfg.region ?? ecrRegionOfHost(host);
  const timeoutMs = ecrTimeoutMs(cfg, fallbackTimeoutMs);
  const options: ECRClientConfig = {
    maxAttempts: 1,
    requestHandler: { requestTimeout: timeoutMs, connectionTimeout: Math.min(timeoutMs, 5_000), throwOnRequestTimeout: true },
    ...(region ? { region } : {}),
    ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
    ...(cfg.accessKeyId && cfg.secretAccessKey
      ? { credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey, ...(cfg.sessionToken ? { sessionToken: cfg.sessionToken } : {}) } }
      : {}),
  };
  return new ECRClient(options);
}

export function createEcrSource(
  cfg: EcrCredentialsConfig,
  ctx: CredentialContext,
  deps: { client?: ECRClient; now?: () => number } = {},
): CredentialSource & { readonly fetches: number } {
  const who = `registry ${ctx.host} (ECR credentials)`;
  const timeoutMs = ecrTimeoutMs(cfg.ecr, ctx.timeoutMs);
  // created (and the SDK loaded) on the first fetch; a failed creation is tried again next time
  let client: Promise<ECRClient> | undefined = deps.client ? Promise.resolve(deps.client) : undefined;
  const clientOnce = (): Promise<ECRClient> =>
    (client ??= createEcrClient(cfg.ecr, ctx.host, ctx.timeoutMs).catch((err: unknown) => {
      client = undefined;
      throw err;
    }));
  return cachedCredentialSource(
    `ECR GetAuthorizationToken${cfg.ecr.endpoint ? ` at ${new URL(cfg.ecr.endpoint).host}` : ''}`,
    async () => {
      const [{ GetAuthorizationTokenCommand }, c] = await Promise.all([loadSdk(), clientOnce()]);
      let out;
      // the overall deadline: the SDK's requestTimeout stops at the response headers
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        out = await c.send(new GetAuthorizationTokenCommand({}), { abortSignal: signal });
      } catch (err) {
        if (signal.aborted) {
          throw new SignetError('REGISTRY_UNAVAILABLE', `${who}: ECR GetAuthorizationToken timed out (no complete answer within ${timeoutMs} ms)`, {
            cause: err,
          });
        }
        throw classify(err, who);
      }
      const data = out.authorizationData?.[0];
      const decoded = data?.authorizationToken ? Buffer.from(data.authorizationToken, 'base64').toString('utf8') : '';
      const i = decoded.indexOf(':');
      if (i <= 0 || i === decoded.length - 1) {
        throw new SignetError('REGISTRY_PROTOCOL', `${who}: GetAuthorizationToken returned no usable authorizationToken`);
      }
      const expiresAt = data?.expiresAt instanceof Date && !Number.isNaN(data.expiresAt.getTime()) ? data.expiresAt.getTime() : undefined;
      return { value: { username: decoded.slice(0, i), password: decoded.slice(i + 1) }, ...(expiresAt !== undefined ? { expiresAt } : {}) };
    },
    { defaultTtlMs: 60 * 60_000, ...(deps.now ? { now: deps.now } : {}) },
  );
}
