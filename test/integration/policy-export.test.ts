/**
 * The keys in what `signet policy export` writes verify the signatures signet wrote: signet
 * (in-process, real Redis) signs pushes to a real docker-registry with a two-key rule, the
 * exported Kyverno, policy-controller, OpenShift, containers and cosign-webhook files are read
 * back, and the real `cosign verify --key` accepts every key they name for that rule's images
 * (and refuses a key from another rule).
 *
 * When SIGNET_TEST_SKOPEO_ROOTFS names a Debian trixie chroot with skopeo (see
 * shared/research/test-kit.md; as root), the exported policy.json + registries.d are also put
 * in front of containers/image itself: `skopeo copy` must accept the signed image and refuse it
 * when the policy names another key. .ci/install-test-kit.sh builds that chroot.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag, type PushedImage } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { runProcess } from '../helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'policy-export-hook-secret-0123';
let registry: RunningRegistry;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let out: string;
const pem: Record<string, string> = {};
let prod: PushedImage;
let dev: PushedImage;

function writeKey(name: string, kind: 'rsa' | 'ec'): void {
  const { privateKey, publicKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, `${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  pem[name] = publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

async function sigLayers(repo: string, digest: string): Promise<number> {
  const m = await getManifest(registry, repo, sigTag(digest));
  return m.status === 404 ? 0 : JSON.parse(m.body.toString()).layers.length;
}

beforeAll(async () => {
  tmp = tempDir();
  writeKey('rsa', 'rsa');
  writeKey('p256', 'ec');
  writeKey('other', 'ec');
  const port = await freePort();
  registry = await startRegistry({ notifyUrl: `http://127.0.0.1:${port}/hooks/local`, notifyHeaders: { Authorization: [`Bearer ${SECRET}`] } });
  const H = registry.host;
  const yaml = `
registries:
  - { host: "${H}", insecure: true }
integrations:
  - { name: local, kind: distribution, secret: "${SECRET}" }
keys:
  - { name: rsa, provider: file, path: rsa.pem }
  - { name: p256, provider: file, path: p256.pem }
  - { name: other, provider: file, path: other.pem }
rules:
  - { match: "${H}/prod/**", keys: [rsa, p256] }
  - { match: "${H}/dev/**", keys: [other], identity: repository }
`;
  writeFileSync(path.join(tmp.dir, 'signet.yaml'), yaml);
  signet = await startSignet(yaml, { baseDir: tmp.dir, port });
  prod = await pushImage(registry, 'prod/api', 'v1');
  dev = await pushImage(registry, 'dev/api', 'v1');
  await waitFor('both signatures on prod/api', async () => (await sigLayers('prod/api', prod.digest)) >= 2);
  await waitFor('the signature on dev/api', async () => (await sigLayers('dev/api', dev.digest)) >= 1);

  out = path.join(tmp.dir, 'policies');
  const err: string[] = [];
  const code = await main(
    ['--config', path.join(tmp.dir, 'signet.yaml'), 'policy', 'export', '--for', 'all', '--out', out],
    () => {},
    (l) => err.push(l),
  );
  if (code !== 0) throw new Error(`policy export failed: ${err.join('\n')}`);
}, 90_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  tmp?.remove();
});

const readYaml = (...p: string[]) => parse(readFileSync(path.join(out, ...p), 'utf8'));
const fromBase64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** Writes each PEM to a file and runs the real cosign with it against `ref`. */
async function verifyAll(ref: string, pems: string[]): Promise<boolean[]> {
  const results: boolean[] = [];
  for (const [i, p] of pems.entries()) {
    const file = path.join(tmp.dir, `extracted-${Date.now()}-${i}.pub`);
    writeFileSync(file, p);
    const v = await cosignVerify(ref, file);
    results.push(v.ok);
  }
  return results;
}

/** The PEMs each verifier's files give for the prod rule (rules[0]) and the dev rule (rules[1]). */
function extracted(): Record<string, { prod: string[]; dev: string[] }> {
  const H = registry.host;
  const kyverno = readYaml('kyverno', 'clusterpolicy-signet-verify-images.yaml');
  const kyvernoKeys = (i: number) => kyverno.spec.rules[i].verifyImages[0].attestors.map((a: any) => a.entries[0].keys.publicKeys);
  const cip = (name: string) => readYaml('policy-controller', `clusterimagepolicy-${name}.yaml`).spec.authorities[0].key.data;
  const policy = JSON.parse(readFileSync(path.join(out, 'containers', 'policy.json'), 'utf8'));
  const scope = (s: string) => policy.transports.docker[s].map((r: any) => fromBase64(r.keyData));
  const os = (name: string) => fromBase64(readYaml('openshift', `clusterimagepolicy-${name}.yaml`).spec.policy.rootOfTrust.publicKey.keyData);
  const webhook = readYaml('cosign-webhook', 'cosignkey-default.yaml').spec.authorities.key as string[];
  return {
    kyverno: { prod: kyvernoKeys(0), dev: kyvernoKeys(1) },
    'policy-controller': { prod: [cip('signet-rule-0-rsa'), cip('signet-rule-0-p256')], dev: [cip('signet-rule-1-other')] },
    containers: { prod: scope(`${H}/prod`), dev: scope(`${H}/dev`) },
    openshift: { prod: [os('signet-rule-0-rsa'), os('signet-rule-0-p256')], dev: [os('signet-rule-1-other')] },
    'cosign-webhook': { prod: webhook.slice(0, 2), dev: webhook.slice(2) },
  };
}

describe('exported verifier policies verify what signet signed (real cosign)', () => {
  it('every verifier file names exactly the rule keys', () => {
    for (const [id, k] of Object.entries(extracted())) {
      expect(k.prod, id).toEqual([pem['rsa'], pem['p256']]);
      expect(k.dev, id).toEqual([pem['other']]);
    }
  });

  for (const id of ['kyverno', 'policy-controller', 'containers']) {
    it(`${id}: both keys of the two-key rule verify its image; the other rule's key does not`, async () => {
      const k = extracted()[id]!;
      const prodRef = `${registry.host}/prod/api@${prod.digest}`;
      expect(await verifyAll(prodRef, k.prod)).toEqual([true, true]);
      expect(await verifyAll(`${registry.host}/prod/api:v1`, k.dev)).toEqual([false]);
      expect(await verifyAll(`${registry.host}/dev/api:v1`, k.dev)).toEqual([true]);
    });
  }

  it('containers/image itself (skopeo in a trixie chroot) accepts the signed image and refuses another key', async () => {
    // .ci/install-test-kit.sh builds this chroot (Debian's own skopeo cannot verify sigstore signatures)
    const rootfs = process.env.SIGNET_TEST_SKOPEO_ROOTFS || '/var/tmp/skopeo-trixie';
    if (!existsSync(path.join(rootfs, 'usr/bin/skopeo'))) {
      throw new Error(`no containers/image verifier at ${rootfs}: run "bash .ci/install-test-kit.sh" (as root) to build the trixie chroot with skopeo`);
    }
    if (process.getuid?.() !== 0) throw new Error('the containers/image check runs skopeo in a chroot and needs root');
    const work = mkdtempSync(path.join(rootfs, 'tmp', 'signet-policy-'));
    const inside = `/tmp/${path.basename(work)}`;
    try {
      mkdirSync(path.join(work, 'registries.d'));
      writeFileSync(path.join(work, 'registries.d', 'signet.yaml'), readFileSync(path.join(out, 'containers', 'registries.d', 'signet.yaml')));
      const policy = readFileSync(path.join(out, 'containers', 'policy.json'), 'utf8');
      writeFileSync(path.join(work, 'policy.json'), policy);
      const copy = (policyFile: string, ref: string, dest: string) =>
        runProcess(
          'chroot',
          [
            rootfs,
            'skopeo',
            '--policy',
            `${inside}/${policyFile}`,
            '--registries.d',
            `${inside}/registries.d`,
            'copy',
            '--src-tls-verify=false',
            `docker://${ref}`,
            `dir:${inside}/${dest}`,
          ],
          {
            timeoutMs: 60_000,
          },
        );
      for (const [i, ref] of [`${registry.host}/prod/api:v1`, `${registry.host}/prod/api@${prod.digest}`, `${registry.host}/dev/api:v1`].entries()) {
        const ok = await copy('policy.json', ref, `out-${i}`);
        expect(ok.code, `${ref}: ${ok.stderr}`).toBe(0);
      }
      // the same policy with the dev rule's key in the prod scope: refused
      const wrong = JSON.parse(policy);
      wrong.transports.docker[`${registry.host}/prod`][1].keyData = Buffer.from(pem['other']!).toString('base64');
      writeFileSync(path.join(work, 'wrong.json'), JSON.stringify(wrong));
      const refused = await copy('wrong.json', `${registry.host}/prod/api:v1`, 'out-wrong');
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/None of the signatures were accepted/);
      expect(readdirSync(work)).toContain('out-0');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
