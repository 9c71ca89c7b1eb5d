/**
 * The `redis:` section (src/config/redis.ts): one node, Sentinel or Cluster, each problem reported
 * at its YAML path and line; the Cluster prefix hash-tagged; passwords from ${VAR} and never from
 * a default; SIGNET_REDIS_URL in the embedded default still works.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../../src/config/load.js';
import { DEFAULT_CONFIG_YAML } from '../../../src/config/defaults.js';
import { ownKeyPrefix } from '../../../src/config/redis.js';

const rest = `
registries: [{ host: "127.0.0.1:5000", insecure: true }]
keys: [{ name: k, provider: file, path: k.pem }]
`;

function parse(redis: string, env: NodeJS.ProcessEnv = {}) {
  return parseConfigText(`${redis}\n${rest}`, 'signet.yaml', env).config.redis;
}

function problems(redis: string, env: NodeJS.ProcessEnv = {}) {
  try {
    parse(redis, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => ({ path: p.path.map(String).join('.'), line: p.line, message: p.message }));
  }
  throw new Error('expected a ConfigError');
}

describe('redis config', () => {
  it('no redis section: one node at 127.0.0.1:6379, prefix signet, ack auto', () => {
    expect(parse('')).toEqual({ url: 'redis://127.0.0.1:6379', prefix: 'signet', ack: { replicas: 'auto', timeoutMs: 1000 } });
  });

  it('a single node by URL keeps working, SIGNET_REDIS_URL in the embedded default too', () => {
    expect(parse('redis: { url: "rediss://user:pw@redis.example:6380/2" }').url).toBe('rediss://user:pw@redis.example:6380/2');
    const loaded = parseConfigText(DEFAULT_CONFIG_YAML, '(embedded default)', {
      SIGNET_HOOK_SECRET: 'x'.repeat(24),
      SIGNET_REDIS_URL: 'redis://10.0.0.5:6379',
    });
    expect(loaded.config.redis.url).toBe('redis://10.0.0.5:6379');
  });

  it('Sentinel: master name, sentinels, passwords from ${VAR}, TLS', () => {
    const r = parse(
      `
redis:
  sentinel:
    masterName: mymaster
    sentinels: ["s1.redis:26379", "s2.redis:26379", "10.0.0.3:26379"]
    sentinelPassword: "\${SENTINEL_PW}"
    tls: { caFile: ca.pem }
  password: "\${REDIS_PW}"
  tls: true
  ack: { replicas: 1, timeoutMs: 500 }
`,
      { SENTINEL_PW: 'spw', REDIS_PW: 'rpw' },
    );
    expect(r.url).toBeUndefined();
    expect(r.sentinel).toEqual({
      masterName: 'mymaster',
      sentinels: ['s1.redis:26379', 's2.redis:26379', '10.0.0.3:26379'],
      sentinelPassword: 'spw',
      tls: { caFile: 'ca.pem', rejectUnauthorized: true },
    });
    expect(r.password).toBe('rpw');
    expect(r.ack).toEqual({ replicas: 1, timeoutMs: 500 });
  });

  it('a password takes no default: ${VAR:-x} with VAR unset is a problem at its path', () => {
    expect(problems('redis:\n  password: "${REDIS_PW:-hunter2}"')).toEqual([
      { path: 'redis.password', line: 2, message: expect.stringContaining('a secret takes no default') },
    ]);
    expect(problems('redis:\n  sentinel: { masterName: m, sentinels: ["a:1"], sentinelPassword: "${SPW:-x}" }')[0]).toMatchObject({
      path: 'redis.sentinel.sentinelPassword',
    });
  });

  it('Cluster: nodes and a NAT map; the prefix is hash-tagged, {name} accepted as written', () => {
    const r = parse('redis:\n  cluster:\n    nodes: ["10.0.0.1:7000", "10.0.0.2:7000"]\n    natMap: { "10.0.0.1:7000": "127.0.0.1:17000" }');
    expect(r.cluster).toEqual({ nodes: ['10.0.0.1:7000', '10.0.0.2:7000'], natMap: { '10.0.0.1:7000': '127.0.0.1:17000' } });
    expect(r.prefix).toBe('{signet}');
    expect(parse('redis: { cluster: { nodes: ["a:7000"] }, prefix: "{team}" }').prefix).toBe('{team}');
    expect(parse('redis: { prefix: "{signet}" }').prefix).toBe('{signet}');
    expect(ownKeyPrefix('{signet}')).toBe('signet');
  });

  it('each mistake at its path and line', () => {
    expect(problems('redis:\n  url: redis://a:6379\n  sentinel: { masterName: m, sentinels: ["s:26379"] }')).toEqual([
      { path: 'redis.sentinel', line: 3, message: 'give one of redis.url, redis.sentinel, redis.cluster (found url and sentinel)' },
    ]);
    expect(problems('redis:\n  url: "redis://s:26379?sentinels=a:1,b:2&name=m"')).toEqual([
      { path: 'redis.url', line: 2, message: 'Sentinel is configured with redis.sentinel (masterName, sentinels), not in the URL' },
    ]);
    expect(problems('redis:\n  sentinel:\n    masterName: m\n    sentinels: ["redis://s1:26379", "s2"]')).toEqual([
      { path: 'redis.sentinel.sentinels.0', line: 4, message: expect.stringContaining('must be host:port') },
      { path: 'redis.sentinel.sentinels.1', line: 4, message: expect.stringContaining('must be host:port') },
    ]);
    expect(problems('redis:\n  cluster: { nodes: [] }\n  db: 3')).toEqual([
      { path: 'redis.cluster.nodes', line: 2, message: 'name at least one cluster node' },
      { path: 'redis.db', line: 3, message: 'Redis Cluster has only database 0' },
    ]);
    expect(problems('redis:\n  prefix: "sig{net}"')[0]).toMatchObject({ path: 'redis.prefix', line: 2 });
    expect(problems('redis:\n  ack: { replicas: many }')[0]).toMatchObject({ path: 'redis.ack.replicas', line: 2 });
    expect(problems('redis:\n  sentinel: { masterName: m, sentinels: ["a:1"], bogus: 1 }')[0]).toMatchObject({ path: 'redis.sentinel.bogus', line: 2 });
  });
});
