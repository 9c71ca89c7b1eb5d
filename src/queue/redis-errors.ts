/**
 * One mapping of Redis connection failures to SignetError('REDIS_UNAVAILABLE'), for the edges
 * that answer people (the receiver, the status API, the status page, the CLI). ioredis and BullMQ
 * surface an outage as plain Errors ("Stream isn't writeable and enableOfflineQueue options is
 * false", "Connection is closed.", "Reached the max retries per request limit", ECONNREFUSED...),
 * which would otherwise read as INTERNAL.
 */
import { isSignetError, SignetError } from '../errors.js';

/** Socket-level errno codes that mean Redis is not reachable. */
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/** What ioredis (and BullMQ, through it) says when the connection is down or going away. */
const MESSAGES = [
  /Stream isn't writeable/i,
  /Connection is closed/i,
  /max retries per request limit/i,
  /connect (ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)/i,
  /Command timed out/i,
  /no answer from Redis within/i,
  /^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN)\b/,
  /None of startup nodes is available/i,
];

/** Does this error mean "Redis is not there right now" (not a bug, not a bad command)? */
export function isRedisUnavailable(err: unknown): boolean {
  if (isSignetError(err)) return err.code === 'REDIS_UNAVAILABLE';
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NET_CODES.has(code)) return true;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  return MESSAGES.some((m) => m.test(err.message));
}

/**
 * The error as people should see it: a Redis outage becomes REDIS_UNAVAILABLE ("[<what>: ]Redis is
 * unavailable (<ioredis's words>)"); anything else is returned as it was.
 */
export function asRedisUnavailable(err: unknown, what?: string): unknown {
  if (isSignetError(err) || !isRedisUnavailable(err)) return err;
  const detail = (err as Error).message.slice(0, 160);
  return new SignetError('REDIS_UNAVAILABLE', `${what ? `${what}: ` : ''}Redis is unavailable (${detail})`, { cause: err });
}
