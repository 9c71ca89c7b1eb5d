import { describe, expect, it } from 'vitest';
import { compileRules } from '../../../src/config/rules.js';
import { ruleSchema } from '../../../src/config/schema.js';

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
