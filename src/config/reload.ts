/**
 * Config reload (SIGHUP): the file is read and checked as at startup (schema, cross references,
 * then every key opened by Runtime.swap); a file that fails keeps the old config in force, and
 * the log says why (every problem with its path and line). What reloads: rules, registries and
 * their credentials, keys (new key objects; the old ones are closed once the jobs in flight on
 * them are done), integrations and their webhook secrets. What does not: `server` (port, host,
 * limits, tokens), `redis`, `worker` and `status` are kept as started, and a change to them is
 * logged as needing a restart. Every reload is counted in signet_config_reload_total{outcome}.
 */
import { isSignetError, describeError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { ConfigError, formatPath, formatProblems, loadConfigFile } from './load.js';
import type { Config } from './schema.js';

/** Sections read once at startup. */
export const RESTART_SECTIONS = ['server', 'redis', 'worker', 'status'] as const;

export interface ReloadResult {
  outcome: 'ok' | 'invalid' | 'failed';
  /** Why the new file was refused (invalid, failed). */
  problems?: string[];
  /** Fields changed in sections that need a restart (ignored until then). */
  restartNeeded?: string[];
}

/**
 * Reads `file` and, when it passes, puts it in force: `rt.swap` builds the new pieces, `moveOver`
 * moves the receiver and worker to them and resolves once nothing in flight uses the old ones,
 * which are then closed.
 */
export async function reloadConfig(rt: Runtime, file: string, moveOver: () => Promise<void>): Promise<ReloadResult> {
  const { logger, metrics } = rt;
  const refuse = (outcome: 'invalid' | 'failed', problems: string[]): ReloadResult => {
    metrics.configReloads.inc({ outcome });
    logger.error({ config: file, outcome, problems }, `config reload refused, the old config stays in force: ${problems.length} problem(s)`);
    return { outcome, problems };
  };
  if (file === '(embedded default)') return refuse('invalid', ['signet runs on the embedded default: there is no file to reload (start with --config FILE)']);
  let next: Config;
  try {
    const loaded = await loadConfigFile(file);
    next = loaded.config;
    for (const w of loaded.warnings) logger.warn({ path: formatPath(w.path), line: w.line }, w.message);
  } catch (err) {
    if (err instanceof ConfigError)
      return refuse(
        'invalid',
        formatProblems(file, err.problems)
          .split('\n')
          .map((l) => l.trim()),
      );
    return refuse('invalid', [isSignetError(err) ? `${err.code}: ${err.message}` : describeError(err)]);
  }
  const restartNeeded = RESTART_SECTIONS.flatMap((s) => changedFields(s, rt.config[s], next[s]));
  const merged: Config = { ...next, server: rt.config.server, redis: rt.config.redis, worker: rt.config.worker, status: rt.config.status };
  let closeOld: () => Promise<void>;
  try {
    closeOld = await rt.swap(merged);
  } catch (err) {
    return refuse('failed', [isSignetError(err) ? `${err.code}: ${err.message}` : describeError(err)]);
  }
  metrics.configReloads.inc({ outcome: 'ok' });
  if (restartNeeded.length) {
    logger.warn({ config: file, restartNeeded }, `config reloaded, but these fields only take effect after a restart: ${restartNeeded.join(', ')}`);
  }
  logger.info(
    { config: file, registries: merged.registries.length, integrations: merged.integrations.length, keys: merged.keys.length, rules: merged.rules.length },
    'config reloaded: rules, registries, credentials, keys and webhook secrets in force',
  );
  try {
    await moveOver();
  } finally {
    await closeOld();
  }
  return { outcome: 'ok', ...(restartNeeded.length ? { restartNeeded } : {}) };
}

/** `section.field` for each top-level field of a section that differs (values never logged: some are secrets). */
function changedFields(section: string, before: unknown, after: unknown): string[] {
  const a = (before ?? {}) as Record<string, unknown>;
  const b = (after ?? {}) as Record<string, unknown>;
  const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return fields.filter((f) => JSON.stringify(a[f]) !== JSON.stringify(b[f])).map((f) => `${section}.${f}`);
}
