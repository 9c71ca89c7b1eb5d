/**
 * `signet policy export --for containers` in front of containers/image itself (skopeo 1.18 in the
 * trixie chroot, .ci/install-test-kit.sh; as root), with Rekor (the stand-in, its own log key):
 * a bare key's requirement checks the log (keyData + rekorPublicKeyData); a key with a
 * certificate chain, whose Rekor entries name the certificate, gets keyData alone, and the
 * requirement containers/image would apply with the log (keyData + rekorPublicKeyData) refuses
 * its signature: why the export leaves the log out for such keys. Another key is refused.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { tempDir } from '../helpers/cosign.js';
import { pushImage } from '../helpers/images.js';
import { EKU, issueCertificate, makeIntermediateCa, makeRootCa } from '../helpers/pki.js';
import { runProcess } from '../helpers/proc.js';
import { startRekor, type RekorStandIn } from '../helpers/rekor.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, type RunningSignet } from '../helpers/signet.js';

const ROOTFS = process.env.SIGNET_TEST_SKOPEO_ROOTFS || '/var/tmp/skopeo-trixie';
let registry: RunningRegistry;
let rekor: RekorStandIn;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let work: string;
let policy: any;
let notes: string[];
const pub: Record<string, string> = {};
const file = (...p: string[]) => path.join(tmp.dir, ...p);
const b64 = (s: string) => Buffer.from(s).toString('base64');

function writeKey(name: string): import('node:crypto').KeyObject {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file(`${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  pub[name] = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return publicKey;
}

beforeAll(async () => {
  if (!existsSync(path.join(ROOTFS, 'usr/bin/skopeo'))) {
    throw new Error(`no containers/image verifier at ${ROOTFS}: run "bash .ci/install-test-kit.sh" (as root) to build the trixie chroot with skopeo`);
  }
  if (process.getuid?.() !== 0) throw new Error('the containers/image check runs skopeo in a chroot and needs root');
  tmp = tempDir();
  writeKey('p256');
  writeKey('other');
  const certPub = writeKey('certkey');
  const root = makeRootCa();
  const inter = makeIntermediateCa(root);
  writeFileSync(file('certkey.crt'), issueCertificate({ cn: 'signet signer', publicKey: certPub, issuer: inter, eku: [EKU.codeSigning], email: 'signet@example.com' }));
  writeFileSync(file('chain.pem'), inter.pem + root.pem);
  rekor = await startRekor();
  registry = await startRegistry();
  const H = registry.host;
  const rekorBlock = `{ url: "${rekor.url}", publicKey: ${JSON.stringify(rekor.publicKeyPem)} }`;
  const yaml = `
registries:
  - { host: "${H}", insecure: true }
keys:
  - { name: p256, provider: file, path: p256.pem }
  - { name: other, provider: file, path: other.pem }
  - { name: certkey, provider: file, path: certkey.pem, certificate: certkey.crt, chain: chain.pem }
rules:
  - { match: "${H}/tlog/**", keys: [p256], rekor: ${rekorBlock} }
  - { match: "${H}/pki/**", keys: [certkey], rekor: ${rekorBlock} }
`;
  writeFileSync(file('signet.yaml'), yaml);
  signet = await startSignet(yaml, { baseDir: tmp.dir });
  const out = file('containers');
  const err: string[] = [];
  const code = await main(['--config', file('signet.yaml'), 'policy', 'export', '--for', 'containers', '--out', out], () => {}, (l) => err.push(l));
  if (code !== 0) throw new Error(`policy export failed: ${err.join('\n')}`);
  notes = err;
  work = mkdtempSync(path.join(ROOTFS, 'tmp', 'signet-containers-'));
  mkdirSync(path.join(work, 'registries.d'));
  writeFileSync(path.join(work, 'registries.d', 'signet.yaml'), readFileSync(path.join(out, 'registries.d', 'signet.yaml')));
  policy = JSON.parse(readFileSync(path.join(out, 'policy.json'), 'utf8'));
}, 120_000);

afterAll(async () => {
  if (work) rmSync(work, { recursive: true, force: true });
  await signet?.stop();
  await registry?.stop();
  await rekor?.stop();
  tmp?.remove();
});

async function signed(repository: string): Promise<string> {
  const img = await pushImage(registry, repository, 'v1');
  const report = await signet.runtime.pipeline.sign({ host: registry.host, repository, tag: 'v1' });
  if (report.status !== 'signed') throw new Error(`not signed: ${JSON.stringify(report)}`);
  return `${registry.host}/${repository}@${img.digest}`;
}

/** skopeo copy under `doc` as policy.json; the exit code and stderr. */
async function copy(doc: unknown, ref: string, name: string) {
  writeFileSync(path.join(work, `${name}.json`), JSON.stringify(doc));
  const inside = `/tmp/${path.basename(work)}`;
  return runProcess(
    'chroot',
    [ROOTFS, 'skopeo', '--policy', `${inside}/${name}.json`, '--registries.d', `${inside}/registries.d`, 'copy', '--src-tls-verify=false', `docker://${ref}`, `dir:${inside}/${name}-out`],
    { timeoutMs: 60_000 },
  );
}

describe('signet policy export --for containers, checked by containers/image (skopeo 1.18)', () => {
  it('a bare key with Rekor: keyData + rekorPublicKeyData accepts (the log checked); another log key is refused', async () => {
    const ref = await signed('tlog/app');
    const scope = policy.transports.docker[`${registry.host}/tlog`];
    expect(scope).toEqual([{ type: 'sigstoreSigned', keyData: b64(pub['p256']!), rekorPublicKeyData: b64(rekor.publicKeyPem), signedIdentity: { type: 'matchRepoDigestOrExact' } }]);
    const ok = await copy(policy, ref, 'tlog-ok');
    expect(ok.code, ok.stderr).toBe(0);
    const otherLog = structuredClone(policy);
    otherLog.transports.docker[`${registry.host}/tlog`][0].rekorPublicKeyData = b64(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const refused = await copy(otherLog, ref, 'tlog-other-log');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/cryptographic signature verification of Rekor SET failed/);
  });

  it('a key with a certificate and Rekor: keyData alone accepts (noted); keyData + rekorPublicKeyData refuses the entry naming the certificate; another key is refused', async () => {
    const ref = await signed('pki/app');
    const scope = policy.transports.docker[`${registry.host}/pki`];
    expect(scope).toEqual([{ type: 'sigstoreSigned', keyData: b64(pub['certkey']!), signedIdentity: { type: 'matchRepoDigestOrExact' } }]);
    expect(notes.join('\n')).toMatch(/key certkey has a certificate, so its Rekor entries name the certificate/);
    const ok = await copy(policy, ref, 'pki-ok');
    console.log(`skopeo 1.18 copy (BYO-PKI + Rekor, keyData): exit ${ok.code}\n${ok.stderr}`);
    expect(ok.code, ok.stderr).toBe(0);
    const withLog = structuredClone(policy);
    withLog.transports.docker[`${registry.host}/pki`][0].rekorPublicKeyData = b64(rekor.publicKeyPem);
    const refused = await copy(withLog, ref, 'pki-with-log');
    console.log(`skopeo 1.18 copy (BYO-PKI + Rekor, keyData + rekorPublicKeyData): exit ${refused.code}\n${refused.stderr}`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/No public key verified against the RekorSET: publicKey in Rekor SET does not match/);
    const otherKey = structuredClone(policy);
    otherKey.transports.docker[`${registry.host}/pki`][0].keyData = b64(pub['other']!);
    const wrong = await copy(otherKey, ref, 'pki-other-key');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/signature verification failed/);
  });
});
