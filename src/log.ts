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

/** Names whose value is a secret when they appear as `name=value`, `name: value` or `"name":"value"`. */
const SECRET_NAMES = [
  'access_token',
  'refresh_token',
  'id_token',
  'client_token',
  'client_secret',
  'secret_id',
  'assertion',
  'password',
  'secret',
  'token',
  'authorization',
  'x-vault-token',
  'sessionToken',
  'secretAccessKey',
  'X-Amz-Security-Token',
  'X-Amz-Signature',
  'X-Amz-Credential',
  'AccessKeyId',
  'AccessKeySecret',
  'SecurityToken',
  'Signature',
].join('|');

/**
 * Credential shapes masked in free text. The one list for every message signet writes: log lines,
 * CLI output and the messages of errors that carry an upstream's words (registries, token
 * services, Rekor, key services).
 */
const PATTERNS: readonly [RegExp, string][] = [
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 [redacted]'],
  // a value ends at whitespace, a separator or a quote; percent-escapes are part of it
  [
    new RegExp(`(\\b(?:${SECRET_NAMES})(?:%3D|["']?\\s*[=:]\\s*["']?))(?!(?:Bearer|Basic)\\s|\\[redacted)(?:%[0-9A-Fa-f]{2}|[^\\s&"',;}%])+`, 'gi'),
    '$1[redacted]',
  ],
  [/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g, '[redacted-jwt]'],
  // Google OAuth2 access tokens, Vault service/batch/recovery tokens, Vault legacy tokens
  [/\bya29\.[A-Za-z0-9._-]+/g, '[redacted-token]'],
  [/\bhv[sbr]\.[A-Za-z0-9_-]{20,}/g, '[redacted-token]'],
  [/\bs\.[A-Za-z0-9]{24}\b/g, '[redacted-token]'],
  // AWS access key ids, Alibaba Cloud AccessKey ids and STS tokens
  [/\b(AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b/g, '$1[redacted]'],
  [/\bLTAI[A-Za-z0-9]{8,}\b/g, 'LTAI[redacted]'],
  [/\bSTS\.[A-Za-z0-9._-]{8,}/g, 'STS.[redacted]'],
];

/**
 * Masks credentials inside free text: "Bearer x", "Basic x", `token=x`, `"password":"x"`, JWTs,
 * cloud access tokens and key ids; and any of `secrets` (values signet itself sent, e.g. the token
 * an upstream might echo back) wherever they appear.
 */
export function redactText(s: string, secrets: readonly (string | undefined)[] = []): string {
  let out = s;
  for (const secret of secrets) if (secret && secret.length >= 6) out = out.split(secret).join('[redacted]');
  for (const [re, to] of PATTERNS) out = out.replace(re, to);
  return out;
}

/**
 * An upstream's words (an error message or body) made fit for a SignetError message: redacted
 * (see redactText), on one line, at most `max` characters.
 */
export function upstreamText(msg: unknown, opts: { max?: number; secrets?: readonly (string | undefined)[] } = {}): string {
  const max = opts.max ?? 300;
  // bound the work before the regular expressions run: a hostile body may be megabytes
  const raw = typeof msg === 'string' ? msg : msg === undefined || msg === null ? '' : String(msg);
  const s = redactText(raw.slice(0, max * 4 + 1024), opts.secrets)
    .replace(/\s+/g, ' ')
    .trim();
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
