/**
 * `signet policy export --for containers` in front of containers/image itself: skopeo 1.18
 * (containers/image 5.34.2) and skopeo 1.22 (5.39.1) in the trixie chroot of
 * .ci/install-test-kit.sh (as root), with Rekor (the stand-in, its own log key).
 * A bare key's requirement checks the log (keyData + rekorPublicKeyData) on both. A key with a
 * certificate chain gets `pki` in policy.json (containers/image 5.34.1+: Debian's 1.18 is built
 * with 5.34.2, which has the backport): both accept its signature by the CA and the subject email,
 * and refuse it under another CA, another email, or with a Rekor key next to pki. For older
 * containers/image (which refuses `pki` as an unknown key) the export writes policy-keydata.json:
 * keyData alone accepts on both (the key's Rekor entries name the certificate, so keyData +
 * rekorPublicKeyData refuses them, as both versions show); another key is refused.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportPolicy, signedImage, startExportStack, type ExportStack } from '../helpers/policy-export.js';
import { makeIntermediateCa, makeRootCa } from '../helpers/pki.js';
import { runProcess } from '../helpers/proc.js';
import type { RekorStandIn } from '../helpers/rekor.js';
import type { RunningRegistry } from '../helpers/registry.js';

const ROOTFS = process.env.SIGNET_TEST_SKOPEO_ROOTFS || '/var/tmp/skopeo-trixie';
/** containers/image 5.34 (trixie) and 5.39 (sid, the kit's /usr/bin/skopeo-1.22). */
const SKOPEO_OLD = 'skopeo';
const SKOPEO_NEW = 'skopeo-1.22';
const BOTH = [SKOPEO_OLD, SKOPEO_NEW] as const;
/** Test titles: which containers/image each binary is. */
const EACH = [
  { bin: SKOPEO_OLD, v: 'skopeo 1.18 (containers/image 5.34.2)' },
  { bin: SKOPEO_NEW, v: 'skopeo 1.22 (containers/image 5.39.1)' },
];
let stack: ExportStack;
let registry: RunningRegistry;
let rekor: RekorStandIn;
let work: string;
let policy: any;
let keydataPolicy: any;
let notes: string[];
let pub: Record<string, string>;
const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeAll(async () => {
  for (const bin of [SKOPEO_OLD, SKOPEO_NEW]) {
    if (!existsSync(path.join(ROOTFS, 'usr/bin', bin))) {
      throw new Error(`no ${bin} at ${ROOTFS}: run "bash .ci/install-test-kit.sh" (as root) to build the trixie chroot with skopeo 1.18 and 1.22`);
    }
  }
  if (process.getuid?.() !== 0) throw new Error('the containers/image check runs skopeo in a chroot and needs root');
  stack = await startExportStack({
    keys: ['p256', 'other', 'certkey'],
    certKey: 'certkey',
    rules: (H, rekorBlock) => [
      `{ match: "${H}/tlog/**", keys: [p256], rekor: ${rekorBlock} }`,
      `{ match: "${H}/pki/**", keys: [certkey], rekor: ${rekorBlock} }`,
    ],
  });
  ({ registry, rekor, pub } = stack);
  const { out, err } = await exportPolicy(stack, 'containers', 'containers');
  notes = err;
  work = mkdtempSync(path.join(ROOTFS, 'tmp', 'signet-containers-'));
  mkdirSync(path.join(work, 'registries.d'));
  writeFileSync(path.join(work, 'registries.d', 'signet.yaml'), readFileSync(path.join(out, 'registries.d', 'signet.yaml')));
  policy = JSON.parse(readFileSync(path.join(out, 'policy.json'), 'utf8'));
  keydataPolicy = JSON.parse(readFileSync(path.join(out, 'policy-keydata.json'), 'utf8'));
}, 120_000);

afterAll(async () => {
  if (work) rmSync(work, { recursive: true, force: true });
  await stack?.stop();
});

const signed = (repository: string): Promise<string> => signedImage(stack, repository);

/** `bin` copy under `doc` as policy.json; the exit code and stderr. */
async function copy(bin: string, doc: unknown, ref: string, name: string) {
  writeFileSync(path.join(work, `${name}.json`), JSON.stringify(doc));
  const inside = `/tmp/${path.basename(work)}`;
  return runProcess(
    'chroot',
    [
      ROOTFS,
      bin,
      '--policy',
      `${inside}/${name}.json`,
      '--registries.d',
      `${inside}/registries.d`,
      'copy',
      '--src-tls-verify=false',
      `docker://${ref}`,
      `dir:${inside}/${name}-out`,
    ],
    { timeoutMs: 60_000 },
  );
}

/** A copy of `doc` with the requirement of `scope` changed by `edit`. */
function edited(doc: any, scope: string, edit: (req: any) => void): any {
  const copyOf = structuredClone(doc);
  edit(copyOf.transports.docker[scope][0]);
  return copyOf;
}

describe('signet policy export --for containers, checked by containers/image (skopeo 1.18 and 1.22)', () => {
  it.each(EACH)('$v: a bare key with Rekor: keyData + rekorPublicKeyData accepts (the log checked); another log key is refused', async ({ bin }) => {
    const ref = await signed(`tlog/${bin}`);
    const scope = `${registry.host}/tlog`;
    const want = [
      { type: 'sigstoreSigned', keyData: b64(pub['p256']!), rekorPublicKeyData: b64(rekor.publicKeyPem), signedIdentity: { type: 'matchRepoDigestOrExact' } },
    ];
    expect(policy.transports.docker[scope]).toEqual(want);
    expect(keydataPolicy.transports.docker[scope]).toEqual(want);
    const ok = await copy(bin, policy, ref, `${bin}-tlog-ok`);
    expect(ok.code, ok.stderr).toBe(0);
    const otherLog = edited(
      policy,
      scope,
      (r) => (r.rekorPublicKeyData = b64(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString())),
    );
    const refused = await copy(bin, otherLog, ref, `${bin}-tlog-other-log`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/cryptographic signature verification of Rekor SET failed/);
  });

  it.each(EACH)(
    '$v: a key with a certificate chain: pki (CA + subject email) accepts; another CA, another email, or a Rekor key next to pki is refused',
    async ({ bin }) => {
      const ref = await signed(`pki/${bin}-pki`);
      const scope = `${registry.host}/pki`;
      const [req] = policy.transports.docker[scope];
      const [intermediate, root] = readFileSync(stack.file('chain.pem'), 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;
      expect(req).toEqual({
        type: 'sigstoreSigned',
        pki: { caRootsData: b64(root!), caIntermediatesData: b64(intermediate!), subjectEmail: 'signet@example.com' },
        signedIdentity: { type: 'matchRepoDigestOrExact' },
      });
      expect(notes.join('\n')).toMatch(/key certkey has a certificate chain: policy.json trusts its CA \(pki/);
      expect(notes.join('\n')).toMatch(/key certkey: the pki trust takes no Rekor key/);
      const ok = await copy(bin, policy, ref, `${bin}-pki-ok`);
      console.log(`${bin} copy (BYO-PKI, pki): exit ${ok.code}\n${ok.stderr}`);
      expect(ok.code, ok.stderr).toBe(0);

      const otherRoot = makeRootCa('another root');
      const otherInter = makeIntermediateCa(otherRoot, 'another intermediate');
      const otherCa = edited(policy, scope, (r) => (r.pki = { ...r.pki, caRootsData: b64(otherRoot.pem), caIntermediatesData: b64(otherInter.pem) }));
      const wrongCa = await copy(bin, otherCa, ref, `${bin}-pki-other-ca`);
      expect(wrongCa.code).not.toBe(0);
      expect(wrongCa.stderr).toMatch(/veryfing leaf certificate failed: x509: certificate signed by unknown authority/);

      const otherEmail = edited(policy, scope, (r) => (r.pki = { ...r.pki, subjectEmail: 'someone-else@example.com' }));
      const wrongEmail = await copy(bin, otherEmail, ref, `${bin}-pki-other-email`);
      expect(wrongEmail.code).not.toBe(0);
      expect(wrongEmail.stderr).toMatch(/Required email .*someone-else@example\.com.* not found \(got .*signet@example\.com/);

      // why the export writes no Rekor key for pki: containers/image refuses the combination
      const withLog = edited(policy, scope, (r) => (r.rekorPublicKeyData = b64(rekor.publicKeyPem)));
      const refused = await copy(bin, withLog, ref, `${bin}-pki-with-log`);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/not supported for pki/);
    },
  );

  it('policy-keydata.json (for containers/image before 5.34.1, which refuses pki) trusts the key: accepted on 1.18 and 1.22', async () => {
    const ref = await signed('pki/app-keydata');
    const scope = `${registry.host}/pki`;
    expect(notes.join('\n')).toMatch(/containers\/image before 5\.34\.1 refuses, policy and all .* install policy-keydata.json/);
    expect(keydataPolicy.transports.docker[scope]).toEqual([
      { type: 'sigstoreSigned', keyData: b64(pub['certkey']!), signedIdentity: { type: 'matchRepoDigestOrExact' } },
    ]);
    for (const bin of BOTH) {
      const ok = await copy(bin, keydataPolicy, ref, `${bin}-pki-keydata`);
      expect(ok.code, `${bin}: ${ok.stderr}`).toBe(0);
    }
  });

  it.each(EACH)(
    '$v: policy-keydata.json for a key with a certificate: keyData + rekorPublicKeyData refuses the entry naming the certificate; another key is refused',
    async ({ bin }) => {
      const ref = await signed(`pki/${bin}`);
      const scope = `${registry.host}/pki`;
      const withLog = edited(keydataPolicy, scope, (r) => (r.rekorPublicKeyData = b64(rekor.publicKeyPem)));
      const refused = await copy(bin, withLog, ref, `${bin}-pki-keydata-with-log`);
      console.log(`${bin} copy (BYO-PKI + Rekor, keyData + rekorPublicKeyData): exit ${refused.code}\n${refused.stderr}`);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/No public key verified against the RekorSET: publicKey in Rekor SET does not match/);
      const otherKey = edited(keydataPolicy, scope, (r) => (r.keyData = b64(pub['other']!)));
      const wrong = await copy(bin, otherKey, ref, `${bin}-pki-other-key`);
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/signature verification failed/);
    },
  );
});
