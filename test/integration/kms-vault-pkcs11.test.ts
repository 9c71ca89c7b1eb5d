/**
 * End to end for the `vault` and `pkcs11` key providers: a real docker-registry notifies signet
 * (receiver + worker + Redis), signet signs with a Vault transit stand-in (real keys, real HTTP)
 * and with a real SoftHSM2 token, and the real `cosign verify --key` accepts the signatures with
 * the public keys the providers export, and rejects them with another key.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { runProcess } from '../helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startVault, type RunningVault } from '../helpers/standins/vault.js';
import { pendingJobs, startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'test-hook-secret-vault-pkcs11';
const VAULT_TOKEN = 'hvs.e2e-token-abcdef';
const ROLE_ID = 'e2e-role';
const SECRET_ID = 'e2e-secret-id-123';
const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '1234';

let tmp: { dir: string; remove: () => void };
let registry: RunningRegistry;
let vault: RunningVault;
let signet: RunningSignet;
let savedConf: string | undefined;
const pub: Record<string, string> = {};

async function run(bin: string, args: string[]): Promise<void> {
  const r = await runProcess(bin, args, { env: { ...process.env }, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${r.stderr}`);
}

beforeAll(async () => {
  tmp = tempDir('signet-e2e-vault-pkcs11-');
  // SoftHSM2 token in a private tokendir (SOFTHSM2_CONF is read by the module in this process)
  mkdirSync(path.join(tmp.dir, 'tokens'));
  const conf = path.join(tmp.dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${path.join(tmp.dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  savedConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = conf;
  await run('softhsm2-util', ['--init-token', '--free', '--label', 'signet', '--so-pin', '5678', '--pin', PIN]);
  const tool = ['--module', MODULE, '--token-label', 'signet', '--login', '--pin', PIN, '--keypairgen'];
  await run('pkcs11-tool', [...tool, '--key-type', 'EC:prime256v1', '--label', 'k', '--id', '01']);
  await run('pkcs11-tool', [...tool, '--key-type', 'rsa:2048', '--label', 'r', '--id', '02']);

  vault = await startVault({ tokens: [VAULT_TOKEN], approle: { roleId: ROLE_ID, secretId: SECRET_ID } });
  vault.addKey('signer-rsa', 'rsa-2048');
  vault.addKey('signer-ec', 'ecdsa-p256');

  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  pub['other'] = path.join(tmp.dir, 'other.pub');
  writeFileSync(pub['other'], other.export({ type: 'spki', format: 'pem' }));

  const port = await freePort();
  registry = await startRegistry({
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
  });
  const H = registry.host;
  const yaml = `
registries:
  - host: ${H}
    insecure: true
integrations:
  - name: local
    kind: distribution
    secret: "${SECRET}"
keys:
  - { name: vault-rsa, ref: "hashivault://signer-rsa", address: "\${TEST_VAULT_ADDR}", token: "\${TEST_VAULT_TOKEN}" }
  - { name: vault-ec, provider: vault, key: signer-ec, address: "\${TEST_VAULT_ADDR}", roleId: "\${TEST_VAULT_ROLE_ID}", secretId: "\${TEST_VAULT_SECRET_ID}" }
  - { name: hsm-ec, ref: "pkcs11:token=signet;object=k?module-path=${MODULE}", pin: "\${TEST_HSM_PIN}" }
  - { name: hsm-rsa, provider: pkcs11, module: ${MODULE}, token: signet, id: "02", pin: "\${TEST_HSM_PIN}" }
rules:
  - { match: "${H}/vault/**", keys: [vault-rsa, vault-ec] }
  - { match: "${H}/hsm/**", keys: [hsm-ec, hsm-rsa] }
`;
  signet = await startSignet(yaml, {
    baseDir: tmp.dir,
    port,
    env: { TEST_VAULT_ADDR: vault.url, TEST_VAULT_TOKEN: VAULT_TOKEN, TEST_VAULT_ROLE_ID: ROLE_ID, TEST_VAULT_SECRET_ID: SECRET_ID, TEST_HSM_PIN: PIN },
  });
  // the public keys, as the providers export them
  for (const name of ['vault-rsa', 'vault-ec', 'hsm-ec', 'hsm-rsa']) {
    pub[name] = path.join(tmp.dir, `${name}.pub`);
    writeFileSync(pub[name], await signet.runtime.keys.get(name)!.publicKeyPem);
  }
}, 120_000);

afterAll(async () => {
  await signet?.stop();
  for (const k of signet?.runtime.keys.values() ?? []) await (k as { close?: () => Promise<void> }).close?.();
  await registry?.stop();
  await vault?.close();
  if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
  else process.env.SOFTHSM2_CONF = savedConf;
  tmp?.remove();
});

async function sigLayers(repo: string, digest: string): Promise<unknown[]> {
  const m = await getManifest(registry, repo, sigTag(digest));
  if (m.status === 404) return [];
  return JSON.parse(m.body.toString()).layers;
}

async function signedWith(repo: string, digest: string, layers: number): Promise<void> {
  await waitFor(`${layers} signatures on ${repo}`, async () => (await sigLayers(repo, digest)).length >= layers || undefined, 30_000);
  await waitFor('queue drained', async () => (await pendingJobs(signet)) === 0);
}

describe('vault and pkcs11 keys through the whole pipeline, verified by the real cosign', () => {
  it('Vault transit (RSA-2048 by hashivault:// ref with a token, P-256 with AppRole): cosign accepts both, rejects another key', async () => {
    const signsBefore = vault.count('sign');
    const img = await pushImage(registry, 'vault/app', 'v1');
    await signedWith('vault/app', img.digest, 2);
    expect(vault.count('sign') - signsBefore).toBe(4); // one backend call per signature: 2 keys x (.sig, bundle)
    const ref = `${registry.host}/vault/app:v1`;
    for (const key of ['vault-rsa', 'vault-ec']) {
      const v = await cosignVerify(ref, pub[key]!);
      expect(v.ok, `${key}: ${v.stderr}`).toBe(true);
      expect(v.payloads[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    }
    expect((await cosignVerify(ref, pub['other']!)).ok).toBe(false);
    const signCalls = vault.calls.filter((c) => c.kind === 'sign').slice(-2);
    expect(signCalls.map((c) => c.body.prehashed)).toEqual([true, true]);
  });

  it('PKCS#11 on SoftHSM2 (P-256 by pkcs11: URI, RSA-2048 by id): cosign accepts both, rejects another key', async () => {
    const img = await pushImage(registry, 'hsm/app', 'v1');
    await signedWith('hsm/app', img.digest, 2);
    const ref = `${registry.host}/hsm/app@${img.digest}`;
    for (const key of ['hsm-ec', 'hsm-rsa']) {
      const v = await cosignVerify(ref, pub[key]!);
      expect(v.ok, `${key}: ${v.stderr}`).toBe(true);
      expect(v.payloads[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    }
    expect((await cosignVerify(ref, pub['other']!)).ok).toBe(false);
    expect((await cosignVerify(ref, pub['vault-ec']!)).ok).toBe(false);
  });
});
