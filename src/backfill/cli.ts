/**
 * `signet backfill [--registry HOST] [--repo GLOB] [--dry-run] [--concurrency N] [--json]`.
 * Images to sign are listed on stdout at the end, sorted by host/repository:tag (or as one JSON
 * report with --json); progress and errors go to stderr as they come. Exit 0 when every
 * repository and tag could be looked at, 1 when some could not (the rest is still done) or when
 * --repo matches no repository.
 */
import { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import type { LoadedConfig } from '../config/load.js';
import { compileRules } from '../config/rules.js';
import { createSigningKeys } from '../kms/providers.js';
import { checkRedis, createRedis, type RedisClient } from '../queue/connection.js';
import { SignQueue } from '../queue/sign-queue.js';
import { RegistryDirectory } from '../registry/directory.js';
import { backfill, formatMissing, formatSummary } from './backfill.js';

export interface BackfillFlags {
  registry?: string | undefined;
  repo?: string | undefined;
  'dry-run'?: boolean | undefined;
  concurrency?: string | undefined;
  json?: boolean | undefined;
}

/** A usage problem with the flags, or undefined. */
export function backfillUsageProblem(flags: BackfillFlags): string | undefined {
  if (flags.concurrency !== undefined && !/^[1-9][0-9]{0,2}$/.test(flags.concurrency)) return '--concurrency must be a whole number from 1 to 999';
  return undefined;
}

export async function backfillCommand(loaded: LoadedConfig, flags: BackfillFlags, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const { config, baseDir } = loaded;
  const dryRun = Boolean(flags['dry-run']);
  let queue: SignQueue | undefined;
  let producer: RedisClient | undefined;
  if (!dryRun) {
    await checkRedis(config.redis, 5000, baseDir);
    const p = (producer = createRedis(config.redis, 'producer', baseDir));
    queue = new SignQueue(p, config.redis.prefix, config.worker);
  }
  const keys = await createSigningKeys(config.keys, { baseDir });
  const registries = new RegistryDirectory(config.registries, { baseDir });
  try {
    const report = await backfill(
      { registry: flags.registry, repo: flags.repo, dryRun, concurrency: flags.concurrency ? Number(flags.concurrency) : undefined },
      {
        registries,
        rules: compileRules(config.rules),
        keys,
        timestamps: new TimestampAuthorities(config.rules, baseDir),
        ...(queue ? { enqueue: (d) => queue.enqueue(d) } : {}),
        progress: err,
        onError: (e) => err(`backfill: error ${e.host}${e.repository ? `/${e.repository}` : ''}${e.tag ? `:${e.tag}` : ''}: ${e.error}`),
      },
    );
    if (flags.json) out(JSON.stringify(report, null, 2));
    else for (const m of report.toSign) out(formatMissing(m, dryRun)); // sorted by backfill()
    err(formatSummary(report));
    if (flags.repo && report.repositories === 0) {
      err(`backfill: --repo ${flags.repo} matches no repository in ${report.registries.join(', ')}`);
      return 1;
    }
    return report.errors.length ? 1 : 0;
  } finally {
    await registries.close();
    await Promise.allSettled([...keys.values()].map((k) => k.close()));
    await queue?.close();
    producer?.disconnect();
  }
}
