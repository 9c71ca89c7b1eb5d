/**
 * The BullMQ processor for the "sign" queue: runs the signing pipeline for each queued push.
 * Retryable failures (registry 5xx/429, lock busy) are retried with backoff; the rest fail the
 * job at once with "CODE: reason", kept for `signet jobs failed`. A job's last attempt counts
 * `signet_jobs_total{outcome="failed"}` and logs "sign failed after N attempts" at error level
 * with the image ref, request id, job id and code (earlier attempts: `retry`, "will retry").
 * Redis errors of the worker itself (a read-only replica, a master gone) pause it and are logged
 * once per state change (redis-outage.ts).
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { pusherPolicy } from '../src/config/rules.js';
import type { Config } from '../src/config/schema.js';
import { describeError, isSignetError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { redactText } from '../src/log.js';
import type { Metrics } from '../src/metrics.js';
import { RegistryJobSlots } from '../src/registry/job-slots.js';
import { BACKOFF_STRATEGY, releaseDedup, retryDelay, SIGN_QUEUE, type SignJobData } from '../src/queue/sign-queue.js';
import type { SignReport, SigningPipeline } from '../src/signing/pipeline.js';
import type { StatusStore, StatusUpdate } from '../src/status/store.js';
import { RedisOutage, stopSignWorker, writeProbe } from './redis-outage.js';

export interface SignWorkerDeps {
  config: Config;
  connection: Redis;
  pipeline: SigningPipeline;
  metrics: Metrics;
  logger: Logger;
  /** Where per-(digest, rule, key) status is kept; optional (e.g. `signet sign` runs without). */
  status?: StatusStore;
}

export function createSignWorker(deps: SignWorkerDeps): Worker<SignJobData, SignReport> {
  const { config, pipeline, metrics, logger } = deps;
  const pusherOf = pusherPolicy(config);
  // a registry at its cap of jobs in flight (registries[].maxJobs): the job waits in the queue
  const slots = new RegistryJobSlots(config, { onParked: (registry) => metrics.jobsDeferred.inc({ registry }) });
  const worker = new Worker<SignJobData, SignReport>(
    SIGN_QUEUE,
    slots.guard(async (job: Job<SignJobData, SignReport>): Promise<SignReport> => {
      const { event, registry, requestId } = job.data;
      // the job's context goes on each line it logs (a child logger per job costs more than it saves)
      const ctx = { requestId, job: job.id, ref: `${registry}/${event.repository}${event.tag ? `:${event.tag}` : ''}` };
      // The push as the webhook named it (its digest is only a hint), for status before resolution.
      const pushed = {
        repository: `${registry}/${event.repository}`,
        ...(event.digest ? { digest: event.digest } : {}),
        ...(event.tag ? { tag: event.tag } : {}),
        requestId,
        ...(job.id ? { jobId: job.id } : {}),
      };
      const record = (updates: StatusUpdate[]) =>
        deps.status?.record(updates).catch((e) => logger.warn({ ...ctx, err: describeError(e) }, 'could not record status'));
      // not awaited: the later record goes over the same connection, so Redis applies them in order
      void record([{ ...pushed, state: 'pending', ...(job.attemptsMade > 0 ? { reason: `attempt ${job.attemptsMade + 1}` } : {}) }]);
      try {
        // dedup holds only while a job waits: a push after this point gets its own job
        await releaseDedup(job);
        const { pusher, refused } = pusherOf(event, registry, event.repository);
        if (refused) logger.info({ ...ctx, integration: event.integration }, `pusher not used: ${refused}`);
        const report = await pipeline.sign({
          host: registry,
          repository: event.repository,
          ...(event.tag ? { tag: event.tag } : {}),
          ...(event.digest ? { digest: event.digest } : {}),
          ...(pusher ? { pusher } : {}),
          retry: job.attemptsMade > 0,
          job: job.data,
        });
        if (report.status === 'waiting') {
          // the scan gate waits for the registry's scan: the job sleeps in the queue (a delayed
          // job in Redis: it survives restarts) until its next look at the registry's API or its
          // deadline; a scan event queues the push again meanwhile; no attempt is used
          await record([{ ...pushed, digest: report.digest, state: 'pending', rule: report.rule, reason: report.reason }]);
          logger.info({ ...ctx, digest: report.digest, until: new Date(report.until).toISOString() }, 'waiting for scan');
          await job.moveToDelayed(Math.max(report.until, Date.now() + 1000), job.token);
          throw new DelayedError();
        }
        if (report.status === 'signed') {
          // The signatures are in the registry: count them before the status write, so that
          // /metrics (and the status page) never lag behind the status store's "signed".
          for (const s of report.signatures) metrics.signatures.inc({ key: s.key, format: s.format ?? 'legacy', outcome: s.outcome });
          if (report.signatures.some((s) => s.outcome === 'signed')) {
            metrics.pushToSigned.observe((Date.now() - Date.parse(event.receivedAt)) / 1000);
          }
          metrics.jobs.inc({ outcome: 'signed' });
          await record([
            { ...pushed, digest: report.digest, state: 'signed', rule: report.rule, ...(report.scan ? { scan: report.scan } : {}) },
            ...report.signatures.map((s): StatusUpdate => ({
              repository: pushed.repository,
              digest: s.digest,
              ...(event.tag ? { tag: event.tag } : {}),
              rule: report.rule,
              key: s.key,
              state: 'signed',
              formats: [s.format ?? 'legacy'], // one update per format: the store unites them and counts each
              ...(s.outcome === 'present' ? { present: true } : {}),
              reason: s.outcome === 'present' ? 'signature already present' : `signed as ${report.identity}`,
              requestId,
            })),
          ]);
          logger.info(
            {
              ...ctx,
              digest: report.digest,
              signatures: report.signatures.map(
                (s) => `${s.digest.slice(0, 19)} ${s.key} ${s.format ?? 'legacy'} ${s.outcome}${s.tlog ? ` tlog:${s.tlog.status}` : ''}`,
              ),
            },
            'signed',
          );
          const noEntry = report.signatures.filter((s) => s.tlog?.status === 'unavailable');
          if (noEntry.length) {
            logger.warn(
              { ...ctx, keys: [...new Set(noEntry.map((s) => s.key))] },
              'written without a Rekor entry (rekor.required: false); it is added the next time this digest is signed',
            );
          }
        } else {
          metrics.jobs.inc({ outcome: 'skipped' });
          await record([
            {
              ...pushed,
              ...(report.digest ? { digest: report.digest } : {}),
              state: 'skipped',
              reason: report.reason,
              ...(report.rule !== undefined ? { rule: report.rule } : {}),
              ...(report.scan ? { scan: report.scan } : {}),
            },
          ]);
          logger.info({ ...ctx, reason: report.reason }, 'not signed');
        }
        return report;
      } catch (err) {
        if (err instanceof DelayedError) throw err;
        const reason = redactText(describeError(err));
        const code = isSignetError(err) ? err.code : 'INTERNAL';
        const message = reason.slice(code.length + 2);
        // Unknown errors (a Redis hiccup inside the lock, say) are retried too; only what signet
        // knows cannot succeed later fails the job at once.
        const retryable = !isSignetError(err) || err.retryable;
        const attempts = job.opts.attempts ?? 1;
        const attempt = job.attemptsMade + 1;
        const final = !retryable || attempt >= attempts;
        await record([{ ...pushed, state: final ? 'failed' : 'pending', code, reason: final ? message : `will retry: ${message}` }]);
        if (!final) {
          metrics.jobs.inc({ outcome: 'retry' });
          logger.warn({ ...ctx, attempt, attempts, code, err: reason }, 'sign failed, will retry');
          // The job's failure reason is "CODE: message" like every other failure.
          throw logged(Object.assign(new Error(reason), { retryAfterSeconds: isSignetError(err) ? err.retryAfterSeconds : undefined }));
        }
        // The job ends here (its retries used up, or nothing to retry): what alerting counts.
        metrics.jobs.inc({ outcome: 'failed' });
        logger.error({ ...ctx, attempt, attempts, code, err: reason }, retryable ? `sign failed after ${attempt} attempts` : 'sign failed');
        throw logged(new UnrecoverableError(reason));
      }
    }),
    {
      connection: deps.connection,
      prefix: config.redis.prefix,
      concurrency: config.worker.concurrency,
      lockDuration: config.worker.lockDurationMs,
      stalledInterval: config.worker.stalledIntervalMs,
      maxStalledCount: 3,
      settings: {
        backoffStrategy: (attemptsMade: number, type?: string, err?: Error) => {
          if (type !== BACKOFF_STRATEGY) return 0;
          const ra = (err as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
          return retryDelay(attemptsMade, config.worker.backoffMs, ra);
        },
      },
    },
  );
  worker.on('failed', (job, err) => {
    // The processor logged and counted its own failures; this is for any thrown outside its
    // try (the registry slots guard, say), once the job is finished for good.
    if (!job || (err as { signetLogged?: boolean }).signetLogged || !job.finishedOn) return;
    const { event, registry, requestId } = job.data;
    metrics.jobs.inc({ outcome: 'failed' });
    logger.error(
      {
        requestId,
        job: job.id,
        ref: `${registry}/${event.repository}${event.tag ? `:${event.tag}` : ''}`,
        attempts: job.attemptsMade,
        err: redactText(err.message),
      },
      'sign job failed',
    );
  });
  // Redis refusing writes or gone: pause, probe with backoff, one line per state change (redis-outage.ts)
  const outage = new RedisOutage({ worker, probe: writeProbe(deps.connection, `${config.redis.prefix}:probe`), logger });
  outages.set(worker, outage);
  worker.on('error', (err) => outage.onError(err));
  return worker;
}

const outages = new WeakMap<Worker, RedisOutage>();

/**
 * Stop a worker made by createSignWorker: no new jobs, the ones in flight get `timeoutMs`, then
 * its connections are dropped whatever Redis's state (see redis-outage.ts stopSignWorker).
 */
export function closeSignWorker(worker: Worker, opts: { connection: Redis; timeoutMs: number; logger: Logger }): Promise<void> {
  return stopSignWorker({ worker, outage: outages.get(worker), ...opts });
}

/** Marks an error the processor has logged and counted (the 'failed' listener skips it). */
function logged<E extends Error>(err: E): E {
  return Object.assign(err, { signetLogged: true });
}
