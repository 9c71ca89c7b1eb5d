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
import { checkRedis, createRedis } from './queue/connection.js';
import { SignQueue } from './queue/sign-queue.js';
import { RegistryDirectory } from './registry/directory.js';
import { checkRuleKeys } from './formats/index.js';
import { DigestLock } from './signing/lock.js';
import { SigningPipeline } from './signing/pipeline.js';
import { RedisSignatures } from './signing/shared-signatures.js';
import { StatusStore } from './status/store.js';
import { ScanGate } from './scan/gate.js';
import { TimestampAuthorities } from './transparency/timestamp-trust.js';

import { closeSignWorker, createSignWorker } from '../workers/sign-worker.js';
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
  lockRedis: Redis;
  pipeline: SigningPipeline;
  status: StatusStore;
  /** The scan gate, when a rule has require.scan. */
  scanGate: ScanGate | undefined;
  close(): Promise<void>;
}

export async function createRuntime(loaded: LoadedConfig, opts: { logger?: Logger; metrics?: Metrics } = {}): Promise<Runtime> {
  const { config, baseDir } = loaded;
  const logger = opts.logger ?? createLogger();
  for (const w of loaded.warnings) logger.warn({ path: w.path.join('.'), line: w.line }, w.message);
  await checkRedis(config.redis.url);
  const metrics = opts.metrics ?? new Metrics({ defaultMetrics: true });
  const keys = await createSigningKeys(config.keys, { baseDir }, {
    observe: (key, outcome, seconds) => metrics.keySignSeconds.observe({ key, outcome }, seconds), // signet_key_sign_seconds
  });
  try {
    await checkRuleKeys(config.rules, keys); // an RSA key that cannot pad as its rule's formats need
  } catch (err) {
    await Promise.allSettled([...keys.values()].map((k) => k.close()));
    throw err;
  }
  const registries = new RegistryDirectory(config.registries, { baseDir });
  instrumentRegistries(registries, metrics); // signet_registry_errors_total
  const rules = compileRules(config.rules);
  const lockRedis = createRedis(config.redis.url, 'lock');
  const lock = new DigestLock(lockRedis, config.redis.prefix);
  const status = new StatusStore(lockRedis, config.redis.prefix, Math.round(config.status.retentionDays * 86400));
  const timestamps = new TimestampAuthorities(config.rules, baseDir);
  const signatures = new RedisSignatures(lockRedis, config.redis.prefix); // a retry in another worker reuses the signature
  // rules with require.scan: records in Redis, Harbor's artifact API per registry (src/scan/gate.ts)
  const scanGate = config.rules.some((r) => r.require?.scan)
    ? new ScanGate({ redis: lockRedis, prefix: config.redis.prefix, ttlSeconds: Math.round(config.status.retentionDays * 86400), registries: config.registries, baseDir, onDecision: (outcome) => metrics.scanGate.inc({ outcome }) })
    : undefined;
  const pipeline = new SigningPipeline({ registries, rules, keys, lock, history: status, metrics, timestamps, signatures, ...(scanGate ? { scanGate } : {}) });
  return {
    config,
    baseDir,
    logger,
    metrics,
    registries,
    rules,
    keys,
    lockRedis,
    pipeline,
    status,
    scanGate,
    async close() {
      await pipeline.close();
      await scanGate?.close();
      await timestamps.close();
      await registries.close();
      await Promise.allSettled([...keys.values()].map((k) => k.close()));
      lockRedis.disconnect();
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
    const connection = createRedis(config.redis.url, 'worker');
    const worker = createSignWorker({ config, connection, pipeline: rt.pipeline, metrics: rt.metrics, logger, status: rt.status });
    await worker.waitUntilReady();
    service.worker = worker;
    // no new jobs, in-flight ones get worker.shutdownTimeoutMs, then disconnect whatever Redis's state
    closers.push(() => closeSignWorker(worker, { connection, timeoutMs: config.worker.shutdownTimeoutMs, logger }));
    logger.info({ concurrency: config.worker.concurrency }, 'worker started');
  }

  if (roles.receiver) {
    const producer = createRedis(config.redis.url, 'producer');
    const queue = new SignQueue(producer, config.redis.prefix, config.worker);
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
    const readiness = new Readiness({ redis: producer, keys: new Map([...rt.keys].map(([n, k]) => [n, k.backend])), registries: rt.registries });
    // the HTTP API and the status page read status records on the fail-fast connection: 503, not a hang, while Redis is away
    const status = new StatusStore(producer, config.redis.prefix, Math.round(config.status.retentionDays * 86400));
    const receiver = createReceiver({ config, registries: rt.registries, rules: rt.rules, queue, metrics: rt.metrics, logger, status, readiness, admin, scanGate: rt.scanGate });
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
