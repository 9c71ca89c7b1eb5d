import type { IncomingHttpHeaders } from 'node:http';
import type { z } from 'zod';
import type { IntegrationBase } from './integration-config.js';

/** One image push, normalized from whatever a registry sent. The payload's digest is a hint only. */
export interface PushEvent {
  integration: string;
  /** Registry host as the payload named it (mapped to a configured registry by the receiver). */
  host: string;
  repository: string;
  tag?: string;
  /** What the payload claims; the worker re-reads the registry and never signs on this alone. */
  digest?: string;
  mediaType?: string;
  pusher?: string;
  /** The sender's event id, when it has one (idempotency). */
  eventId?: string;
  /** ISO time the receiver accepted it (push-to-signed latency starts here). */
  receivedAt: string;
}

export type AdapterEvent = Omit<PushEvent, 'integration' | 'receivedAt'>;

/** Something in the payload that is deliberately not signed, with why. */
export interface IgnoredItem {
  reason: string;
  ref?: string;
}

export interface AdapterResult {
  events: AdapterEvent[];
  ignored: IgnoredItem[];
}

export interface AdapterContext<C extends IntegrationBase = IntegrationBase> {
  integration: C;
  headers: IncomingHttpHeaders;
}

/** The request as received, for adapters that authenticate with more than a shared secret. */
export interface RawWebhookRequest {
  headers: IncomingHttpHeaders;
  query: Record<string, unknown>;
  body: Buffer;
}

/**
 * One registry's webhook dialect. `parse` validates with the adapter's own zod schema and throws
 * WebhookPayloadError (-> 400) for what is not that dialect at all.
 */
export interface WebhookAdapter<C extends IntegrationBase = IntegrationBase> {
  readonly kind: string;
  /** The `integrations[]` entry for this kind (built with integrationConfig()). */
  readonly configSchema: z.ZodType<C>;
  /** Content types the sender uses (besides application/json, always accepted). */
  readonly contentTypes: readonly string[];
  /**
   * Authenticate a call (HMAC of the body, a signed JWT, ...). Without it the shared secret is
   * checked (Authorization: Bearer <secret>, a bare Authorization: <secret>, or ?token=<secret>).
   */
  authenticate?(req: RawWebhookRequest, integration: C): boolean | Promise<boolean>;
  /** Whether this integration is configured to authenticate without a shared `secret` (e.g. a JWT). */
  hasCredentials?(integration: C): boolean;
  parse(body: unknown, ctx: AdapterContext<C>): AdapterResult;
}
