/**
 * `signet policy export --for policy-controller` with a private Rekor (the stand-in, its own ECDSA
 * log key): signet (in-process, real Redis) signs an image in a real docker-registry with a
 * bring-your-own-PKI key and logs it; the exported TrustRoot and ClusterImagePolicy are read back.
 * policy-controller itself is not run here (no cluster): its key authority hands the TrustRoot's
 * tLog key to cosign's VerifyImageSignatures (policy-controller f925c0c1 vendors cosign v3.0.5),
 * so the real cosign 3.1 is run the same way (`--key`
 * from the policy, `--rekor-url` = tLogs[0].baseURL, the log key = the TrustRoot's publicKey) and
 * must accept; a TrustRoot naming another log key must be refused.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COSIGN3_BIN, cosignEnv, tempDir } from '../helpers/cosign.js';
import { pushImage } from '../helpers/images.js';
import { exportPolicy, startExportStack, type ExportStack } from '../helpers/policy-export.js';
import { runProcess, type RunResult } from '../helpers/proc.js';
import type { RekorStandIn } from '../helpers/rekor.js';
import type { RunningRegistry } from '../helpers/registry.js';
import type { RunningSignet } from '../helpers/signet.js';

let stack: ExportStack;
let registry: RunningRegistry;
let rekor: RekorStandIn;
let signet: RunningSignet;
let out: string;
let exportErr: string[];
let file: (...p: string[]) => string;

beforeAll(async () => {
  stack = await startExportStack({
    keys: ['certkey', 'plain'],
    certKey: 'certkey',
    // legacy only: policy-controller's key authorities read the .sig (bundles only for keyless
    // ones), while the cosign 3.1 CLI standing in for it here would read a bundle first
    rules: (H, rekorBlock) => [
      `{ match: "${H}/pki/**", keys: [certkey], formats: [legacy], rekor: ${rekorBlock} }`,
      `{ match: "${H}/plain/**", keys: [plain], formats: [legacy], rekor: ${rekorBlock} }`,
    ],
  });
  ({ registry, rekor, signet, file } = stack);
  ({ out, err: exportErr } = await exportPolicy(stack, 'policy-controller', 'pc-export'));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const readYaml = (name: string) => parse(readFileSync(path.join(out, name), 'utf8'));

/** cosign 3.1 `verify --key` with the log checked, the log key given as SIGSTORE_REKOR_PUBLIC_KEY (the image has no bundle). */
async function verifyWithLog(ref: string, keyPem: string, rekorUrl: string, rekorKeyPem: string): Promise<RunResult> {
  const sandbox = tempDir('signet-cosign-');
  try {
    mkdirSync(path.join(sandbox.dir, 'home', '.docker'), { recursive: true });
    mkdirSync(path.join(sandbox.dir, 'tuf'), { recursive: true });
    writeFileSync(path.join(sandbox.dir, 'key.pub'), keyPem);
    writeFileSync(path.join(sandbox.dir, 'rekor.pub'), rekorKeyPem);
    const env = cosignEnv(sandbox.dir, { SIGSTORE_REKOR_PUBLIC_KEY: path.join(sandbox.dir, 'rekor.pub') });
    return await runProcess(COSIGN3_BIN(), ['verify', '--key', 'key.pub', '--rekor-url', rekorUrl, '--allow-http-registry', ref], {
      env,
      cwd: sandbox.dir,
      timeoutMs: 90_000,
    });
  } finally {
    sandbox.remove();
  }
}

describe('signet policy export --for policy-controller with a private Rekor', () => {
  it("writes one TrustRoot naming the log (base64 PEM, log ID in the comment) and both rules' policies reference it (one TrustRoot per log; the certificate key's CA makes it admissible for the plain key's rule too)", () => {
    const files = readdirSync(out).sort();
    const trFiles = files.filter((f) => f.startsWith('trustroot-'));
    expect(trFiles).toHaveLength(1);
    const text = readFileSync(path.join(out, trFiles[0]!), 'utf8');
    const tr = parse(text);
    expect(tr.kind).toBe('TrustRoot');
    expect(tr.spec.sigstoreKeys.tLogs).toEqual([
      { baseURL: rekor.url, hashAlgorithm: 'sha-256', publicKey: Buffer.from(rekor.publicKeyPem).toString('base64') },
    ]);
    expect(Buffer.from(tr.spec.sigstoreKeys.certificateAuthorities[0].certChain, 'base64').toString()).toBe(readFileSync(file('chain.pem'), 'utf8'));
    expect(text).toContain(`sha256 of the DER SPKI): ${rekor.logId}\n`);
    const pki = readYaml('clusterimagepolicy-signet-rule-0-certkey.yaml');
    expect(pki.spec.authorities[0].ctlog).toEqual({ url: rekor.url, trustRootRef: tr.metadata.name });
    const plain = readYaml('clusterimagepolicy-signet-rule-1-plain.yaml');
    expect(plain.spec.authorities[0].ctlog).toEqual({ url: rekor.url, trustRootRef: tr.metadata.name });
    expect(exportErr.join('\n')).not.toMatch(/no TrustRoot written/);
  });

  it("cosign 3.1 (what policy-controller vendors) with the policy's key and the TrustRoot's log accepts the signed image; a TrustRoot with another log key is refused", async () => {
    const repository = 'pki/app';
    const img = await pushImage(registry, repository, 'v1');
    const report = await signet.runtime.pipeline.sign({ host: registry.host, repository, tag: 'v1' });
    expect(report.status).toBe('signed');
    expect(rekor.size()).toBeGreaterThan(0);
    const ref = `${registry.host}/${repository}@${img.digest}`;
    const trName = readdirSync(out).find((f) => f.startsWith('trustroot-'))!;
    const tlog = readYaml(trName).spec.sigstoreKeys.tLogs[0];
    const keyPem = readYaml('clusterimagepolicy-signet-rule-0-certkey.yaml').spec.authorities[0].key.data;
    const ok = await verifyWithLog(ref, keyPem, tlog.baseURL, Buffer.from(tlog.publicKey, 'base64').toString());
    expect(ok.code, ok.stderr).toBe(0);
    const otherLog = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const refused = await verifyWithLog(ref, keyPem, tlog.baseURL, otherLog);
    expect(refused.code).not.toBe(0);
  }, 120_000);
});
