/**
 * `${VAR}` expansion: a `:-` default never supplies a secret; annotation templates read only
 * `${env.VAR}` from the environment, never a push field.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../../src/config/load.js';
import { expandEnv, isSecretField, type EnvProblem } from '../../../src/config/env.js';
import { expandAnnotations } from '../../../src/signing/annotations.js';

function problemsOf(text: string, env: NodeJS.ProcessEnv) {
  try {
    parseConfigText(text, 'signet.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => ({ path: p.path.map(String).join('.'), line: p.line, message: p.message }));
  }
  throw new Error('expected a ConfigError');
}

/** Every secret field the schemas have, each given as `${UNSET:-default}`. Line numbers are 1-based. */
const everySecret = `server:
  statusPageToken: "\${S1:-0123456789abcdef0123}"
registries:
  - host: r1.example.com
    credentials: { username: u, password: "\${S2:-default-password}" }
  - host: r2.example.com
    credentials: { token: "\${S3:-default-token}" }
  - host: r3.example.com
    credentials: { ecr: { accessKeyId: AKIA, secretAccessKey: "\${S4:-x}", sessionToken: "\${S5:-x}" } }
  - host: r4.example.com
    credentials: { acr: { tenantId: t, clientId: c, clientSecret: "\${S6:-x}" } }
integrations:
  - { name: hook, kind: distribution, secret: "\${S7:-0123456789abcdef0123}" }
keys:
  - { name: f, provider: file, path: k.key, password: "\${S8:-}" }
  - { name: p, provider: pkcs11, token: "\${LABEL:-signet}", label: k, pin: "\${S9:-1234}" }
  - { name: v, provider: vault, address: "https://vault.example.com", key: k, token: "\${S10:-x}" }
  - { name: v2, provider: vault, address: "https://vault.example.com", key: k, roleId: r, secretId: "\${S11:-x}" }
  - name: a
    provider: awskms
    keyId: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    region: us-east-1
    credentials: { accessKeyId: AKIA, secretAccessKey: "\${S12:-x}", sessionToken: "\${S13:-x}" }
  - { name: al, provider: alibabakms, keyId: k, regionId: cn-hangzhou, accessKeyId: a, accessKeySecret: "\${S14:-x}", securityToken: "\${S15:-x}" }
  - { name: az, provider: azurekv, vaultUrl: "https://v.vault.azure.net", keyName: k, tenantId: t, clientId: c, clientSecret: "\${S16:-x}" }
rules: []
`;

describe('a default never supplies a secret', () => {
  it('every secret field with an unset ${VAR:-default} is a problem, all reported at once with path and line', () => {
    const problems = problemsOf(everySecret, {}).filter((p) => /takes no default/.test(p.message));
    expect(problems.map((p) => [p.path, p.line])).toEqual([
      ['server.statusPageToken', 2],
      ['registries.0.credentials.password', 5],
      ['registries.1.credentials.token', 7],
      ['registries.2.credentials.ecr.secretAccessKey', 9],
      ['registries.2.credentials.ecr.sessionToken', 9],
      ['registries.3.credentials.acr.clientSecret', 11],
      ['integrations.0.secret', 13],
      ['keys.0.password', 15],
      ['keys.1.pin', 16],
      ['keys.2.token', 17],
      ['keys.3.secretId', 18],
      ['keys.4.credentials.secretAccessKey', 23],
      ['keys.4.credentials.sessionToken', 23],
      ['keys.5.accessKeySecret', 24],
      ['keys.5.securityToken', 24],
      ['keys.6.clientSecret', 25],
    ]);
    expect(problems[0]!.message).toBe('environment variable S1 is not set, and a secret takes no default (${S1:-...}): set S1');
    // a PKCS#11 token is a label: its default is fine
    expect(problemsOf(everySecret, {}).some((p) => p.path === 'keys.1.token')).toBe(false);
  });

  it('an empty variable is unset too; a set one is used; defaults elsewhere still work', () => {
    const text = `redis: { prefix: "\${PREFIX:-signet}" }
registries: [{ host: r.example.com, credentials: { username: u, password: "\${REG_PW:-changeme}" } }]
keys: [{ name: k, provider: file, path: k.key }]
`;
    expect(problemsOf(text, { REG_PW: '' })).toEqual([
      { path: 'registries.0.credentials.password', line: 2, message: expect.stringMatching(/REG_PW is not set, and a secret takes no default/) },
    ]);
    const { config } = parseConfigText(text, 'x.yaml', { REG_PW: 's3cret' });
    expect(config.registries[0]!.credentials).toMatchObject({ password: 's3cret' });
    expect(config.redis.prefix).toBe('signet');
  });

  it('isSecretField: names outside the credential sections are not secrets', () => {
    const root = { keys: [{ provider: 'pkcs11' }, { provider: 'vault' }] };
    expect(isSecretField(['keys', 0, 'token'], root)).toBe(false);
    expect(isSecretField(['keys', 1, 'token'], root)).toBe(true);
    expect(isSecretField(['redis', 'prefix'], root)).toBe(false);
    expect(isSecretField(['rules', 0, 'annotations', 'password'], root)).toBe(false);
    expect(isSecretField(['registries', 0, 'host'], root)).toBe(false);
  });
});

describe('annotation templates and the environment', () => {
  const base = (annotations: string) => `registries: [{ host: r.example.com }]
keys: [{ name: k, provider: file, path: k.key }]
rules:
  - match: "r.example.com/**"
    keys: [k]
    annotations: ${annotations}
`;

  it('${tag} and ${tag:-x} never read a variable named tag', () => {
    const env = { tag: 'from-the-environment', pusher: 'mallory' };
    const { config } = parseConfigText(base('{ t: "${tag}", by: "${pusher}" }'), 'x.yaml', env);
    expect(config.rules[0]!.annotations).toEqual({ t: '${tag}', by: '${pusher}' });
    const problems = problemsOf(base('{ t: "${tag:-x}" }'), env);
    expect(problems).toEqual([{ path: 'rules.0.annotations.t', line: 6, message: expect.stringContaining('${tag:-x}: push fields take no default') }]);
  });

  it('only ${env.VAR} reads the environment there, inserted literally', () => {
    const env = { TEAM: 'payments', TRICK: '${pusher}' };
    const { config } = parseConfigText(
      base('{ team: "${env.TEAM}", trick: "${env.TRICK}", site: "${env.SITE:-eu}", esc: "$${tag}", lit: "$$${tag}" }'),
      'x.yaml',
      env,
    );
    const templates = config.rules[0]!.annotations!;
    // $${ is the file's escape everywhere: $${tag} reaches the template as ${tag}; $$${ is a literal ${
    expect(expandAnnotations(templates, { tag: 'v1', pusher: 'alice' })).toEqual({
      team: 'payments',
      trick: '${pusher}',
      site: 'eu',
      esc: 'v1',
      lit: '${tag}',
    });
    // an old-style ${TEAM} is refused with the fix, not silently read
    const problems = problemsOf(base('{ team: "${TEAM}" }'), env);
    expect(problems[0]!.message).toMatch(/unknown field \$\{TEAM\}.*\$\{env\.TEAM\}/);
    expect(problemsOf(base('{ team: "${env.NOPE}" }'), env)[0]).toMatchObject({
      path: 'rules.0.annotations.team',
      message: 'environment variable NOPE is not set',
    });
  });

  it('outside annotations ${env.VAR} is the same as ${VAR}, and $${ is a literal', () => {
    const problems: EnvProblem[] = [];
    expect(expandEnv({ a: '${env.X}-${X}', b: '$${X}' }, { X: '1' }, problems)).toEqual({ a: '1-1', b: '${X}' });
    expect(problems).toEqual([]);
  });
});
