import { describe, expect, it } from 'vitest';
import { compileRules, pusherPolicy } from '../../../src/config/rules.js';
import { integrationSchema, ruleSchema } from '../../../src/config/schema.js';

const rule = (r: object) => ruleSchema.parse(r);

describe('rules', () => {
  const rules = compileRules([
    rule({ match: '127.0.0.1:5000/team-a/**', keys: ['dev'], tags: { include: ['v*'], exclude: ['*-dev'] } }),
    rule({ match: '127.0.0.1:5000/**', keys: ['other'], untagged: 'sign' }),
  ]);

  it('first match wins, over host/repository globs', () => {
    expect(rules.find('127.0.0.1:5000', 'team-a/api')?.index).toBe(0);
    expect(rules.find('127.0.0.1:5000', 'team-a/deep/api')?.index).toBe(0);
    expect(rules.find('127.0.0.1:5000', 'team-b/api')?.index).toBe(1);
    expect(rules.find('other:5000', 'team-a/api')).toBeUndefined();
  });

  it('applies tag include/exclude and the untagged policy', () => {
    const r0 = rules.find('127.0.0.1:5000', 'team-a/api')!.rule;
    expect(rules.skipReason(r0, 'v1.2.3')).toBeUndefined();
    expect(rules.skipReason(r0, 'latest')).toMatch(/include/);
    expect(rules.skipReason(r0, 'v1-dev')).toMatch(/exclude/);
    expect(rules.skipReason(r0, undefined)).toMatch(/untagged/);
    const r1 = rules.find('127.0.0.1:5000', 'x')!.rule;
    expect(rules.skipReason(r1, undefined)).toBeUndefined();
  });
});

describe('pusherPolicy: whose word ${pusher} takes', () => {
  const integrations = [
    integrationSchema.parse({ name: 'hub', kind: 'dockerhub', secret: '0123456789abcdef' }),
    integrationSchema.parse({ name: 'open', kind: 'dockerhub', insecure: true }),
  ];
  const policy = pusherPolicy({
    integrations,
    rules: [rule({ match: 'r.example.com/trusting/**', keys: ['k'], pusherFrom: 'any' }), rule({ match: 'r.example.com/**', keys: ['k'] })],
  });

  it('an authenticating integration vouches; an insecure one or an unknown one does not, unless the rule says pusherFrom: any', () => {
    expect(policy({ integration: 'hub', pusher: 'alice' }, 'r.example.com', 'team/app')).toEqual({ pusher: 'alice' });
    expect(policy({ integration: 'open', pusher: 'mallory' }, 'r.example.com', 'team/app')).toEqual({
      refused: expect.stringMatching(/"open" accepts unauthenticated webhooks \(insecure: true\)/),
    });
    expect(policy({ integration: 'gone', pusher: 'mallory' }, 'r.example.com', 'team/app')).toEqual({
      refused: expect.stringMatching(/"gone" is not configured/),
    });
    expect(policy({ integration: 'open', pusher: 'bob' }, 'r.example.com', 'trusting/app')).toEqual({ pusher: 'bob' });
    expect(policy({ integration: 'open' }, 'r.example.com', 'team/app')).toEqual({});
    expect(policy({ integration: 'backfill' }, 'r.example.com', 'team/app')).toEqual({});
  });

  it('pusherFrom takes only authenticated | any', () => {
    expect(ruleSchema.safeParse({ match: 'x/**', keys: ['k'], pusherFrom: 'everyone' }).success).toBe(false);
  });
});
