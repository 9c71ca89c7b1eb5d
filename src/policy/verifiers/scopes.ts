/**
 * Rules -> containers/image scopes, shared by policy.json and OpenShift (whose machine-config
 * operator renders ClusterImagePolicy into policy.json). Scopes have no globs and the longest
 * matching scope wins, while signet's first matching rule wins: see patterns.ts toScopes.
 */
import { PolicyExportError, rekorNotes, requireLegacy, ruleLabel, sameKeys, type PolicyRule } from '../model.js';
import { mayOverlap, toScopes } from '../patterns.js';

export interface ScopedRule {
  scope: string;
  exact: boolean;
  rule: PolicyRule;
}

const sameRequirements = (a: PolicyRule, b: PolicyRule) =>
  a.identity === b.identity && sameKeys(a.keys, b.keys) && JSON.stringify(a.rekor ?? null) === JSON.stringify(b.rekor ?? null);

const inside = (inner: string, outer: string) =>
  outer === '' || inner.startsWith(`${outer}/`) || (outer.startsWith('*.') && inner.split('/')[0]!.endsWith(outer.slice(1)));

export function scopedRules(rules: readonly PolicyRule[], verifier: string): { scoped: ScopedRule[]; notes: string[] } {
  const notes: string[] = [];
  const byScope = new Map<string, ScopedRule>();
  for (const rule of rules) {
    requireLegacy(rule, verifier, 'containers/image cannot read (it reads only the .sig tag)');
    notes.push(...rekorNotes(rule, verifier));
    const { scopes, notes: n } = toScopes(rule.match);
    for (const x of n) notes.push(`${verifier}: ${ruleLabel(rule)}: ${x}`);
    for (const s of scopes) {
      const prev = byScope.get(s.scope);
      if (!prev) {
        byScope.set(s.scope, { scope: s.scope, exact: s.exact, rule });
        continue;
      }
      if (prev.rule === rule || sameRequirements(prev.rule, rule)) {
        prev.exact &&= s.exact;
        continue;
      }
      if (prev.exact && s.exact) {
        notes.push(`${verifier}: ${ruleLabel(rule)} never applies to scope "${s.scope}": ${ruleLabel(prev.rule)} comes first and covers it`);
        continue;
      }
      throw new PolicyExportError(
        `${verifier}: ${ruleLabel(prev.rule)} and ${ruleLabel(rule)} both become scope "${s.scope || '(every registry)'}" (scopes have no globs) but sign with different keys or identities; give the rules distinct literal prefixes such as host/team-a/**`,
      );
    }
  }
  const scoped = [...byScope.values()];
  // Longest scope wins in containers/image; first rule wins in signet.
  for (const a of scoped) {
    for (const b of scoped) {
      if (a === b || a.rule.index >= b.rule.index) continue; // a: the earlier rule
      if (sameRequirements(a.rule, b.rule)) continue;
      if (inside(b.scope, a.scope) && mayOverlap(a.rule.match, b.rule.match)) {
        notes.push(
          `${verifier}: scope "${b.scope}" (${ruleLabel(b.rule)}) is more specific than "${a.scope || '(every registry)'}" (${ruleLabel(a.rule)}), so it decides there, but signet signs those images by the earlier rule: reorder the rules or check that this is what you want`,
        );
      }
    }
  }
  scoped.sort((x, y) => (x.scope < y.scope ? -1 : x.scope > y.scope ? 1 : 0));
  return { scoped, notes };
}
