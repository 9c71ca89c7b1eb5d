/**
 * The `redis:` section: one node (`url`), Sentinel (`sentinel:`) or Cluster (`cluster:`), with
 * credentials, TLS, the key prefix and the acknowledgement policy (`ack:`). Exactly one topology;
 * none given means `url: redis://127.0.0.1:6379`.
 *
 * On Cluster every key of a BullMQ queue must hash to one slot, so the prefix BullMQ gets is
 * hash-tagged: `prefix: signet` becomes `{signet}` here, at parse time (a prefix written as
 * `{signet}` is kept). signet's own keys (locks, status records) drop the braces
 * (`ownKeyPrefix`) and spread over the slots by their full name.
 */
import { z } from 'zod';
import { int } from './int.js';

const hostPort = z.string().regex(/^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):[0-9]{1,5}$/, 'must be host:port, e.g. redis-sentinel.redis:26379 (no scheme)');

/** `tls: true` (system CAs) or the files to use; paths relative to the config file. */
const tlsSchema = z.union([
  z.boolean(),
  z
    .object({
      caFile: z.string().min(1).optional(),
      certFile: z.string().min(1).optional(),
      keyFile: z.string().min(1).optional(),
      /** SNI and the name checked in the certificate, when it differs from the host connected to. */
      servername: z.string().min(1).optional(),
      /** false: accept any certificate (testing only). */
      rejectUnauthorized: z.boolean().default(true),
    })
    .strict(),
]);
export type RedisTls = z.infer<typeof tlsSchema>;

const sentinelSchema = z
  .object({
    /** The name the sentinels monitor (`sentinel monitor <masterName> ...`). */
    masterName: z.string().min(1),
    sentinels: z.array(hostPort).min(1, 'name at least one sentinel (three or more in production)'),
    /** Credentials of the sentinels themselves (`redis.username`/`password` are the data nodes'). */
    sentinelUsername: z.string().min(1).optional(),
    sentinelPassword: z.string().min(1).optional(),
    /** TLS to the sentinels (`redis.tls` is for the master and replicas). */
    tls: tlsSchema.optional(),
  })
  .strict();

const clusterSchema = z
  .object({
    /** Some of the cluster's nodes; the rest are discovered (CLUSTER SLOTS). */
    nodes: z.array(hostPort).min(1, 'name at least one cluster node'),
    /** Addresses the nodes announce -> addresses signet can reach (NAT, port forwarding). */
    natMap: z.record(hostPort, hostPort).optional(),
  })
  .strict();

export const redisSchema = z
  .object({
    /** One node: redis://[user:password@]host:port[/db] or rediss:// for TLS. */
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .refine((u) => !/[?&]sentinels?=/.test(u), 'Sentinel is configured with redis.sentinel (masterName, sentinels), not in the URL')
      .optional(),
    sentinel: sentinelSchema.optional(),
    cluster: clusterSchema.optional(),
    /** Data nodes' ACL user and password (they override the URL's). */
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** Database number (single node and Sentinel; Cluster has only 0). */
    db: int().pipe(z.number().min(0).max(15)).optional(),
    tls: tlsSchema.optional(),
    /** Key prefix; `{name}` hash-tags it (done automatically on Cluster). */
    prefix: z
      .string()
      .regex(/^(\{[A-Za-z0-9_-]+\}|[A-Za-z0-9_-]+)$/, 'must be letters, digits, _ and - (optionally in one pair of braces: {signet})')
      .default('signet'),
    /**
     * When a webhook is answered 202: after the master has the job and `replicas` replicas
     * acknowledged it (WAIT), within `timeoutMs`; else 503 with Retry-After and the registry
     * resends. `auto`: one replica when the master has any (or, with Sentinel, the sentinels know
     * one they could promote), none otherwise. 0: the master alone.
     */
    ack: z
      .object({
        replicas: z.union([z.literal('auto'), int().pipe(z.number().min(0).max(16))]).default('auto'),
        timeoutMs: int().pipe(z.number().min(10).max(60_000)).default(1000),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((r, ctx) => {
    const given = (['url', 'sentinel', 'cluster'] as const).filter((k) => r[k] !== undefined);
    if (given.length > 1) {
      ctx.addIssue({ code: 'custom', path: [given[1]!], message: `give one of redis.url, redis.sentinel, redis.cluster (found ${given.join(' and ')})` });
    }
    if (r.cluster && r.db !== undefined && r.db !== 0) ctx.addIssue({ code: 'custom', path: ['db'], message: 'Redis Cluster has only database 0' });
  })
  .transform((r) => ({
    ...r,
    ...(r.sentinel || r.cluster ? {} : { url: r.url ?? 'redis://127.0.0.1:6379' }),
    prefix: r.cluster && !r.prefix.startsWith('{') ? `{${r.prefix}}` : r.prefix,
  }));

export type RedisConfig = z.infer<typeof redisSchema>;

/** The prefix of signet's own keys (locks, status): the configured one without hash-tag braces. */
export function ownKeyPrefix(prefix: string): string {
  return prefix.replace(/[{}]/g, '');
}

/** Which topology a config names. */
export function redisTopology(r: Pick<RedisConfig, 'sentinel' | 'cluster'>): 'single' | 'sentinel' | 'cluster' {
  return r.cluster ? 'cluster' : r.sentinel ? 'sentinel' : 'single';
}
