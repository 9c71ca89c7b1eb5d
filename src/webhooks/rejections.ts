/**
 * Webhook calls refused before they were accepted: counted by integration and reason
 * (signet_webhook_rejected_total), and logged at most once per integration every 10 s, the line
 * carrying how many rejections it stands for, so that a flood of bad calls cannot flood the log.
 */
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

export type RejectReason = 'unauthorized' | 'throttled_auth' | 'preauth_busy' | 'body_timeout' | 'too_slow' | 'body_too_large';

const MESSAGES: Record<RejectReason, string> = {
  unauthorized: 'webhook rejected: bad or missing secret',
  throttled_auth: 'webhook rejected: too many failed authentications, connection closed',
  preauth_busy: 'webhook rejected: too many bodies being read before authentication',
  body_timeout: 'webhook rejected: body not received in time',
  too_slow: 'webhook rejected: body arriving too slowly',
  body_too_large: 'webhook rejected: body over the limit before authentication',
};

/** One warn line per integration per this many ms. */
export const REJECT_LOG_INTERVAL_MS = 10_000;

export class Rejections {
  private readonly last = new Map<string, { at: number; suppressed: Partial<Record<RejectReason, number>> }>();

  constructor(
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  record(integration: string, reason: RejectReason, remote: string | undefined): void {
    this.metrics.webhookRejected.inc({ integration, reason });
    const t = this.now();
    const entry = this.last.get(integration);
    if (entry && t - entry.at < REJECT_LOG_INTERVAL_MS) {
      entry.suppressed[reason] = (entry.suppressed[reason] ?? 0) + 1;
      return;
    }
    const suppressed = entry?.suppressed ?? {};
    this.last.set(integration, { at: t, suppressed: {} });
    const count = Object.values(suppressed).reduce((a, b) => a + b, 0);
    this.logger.warn({ integration, reason, remote, ...(count ? { suppressed, suppressedTotal: count } : {}) }, MESSAGES[reason]);
  }
}
