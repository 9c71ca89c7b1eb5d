/**
 * The YAML config's shape (zod). Cross-references between sections (a rule naming a key that
 * does not exist, ...) are checked in validate.ts so every problem is reported at once.
 */
import { z } from 'zod';
import { int } from './int.js';
import { keyConfigSchema } from '../kms/providers.js';
import { credentialsSchema } from '../registry/credentials/index.js';
import { annotationsSchema, rekorRuleSchema, signatureFormatsSchema } from '../signing/rule-options.js';
import { timestampRuleSchema } from '../transparency/timestamp-config.js';
import { requireSchema } from './conditions.js';
import { serviceUrlSchema } from '../edge/service-client.js';
import { redisSchema } from './redis.js';
import { webhookAdapters } from '../webhooks/adapters/index.js';
import type { integrationConfig } from '../webhooks/integration-config.js';

const hostPattern = /^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$/;
const host = z.string().regex(hostPattern, 'must be a registry host such as registry.example.com or 127.0.0.1:5000 (no scheme, no path)');

/** {username, password} | {token} | {dockerConfig} | {ecr} | {acr} | {gar}: see src/registry/credentials/. */
const credentials = credentialsSchema;

export const registrySchema = z
  .object({
    host,
    /** Plain http. Without it signet speaks TLS only. */
    insecure: z.boolean().default(false),
    /** Extra CA bundle (PEM) trusted for this registry's TLS. */
    caFile: z.string().optional(),
    credentials: credentials.optional(),
    /** Other names the same registry appears under in webhook payloads (e.g. an internal hostname). */
    aliases: z.array(host).default([]),
    /** Hosts besides `host` that may serve the bearer-token realm (e.g. auth.docker.io). */
    authHosts: z.array(host).default([]),
    /** Requests this registry gets at once from one worker process. */
    maxConcurrency: z.number().int().min(1).max(1024).default(64),
    /** Per-request timeout: the whole answer (headers and body) must arrive within it. */
    timeoutMs: z.number().int().min(100).default(15000),
    /**
     * Sign jobs for this registry one worker process runs at once; more wait in the queue, so a
     * slow registry cannot hold every worker slot. Default: worker.concurrency with one registry,
     * half of it (at least 1) with several. See src/registry/job-slots.ts.
     */
    maxJobs: z.number().int().min(1).max(1000).optional(),
    /**
     * Read each .sig manifest back after writing it, and merge again if a writer outside signet
     * replaced it in between (one more request per signature). signet's own writers never race:
     * they hold a per-digest lock. See docs/reliability.md.
     */
    verifyWrites: z.boolean().default(false),
    /**
     * Harbor's base URL, for the scan gate's artifact API (`<harborApi>/api/v2.0/...`): only
     * read for rules with `require.scan`. Default: the registry's own scheme and host, where
     * Harbor serves its API. See docs/conditions.md.
     */
    harborApi: serviceUrlSchema('https://harbor.example.com').optional(),
  })
  .strict();

/** One entry per webhook endpoint; each kind's adapter owns its schema (src/webhooks/adapters/). */
type IntegrationEntrySchema = ReturnType<typeof integrationConfig<string>>;
const adapterSchemas = Object.values(webhookAdapters).map((a) => a.configSchema) as unknown as [IntegrationEntrySchema, ...IntegrationEntrySchema[]];
export const integrationSchema = z.discriminatedUnion('kind', adapterSchemas);

const globList = z.array(z.string().min(1));

export const ruleSchema = z
  .object({
    /** Glob over "host/repository", e.g. "127.0.0.1:5000/team-a/**". */
    match: z.string().min(1),
    keys: z.array(z.string().min(1)).min(1, 'a rule needs at least one key'),
    tags: z.object({ include: globList.optional(), exclude: globList.optional() }).strict().optional(),
    /**
     * The payload's docker-reference. `tag` (default): registry/repo:tag for pushes by tag, which
     * CRI-O/OpenShift's default matchRepoDigestOrExact accepts; `repository`: registry/repo as
     * cosign writes it (one signature per key whatever the number of tags).
     */
    identity: z.enum(['tag', 'repository']).default('tag'),
    /** Manifests pushed without a tag (multi-arch children are signed with their index anyway). */
    untagged: z.enum(['ignore', 'sign']).default('ignore'),
    /** Storage formats to write: legacy .sig and sigstore bundle v0.3 referrer (the default: both), Notary Project signatures (notation). See docs/formats.md. */
    formats: signatureFormatsSchema.optional(),
    /** Log each signature to this Rekor v1 (public or self-hosted); see src/signing/rule-options.ts. */
    rekor: rekorRuleSchema.optional(),
    /** Timestamp each signature at this RFC 3161 timestamp authority (alone or with Rekor); see src/transparency/timestamp-config.ts. */
    timestamp: timestampRuleSchema.optional(),
    /**
     * Whose word `${pusher}` takes: `authenticated` (default) only an integration that
     * authenticates its sender (not `insecure: true`), since a sender writes any pusher it likes;
     * `any` also an unauthenticated one (closed networks). The same pusher is the one
     * `require.pushers` conditions are checked against. See src/config/rules.ts pusherPolicy.
     */
    pusherFrom: z.enum(['authenticated', 'any']).optional(),
    /** Payload annotations (cosign sign -a), templates over ${registry} ${repository} ${tag} ${digest} ${pusher}. */
    annotations: annotationsSchema.optional(),
    /** Conditions a push must meet before it is signed (src/config/conditions.ts). */
    require: requireSchema.optional(),
    /** Also attach a signed record of the decision: an in-toto SLSA verification summary, as a sigstore bundle referrer. */
    attest: z.boolean().optional(),
  })
  .strict();

export const configSchema = z
  .object({
    server: z
      .object({
        port: int().pipe(z.number().min(0).max(65535)).default(8080),
        /** Listen address: loopback by default; 0.0.0.0 (or ::) to listen on every interface. */
        host: z.string().default('127.0.0.1'),
        /** Largest webhook body accepted, in bytes. */
        bodyLimitBytes: z
          .number()
          .int()
          .min(1024)
          .default(1024 * 1024),
        /** A webhook body must have arrived whole this many ms after its headers; else 408 and the connection is closed. */
        bodyTimeoutMs: z.number().int().min(100).default(10_000),
        /** From its first second on, a body must arrive at this average rate at least (bytes/s; 0: no minimum); else 408. */
        minBodyBytesPerSecond: z.number().int().min(0).default(4096),
        /**
         * Bodies read at once before their sender is authenticated (integrations whose signature
         * covers the body: github, jfrog with signing: hmac). Past it: 503 with Retry-After, the
         * body is not read (a body that has already arrived whole is still checked).
         */
        maxPreAuthBodies: z.number().int().min(1).default(64),
        /**
         * Failed authentications answered 401 (and logged, sampled), per integration; past this
         * token bucket they get 429 and their connection is closed. It is not the integration's
         * `rateLimit`, which only authenticated calls spend.
         */
        authFailureRateLimit: z
          .object({ requestsPerSecond: z.number().positive().default(20), burst: z.number().int().min(1).default(100) })
          .strict()
          .prefault({}),
        /** The request line and headers must have arrived this many ms after the connection (or the previous request). */
        headersTimeoutMs: z.number().int().min(1000).default(10_000),
        /** A whole request (headers and body) must have arrived within this many ms. */
        requestTimeoutMs: z.number().int().min(1000).default(30_000),
        /** An idle keep-alive connection is closed after this many ms. */
        keepAliveTimeoutMs: z.number().int().min(0).default(5_000),
        /**
         * Connections open at once; past it new ones are closed on arrival (counted in
         * signet_http_connections_dropped_total). Default: the file-descriptor limit less 256,
         * so that Redis, registries and key backends keep descriptors of their own.
         */
        maxConnections: z.number().int().min(16).optional(),
        /** Enables the status page (GET /ui) and its retry button; without it the page is off (404). */
        statusPageToken: z.string().min(16, 'must be at least 16 characters (e.g. openssl rand -hex 24)').optional(),
        /** Enables GET /api/v1/images/{ref}/status for `Authorization: Bearer <apiToken>`; without it the API is off (404). */
        apiToken: z.string().min(16, 'must be at least 16 characters (e.g. openssl rand -hex 24)').optional(),
      })
      .strict()
      .refine((s) => s.headersTimeoutMs <= s.requestTimeoutMs, { message: 'headersTimeoutMs must not exceed requestTimeoutMs', path: ['headersTimeoutMs'] })
      .prefault({}),
    /** Single node, Sentinel or Cluster; see src/config/redis.ts. */
    redis: redisSchema.prefault({}),
    worker: z
      .object({
        /** Jobs one worker process runs at once (I/O bound: registry and KMS round trips). */
        concurrency: z.number().int().min(1).max(1000).default(32),
        /** Attempts per job before it is kept as failed. */
        attempts: z.number().int().min(1).max(100).default(10),
        /** First retry delay; doubles each attempt, with jitter. */
        backoffMs: z.number().int().min(10).default(2000),
        /** Failed jobs kept for `signet jobs failed`. */
        keepFailed: z.number().int().min(0).default(10000),
        keepCompleted: z.number().int().min(0).default(1000),
        /** A job whose worker stops renewing its lock for this long (a killed process) is run again. */
        lockDurationMs: z.number().int().min(1000).default(30000),
        /** How often workers look for such stalled jobs. */
        stalledIntervalMs: z.number().int().min(500).default(30000),
        /** On SIGTERM, how long in-flight jobs may take before the process exits anyway. */
        shutdownTimeoutMs: z.number().int().min(0).default(30000),
        /**
         * `signet worker` (no receiver) serves GET /healthz and GET /metrics on this port, on
         * server.host; absent: it listens on nothing. `signet start` serves them on server.port.
         */
        httpPort: int().pipe(z.number().min(0).max(65535)).optional(),
      })
      .strict()
      .default({
        concurrency: 32,
        attempts: 10,
        backoffMs: 2000,
        keepFailed: 10000,
        keepCompleted: 1000,
        lockDurationMs: 30000,
        stalledIntervalMs: 30000,
        shutdownTimeoutMs: 30000,
      }),
    status: z
      .object({
        /** How long signing status per (digest, rule, key) is kept in Redis. */
        retentionDays: z.number().positive().max(3650).default(30),
      })
      .strict()
      .default({ retentionDays: 30 }),
    registries: z.array(registrySchema).min(1, 'name at least one registry: signet contacts no other host'),
    integrations: z.array(integrationSchema).default([]),
    keys: z.array(keyConfigSchema).min(1, 'configure at least one key'),
    rules: z.array(ruleSchema).default([]),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type RegistryConfig = z.infer<typeof registrySchema>;
export type IntegrationConfig = z.infer<typeof integrationSchema>;
export type RuleConfig = z.infer<typeof ruleSchema>;
