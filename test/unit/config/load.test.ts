import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../../src/config/load.js';

const good = `
server: { port: 8080 }
redis: { url: redis://127.0.0.1:6379, prefix: signet }
registries:
  - host: 127.0.0.1:5000
    insecure: true
    credentials: { username: u, password: "\${REG_PASSWORD}" }
integrations:
  - name: local
    kind: distribution
    secret: "\${SIGNET_HOOK_SECRET}"
keys:
  - name: dev
    provider: file
    path: ./keys/dev.key
    password: "\${COSIGN_PASSWORD}"
  - name: security
    provider: file
    path: ./keys/security.pem
rules:
  - match: "127.0.0.1:5000/team-a/**"
    keys: [dev, security]
    tags: { include: ["v*"], exclude: ["*-dev"] }
`;

const env = { REG_PASSWORD: 'p4ss', SIGNET_HOOK_SECRET: 'a-long-enough-secret-value', COSIGN_PASSWORD: 'pw' };

function problemsOf(text: string, e: NodeJS.ProcessEnv = env) {
  try {
    parseConfigText(text, 'signet.yaml', e);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => ({ path: p.path.map(String).join('.'), line: p.line, message: p.message }));
  }
  throw new Error('expected a ConfigError');
}

describe('config loading', () => {
  it('accepts the documented example and expands ${VAR} from the environment', () => {
    const { config, warnings } = parseConfigText(good, '/etc/signet/signet.yaml', env);
    expect(config.registries[0]!.credentials).toEqual({ username: 'u', password: 'p4ss' });
    expect(config.integrations[0]!.secret).toBe('a-long-enough-secret-value');
    expect(config.keys.map((k) => k.name)).toEqual(['dev', 'security']);
    expect(config.rules[0]!.identity).toBe('tag');
    expect(config.worker.concurrency).toBeGreaterThan(0);
    expect(warnings).toEqual([]);
  });

  it('reports every mistake at once, each with its YAML path and line', () => {
    const bad = `
server: { port: "eighty" }
registries:
  - host: https://127.0.0.1:5000/
    insecure: yes-please
integrations:
  - name: local
    kind: nexus
keys:
  - name: dev
    provider: file
  - name: dev
    provider: floppy
    path: x
rules:
  - match: "127.0.0.1:5000/**"
    keys: []
    colour: blue
`;
    const problems = problemsOf(bad);
    const paths = problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'server.port',
        'registries.0.host',
        'registries.0.insecure',
        'integrations.0.kind',
        'keys.0.path',
        'keys.1.provider',
        'rules.0.keys',
        'rules.0.colour',
      ]),
    );
    expect(problems.length).toBeGreaterThanOrEqual(8);
    const port = problems.find((p) => p.path === 'server.port')!;
    expect(port.line).toBe(2);
    const kind = problems.find((p) => p.path === 'integrations.0.kind')!;
    expect(kind.line).toBe(8);
    const colour = problems.find((p) => p.path === 'rules.0.colour')!;
    expect(colour.message).toBe('unknown field "colour"');
    expect(colour.line).toBe(18); // the field's own line, not its rule's (16)
    // in file order
    const lines = problems.map((p) => p.line ?? 0);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it('reports schema errors and cross-references of the entries that parsed in the same run', () => {
    const bad = good
      .replace('    insecure: true\n', '    insecure: true\n    timeout: 5\n') // unknown field in registries[0]
      .replace('keys: [dev, security]', 'keys: [dev, nosuchkey]') // cross-reference in a rule that parses
      .replace('    path: ./keys/security.pem', '    path: ./keys/security.pem\n    pinn: 1234'); // keys[1] fails its schema
    const problems = problemsOf(bad);
    expect(problems.map((p) => p.path)).toEqual(['registries.0.timeout', 'keys.1.pinn', 'rules.0.keys.1']);
    expect(problems.map((p) => p.line)).toEqual([7, 21, 24]);
    expect(problems[2]!.message).toBe('no key named "nosuchkey" in keys');
  });

  it('does not call a key or host missing when its entry only failed the schema', () => {
    const bad = good.replace('    path: ./keys/security.pem', '    path: 7').replace('    insecure: true\n', '    insecure: maybe\n');
    const problems = problemsOf(bad);
    expect(problems.map((p) => p.path)).toEqual(['registries.0.insecure', 'keys.1.path']);
  });

  it('takes ${VAR} in any number or boolean field, and says what a variable gave that is not one', () => {
    const text = good
      .replace(
        'server: { port: 8080 }',
        'server: { port: "${PORT}", bodyTimeoutMs: "${BODY_MS}" }\nworker: { concurrency: "${CONC}" }\nstatus: { retentionDays: "${DAYS}" }',
      )
      .replace('    insecure: true\n', '    insecure: "${INSECURE}"\n    timeoutMs: ${TIMEOUT}\n');
    const e = { ...env, PORT: '9000', BODY_MS: '2500', CONC: '4', DAYS: '1.5', INSECURE: 'true', TIMEOUT: '700' };
    const { config } = parseConfigText(text, 'x.yaml', e);
    expect(config.server.port).toBe(9000);
    expect(config.server.bodyTimeoutMs).toBe(2500);
    expect(config.worker.concurrency).toBe(4);
    expect(config.status.retentionDays).toBe(1.5);
    expect(config.registries[0]!.insecure).toBe(true);
    expect(config.registries[0]!.timeoutMs).toBe(700);
    const problems = problemsOf(text, { ...e, CONC: 'four', INSECURE: 'yes' });
    expect(problems).toEqual([
      { path: 'worker.concurrency', line: 3, message: 'expected a number, the environment gave "four"' },
      { path: 'registries.0.insecure', line: 8, message: 'expected true or false, the environment gave "yes"' },
    ]);
    // a number written as a string without a variable is still a mistake
    expect(problemsOf(good.replace('server: { port: 8080 }', 'worker: { concurrency: "4" }')).map((p) => p.path)).toEqual(['worker.concurrency']);
  });

  it('reports cross-reference mistakes together (unknown key, duplicate names, missing secret, unknown host)', () => {
    const bad = good
      .replace('keys: [dev, security]', 'keys: [dev, nosuchkey]')
      .replace('match: "127.0.0.1:5000/team-a/**"', 'match: "elsewhere.example.com/**"')
      .replace('  - name: security', '  - name: dev')
      .replace('    secret: "${SIGNET_HOOK_SECRET}"\n', '');
    const problems = problemsOf(bad);
    expect(problems.map((p) => p.path).sort()).toEqual(['integrations.0.secret', 'keys.1.name', 'rules.0.keys.1', 'rules.0.match'].sort());
    expect(problems.every((p) => typeof p.line === 'number')).toBe(true);
  });

  it('names each unset environment variable at its path', () => {
    const problems = problemsOf(good, {});
    expect(problems.map((p) => p.path).sort()).toEqual(['integrations.0.secret', 'keys.0.password', 'registries.0.credentials.password']);
    expect(problems[0]!.message).toMatch(/environment variable \w+ is not set/);
  });

  it('supports ${VAR:-default} and $${ escapes, and never expands into YAML structure', () => {
    const text = good.replace('prefix: signet', 'prefix: "${PREFIX:-sig}"').replace('path: ./keys/security.pem', () => 'path: "./keys/$${literal}.pem"');
    const { config } = parseConfigText(text, 'x.yaml', { ...env, REG_PASSWORD: 'x\n  injected: true' });
    expect(config.redis.prefix).toBe('sig');
    expect((config.keys[1] as { path: string }).path).toBe('./keys/${literal}.pem');
    expect(config.registries[0]!.credentials).toEqual({ username: 'u', password: 'x\n  injected: true' });
  });

  it('reports YAML syntax errors with their line', () => {
    const problems = problemsOf('server:\n  port: [1, 2\nredis: {}\n');
    expect(problems[0]!.message).toMatch(/^YAML/);
    expect(problems[0]!.line).toBeGreaterThan(0);
  });

  it('requires a secret unless the integration says insecure, and warns when it does', () => {
    const text = good.replace('    secret: "${SIGNET_HOOK_SECRET}"\n', '    insecure: true\n');
    const { warnings } = parseConfigText(text, 'x.yaml', env);
    expect(warnings.map((w) => w.path.join('.'))).toContain('integrations.0.insecure');
  });
});

describe('annotation templates', () => {
  it('leaves push fields under rules[].annotations for signing time, expands ${env.X}', () => {
    const text = good.replace(
      'tags: { include: ["v*"], exclude: ["*-dev"] }',
      () =>
        'tags: { include: ["v*"], exclude: ["*-dev"] }\n    annotations: { tag: "${tag}", by: "$${pusher}", env: "${env.COSIGN_PASSWORD}", repo: "${repository}@${digest}" }',
    );
    const { config } = parseConfigText(text, 'x.yaml', env);
    // only ${env.X} is read from the environment there (test/unit/config/env.test.ts)
    expect(config.rules[0]!.annotations).toEqual({ tag: '${tag}', by: '${pusher}', env: 'pw', repo: '${repository}@${digest}' });
    // outside annotations a push field name is an ordinary environment variable
    expect(() => parseConfigText(good.replace('prefix: signet', 'prefix: "${tag}"'), 'x.yaml', env)).toThrow(/environment variable tag is not set/);
  });
});

describe('${VAR} in number fields of keys and registry credentials', () => {
  const text = `
registries:
  - host: 123456789012.dkr.ecr.us-east-1.amazonaws.com
    credentials: { ecr: { timeoutMs: "\${T}" } }
keys:
  - { name: a, provider: awskms, keyId: "alias/x", region: us-east-1, timeoutMs: "\${T}" }
  - { name: b, provider: vault, address: "https://vault.example", key: k, keyVersion: "\${V}", token: "\${TOKEN}" }
`;
  it('are numbers after substitution, wherever the schema sits', () => {
    const { config } = parseConfigText(text, 'x.yaml', { T: '5000', V: '2', TOKEN: 'hvs.x' });
    expect(config.registries[0]!.credentials).toMatchObject({ ecr: { timeoutMs: 5000 } });
    expect(config.keys[0]).toMatchObject({ timeoutMs: 5000 });
    expect(config.keys[1]).toMatchObject({ keyVersion: 2 });
  });

  it('name the field when the variable is not a number', () => {
    expect(problemsOf(text, { T: 'soon', V: '2', TOKEN: 'hvs.x' })).toEqual([
      { path: 'registries.0.credentials.ecr.timeoutMs', line: 4, message: 'expected a number, the environment gave "soon"' },
      { path: 'keys.0.timeoutMs', line: 6, message: 'expected a number, the environment gave "soon"' },
    ]);
  });
});
