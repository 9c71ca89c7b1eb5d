/**
 * signet's own registry client against real docker-registry instances that require Basic auth
 * (over TLS with a private CA: caFile) and the bearer-token challenge flow (a token server the
 * test runs). The signatures it writes there verify with cosign using the same credentials.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { RegistryClient } from '../../src/registry/client.js';
import { registrySchema } from '../../src/config/schema.js';
import { cosignVerify } from '../helpers/cosign.js';
import { pushImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { createRuntime } from '../../src/runtime.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { deletePrefix, REDIS_URL, tempKeyDir, uniquePrefix, type KeyDir } from '../helpers/signet.js';
import { Writable } from 'node:stream';

const creds = { username: 'signet', password: 'registry-pass-1' };
let basic: RunningRegistry;
let token: RunningRegistry;
let tmp: KeyDir;
let pubPath: string;

beforeAll(async () => {
  tmp = tempKeyDir();
  pubPath = tmp.pub;
  [basic, token] = await Promise.all([
    startRegistry({ auth: { kind: 'htpasswd', ...creds }, tls: true }),
    startRegistry({ auth: { kind: 'token', ...creds } }),
  ]);
});
afterAll(async () => {
  await basic?.stop();
  await token?.stop();
  tmp?.remove();
});

function runtimeYaml(host: string, extra: string): string {
  return `
registries:
  - host: ${host}
${extra}
    credentials: { username: ${creds.username}, password: "\${REG_PASSWORD}" }
keys:
  - { name: k, provider: file, path: k.pem }
rules:
  - { match: "${host}/**", keys: [k], formats: [legacy] }
`;
}

async function signWith(yaml: string, target: { host: string; repository: string; tag: string }) {
  const prefix = uniquePrefix();
  const loaded = parseConfigText(yaml, 'auth.yaml', { REG_PASSWORD: creds.password });
  loaded.config.redis.url = REDIS_URL;
  loaded.config.redis.prefix = prefix;
  const lines: string[] = [];
  const sink = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
  const rt = await createRuntime({ ...loaded, baseDir: tmp.dir }, { logger: createLogger({ level: 'debug', destination: sink }), metrics: new Metrics() });
  try {
    return { report: await rt.pipeline.sign(target), requests: rt.registries.requestCount(), logs: lines.join('') };
  } finally {
    await rt.close();
    await deletePrefix(prefix);
  }
}

describe('registry authentication', () => {
  it('Basic auth over TLS with a private CA (caFile)', async () => {
    const img = await pushImage(basic, 'team/app', 'v1', { auth: creds });
    const { report, logs } = await signWith(runtimeYaml(basic.host, `    caFile: ${basic.caFile}`), { host: basic.host, repository: 'team/app', tag: 'v1' });
    expect(report).toMatchObject({ status: 'signed', digest: img.digest });
    expect(logs).not.toContain(creds.password);
    const v = await cosignVerify(`${basic.host}/team/app:v1`, pubPath, [], { caFile: basic.caFile!, auth: creds });
    expect(v.ok, v.stderr).toBe(true);
  });

  it('TLS without the CA is refused (no silent downgrade to http)', async () => {
    const bad = signWith(runtimeYaml(basic.host, ''), { host: basic.host, repository: 'team/app', tag: 'v1' });
    await expect(bad).rejects.toMatchObject({ code: 'REGISTRY_UNAVAILABLE' });
  });

  it('bearer token challenge: token fetched with the credentials, cached across requests', async () => {
    const img = await pushImage(token, 'tok/app', 'v1', { auth: creds });
    const issuedBefore = token.tokenServer!.issued();
    const { report, requests } = await signWith(runtimeYaml(token.host, `    insecure: true\n    authHosts: ["${new URL(token.tokenServer!.realm).host}"]`), {
      host: token.host,
      repository: 'tok/app',
      tag: 'v1',
    });
    expect(report).toMatchObject({ status: 'signed', digest: img.digest });
    // one token for pull,push on the repository serves every request of the job
    expect(token.tokenServer!.issued() - issuedBefore).toBe(1);
    expect(requests).toBeLessThan(15);
    const v = await cosignVerify(`${token.host}/tok/app:v1`, pubPath, [], { auth: creds });
    expect(v.ok, v.stderr).toBe(true);
  });

  it('wrong credentials fail with REGISTRY_AUTH_FAILED, not retried', async () => {
    const cfg = registrySchema.parse({
      host: token.host,
      insecure: true,
      authHosts: [new URL(token.tokenServer!.realm).host],
      credentials: { username: 'signet', password: 'wrong' },
    });
    const client = new RegistryClient(cfg);
    await expect(client.getManifest('tok/app', 'v1')).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', retryable: false });
    await client.close();
  });

  it('a token realm on a host that is not configured is never contacted', async () => {
    // the token service runs on another port: without it in authHosts, it is off limits
    const cfg = registrySchema.parse({ host: token.host, insecure: true, credentials: creds });
    const client = new RegistryClient(cfg);
    const before = token.tokenServer!.issued() + token.tokenServer!.refused();
    await expect(client.getManifest('tok/app', 'v1')).rejects.toMatchObject({ code: 'REGISTRY_NOT_CONFIGURED' });
    expect(token.tokenServer!.issued() + token.tokenServer!.refused()).toBe(before);
    await client.close();
  });
});
