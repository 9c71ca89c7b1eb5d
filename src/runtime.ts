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
import { checkRedis, createRedis, describeRedis, sentinelReplicas, type RedisClient } from './queue/connection.js';
import { RedisHealth } from './queue/redis-health.js';
import { SignQueue } from './queue/sign-queue.js';
import { RegistryDirectory } from './registry/directory.js';
import { checkRuleKeys } from './formats/index.js';
import { DigestLock } from './signing/lock.js';
import { SigningPipeline } from './signing/pipeline.js';
import { RedisSignatures, type SharedSignatures } from './signing/shared-signatures.js';
import { StatusStore } from './status/store.js';
import { ScanGate } from './scan/gate.js';
import { TimestampAuthorities } from './transparency/timestamp-trust.js';

import { closeSignWorker, createSignWorker } from '../workers/sign-worker.js';
import { instrumentRegistries } from './health/instrument.js';
import { startWorkerHttp } from './health/worker-http.js';
import { RegistryAccessCheck } from './health/registry-check.js';
import { reloadConfig, type ReloadResult } from './config/reload.js';

export interface Runtime {
  /** The config in force (a reload replaces it; its server, redis, worker and status sections stay as started). */
  config: Config;
  baseDir: string;
  logger: Logger;
  metrics: Metrics;
  /** The signing pieces below are replaced together by a reload (src/config/reload.ts): read them from here each time. */
  registries: RegistryDirectory;
  rules: RuleMatcher;
  keys: Map<string, SigningKey>;
  lockRedis: RedisClient;
  /** Eviction policy, persistence and lost-data checks (src/queue/redis-health.ts). */
  redisHealth: RedisHealth;
  pipeline: SigningPipeline;
  status: StatusStore;
  /** The scan gate, when a rule has require.scan (rebuilt on reload). */
  scanGate: ScanGate | undefined;
  /**
   * Puts the signing pieces built from `config` in force (rules, registries and their
   * credentials, keys, timestamp authorities, the pipeline); resolves with a function that closes
   * the pieces it replaced, to call once nothing in flight uses them. Throws, changing nothing,
   * when a key cannot be opened.
   */
  swap(config: Config): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** What a config change replaces without a restart. */
interface SigningPieces {
  keys: Map<string, SigningKey>;
  registries: RegistryDirectory;
  rules: RuleMatcher;
  timestamps: TimestampAuthorities;
  pipeline: SigningPipeline;
  scanGate: ScanGate | undefined;
}

/** What the pieces share and a reload keeps: Redis, the lock, status records, signatures other workers made. */
interface SharedParts {
  lock: DigestLock;
  status: StatusStore;
  lockRedis: RedisClient;
  signatures: SharedSignatures;
}

async function buildPieces(config: Config, baseDir: string, metrics: Metrics, shared: SharedParts): Promise<SigningPieces> {
  const { lock, status, lockRedis, signatures } = shared;
  const keys = await createSigningKeys(
    config.keys,
    { baseDir },
    {
      observe: (key, outcome, seconds) => metrics.keySignSeconds.observe({ key, outcome }, seconds), // signet_key_sign_seconds
    },
  );
  let registries: RegistryDirectory | undefined;
  try {
    await checkRuleKeys(config.rules, keys); // an RSA key that cannot pad as its rule's formats need
    const timestamps = new TimestampAuthorities(config.rules, baseDir);
    registries = new RegistryDirectory(config.registries, { baseDir });
    instrumentRegistries(registries, metrics); // signet_registry_errors_total
    const rules = compileRules(config.rules);
    // rules with require.scan: records in Redis, Harbor's artifact API per registry (src/scan/gate.ts)
    const scanGate = config.rules.some((r) => r.require?.scan)
      ? new ScanGate({
          redis: lockRedis,
          prefix: config.redis.prefix,
          ttlSeconds: Math.round(config.status.retentionDays * 86400),
          registries: config.registries,
          baseDir,
          onDecision: (outcome) => metrics.scanGate.inc({ outcome }),
        })
      : undefined;
    const pipeline = new SigningPipeline({
      registries,
      rules,
      keys,
      lock,
      history: status,
      metrics,
      timestamps,
      signatures,
      ...(scanGate ? { scanGate } : {}),
    });
    return { keys, registries, rules, timestamps, pipeline, scanGate };
  } catch (err) {
    await registries?.close();
    await Promise.allSettled([...keys.values()].map((k) => k.close()));
    throw err;
  }
}

async function closePieces(p: SigningPieces): Promise<void> {
  await p.pipeline.close();
  await p.scanGate?.close();
  await p.timestamps.close();
  await p.registries.close();
  await Promise.allSettled([...p.keys.values()].map((k) => k.close()));
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
  const lockRedis = createRedis(config.redis, 'lock', baseDir);
  const lock = new DigestLock(lockRedis, config.redis.prefix);
  const status = new StatusStore(lockRedis, config.redis.prefix, Math.round(config.status.retentionDays * 86400));
  const shared: SharedParts = { lock, status, lockRedis, signatures: new RedisSignatures(lockRedis, config.redis.prefix) }; // a retry in another worker reuses the signature
  let pieces: SigningPieces;
  try {
    pieces = await buildPieces(config, baseDir, metrics, shared);
  } catch (err) {
    lockRedis.disconnect();
    dropHealth();
    throw err;
  }
  const rt: Runtime = {
    config,
    baseDir,
    logger,
    metrics,
    registries: pieces.registries,
    rules: pieces.rules,
    keys: pieces.keys,
    lockRedis,
    pipeline: pieces.pipeline,
    scanGate: pieces.scanGate,
    redisHealth,
    status,
    async swap(next) {
      const fresh = await buildPieces(next, baseDir, metrics, shared);
      const old = pieces;
      pieces = fresh;
      Object.assign(rt, {
        config: next,
        registries: fresh.registries,
        rules: fresh.rules,
        keys: fresh.keys,
        pipeline: fresh.pipeline,
        scanGate: fresh.scanGate,
      });
      return () => closePieces(old);
    },
    async close() {
      await closePieces(pieces);
      lockRedis.disconnect();
      dropHealth();
    },
  };
  return rt;
}

export interface Service {
  /** Port the receiver listens on (when it runs). */
  port?: number;
  server?: Server;
  worker?: Worker;
  queue?: SignQueue;
  /**
   * Re-reads the config file (SIGHUP) and puts it in force if it passes its check
   * (src/config/reload.ts); a bad file keeps the old config. Reloads run one at a time.
   */
  reload(): Promise<ReloadResult>;
  /** Stop taking work, finish what is in flight, close connections. */
  stop(): Promise<void>;
}

export async function startService(rt: Runtime, roles: { receiver: boolean; worker: boolean }, opts: { configFile?: string } = {}): Promise<Service> {
  const { config, logger } = rt;
  const closers: (() => Promise<void>)[] = [];
  /** What a reload does once the new pieces are in force: each role moves to them (resolves when the old ones are idle). */
  const moveOver: (() => Promise<void>)[] = [];
  let reloads: Promise<unknown> = Promise.resolve();
  const service: Service = {
    stop: async () => undefined,
    reload: () => {
      const run = reloads.then(() =>
        reloadConfig(rt, opts.configFile ?? '(embedded default)', () => Promise.all(moveOver.map((m) => m())).then(() => undefined)),
      );
      reloads = run.catch(() => undefined);
      return run;
    },
  };
  rt.redisHealth.reportStartup(); // persistence off: a warning for the processes whose jobs it would lose

  if (roles.worker) {
    if (!roles.receiver && config.worker.httpPort !== undefined) {
      const http = await startWorkerHttp(rt.metrics, config.server.host, config.worker.httpPort).catch((err: NodeJS.ErrnoException) => {
        throw new SignetError(
          'CONFIG_INVALID',
          `cannot listen on ${config.server.host}:${config.worker.httpPort} (${err.code ?? err.message}); set worker.httpPort`,
        );
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
    const newWorker = () =>
      createSignWorker({ config: rt.config, connection: connection as Redis, pipeline: rt.pipeline, metrics: rt.metrics, logger, status: rt.status });
    let worker = newWorker();
    await worker.waitUntilReady();
    service.worker = worker;
    moveOver.push(async () => {
      // a new worker takes the next jobs with the new pieces; the old one finishes its jobs in flight
      const next = newWorker();
      await next.waitUntilReady();
      const old = worker;
      worker = service.worker = next;
      await old.close();
    });
    // no new jobs, in-flight ones get worker.shutdownTimeoutMs, then disconnect whatever Redis's state
    closers.push(() => closeSignWorker(worker, { connection: connection as Redis, timeoutMs: config.worker.shutdownTimeoutMs, logger }));
    logger.info({ concurrency: config.worker.concurrency }, 'worker started');
  }

  if (roles.receiver) {
    const producer = createRedis(config.redis, 'producer', rt.baseDir);
    // 202 only once the master and redis.ack.replicas replicas have the jobs (src/queue/ack.ts)
    const ack = new Acknowledger(
      producer,
      config.redis.prefix,
      config.redis.ack,
      {
        onAccepted: (r) => rt.redisHealth.noteAccepted(r.total, r.added),
        onRefused: () => rt.metrics.redisAckRefused.inc(),
      },
      config.redis.sentinel && config.redis.ack.replicas === 'auto' ? sentinelReplicas(config.redis, rt.baseDir) : undefined,
    );
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
    // the HTTP API and the status page read status records on the fail-fast connection: 503, not a hang, while Redis is away
    const status = new StatusStore(producer, config.redis.prefix, Math.round(config.status.retentionDays * 86400));
    // built again on each reload, from the pieces then in force (webhook secrets, rules, registries, keys)
    const newReceiver = () => {
      const access = new RegistryAccessCheck(() => ({ registries: rt.registries.all, rules: rt.config.rules })); // wrong credentials: not ready
      const readiness = new Readiness({
        redis: producer,
        redisHealth: rt.redisHealth,
        keys: new Map([...rt.keys].map(([n, k]) => [n, k.backend])),
        registries: rt.registries,
        access,
      });
      return createReceiver({
        config: rt.config,
        registries: rt.registries,
        rules: rt.rules,
        queue,
        metrics: rt.metrics,
        logger,
        status,
        readiness,
        admin,
        scanGate: rt.scanGate,
      });
    };
    let receiver = newReceiver();
    moveOver.push(async () => {
      receiver = newReceiver();
    });
    const server = createReceiverServer((req, res) => receiver(req, res), config.server, rt.metrics);
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
    await reloads; // a reload under way finishes first (its old worker drains)
    for (const c of closers) await c();
    await rt.close();
  };
  return service;
}
