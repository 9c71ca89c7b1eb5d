/**
 * `${VAR}` expansion over the parsed YAML tree (never over the raw text, so a value cannot
 * inject YAML). Forms: `${VAR}`, `${VAR:-default}`; `$${` writes a literal `${`. Under
 * `rules[].annotations`, `${registry}`, `${repository}`, `${tag}`, `${digest}` and `${pusher}`
 * are push fields filled in when signing, and are left as they are.
 * A missing variable without a default is a config problem at that value's path.
 */
export interface EnvProblem {
  path: (string | number)[];
  message: string;
}

const pattern = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export function expandEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  problems: EnvProblem[],
  path: (string | number)[] = [],
): unknown {
  if (typeof value === 'string') return expandString(value, env, problems, path);
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, problems, [...path, i]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = expandEnv(v, env, problems, [...path, k]);
    return out;
  }
  return value;
}

/** Per-push fields a rule's `annotations:` may use (filled in when signing, not from the environment). */
const PUSH_FIELDS = new Set(['registry', 'repository', 'tag', 'digest', 'pusher']);

function isAnnotationTemplate(path: readonly (string | number)[]): boolean {
  return path[0] === 'rules' && path[2] === 'annotations';
}

function expandString(s: string, env: NodeJS.ProcessEnv, problems: EnvProblem[], path: (string | number)[]): string {
  if (!s.includes('${')) return s;
  return s.replace(pattern, (whole, name: string | undefined, fallback: string | undefined) => {
    if (whole === '$${') return '${';
    if (fallback === undefined && PUSH_FIELDS.has(name!) && isAnnotationTemplate(path)) return whole;
    const v = env[name!];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    problems.push({ path, message: `environment variable ${name} is not set` });
    return '';
  });
}
