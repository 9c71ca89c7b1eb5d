/** `signet config check` (parseConfigText -> crossCheck): a rule with require.pushers reached by an integration whose payload names no pusher. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../../src/config/load.js';

const base = (
  integrations: string,
  rules: string,
  registries = '  - host: 127.0.0.1:5000\n    insecure: true\n  - host: 123456789012.dkr.ecr.us-east-1.amazonaws.com\n',
) => `
registries:
${registries}integrations:
${integrations}
keys:
  - name: dev
    provider: file
    path: ./keys/dev.key
rules:
${rules}
`;

const SECRET = 'a-long-enough-secret-value';
const harbor = `  - { name: h, kind: harbor, secret: ${SECRET} }\n`;
const quay = `  - { name: q, kind: quay, secret: ${SECRET} }\n`;
const ecr = `  - { name: e, kind: ecr, secret: ${SECRET} }\n`;
const jfrog = (host: string) => `  - { name: j, kind: jfrog, secret: ${SECRET}, registryHost: "${host}" }\n`;
const pushersRule = (match: string) => `  - match: "${match}"\n    keys: [dev]\n    require: { pushers: { allow: ["ci-*"] } }\n`;

function problemsOf(text: string): { path: string; message: string }[] {
  try {
    parseConfigText(text, 'signet.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => ({ path: p.path.map(String).join('.'), message: p.message }));
  }
  return [];
}

describe('config check: pusher conditions need integrations that report a pusher', () => {
  it('harbor alone: no problem', () => {
    expect(problemsOf(base(harbor, pushersRule('127.0.0.1:5000/team/**')))).toEqual([]);
  });

  it('a quay integration (any host) next to it: an error at the rule, naming integration, kind and reason', () => {
    const problems = problemsOf(base(harbor + quay, pushersRule('127.0.0.1:5000/team/**')));
    expect(problems).toEqual([
      {
        path: 'rules.0.require.pushers',
        message:
          'rule 0 has require.pushers but is reached through integration "q" (kind quay) whose payload carries no pusher: its pushes to 127.0.0.1:5000 could never be signed (see docs/conditions.md)',
      },
    ]);
  });

  it('every unreached integration is listed, with the other problems of the file', () => {
    const problems = problemsOf(base(harbor + quay + ecr, pushersRule('**') + '  - match: "127.0.0.1:5000/x/**"\n    keys: [nokey]\n'));
    expect(problems.map((p) => p.path).sort()).toEqual(['rules.0.require.pushers', 'rules.0.require.pushers', 'rules.1.keys.0']);
    expect(problems.map((p) => p.message).join('\n')).toMatch(/"e" \(kind ecr\).*123456789012\.dkr\.ecr/);
  });

  it('ECR reaches only ECR hosts; JFrog with registryHost only that host', () => {
    expect(problemsOf(base(harbor + ecr + jfrog('jfrog.example.com'), pushersRule('127.0.0.1:5000/**')))).toEqual([]);
    expect(problemsOf(base(ecr, pushersRule('123456789012.dkr.ecr.us-east-1.amazonaws.com/**')))[0]?.message).toMatch(/kind ecr/);
    expect(problemsOf(base(jfrog('127.0.0.1:5000'), pushersRule('127.0.0.1:5000/**')))[0]?.message).toMatch(/kind jfrog/);
  });

  it('rules without pusher conditions are not concerned', () => {
    expect(problemsOf(base(quay, '  - match: "127.0.0.1:5000/**"\n    keys: [dev]\n'))).toEqual([]);
  });

  it('a bad require.pushers is a schema error at its path', () => {
    const problems = problemsOf(base(harbor, '  - match: "127.0.0.1:5000/**"\n    keys: [dev]\n    require: { pushers: { allow: [] } }\n'));
    expect(problems.map((p) => p.path)).toEqual(['rules.0.require.pushers.allow']);
  });

  it('an insecure integration that reports a pusher: a warning (its pushes never meet the rule; with pusherFrom: any, anyone can name a pusher)', () => {
    const open = `  - { name: o, kind: harbor, insecure: true }\n`;
    const w = (rules: string) =>
      parseConfigText(base(harbor + open, rules), 'signet.yaml', {})
        .warnings.filter((x) => x.path.join('.') === 'rules.0.require.pushers')
        .map((x) => x.message);
    expect(w(pushersRule('127.0.0.1:5000/**'))).toEqual(['integration "o" accepts unauthenticated webhooks: its pushes never meet rule 0\'s require.pushers']);
    expect(w(pushersRule('127.0.0.1:5000/**') + '    pusherFrom: any\n')).toEqual([
      'rule 0 has require.pushers and pusherFrom: any: integration "o" accepts unauthenticated webhooks, so anyone who reaches it can name an allowed pusher',
    ]);
    expect(w('  - match: "127.0.0.1:5000/**"\n    keys: [dev]\n')).toEqual([]);
  });
});
