/**
 * Two signers (separate runtimes, like two worker processes with different configs) sign the
 * same digests at the same moment. The per-digest Redis lock plus read-back must keep every
 * signature in the .sig manifest: none lost, none duplicated.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../helpers/signet.js';

let registry: RunningRegistry;
let tmp: { dir: string; remove: () => void };
const runtimes: Runtime[] = [];
const prefix = uniquePrefix();

async function runtimeWith(key: string): Promise<Runtime> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, `${key}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(path.join(tmp.dir, `${key}.pub`), publicKey.export({ type: 'spki', format: 'pem' }));
  const loaded = parseConfigText(
    `redis: { url: "${REDIS_URL}", prefix: ${prefix} }
registries: [{ host: "${registry.host}", insecure: true }]
keys: [{ name: ${key}, provider: file, path: ${key}.pem }]
rules: [{ match: "${registry.host}/**", keys: [${key}], identity: repository, formats: [legacy] }]
`,
    'c.yaml',
  );
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const rt = await createRuntime({ ...loaded, baseDir: tmp.dir }, { logger: createLogger({ destination: sink }), metrics: new Metrics() });
  runtimes.push(rt);
  return rt;
}

beforeAll(async () => {
  tmp = tempDir();
  registry = await startRegistry();
});
afterAll(async () => {
  for (const rt of runtimes) await rt.close();
  await deletePrefix(prefix);
  await registry?.stop();
  tmp?.remove();
});

describe('concurrent signers on one digest', () => {
  it('two signers, ten digests, all at once: every .sig holds exactly both signatures', async () => {
    const [a, b] = [await runtimeWith('alpha'), await runtimeWith('beta')];
    const images = await Promise.all(Array.from({ length: 10 }, (_, i) => pushImage(registry, `race/app${i}`, 'v1')));
    const target = (i: number) => ({ host: registry.host, repository: `race/app${i}`, tag: 'v1' });
    // each signer also signs each digest twice: the second must find its signature present
    const reports = await Promise.all(
      images.flatMap((_, i) => [a.pipeline.sign(target(i)), b.pipeline.sign(target(i)), a.pipeline.sign(target(i)), b.pipeline.sign(target(i))]),
    );
    const outcomes = reports.flatMap((r) => (r.status === 'signed' ? r.signatures.map((s) => `${s.key}:${s.outcome}`) : [r.status]));
    expect(outcomes.filter((o) => o === 'alpha:signed')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'beta:signed')).toHaveLength(10);
    expect(outcomes.filter((o) => o.endsWith(':present'))).toHaveLength(20);
    for (const [i, img] of images.entries()) {
      const m = await getManifest(registry, `race/app${i}`, sigTag(img.digest));
      expect(JSON.parse(m.body.toString()).layers).toHaveLength(2);
    }
    for (const key of ['alpha', 'beta']) {
      const v = await cosignVerify(`${registry.host}/race/app7:v1`, path.join(tmp.dir, `${key}.pub`));
      expect(v.ok, v.stderr).toBe(true);
      expect(v.payloads).toHaveLength(1);
    }
  });
});
