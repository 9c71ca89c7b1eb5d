/**
 * signet on Redis Cluster (three masters, real redis-server processes, `redis-cli --cluster
 * create`): a real registry's push notifications are signed end to end (receiver and worker on the
 * Cluster, no CROSSSLOT anywhere), the status API and the status records work, the queue's keys
 * share one slot (the hash-tagged prefix) while locks and status records spread over the masters,
 * and a single-node URL pointing at a Cluster node is refused at startup with a clear message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { parseConfigText } from '../../src/config/load.js';
import { createRuntime } from '../../src/runtime.js';
import { cosignVerify } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { startCluster, type ClusterSetup } from '../helpers/redis-topology.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'cluster-secret-0123456789';
const TOKEN = 'api-token-0123456789abcdef';
let cluster: ClusterSetup;
let registry: RunningRegistry;
let signet: RunningSignet;
let tmp: KeyDir;
let yaml: string;

beforeAll(async () => {
  tmp = tempKeyDir();
  cluster = await startCluster({ masters: 3 });
  const port = await freePort();
  registry = await startRegistry({
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
    notifyIgnoredMediaTypes: ['application/octet-stream'],
  });
  yaml = `
server: { apiToken: "${TOKEN}" }
worker: { concurrency: 8, backoffMs: 200 }
registries: [{ host: "${registry.host}", insecure: true }]
integrations: [{ name: local, kind: distribution, secret: "${SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${registry.host}/**", keys: [k] }]
`;
  signet = await startSignet(yaml, { baseDir: tmp.dir, port, redis: { cluster: cluster.config } });
}, 90_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await cluster?.stop();
  tmp?.remove();
});

describe('Redis Cluster', () => {
  it('the prefix is hash-tagged for BullMQ; the receiver is ready', async () => {
    expect(signet.runtime.config.redis.prefix).toBe(`{${signet.prefix}}`);
    const ready = await fetch(`${signet.url}/readyz`);
    const body = (await ready.json()) as any;
    expect(ready.status, JSON.stringify(body)).toBe(200);
    expect(body.checks.redis.ok).toBe(true);
  });

  it('pushes are signed end to end and the status API answers from the Cluster', async () => {
    const pushed = await Promise.all(
      Array.from({ length: 12 }, (_, i) => pushImage(registry, `team/app${i}`, 'v1').then((img) => ({ repo: `team/app${i}`, digest: img.digest }))),
    );
    await waitFor(
      'every push signed',
      async () => (await Promise.all(pushed.map(async (p) => (await getManifest(registry, p.repo, sigTag(p.digest))).status === 200))).every(Boolean),
      60_000,
      500,
    );
    const first = pushed[0]!;
    expect((await cosignVerify(`${registry.host}/${first.repo}@${first.digest}`, tmp.pub)).ok).toBe(true);
    const st = await waitFor('status signed', async () => {
      const res = await fetch(`${signet.url}/api/v1/images/${registry.host}/${first.repo}:v1/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const body = (await res.json()) as any;
      return res.status === 200 && body.statuses.some((s: any) => s.key === 'k' && s.state === 'signed') ? body : undefined;
    });
    expect(st.image.digest).toBe(first.digest);
    const recent = await signet.runtime.status.recent(50);
    expect(recent.filter((e) => e.state === 'signed').length).toBeGreaterThanOrEqual(12);
    // nothing failed: no CROSSSLOT (or any other) error reached a job or a status write
    expect(signet.logs.filter((l) => /CROSSSLOT/.test(JSON.stringify(l)))).toEqual([]);
    expect(signet.logs.filter((l) => l.msg === 'could not record status' || l.msg === 'sign failed')).toEqual([]);
  });

  it('the queue keys share one slot; status records spread over the masters', async () => {
    const c = new Cluster(cluster.config.nodes.map((a) => ({ host: '127.0.0.1', port: Number(a.split(':')[1]) })));
    try {
      await new Promise((r) => c.once('ready', r));
      expect(c.nodes('master').length).toBe(3);
      const keysPerNode = await Promise.all(c.nodes('master').map((n) => n.keys(`*${signet.prefix}*`)));
      const queueNodes = keysPerNode.filter((ks) => ks.some((k) => k.startsWith(`{${signet.prefix}}:sign:`)));
      expect(queueNodes.length).toBe(1);
      const statusNodes = keysPerNode.filter((ks) => ks.some((k) => k.startsWith(`${signet.prefix}:status:`) && !k.endsWith(':recent')));
      expect(statusNodes.length).toBeGreaterThan(1);
    } finally {
      c.disconnect();
    }
  });

  it('a single-node URL that points at a Cluster node is refused at startup (REDIS_MISCONFIGURED)', async () => {
    const loaded = parseConfigText(`redis: { url: "redis://${cluster.nodes[0]!.address}" }\n${yaml}`, 'cluster-as-url.yaml');
    await expect(createRuntime({ ...loaded, baseDir: tmp.dir })).rejects.toMatchObject({
      code: 'REDIS_MISCONFIGURED',
      message: expect.stringContaining('redis.cluster'),
    });
  });
});
