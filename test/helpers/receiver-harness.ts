/**
 * The real receiver (createReceiver: auth, content type, adapter, host/repo/tag checks, rules)
 * on a loopback port, with a queue stub that records what would be enqueued. No Redis, no
 * registry: what the per-kind webhook tests need to prove 401 / 2xx-ignored / refused.
 * The config goes through the zod schema, not validate.ts's cross-checks (so a `gar`
 * integration authenticated by `jwt` alone can be tested).
 */
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { compileRules } from '../../src/config/rules.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import type { SignJobData, SignQueue } from '../../src/queue/sign-queue.js';
import { RegistryDirectory } from '../../src/registry/directory.js';
import { createReceiverServer } from '../../src/webhooks/http-server.js';
import { createReceiver } from '../../src/webhooks/receiver.js';
import type { PushEvent } from '../../src/webhooks/types.js';

export interface ReceiverHarness {
  url: string;
  metrics: Metrics;
  /** Events the receiver enqueued, in order. */
  queued: PushEvent[];
  /** The receiver's log lines at warn and above, parsed. */
  logs: Record<string, unknown>[];
  post(integration: string, body: unknown, opts?: { headers?: Record<string, string>; query?: string; raw?: boolean }): Promise<{ status: number; json: any }>;
  /** signet_webhook_events_total for (integration, outcome). */
  count(integration: string, outcome: string): Promise<number>;
  /** signet_webhook_rejected_total for (integration, reason). */
  rejected(integration: string, reason: string): Promise<number>;
  close(): Promise<void>;
}

export async function startReceiver(opts: {
  registries: { host: string; aliases?: string[] }[];
  integrations: Record<string, unknown>[];
  /** Default: one rule per registry that signs untagged pushes too (so they show in `queued`). */
  rules?: Record<string, unknown>[];
  /** The `server:` section (limits, timeouts). */
  server?: Record<string, unknown>;
}): Promise<ReceiverHarness> {
  const config = configSchema.parse({
    ...(opts.server ? { server: opts.server } : {}),
    registries: opts.registries,
    integrations: opts.integrations,
    keys: [{ name: 'k', provider: 'file', path: 'k.pem' }],
    rules: opts.rules ?? opts.registries.map((r) => ({ match: `${r.host}/**`, keys: ['k'], untagged: 'sign' })),
  });
  const queued: PushEvent[] = [];
  const queue: Pick<SignQueue, 'enqueueMany'> = {
    async enqueueMany(jobs: readonly SignJobData[]) {
      return jobs.map((job) => {
        queued.push(job.event);
        return `job-${queued.length}`;
      });
    },
  };
  const metrics = new Metrics();
  const registries = new RegistryDirectory(config.registries);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const receiver = createReceiver({
    config,
    registries,
    rules: compileRules(config.rules),
    queue,
    metrics,
    logger: createLogger({ level: 'warn', destination: sink }),
  });
  const server: Server = createReceiverServer(receiver, config.server, metrics);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    metrics,
    queued,
    logs,
    async post(integration, body, o = {}) {
      const res = await fetch(`${url}/hooks/${integration}${o.query ?? ''}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...o.headers },
        body: o.raw ? (body as string) : JSON.stringify(body),
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: res.status, json };
    },
    async count(integration, outcome) {
      const m = await metrics.webhookEvents.get();
      return m.values.filter((v) => v.labels.integration === integration && v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
    },
    async rejected(integration, reason) {
      const m = await metrics.webhookRejected.get();
      return m.values.filter((v) => v.labels.integration === integration && v.labels.reason === reason).reduce((n, v) => n + v.value, 0);
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await registries.close();
    },
  };
}
