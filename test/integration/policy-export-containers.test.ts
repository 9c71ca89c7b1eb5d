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
import { exportPolicy, signedImage, startExportStack, type ExportStack } from '../helpers/policy-export.js';
import { runProcess } from '../helpers/proc.js';
import type { RekorStandIn } from '../helpers/rekor.js';
import type { RunningRegistry } from '../helpers/registry.js';

const ROOTFS = process.env.SIGNET_TEST_SKOPEO_ROOTFS || '/var/tmp/skopeo-trixie';
let stack: ExportStack;
let registry: RunningRegistry;
let rekor: RekorStandIn;
let work: string;
let policy: any;
let notes: string[];
let pub: Record<string, string>;
const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeAll(async () => {
  if (!existsSync(path.join(ROOTFS, 'usr/bin/skopeo'))) {
    throw new Error(`no containers/image verifier at ${ROOTFS}: run "bash .ci/install-test-kit.sh" (as root) to build the trixie chroot with skopeo`);
  }
  if (process.getuid?.() !== 0) throw new Error('the containers/image check runs skopeo in a chroot and needs root');
  stack = await startExportStack({
    keys: ['p256', 'other', 'certkey'],
    certKey: 'certkey',
    rules: (H, rekorBlock) => [`{ match: "${H}/tlog/**", keys: [p256], rekor: ${rekorBlock} }`, `{ match: "${H}/pki/**", keys: [certkey], rekor: ${rekorBlock} }`],
  });
  ({ registry, rekor, pub } = stack);
  const { out, err } = await exportPolicy(stack, 'containers', 'containers');
  notes = err;
  work = mkdtempSync(path.join(ROOTFS, 'tmp', 'signet-containers-'));
  mkdirSync(path.join(work, 'registries.d'));
  writeFileSync(path.join(work, 'registries.d', 'signet.yaml'), readFileSync(path.join(out, 'registries.d', 'signet.yaml')));
  policy = JSON.parse(readFileSync(path.join(out, 'policy.json'), 'utf8'));
}, 120_000);

afterAll(async () => {
  if (work) rmSync(work, { recursive: true, force: true });
  await stack?.stop();
});

const signed = (repository: string): Promise<string> => signedImage(stack, repository);

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
