/**
 * A cap on sign jobs in flight per registry in one worker process, so that one slow registry
 * never holds every worker slot: a registry that answers slowly (up to its `timeoutMs` per
 * request) keeps at most `registries[].maxJobs` jobs busy, and the other registries' jobs use the
 * rest. A job over its registry's cap is put back in the queue for later without using up an
 * attempt (BullMQ: moveToDelayed + DelayedError), waiting longer each time it is put back.
 *
 * Default cap: with one registry configured, the worker's concurrency (no other registry to
 * starve); with several, half of it (at least 1).
 */
import { DelayedError, type Job } from 'bullmq';
import type { Config } from '../config/schema.js';

/** The first wait of a job put back, and the longest. */
const PARK_BASE_MS = 1000;
const PARK_MAX_MS = 60_000;

export function maxJobsFor(config: Pick<Config, 'registries' | 'worker'>, host: string): number {
  const r = config.registries.find((x) => x.host === host);
  if (r?.maxJobs !== undefined) return r.maxJobs;
  const concurrency = config.worker.concurrency;
  return config.registries.length > 1 ? Math.max(1, Math.floor(concurrency / 2)) : concurrency;
}

export class RegistryJobSlots {
  private readonly inFlight = new Map<string, number>();
  /** Jobs put back so far. */
  parked = 0;
  private readonly random: () => number;
  private readonly onParked: ((host: string) => void) | undefined;

  constructor(
    private readonly config: Pick<Config, 'registries' | 'worker'>,
    opts: { onParked?: (host: string) => void; random?: () => number } = {},
  ) {
    this.random = opts.random ?? Math.random;
    this.onParked = opts.onParked;
  }

  /** Jobs of `host` running in this process now. */
  running(host: string): number {
    return this.inFlight.get(host) ?? 0;
  }

  /**
   * Wraps a job processor: the job runs when its registry is under its cap; otherwise it is put
   * back (delayed) and the processor is not called.
   */
  guard<D extends { registry: string }, R>(process: (job: Job<D, R>) => Promise<R>): (job: Job<D, R>, token?: string) => Promise<R> {
    return async (job, token) => {
      const host = job.data.registry;
      const n = this.running(host);
      if (n >= maxJobsFor(this.config, host)) {
        await job.moveToDelayed(Date.now() + this.parkDelay(job), token);
        this.parked++;
        this.onParked?.(host);
        throw new DelayedError();
      }
      this.inFlight.set(host, n + 1);
      try {
        return await process(job);
      } finally {
        const left = this.running(host) - 1;
        if (left > 0) this.inFlight.set(host, left);
        else this.inFlight.delete(host);
      }
    };
  }

  /** 1 s, doubling each time this job was put back (starts that were not attempts), to 60 s; jittered down to half. */
  private parkDelay(job: Job): number {
    const parks = Math.max(0, (job.attemptsStarted ?? 1) - job.attemptsMade - 1);
    const d = Math.min(PARK_MAX_MS, PARK_BASE_MS * 2 ** Math.min(parks, 16));
    return Math.round(d * (0.5 + this.random() * 0.5));
  }
}
