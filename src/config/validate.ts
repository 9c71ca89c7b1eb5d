/** Checks across sections that zod's per-field schema cannot express. */
import picomatch from 'picomatch';
import type { Config } from './schema.js';
import { adapterFor } from '../webhooks/adapters/index.js';

export interface ConfigProblem {
  /** Path in the YAML, as an array (rendered as keys[1].path). */
  path: (string | number)[];
  message: string;
}

export function crossCheck(config: Config): { problems: ConfigProblem[]; warnings: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];

  duplicates(config.registries.map((r) => r.host), (i, v) =>
    problems.push({ path: ['registries', i, 'host'], message: `registry ${v} is listed twice` }),
  );
  const allHosts = new Map<string, number>();
  config.registries.forEach((r, i) => {
    for (const [j, alias] of r.aliases.entries()) {
      if (allHosts.has(alias) || config.registries.some((o) => o.host === alias)) {
        problems.push({ path: ['registries', i, 'aliases', j], message: `alias ${alias} names another registry` });
      }
      allHosts.set(alias, i);
    }
  });
  duplicates(config.integrations.map((x) => x.name), (i, v) =>
    problems.push({ path: ['integrations', i, 'name'], message: `integration name "${v}" is used twice` }),
  );
  duplicates(config.keys.map((k) => k.name), (i, v) =>
    problems.push({ path: ['keys', i, 'name'], message: `key name "${v}" is used twice` }),
  );

  config.integrations.forEach((integ, i) => {
    if (!integ.secret && !integ.insecure && !adapterFor(integ.kind)?.hasCredentials?.(integ)) {
      problems.push({
        path: ['integrations', i, 'secret'],
        message: 'a secret is required (or set insecure: true to accept unauthenticated calls)',
      });
    }
    if (integ.insecure) {
      warnings.push({ path: ['integrations', i, 'insecure'], message: `integration "${integ.name}" accepts unauthenticated webhooks` });
    }
  });

  const keyNames = new Set(config.keys.map((k) => k.name));
  const hosts = new Set(config.registries.flatMap((r) => [r.host, ...r.aliases]));
  config.rules.forEach((rule, i) => {
    rule.keys.forEach((k, j) => {
      if (!keyNames.has(k)) problems.push({ path: ['rules', i, 'keys', j], message: `no key named "${k}" in keys` });
    });
    duplicates(rule.keys, (j, v) => problems.push({ path: ['rules', i, 'keys', j], message: `key "${v}" listed twice` }));
    // Notation verifies X.509 chains only: every key of a rule writing it needs a certificate
    if (rule.formats?.includes('notation')) {
      rule.keys.forEach((k, j) => {
        const key = config.keys.find((x) => x.name === k);
        if (key && !key.certificate) {
          problems.push({ path: ['rules', i, 'keys', j], message: `key "${k}" has no certificate: the notation format needs keys[].certificate (and chain)` });
        }
      });
    }
    try {
      const re = picomatch.makeRe(rule.match);
      const ruleHost = rule.match.split('/')[0] ?? '';
      const glob = /[*?[{]/.test(ruleHost);
      if (!glob && !hosts.has(ruleHost)) {
        problems.push({
          path: ['rules', i, 'match'],
          message: `"${ruleHost}" is not a configured registry host (the glob is "host/repository")`,
        });
      }
      void re;
    } catch (err) {
      problems.push({ path: ['rules', i, 'match'], message: `invalid glob: ${(err as Error).message}` });
    }
  });
  if (config.rules.length === 0) {
    warnings.push({ path: ['rules'], message: 'no rules: nothing will be signed' });
  }
  return { problems, warnings };
}

function duplicates(values: readonly string[], report: (index: number, value: string) => void): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) report(i, v);
    seen.add(v);
  });
}
