/** The signing plan: the one decision of rule, identity, annotations, keys and formats (src/signing/plan.ts). */
import { describe, expect, it } from 'vitest';
import { compileRules } from '../../../src/config/rules.js';
import type { RuleConfig } from '../../../src/config/schema.js';
import { decideRule, DEFAULT_FORMATS, planSigning } from '../../../src/signing/plan.js';
import { testKey } from '../../helpers/signing-keys.js';

const H = 'reg.example:5000';
const D = `sha256:${'a'.repeat(64)}`;
const keys = new Map([
  ['a', testKey('a')],
  ['b', testKey('b')],
]);
const rule = (r: Partial<RuleConfig> & { match: string }): RuleConfig => ({ keys: ['a', 'b'], identity: 'tag', untagged: 'ignore', ...r });
const rules = compileRules([
  rule({ match: `${H}/team/**`, tags: { exclude: ['*-dev'] }, annotations: { repo: '${repository}', who: '${pusher}', t: '${tag}' } }),
  rule({ match: `${H}/byrepo/**`, identity: 'repository' }),
  rule({ match: `${H}/bundles/**`, formats: ['bundle'], keys: ['b'] }),
]);
const plan = (repo: string, tag: string | undefined, opts: { byDigest?: boolean; pusher?: string } = {}) => {
  const d = decideRule(rules, H, repo, tag, opts);
  if ('skip' in d) throw new Error(d.skip);
  return planSigning(d, { host: H, repository: repo, tag, digest: D, ...opts }, keys);
};

describe('decideRule and planSigning', () => {
  it('takes identity, annotations, keys and formats from the first matching rule; formats default to legacy and bundle', () => {
    const p = plan('team/app', 'v1', { pusher: 'alice' });
    expect(p).toMatchObject({
      ruleIndex: 0,
      identity: `${H}/team/app:v1`,
      annotations: { repo: 'team/app', who: 'alice', t: 'v1' },
      formats: ['legacy', 'bundle'],
    });
    expect(p.keys.map((k) => k.name)).toEqual(['a', 'b']);
    expect(p.keys[0]).toBe(keys.get('a'));
    expect(DEFAULT_FORMATS).toEqual(['legacy', 'bundle']);
    expect(plan('byrepo/app', 'v1').identity).toBe(`${H}/byrepo/app`);
    expect(plan('bundles/app', 'v1')).toMatchObject({ formats: ['bundle'], identity: `${H}/bundles/app:v1` });
    // untagged (a digest push the rule signs): the identity names the digest
    expect(planSigning({ rule: rule({ match: '**', untagged: 'sign' }), index: 9 }, { host: H, repository: 'x', digest: D }, keys).identity).toBe(
      `${H}/x@${D}`,
    );
  });

  it('says why nothing is signed, naming the rule when one matched', () => {
    expect(decideRule(rules, H, 'team/app', 'v1-dev')).toEqual({ skip: 'tag "v1-dev" matches rule\'s tags.exclude', index: 0 });
    expect(decideRule(rules, H, 'team/app', undefined)).toMatchObject({ skip: expect.stringContaining('untagged'), index: 0 });
    expect(decideRule(rules, H, 'else/app', 'v1')).toEqual({ skip: `no rule matches ${H}/else/app` });
    expect(decideRule(rules, H, 'team/app', `sha256-${'a'.repeat(64)}.sig`)).toEqual({ skip: 'signature or attachment tag (written by a signer)' });
  });

  it('by digest (verify IMAGE@DIGEST): no tag filter, any identity of the repository under identity: tag', () => {
    expect(plan('team/app', undefined, { byDigest: true }).identity).toBeUndefined();
    expect(plan('byrepo/app', undefined, { byDigest: true }).identity).toBe(`${H}/byrepo/app`);
  });

  it('a rule naming a key that is not loaded is KEY_INVALID', () => {
    expect(() => planSigning({ rule: rule({ match: '**', keys: ['nope'] }), index: 3 }, { host: H, repository: 'x', tag: 'v1', digest: D }, keys)).toThrow(
      expect.objectContaining({ code: 'KEY_INVALID', message: expect.stringContaining('rule 3 names key "nope"') }),
    );
  });
});
