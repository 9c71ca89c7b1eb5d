/**
 * Composition root: builds the pieces from a loaded config and starts the receiver, the worker,
 * or both. `signet start|serve|worker|sign` and the tests all go through here.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { SignetError } from './errors.js';
import { compileRules, type RuleMatcher } from './config/rules.js';
import type { LoadedConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { createSigningKeys } from './kms/providers.js';
import type { SigningKey } from './kms/signing-key.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { Acknowledger } from './queue/ack.js';
import { checkRedis, createRedis, describeRedis, type RedisClient } from './queue/connection.js';
import { RedisHealth } from './queue/redis-health.js';
import { SignQueue } from './queue/sign-queue.js';
import { RegistryDirectory } from './registry/directory.js';
import { checkRuleKeys } from './formats/index.js';
import { DigestLock } from './signing/lock.js';
import { SigningPipeline } from './signing/pipeline.js';
import { StatusStore } from './status/store.js';
import { TimestampAuthorities } from './transparency/timestamp-trust.js';

import { createSignWorker } from '../workers/sign-worker.js';
import { instrumentRegistries } from './health/instrument.js';
import { startWorkerHttp } from './health/worker-http.js';

export interface Runtime {
  config: Config;
  baseDir: string;
  logger: Logger;
  metrics: Metrics;
  registries: RegistryDirectory;
  rules: RuleMatcher;
  keys: Map<string, SigningKey>;
  lockRedis: RedisClient;
  /** Eviction policy, persistence and lost-data checks (src/queue/redis-health.ts). */
  redisHealth: RedisHealth;
  pipeline: SigningPipeline;
  status: StatusStore;
  close(): Promise<void>;
}

export async function createRuntime(loaded: LoadedConfig, opts: { logger?: Logger; metrics?: Metrics } = {}): Promise<Runtime> {
  const { config, baseDir } = loaded;
  const logger = opts.logger ?? createLogger();
  for (const w of loaded.warnings) logger.warn({ path: w.path.join('.'), line: w.line }, w.message);
  await checkRedis(config.redis, 5000, baseDir);
  const metrics = opts.metrics ?? new Metrics({ defaultMetrics: true });
  // its own fail-fast connection: /readyz and the marker watch never wait behind jobs' commands
  const healthRedis = createRedis(config.redis, 'producer', baseDir);
  const redisHealth = new RedisHealth(healthRedis, {
    prefix: config.redis.prefix,
    logger,
    onDataLoss: () => metrics.redisDataLoss.inc(),
    embedded: loaded.source === '(embedded default)',
  });
  try {
    await redisHealth.startup();
  } catch (err) {
    healthRedis.disconnect();
    throw err;
  }
  redisHealth.watch();
  logger.info({ redis: describeRedis(config.redis), prefix: config.redis.prefix }, 'redis checked');
  const dropHealth = () => {
    redisHealth.close();
    healthRedis.disconnect();
  };
  const keys = await createSigningKeys(config.keys, { baseDir }, {
    observe: (key, outcome, seconds) => metrics.keySignSeconds.observe({ key, outcome }, seconds), // signet_key_sign_seconds
  }).catch((err: unknown) => {
    dropHealth();
    throw err;
  });
  try {
    await checkRuleKeys(config.rules, keys); // an RSA key that cannot pad as its rule's formats need
  } catch (err) {
    await Promise.allSettled([...keys.values()].map((k) => k.close()));
    dropHealth();
    throw err;
  }
  const registries = new RegistryDirectory(config.registries, { baseDir });
  instrumentRegistries(registries, metrics); // signet_registry_errors_total
  const rules = compileRules(config.rules);
  const lockRedis = createRedis(config.redis, 'lock', baseDir);
  const lock = new DigestLock(lockRedis, config.redis.prefix);
  const status = new StatusStore(lockRedis, config.redis.prefix, Math.round(config.status.retentionDays * 86400));
  const timestamps = new TimestampAuthorities(config.rules, baseDir);
  const pipeline = new SigningPipeline({ registries, rules, keys, lock, history: status, metrics, timestamps });
  return {
    config,
    baseDir,
    logger,
    metrics,
    registries,
    rules,
    keys,
    lockRedis,
    redisHealth,
    pipeline,
    status,
    async close() {
      await pipeline.close();
      await timestamps.close();
      await registries.close();
      await Promise.allSettled([...keys.values()].map((k) => k.close()));
      lockRedis.disconnect();
      dropHealth();
    },
  };
}

export interface Service {
  /** Port the receiver listens on (when it runs). */
  port?: number;
  server?: Server;
  worker?: Worker;
  queue?: SignQueue;
  /** Stop taking work, finish what is in flight, close connections. */
  stop(): Promise<void>;
}

export async function startService(rt: Runtime, roles: { receiver: boolean; worker: boolean }): Promise<Service> {
  const { config, logger } = rt;
  const service: Service = { stop: async () => undefined };
  rt.redisHealth.reportStartup(); // persistence off: a warning for the processes whose jobs it would lose
  const closers: (() => Promise<void>)[] = [];

  if (roles.worker) {
    if (!roles.receiver && config.worker.httpPort !== undefined) {
      const http = await startWorkerHttp(rt.metrics, config.server.host, config.worker.httpPort).catch((err: NodeJS.ErrnoException) => {
        throw new SignetError('CONFIG_INVALID', `cannot listen on ${config.server.host}:${config.worker.httpPort} (${err.code ?? err.message}); set worker.httpPort`);
      });
      service.server = http.server;
      service.port = http.port;
      closers.push(async () => {
        await new Promise<void>((resolve) => http.server.close(() => resolve()));
        http.server.closeAllConnections?.();
      });
      logger.info({ port: http.port, paths: ['/healthz', '/metrics'] }, 'worker metrics listening');
    }
    const connection = createRedis(config.redis, 'worker', rt.baseDir);
    // workers/sign-worker.ts types its connection as Redis; BullMQ takes a Cluster the same way
    const worker = createSignWorker({ config, connection: connection as Redis, pipeline: rt.pipeline, metrics: rt.metrics, logger, status: rt.status });
    await worker.waitUntilReady();
    service.worker = worker;
    closers.push(async () => {
      // Stop taking jobs and let the ones in flight finish; past the timeout, leave them to
      // stalled-job recovery (another worker runs them again) rather than hang forever.
      logger.info('worker stopping: no new jobs, finishing in-flight ones');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        worker.close().then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), config.worker.shutdownTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        logger.warn({ timeoutMs: config.worker.shutdownTimeoutMs }, 'in-flight jobs did not finish in time; they will be run again by a worker');
        await worker.close(true);
      }
      connection.disconnect();
    });
    logger.info({ concurrency: config.worker.concurrency }, 'worker started');
  }

  if (roles.receiver) {
    const producer = createRedis(config.redis, 'producer', rt.baseDir);
    // 202 only once the master and redis.ack.replicas replicas have the jobs (src/queue/ack.ts)
    const ack = new Acknowledger(producer, config.redis.prefix, config.redis.ack, {
      onAccepted: (r) => rt.redisHealth.noteAccepted(r.total, r.added),
      onRefused: () => rt.metrics.redisAckRefused.inc(),
    });
    const queue = new SignQueue(producer, config.redis.prefix, config.worker, ack);
    // the web stack (express, adapters, status page) is loaded only by processes that serve
    const [{ createReceiver }, { createReceiverServer }, { Readiness }, { QueueAdmin }] = await Promise.all([
      import('./webhooks/receiver.js'),
      import('./webhooks/http-server.js'),
      import('./health/readiness.js'),
      import('./queue/admin.js'),
    ]);
    // status page, queue depth gauge and readiness use the fail-fast producer connection
    const admin = new QueueAdmin(producer, config.redis.prefix);
    rt.metrics.queueDepthSource = () => admin.counts();
    const readiness = new Readiness({ redis: producer, redisHealth: rt.redisHealth, keys: new Map([...rt.keys].map(([n, k]) => [n, k.backend])), registries: rt.registries });
    // the HTTP API and the status page read status records on the fail-fast connection: 503, not a hang, while Redis is away
    const status = new StatusStore(producer, config.redis.prefix, Math.round(config.status.retentionDays * 86400));
    const receiver = createReceiver({ config, registries: rt.registries, rules: rt.rules, queue, metrics: rt.metrics, logger, status, readiness, admin });
    const server = createReceiverServer(receiver, config.server, rt.metrics);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.server.port, config.server.host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch(async (err: NodeJS.ErrnoException) => {
      rt.metrics.queueDepthSource = undefined;
      await admin.close();
      await queue.close();
      ack.close();
      producer.disconnect();
      throw new SignetError('CONFIG_INVALID', `cannot listen on ${config.server.host}:${config.server.port} (${err.code ?? err.message}); set server.port`);
    });
    service.server = server;
    service.queue = queue;
    service.port = (server.address() as AddressInfo).port;
    closers.unshift(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
      rt.metrics.queueDepthSource = undefined;
      await admin.close();
      await queue.close();
      ack.close();
      producer.disconnect();
    });
    logger.info({ port: service.port, hooks: config.integrations.map((i) => `/hooks/${i.name}`) }, 'receiver listening');
  }

  service.stop = async () => {
    for (const c of closers) await c();
    await rt.close();
  };
  return service;
}
