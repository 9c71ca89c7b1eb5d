/**
 * JSON logs (pino). Secrets never reach a log line: known secret fields are redacted by path, and
 * anything that looks like a credential in a message is masked by `redactText`.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACT_PATHS = [
  'secret',
  'password',
  'token',
  'authorization',
  '*.secret',
  '*.password',
  '*.token',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.credentials',
];

export function createLogger(opts: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = opts.level ?? process.env.SIGNET_LOG_LEVEL ?? 'info';
  return pino(
    { level, base: { service: 'signet' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    (opts.destination as pino.DestinationStream | undefined) ?? bufferedStdout(),
  );
}

/**
 * stdout, written in chunks of about 4 KB and at least every 100 ms rather than one write per
 * line: under steady webhook traffic each line's own write (a thread-pool round trip) was about
 * a tenth of the receiver's CPU. pino writes out what is left when the process exits.
 */
function bufferedStdout(): pino.DestinationStream {
  return pino.destination({ dest: 1, minLength: 4096, periodicFlush: 100 });
}

/** Masks "Bearer x", "Basic x", token=x, password=x inside free text. */
export function redactText(s: string): string {
  return s
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 [redacted]')
    .replace(/([?&](?:token|access_token|password|secret)=)[^&\s]+/gi, '$1[redacted]');
}
