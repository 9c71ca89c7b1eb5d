/**
 * Checking what an upstream answered against a zod schema, with a short reason for the error
 * message when it does not fit. The reason names where the answer went wrong (a field path) and
 * how, never the value itself, so nothing the upstream sent (or echoed) reaches a message.
 */
import type { z } from 'zod';

export type Checked<T> = { ok: true; value: T } | { ok: false; why: string };

/** `value` (already parsed) against `schema`. */
export function checkShape<S extends z.ZodType>(value: unknown, schema: S): Checked<z.output<S>> {
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  if (!issue || (!issue.path.length && !isObject(value))) return { ok: false, why: `got ${jsonKind(value)}` };
  const where = issue.path.length ? issue.path.map(String).join('.').slice(0, 120) : 'the answer';
  return { ok: false, why: `${where}: ${issue.message.slice(0, 160)}` };
}

/** A body (bytes or text) as JSON, then against `schema`; `why` is "not JSON" when it does not parse. */
export function parseShape<S extends z.ZodType>(body: Buffer | string, schema: S): Checked<z.output<S>> {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    return { ok: false, why: 'not JSON' };
  }
  return checkShape(value, schema);
}

function isObject(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** What a JSON value is, for a message that must not carry the value itself. */
function jsonKind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : `a JSON ${typeof v}`;
}
