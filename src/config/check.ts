/**
 * `signet config check` in one run: the file's problems (YAML, environment, schema, cross
 * references over the entries that parsed: src/config/load.ts), then what only opening things
 * shows: each key that parsed is opened on its own (a wrong path or password is reported at that
 * key, with its line, next to the others), each rule's timestamp chain and its keys' paddings
 * are checked, and (unless offline) each registry is asked whether it takes signet's credentials
 * (src/health/registry-check.ts). Everything comes back sorted by line.
 */
import { readFile } from 'node:fs/promises';
import { SignetError, isSignetError } from '../errors.js';
import { checkRuleKeys } from '../formats/index.js';
import { checkRegistryAccess, describeAccessFailure } from '../health/registry-check.js';
import { createSigningKeys } from '../kms/providers.js';
import type { SigningKey } from '../kms/signing-key.js';
import { redactText } from '../log.js';
import { RegistryDirectory } from '../registry/directory.js';
import { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import { analyzeConfigText, sortByLine, type ConfigAnalysis, type LocatedProblem } from './load.js';

export interface CheckReport {
  analysis: ConfigAnalysis;
  problems: LocatedProblem[];
  warnings: LocatedProblem[];
  /** Registries whose credentials were checked and taken. */
  registriesChecked: string[];
}

export interface CheckOptions {
  env?: NodeJS.ProcessEnv;
  /** Skip the registries (no network). */
  offline?: boolean;
}

export async function checkConfigFile(file: string, opts: CheckOptions = {}): Promise<CheckReport> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SignetError('CONFIG_NOT_FOUND', `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  return checkConfigText(text, file, opts);
}

export async function checkConfigText(text: string, file: string, opts: CheckOptions = {}): Promise<CheckReport> {
  const a = analyzeConfigText(text, file, opts.env ?? process.env);
  const problems = [...a.problems];
  const { parsed, baseDir, locate } = a;
  const registriesChecked: string[] = [];
  if (problems.some((p) => p.message.startsWith('YAML:'))) return { analysis: a, problems, warnings: a.warnings, registriesChecked };

  // each key alone, so that one bad key does not hide another
  const keys = new Map<string, SigningKey>();
  await Promise.all(
    parsed.keys.map(async ({ index, value }) => {
      try {
        const opened = await createSigningKeys([value], { baseDir });
        for (const [n, k] of opened) keys.set(n, k);
      } catch (err) {
        problems.push(locate({ path: ['keys', index], message: describe(err) }));
      }
    }),
  );
  try {
    for (const { index, value } of parsed.rules) {
      if (value.timestamp) {
        try {
          await new TimestampAuthorities([value], baseDir).close();
        } catch (err) {
          problems.push(locate({ path: ['rules', index, 'timestamp'], message: describe(err).replace(/^CONFIG_INVALID: rules\[0\]\.timestamp: /, '') }));
        }
      }
      if (value.keys.every((k) => keys.has(k))) {
        try {
          await checkRuleKeys([value], keys);
        } catch (err) {
          problems.push(locate({ path: ['rules', index, 'keys'], message: describe(err) }));
        }
      }
    }
  } finally {
    await Promise.allSettled([...keys.values()].map((k) => k.close()));
  }

  if (!opts.offline) {
    const rules = parsed.rules.map((r) => r.value);
    await Promise.all(
      parsed.registries.map(async ({ index, value }) => {
        let directory: RegistryDirectory | undefined;
        try {
          directory = new RegistryDirectory([value], { baseDir }); // reads caFile
          await checkRegistryAccess(directory.all[0]!, rules);
          registriesChecked.push(value.host);
        } catch (err) {
          const where = value.credentials ? ['registries', index, 'credentials'] : ['registries', index];
          problems.push(locate({ path: where, message: `registry ${value.host}: ${describeAccessFailure(err)}` }));
        } finally {
          await directory?.close();
        }
      }),
    );
  }
  return { analysis: a, problems: sortByLine(problems), warnings: a.warnings, registriesChecked };
}

function describe(err: unknown): string {
  if (err instanceof AggregateError) return err.errors.map(describe).join('; ');
  return redactText(isSignetError(err) ? `${err.code}: ${err.message}` : ((err as Error)?.message ?? String(err)));
}
