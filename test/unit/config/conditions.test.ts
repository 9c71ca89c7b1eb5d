/** require.pushers: the schema, the condition logic, and decideRule applying it (with a vouched pusher only). */
import { describe, expect, it } from 'vitest';
import { conditionSkip, kindReportsPusher, requireSchema } from '../../../src/config/conditions.js';
import { compileRules, pusherPolicy } from '../../../src/config/rules.js';
import { ruleSchema, type Config } from '../../../src/config/schema.js';
import { integrationSchema } from '../../../src/config/schema.js';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { decideRule } from '../../../src/signing/plan.js';

const req = (pushers: unknown) => requireSchema.parse({ pushers });

describe('requireSchema', () => {
  it('takes allow and deny glob lists and refuses the rest', () => {
    expect(req({ allow: ['robot$ci+*'], deny: ['admin'] }).pushers).toEqual({ allow: ['robot$ci+*'], deny: ['admin'] });
    expect(requireSchema.safeParse({ pushers: {} }).success).toBe(false);
    expect(requireSchema.safeParse({ pushers: { allow: [] } }).success).toBe(false);
    expect(requireSchema.safeParse({ pushers: { allow: [''] } }).success).toBe(false);
    expect(requireSchema.safeParse({ pushers: { allowed: ['x'] } }).success).toBe(false);
    expect(requireSchema.safeParse({ pusher: { allow: ['x'] } }).success).toBe(false);
    expect(requireSchema.parse({})).toEqual({});
  });
});

describe('conditionSkip', () => {
  it('no conditions: always met, with or without a pusher', () => {
    expect(conditionSkip(undefined, {})).toBeUndefined();
    expect(conditionSkip({}, { pusher: 'x' })).toBeUndefined();
  });

  it('allow: a matching pusher passes, another is skipped with its name', () => {
    const r = req({ allow: ['robot$ci+*', 'alice'] });
    expect(conditionSkip(r, { pusher: 'robot$ci+pusher' })).toBeUndefined();
    expect(conditionSkip(r, { pusher: 'alice' })).toBeUndefined();
    expect(conditionSkip(r, { pusher: 'mallory' })).toBe('pusher "mallory" is not in require.pushers.allow');
    // exact case, whole name
    expect(conditionSkip(r, { pusher: 'Alice' })).toMatch(/not in require.pushers.allow/);
    expect(conditionSkip(r, { pusher: 'alice2' })).toMatch(/not in require.pushers.allow/);
    expect(conditionSkip(r, { pusher: 'robot$other+pusher' })).toMatch(/not in require.pushers.allow/);
  });

  it('deny wins over allow; a deny-only list passes the others', () => {
    const both = req({ allow: ['*'], deny: ['admin', 'robot$*'] });
    expect(conditionSkip(both, { pusher: 'bob' })).toBeUndefined();
    expect(conditionSkip(both, { pusher: 'admin' })).toBe('pusher "admin" is denied by require.pushers.deny');
    expect(conditionSkip(both, { pusher: 'robot$ci+x' })).toMatch(/denied/);
    const deny = req({ deny: ['admin'] });
    expect(conditionSkip(deny, { pusher: 'bob' })).toBeUndefined();
    expect(conditionSkip(deny, { pusher: 'admin' })).toMatch(/denied/);
  });

  it('no vouched pusher meets neither an allow nor a deny list', () => {
    for (const r of [req({ allow: ['*'] }), req({ deny: ['admin'] })]) {
      expect(conditionSkip(r, {})).toBe('rule requires a pusher (require.pushers) and this push has none its integration vouches for');
      expect(conditionSkip(r, { pusher: '' })).toMatch(/has none/);
    }
  });

  it('ARNs: * stays within a /-segment, ** crosses', () => {
    const r = req({ allow: ['arn:aws:sts::123456789012:assumed-role/ci/**'] });
    expect(conditionSkip(r, { pusher: 'arn:aws:sts::123456789012:assumed-role/ci/session-1' })).toBeUndefined();
    expect(conditionSkip(r, { pusher: 'arn:aws:sts::123456789012:assumed-role/dev/session-1' })).toMatch(/not in/);
    expect(conditionSkip(req({ allow: ['*'] }), { pusher: 'a/b' })).toMatch(/not in/);
  });

  it('a reported name goes into the reason without control characters, clipped', () => {
    const r = req({ allow: ['alice'] });
    expect(conditionSkip(r, { pusher: 'eve\n{"x":1}' })).toBe('pusher "eve?{"x":1}" is not in require.pushers.allow');
    expect(conditionSkip(r, { pusher: 'x'.repeat(500) })!.length).toBeLessThan(200);
  });
});

describe('which kinds report a pusher', () => {
  it('every adapter kind is classified', () => {
    const yes = Object.keys(webhookAdapters).filter(kindReportsPusher).sort();
    expect(yes).toEqual(['distribution', 'dockerhub', 'github', 'gitlab', 'harbor']);
  });
});

describe('decideRule with conditions', () => {
  const rule = (extra: Record<string, unknown>) => ruleSchema.parse({ match: 'r.example/team/**', keys: ['k'], ...extra });
  const config = {
    rules: [rule({ require: { pushers: { allow: ['ci-*'], deny: ['ci-evil'] } } }), rule({ match: 'r.example/open/**' })],
    integrations: [
      integrationSchema.parse({ name: 'harbor', kind: 'harbor', secret: 's'.repeat(20) }),
      integrationSchema.parse({ name: 'open', kind: 'harbor', insecure: true }),
    ],
  } as Pick<Config, 'rules' | 'integrations'>;
  const rules = compileRules(config.rules);
  const vouched = pusherPolicy(config);
  const decide = (integration: string, pusher: string | undefined, repo = 'team/api') =>
    decideRule(rules, 'r.example', repo, 'v1', { push: { pusher: vouched({ integration, ...(pusher ? { pusher } : {}) }, 'r.example', repo).pusher } });

  it('signs an allowed pusher from an authenticated integration', () => {
    expect(decide('harbor', 'ci-bot')).toMatchObject({ index: 0 });
  });

  it('skips another pusher, a denied one and a missing one, naming the rule, as a condition', () => {
    expect(decide('harbor', 'mallory')).toEqual({ skip: 'rule 0: pusher "mallory" is not in require.pushers.allow', index: 0, condition: true });
    expect(decide('harbor', 'ci-evil')).toEqual({ skip: 'rule 0: pusher "ci-evil" is denied by require.pushers.deny', index: 0, condition: true });
    expect(decide('harbor', undefined)).toMatchObject({ index: 0, condition: true, skip: expect.stringMatching(/has none its integration vouches for/) });
  });

  it('an insecure integration cannot satisfy an allow list', () => {
    expect(decide('open', 'ci-bot')).toMatchObject({ condition: true, skip: expect.stringMatching(/has none its integration vouches for/) });
  });

  it('a rule without conditions and a look without a push (verify) do not check them', () => {
    expect(decide('open', 'anyone', 'open/api')).toMatchObject({ index: 1 });
    expect(decideRule(rules, 'r.example', 'team/api', 'v1')).toMatchObject({ index: 0 });
  });

  it('tag filters and no match are not conditions', () => {
    expect(decideRule(rules, 'r.example', 'other/api', 'v1', { push: {} })).toEqual({ skip: 'no rule matches r.example/other/api' });
  });
});
