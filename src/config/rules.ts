/**
 * Repository rules: the first rule whose `match` glob covers "host/repository" decides which
 * keys sign; its tag filters and untagged policy decide whether this push is signed at all.
 */
import picomatch from 'picomatch';
import type { RuleConfig } from './schema.js';

export interface RuleMatcher {
  /** The first rule matching host/repository, or undefined (not signed). */
  find(host: string, repository: string): { rule: RuleConfig; index: number } | undefined;
  /** Why a push to this rule should not be signed, or undefined when it should. */
  skipReason(rule: RuleConfig, tag: string | undefined): string | undefined;
}

export function compileRules(rules: readonly RuleConfig[]): RuleMatcher {
  const compiled = rules.map((rule) => ({
    rule,
    matches: picomatch(rule.match, { dot: true }),
    include: rule.tags?.include ? picomatch(rule.tags.include, { dot: true }) : undefined,
    exclude: rule.tags?.exclude ? picomatch(rule.tags.exclude, { dot: true }) : undefined,
  }));
  const byRule = new Map(compiled.map((c) => [c.rule, c]));
  return {
    find(host, repository) {
      const target = `${host}/${repository}`;
      const index = compiled.findIndex((c) => c.matches(target));
      return index < 0 ? undefined : { rule: compiled[index]!.rule, index };
    },
    skipReason(rule, tag) {
      const c = byRule.get(rule);
      if (!c) return undefined;
      if (tag === undefined) {
        return rule.untagged === 'sign' ? undefined : 'untagged manifest (rule.untagged is "ignore")';
      }
      if (c.include && !c.include(tag)) return `tag "${tag}" not in rule's tags.include`;
      if (c.exclude && c.exclude(tag)) return `tag "${tag}" matches rule's tags.exclude`;
      return undefined;
    },
  };
}
