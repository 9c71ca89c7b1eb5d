/**
 * `${VAR}` expansion over the parsed YAML tree (never over the raw text, so a value cannot
 * inject YAML). Forms: `${VAR}` (also `${env.VAR}`), `${VAR:-default}`; `$${` writes a literal `${`.
 * A missing variable without a default is a config problem at that value's path.
 *
 * Two places are different:
 * - Secret fields (isSecretField: webhook secrets, registry and KMS credentials, key passwords and
 *   PINs, the status page token, Redis passwords): a default never supplies the value. `${VAR:-x}` with VAR unset
 *   or empty is a config problem there, so that a forgotten variable cannot sign on with a
 *   secret written in the config (or in an example copied from the docs).
 * - Annotation values (`rules[].annotations`): templates over the push (`${tag}`, `${pusher}`...,
 *   see src/signing/annotations.ts), filled in when signing. Only `${env.VAR}` is read from the
 *   environment there; every other `${...}` is left to the template, so `${tag}` or `${tag:-x}`
 *   never reads a variable named `tag`. `$${` is the file's escape as everywhere (`$${tag}` reaches
 *   the template as `${tag}`; a literal `${` in the signed annotation is `$$${`). An environment
 *   value is inserted literally (its `${` escaped for the template), never as a template.
 */
export interface EnvProblem {
  path: (string | number)[];
  message: string;
}

const pattern = /\$\$\{|\$\{(env\.)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export function expandEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  problems: EnvProblem[],
  path: (string | number)[] = [],
  root: unknown = value,
  /** Filled with the paths of the values a variable was put into (see load.ts: numbers and booleans from `${VAR}`). */
  substituted?: (string | number)[][],
): unknown {
  if (typeof value === 'string') {
    const out = expandString(value, env, problems, path, root);
    if (substituted && out !== value && !isAnnotationTemplate(path)) substituted.push(path);
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, problems, [...path, i], root, substituted));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = expandEnv(v, env, problems, [...path, k], root, substituted);
    return out;
  }
  return value;
}

/**
 * A number or boolean field given as `${VAR}`: YAML read a string, the schema wants a number
 * (or a boolean). The expanded text is taken as one when it is one (`8080`, `-1.5`, `true`),
 * else the problem says what it expanded to.
 */
export function coerceExpanded(text: string, expected: 'number' | 'boolean'): { value: number | boolean } | { problem: string } {
  const t = text.trim();
  if (expected === 'boolean') {
    if (t === 'true' || t === 'false') return { value: t === 'true' };
    return { problem: `expected true or false, the environment gave "${t.slice(0, 40)}"` };
  }
  if (/^-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/.test(t)) return { value: Number(t) };
  return { problem: `expected a number, the environment gave "${t.slice(0, 40)}"` };
}

function isAnnotationTemplate(path: readonly (string | number)[]): boolean {
  return path[0] === 'rules' && path[2] === 'annotations' && path.length === 4;
}

/** Credential field names under `registries[].credentials` (any depth) and `keys[]` (any depth). */
const REGISTRY_SECRETS = new Set(['password', 'token', 'clientSecret', 'secretAccessKey', 'sessionToken']);
/** `redis.password`, `redis.sentinel.sentinelPassword`. */
const REDIS_SECRETS = new Set(['password', 'sentinelPassword']);
const KEY_SECRETS = new Set(['password', 'pin', 'token', 'secretId', 'secretAccessKey', 'sessionToken', 'accessKeySecret', 'securityToken', 'clientSecret']);

/**
 * Whether the value at `path` is a secret: what a default must not supply. Kept next to the
 * schemas' secret fields (src/webhooks/integration-config.ts, src/registry/credentials/,
 * src/kms/*); test/unit/config/env.test.ts checks every one of them.
 */
export function isSecretField(path: readonly (string | number)[], root: unknown): boolean {
  const [section, index] = path;
  const last = path[path.length - 1];
  if (typeof last !== 'string') return false;
  if (section === 'server') return path.length === 2 && last === 'statusPageToken';
  if (section === 'redis') return REDIS_SECRETS.has(last);
  if (section === 'integrations') return path.length === 3 && last === 'secret';
  if (section === 'registries') return path[2] === 'credentials' && REGISTRY_SECRETS.has(last);
  if (section === 'keys' && KEY_SECRETS.has(last)) {
    // a PKCS#11 `token` is the token's label, not a secret
    const key = Array.isArray((root as { keys?: unknown }).keys) ? (root as { keys: unknown[] }).keys[index as number] : undefined;
    return !(last === 'token' && path.length === 3 && (key as { provider?: unknown } | undefined)?.provider === 'pkcs11');
  }
  return false;
}

function expandString(s: string, env: NodeJS.ProcessEnv, problems: EnvProblem[], path: (string | number)[], root: unknown): string {
  if (!s.includes('${')) return s;
  const template = isAnnotationTemplate(path);
  return s.replace(pattern, (whole, envPrefix: string | undefined, name: string, fallback: string | undefined) => {
    if (whole === '$${') return '${';
    if (template && !envPrefix) return whole; // the push's fields are the template's
    const v = env[name];
    if (v !== undefined && v !== '') return template ? escapeTemplate(v) : v;
    if (fallback !== undefined && isSecretField(path, root)) {
      problems.push({ path, message: `environment variable ${name} is not set, and a secret takes no default (\${${name}:-...}): set ${name}` });
      return '';
    }
    if (fallback !== undefined) return template ? escapeTemplate(fallback) : fallback;
    problems.push({ path, message: `environment variable ${name} is not set` });
    return '';
  });
}

/** An environment value inside an annotation template: its `${` stays literal. */
function escapeTemplate(v: string): string {
  return v.replaceAll('${', () => '$${');
}
