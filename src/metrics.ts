/** Prometheus metrics, one registry per process. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Queue states the depth gauge reports. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

export class Metrics {
  readonly registry = new Registry();
  readonly webhookEvents = new Counter({
    name: 'signet_webhook_events_total',
    help: 'Events received by webhook, by integration and outcome (queued, ignored, refused, unauthorized, malformed, unavailable, throttled)',
    labelNames: ['integration', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly webhookRejected = new Counter({
    name: 'signet_webhook_rejected_total',
    help: 'Webhook calls refused before acceptance, by integration and reason (unauthorized, throttled_auth, preauth_busy, body_timeout, too_slow, body_too_large)',
    labelNames: ['integration', 'reason'] as const,
    registers: [this.registry],
  });
  readonly webhookPreAuthBodies = new Gauge({
    name: 'signet_webhook_preauth_bodies',
    help: 'Webhook bodies being read before their sender is authenticated (kinds that sign the body: github, jfrog hmac)',
    registers: [this.registry],
  });
  readonly httpConnections = new Gauge({
    name: 'signet_http_connections',
    help: 'Open connections to the receiver',
    registers: [this.registry],
  });
  readonly httpConnectionsDropped = new Counter({
    name: 'signet_http_connections_dropped_total',
    help: 'Connections closed on arrival because server.maxConnections were open',
    registers: [this.registry],
  });
  readonly signatures = new Counter({
    name: 'signet_signatures_total',
    help: 'Signatures by key, format (legacy, bundle) and outcome (signed, present)',
    labelNames: ['key', 'format', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly signatureLayersDropped = new Counter({
    name: 'signet_signature_layers_dropped_total',
    help: 'Layers of an existing .sig not carried forward: they claim the payload signet signs but verify with no configured key (invalid) or lie past the per-read verification bound (unchecked)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly signatureLimitExceeded = new Counter({
    name: 'signet_signature_limit_exceeded_total',
    help: 'Signatures not written or not counted (job failed with SIGNATURE_LIMIT_EXCEEDED) because the .sig would exceed a limit of cosign or the registry, by limit (layers, manifest_bytes, payload_bytes)',
    labelNames: ['limit'] as const,
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

  readonly keySignSeconds = new Histogram({
    name: 'signet_key_sign_seconds',
    help: 'Time of one key-backend sign call (file, KMS, HSM), by key and outcome (ok, error)',
    labelNames: ['key', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly registryRequests = new Counter({
    name: 'signet_registry_requests_total',
    help: 'Requests to registries (and their token services), by registry host, method, kind (manifest, blob, upload, token, other) and status ("network" when no answer came)',
    labelNames: ['registry', 'method', 'kind', 'status'] as const,
    registers: [this.registry],
  });
  readonly registryErrors = new Counter({
    name: 'signet_registry_errors_total',
    help: 'Registry responses >= 400 and network errors (status "network"), by registry host, method and status; 401 challenges and 404s for absent signature tags are part of normal operation',
    labelNames: ['registry', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly jobsDeferred = new Counter({
    name: 'signet_jobs_deferred_total',
    help: 'Sign jobs put back in the queue (no attempt used) because their registry had registries[].maxJobs jobs running in this process, by registry host',
    labelNames: ['registry'] as const,
    registers: [this.registry],
  });
  readonly scanGate = new Counter({
    name: 'signet_scan_gate_total',
    help: 'Scan gate (rules[].require.scan) decisions, by outcome (passed, blocked, failed, timeout); a decision repeated for the same scan is counted once',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'signet_config_reload_total',
    help: 'Config reloads (SIGHUP) by outcome: ok, invalid (the file failed its check: the old config stays), failed (keys or registries could not be set up: the old config stays)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly redisDataLoss = new Counter({
    name: 'signet_redis_data_loss_detected_total',
    help: 'Times this process found that Redis lost its data (marker key gone, accepted-jobs counter went back): run `signet backfill`',
    registers: [this.registry],
  });
  readonly redisAckRefused = new Counter({
    name: 'signet_redis_ack_refused_total',
    help: 'Webhook batches answered 503 because fewer Redis replicas than redis.ack.replicas confirmed their jobs in time',
    registers: [this.registry],
  });
  /** Where the queue depth gauge reads its counts on each scrape (set by the receiver's runtime). */
  queueDepthSource: (() => Promise<Record<string, number>>) | undefined;
  readonly queueDepth = new Gauge({
    name: 'signet_queue_jobs',
    help: 'Sign jobs in the queue by state (waiting, active, delayed, failed), read from Redis on each scrape',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: async () => {
      if (!this.queueDepthSource) return;
      let timer: NodeJS.Timeout | undefined;
      try {
        // a scrape never hangs on Redis: without an answer within a second the series are left out
        const counts = await Promise.race([
          this.queueDepthSource(),
          new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), 1000))),
        ]);
        for (const s of QUEUE_STATES) this.queueDepth.set({ state: s }, counts[s] ?? 0);
      } catch {
        this.queueDepth.reset();
      } finally {
        clearTimeout(timer);
      }
    },
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'signet_' });
  }
}
