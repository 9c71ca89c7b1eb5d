/** Prometheus metrics, one registry per process. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly webhookEvents = new Counter({
    name: 'signet_webhook_events_total',
    help: 'Events received by webhook, by integration and outcome (queued, ignored, refused, unauthorized, malformed, unavailable, throttled)',
    labelNames: ['integration', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly signatures = new Counter({
    name: 'signet_signatures_total',
    help: 'Signatures by key and outcome (signed, present)',
    labelNames: ['key', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly jobs = new Counter({
    name: 'signet_jobs_total',
    help: 'Sign jobs finished, by outcome (signed, skipped, failed, retry)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly pushToSigned = new Histogram({
    name: 'signet_push_to_signed_seconds',
    help: 'From webhook acceptance to signature written',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'signet_' });
  }
}
