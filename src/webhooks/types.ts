import type { IncomingHttpHeaders } from 'node:http';
import type { z } from 'zod';
import type { IntegrationBase } from './integration-config.js';
import type { ScanReport } from '../config/conditions.js';

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

/**
 * A finished vulnerability scan of one manifest, as a registry reported it (Harbor's scan
 * events): the scan gate (src/scan/gate.ts) stores it and has the push waiting for it decided.
 */
export interface ScanEvent {
  host: string;
  repository: string;
  digest: string;
  tag?: string;
  /** The report as read from the payload (src/scan/harbor.ts reportFromOverview). */
  report: ScanReport;
}

export interface AdapterResult {
  events: AdapterEvent[];
  ignored: IgnoredItem[];
  /** Scan results (kinds that report scans: src/config/conditions.ts SCAN_REPORTERS). */
  scans?: ScanEvent[];
}

export interface AdapterContext<C extends IntegrationBase = IntegrationBase> {
  integration: C;
  headers: IncomingHttpHeaders;
}

/** What is known of a request before its body is read: the headers and the query string. */
export interface RequestHead {
  headers: IncomingHttpHeaders;
  query: Record<string, unknown>;
}

/** The request as received, body included (for authentication over the body, an HMAC). */
export interface RawWebhookRequest extends RequestHead {
  body: Buffer;
}

/**
 * How one integration authenticates, chosen once per integration when the receiver starts.
 * - `headers`: decided from the headers and the query string alone; a refused call is answered
 *   before any byte of its body is read.
 * - `body`: the credential covers the body (an HMAC of it). `present` is a header-only test that a
 *   credential is there at all (so an anonymous call is refused before its body is read);
 *   `verify` gets the body, read bounded (size, deadline, minimum rate, a cap on such reads at once).
 */
export type Authentication =
  | { readonly phase: 'headers'; verify(req: RequestHead): boolean | Promise<boolean> }
  | { readonly phase: 'body'; present(req: RequestHead): boolean; verify(req: RawWebhookRequest): boolean };

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
   * How an integration of this kind authenticates (a header of its own, an HMAC of the body, a
   * signed JWT, ...). Without it: the shared secret, before the body (Authorization: Bearer
   * <secret>, a bare Authorization: <secret>, or ?token=<secret>).
   */
  authentication?(integration: C): Authentication;
  /** Whether this integration is configured to authenticate without a shared `secret` (e.g. a JWT). */
  hasCredentials?(integration: C): boolean;
  parse(body: unknown, ctx: AdapterContext<C>): AdapterResult;
}
