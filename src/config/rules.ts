/**
 * Repository rules: the first rule whose `match` glob covers "host/repository" decides which
 * keys sign; its tag filters and untagged policy decide whether this push is signed at all.
 */
import picomatch from 'picomatch';
import type { Config, RuleConfig } from './schema.js';

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

/** The pusher a push may use (`${pusher}`), or why its webhook's pusher is not used. */
export type PusherVerdict = { pusher?: string; refused?: string };

/**
 * A webhook's pusher is whatever its sender wrote. Only an integration that authenticates every
 * sender vouches for it: one with `insecure: true` does not (anyone who reaches the endpoint can
 * name anyone), nor does an event whose integration is not configured (any more). A rule with
 * `pusherFrom: any` takes the pusher from every integration. A push without a vouched pusher is
 * signed without it: annotations naming `${pusher}` are left out, as for a webhook that names
 * no pusher. A rule's `require.pushers` sees the vouched pusher only (src/config/conditions.ts):
 * the receiver and the worker both ask this policy before `decideRule`, so they decide alike.
 */
export function pusherPolicy(
  config: Pick<Config, 'integrations' | 'rules'>,
): (event: { integration: string; pusher?: string }, registry: string, repository: string) => PusherVerdict {
  const rules = compileRules(config.rules);
  const vouches = new Map(config.integrations.map((i) => [i.name, !i.insecure]));
  return (event, registry, repository) => {
    if (event.pusher === undefined || event.pusher === '') return {};
    if (vouches.get(event.integration)) return { pusher: event.pusher };
    if (rules.find(registry, repository)?.rule.pusherFrom === 'any') return { pusher: event.pusher };
    const why = vouches.has(event.integration) ? 'accepts unauthenticated webhooks (insecure: true)' : 'is not configured';
    return { refused: `integration "${event.integration}" ${why}, so it cannot vouch for the pusher (rule pusherFrom: authenticated)` };
  };
}
