/**
 * `signet policy export --for cosign` against the real cosign: signet (in-process, real Redis)
 * signs images in a real docker-registry, with Rekor (the stand-in, its own ECDSA log key) and
 * without; the export's README commands are then run as written, in the export directory, by
 * cosign 3.1 (`--trusted-root trusted_root.json`, the log checked) and cosign 2.5
 * (`SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub`). Negative controls: a trusted root naming another log
 * key, and another rule's key, are refused. A key with a certificate chain and Rekor on a legacy
 * rule: the Rekor entry names the certificate, and both generations check it through the
 * certificate (another CA, log or identity refused). The exported trusted_root.json is compared with what
 * `cosign trusted-root create` (3.1) writes for the same log key and CA chain.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COSIGN3_BIN, cosignEnv, tempDir } from '../helpers/cosign.js';
import { makeIntermediateCa, makeRootCa } from '../helpers/pki.js';
import { exportPolicy, signedImage, startExportStack, type ExportStack } from '../helpers/policy-export.js';
import { runProcess, type RunResult } from '../helpers/proc.js';
import { startRekor, type RekorStandIn } from '../helpers/rekor.js';

let stack: ExportStack;
let rekor: RekorStandIn;
let tmp: { dir: string; remove: () => void };
let out: string;
let exportErr: string[];
/** A directory whose `cosign` is cosign 3.1 (put first on PATH). */
let cosign3Dir: string;
/** A CA chain that did not issue certkey's certificate. */
let strangerChain: string[];
const file = (...p: string[]) => path.join(tmp.dir, ...p);

beforeAll(async () => {
  stack = await startExportStack({
    keys: ['p256', 'other', 'certkey'],
    certKey: 'certkey',
    rules: (H, rekorBlock) => [
      `{ match: "${H}/tlog/**", keys: [p256], formats: [legacy], rekor: ${rekorBlock} }`,
      `{ match: "${H}/plain/**", keys: [other] }`,
      `{ match: "${H}/both/**", keys: [p256], formats: [legacy, bundle], rekor: ${rekorBlock} }`,
      `{ match: "${H}/pki/**", keys: [certkey], formats: [legacy], rekor: ${rekorBlock} }`,
      `{ match: "${H}/bundle/**", keys: [other], formats: [bundle] }`,
      `{ match: "${H}/bundle-tlog/**", keys: [p256], formats: [bundle], rekor: ${rekorBlock} }`,
      `{ match: "${H}/pkib/**", keys: [certkey], formats: [legacy, bundle], rekor: ${rekorBlock} }`,
      `{ match: "${H}/pkin/**", keys: [certkey], formats: [bundle] }`,
    ],
  });
  ({ tmp, rekor } = stack);
  const stranger = makeRootCa('some other root');
  strangerChain = [makeIntermediateCa(stranger).pem, stranger.pem];
  cosign3Dir = file('cosign3-bin');
  mkdirSync(cosign3Dir);
  symlinkSync(COSIGN3_BIN(), path.join(cosign3Dir, 'cosign'));
  ({ out, err: exportErr } = await exportPolicy(stack, 'cosign', 'cosign-export'));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const signed = (repository: string): Promise<string> => signedImage(stack, repository);

/** The README's commands for rule `ruleIndex`, key `key`: { '3': ..., '2': ... }. */
function readmeCommands(ruleIndex: number, key: string): { '3': string; '2': string } {
  const readme = readFileSync(path.join(out, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith(`rules[${ruleIndex}]`));
  const keyPart = section?.split(/^### /m).find((s) => s.startsWith(`key ${key}\n`));
  const line = (v: string) => {
    const lines = keyPart?.split('\n') ?? [];
    const i = lines.indexOf(`# cosign ${v}.x`);
    if (i < 0) throw new Error(`no cosign ${v}.x command for rules[${ruleIndex}] key ${key} in README.md:\n${readme}`);
    return lines[i + 1]!;
  };
  return { '3': line('3'), '2': line('2') };
}

/**
 * Runs one README command line as written, in `dir` (default: the export directory), with
 * `cosign` being cosign `version` and IMAGE set; the registry is plain http, so
 * `--allow-http-registry` is added before the image (the README says to add registry flags).
 */
async function runCommand(command: string, version: '2' | '3', image: string, dir = out): Promise<RunResult> {
  const sandbox = tempDir('signet-cosign-');
  try {
    mkdirSync(path.join(sandbox.dir, 'home', '.docker'), { recursive: true });
    mkdirSync(path.join(sandbox.dir, 'tuf'), { recursive: true });
    const env = cosignEnv(sandbox.dir, { IMAGE: image });
    if (version === '3') env['PATH'] = `${cosign3Dir}:${env['PATH'] ?? ''}`;
    expect(command).toMatch(/ "\$IMAGE"$/);
    const line = command.replace(/ "\$IMAGE"$/, ' --allow-http-registry "$IMAGE"');
    return await runProcess('bash', ['-c', line], { env, cwd: dir, timeoutMs: 90_000 });
  } finally {
    sandbox.remove();
  }
}

describe('signet policy export --for cosign', () => {
  it('writes trusted_root.json, the keys, rekor.pub and README.md; notes name the missing TSA', () => {
    const tr = JSON.parse(readFileSync(path.join(out, 'trusted_root.json'), 'utf8'));
    expect(tr.mediaType).toBe('application/vnd.dev.sigstore.trustedroot+json;version=0.1');
    expect(tr.tlogs).toHaveLength(1);
    expect(Buffer.from(tr.tlogs[0].logId.keyId, 'base64').toString('hex')).toBe(rekor.logId);
    expect(tr.certificateAuthorities).toHaveLength(1);
    expect(tr.timestampAuthorities).toBeUndefined();
    expect(readFileSync(path.join(out, 'rekor.pub'), 'utf8')).toBe(rekor.publicKeyPem);
    for (const k of ['p256', 'other', 'certkey']) expect(readFileSync(path.join(out, `${k}.pub`), 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(exportErr.join('\n')).toMatch(/no CT log/);
  });

  it('has the document cosign 3.1 `trusted-root create` writes for the same log key and CA chain', async () => {
    const sandbox = tempDir('signet-cosign-');
    try {
      mkdirSync(path.join(sandbox.dir, 'home'), { recursive: true });
      const created = path.join(tmp.dir, 'created.json');
      const r = await runProcess(
        COSIGN3_BIN(),
        [
          'trusted-root',
          'create',
          `--rekor=url=${rekor.url},public-key=${path.join(out, 'rekor.pub')},start-time=1970-01-01T00:00:00Z`,
          `--certificate-chain=${file('chain.pem')}`,
          `--out=${created}`,
        ],
        { env: cosignEnv(sandbox.dir), cwd: sandbox.dir },
      );
      expect(r.code, r.stderr).toBe(0);
      const theirs = JSON.parse(readFileSync(created, 'utf8'));
      const ours = JSON.parse(readFileSync(path.join(out, 'trusted_root.json'), 'utf8'));
      expect(ours).toEqual(theirs);
    } finally {
      sandbox.remove();
    }
  });

  it('cosign 3.1 runs the README command with --trusted-root (log checked) and accepts; a trusted root naming another log key is refused', async () => {
    const ref = await signed('tlog/app');
    const cmd = readmeCommands(0, 'p256')['3'];
    expect(cmd).toBe('cosign verify --key p256.pub --trusted-root trusted_root.json "$IMAGE"');
    const ok = await runCommand(cmd, '3', ref);
    console.log(`cosign 3.1 verify (legacy + Rekor): exit ${ok.code}\n${ok.stderr}`);
    expect(ok.code, ok.stderr).toBe(0);

    // negative control: the same directory with a trusted root of another log key
    const other = await startRekor();
    await other.stop();
    const wrongDir = file('wrong-log');
    mkdirSync(wrongDir);
    writeFileSync(path.join(wrongDir, 'trusted_root.json'), other.trustedRoot());
    writeFileSync(path.join(wrongDir, 'p256.pub'), readFileSync(path.join(out, 'p256.pub')));
    const wrong = await runCommand(cmd, '3', ref, wrongDir);
    console.log(`cosign 3.1 verify, trusted root of another log: exit ${wrong.code}\n${wrong.stderr}`);
    expect(wrong.code).not.toBe(0);
    // and another rule's key is refused with the real trusted root
    const otherKey = await runCommand(cmd.replace('p256.pub', 'other.pub'), '3', ref);
    expect(otherKey.code).not.toBe(0);
  });

  it('cosign 2.5 runs the README command with SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub and accepts; another log key is refused', async () => {
    const ref = await signed('tlog/two');
    const cmd = readmeCommands(0, 'p256')['2'];
    expect(cmd).toMatch(/^SIGSTORE_REKOR_PUBLIC_KEY=rekor\.pub cosign verify --key p256\.pub /);
    const ok = await runCommand(cmd, '2', ref);
    console.log(`cosign 2.5 verify (legacy + Rekor): exit ${ok.code}\n${ok.stderr}`);
    expect(ok.code, ok.stderr).toBe(0);
    const wrongDir = file('wrong-log-2');
    mkdirSync(wrongDir);
    writeFileSync(path.join(wrongDir, 'rekor.pub'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(path.join(wrongDir, 'p256.pub'), readFileSync(path.join(out, 'p256.pub')));
    const wrong = await runCommand(cmd, '2', ref, wrongDir);
    expect(wrong.code).not.toBe(0);
  });

  it('without Rekor: the README commands (--insecure-ignore-tlog=true) pass with cosign 3.1 and 2.5; another key does not', async () => {
    const ref = await signed('plain/app');
    const cmds = readmeCommands(1, 'other');
    for (const v of ['3', '2'] as const) {
      expect(cmds[v]).toMatch(/--insecure-ignore-tlog=true/);
      const ok = await runCommand(cmds[v], v, ref);
      expect(ok.code, `cosign ${v}: ${ok.stderr}`).toBe(0);
      const wrong = await runCommand(cmds[v].replace('other.pub', 'p256.pub'), v, ref);
      expect(wrong.code, `cosign ${v} with another key`).not.toBe(0);
    }
  });

  it('legacy and bundle with Rekor: cosign 3.1 (which prefers the bundle referrer) and cosign 2.5 (.sig) accept; another log is refused', async () => {
    const ref = await signed('both/app');
    const cmds = readmeCommands(2, 'p256');
    const v3 = await runCommand(cmds['3'], '3', ref);
    console.log(`cosign 3.1 verify (bundle + Rekor): exit ${v3.code}\n${v3.stderr}`);
    expect(v3.code, v3.stderr).toBe(0);
    const v2 = await runCommand(cmds['2'], '2', ref);
    expect(v2.code, v2.stderr).toBe(0);
    const other = await startRekor();
    await other.stop();
    const wrongDir = file('wrong-log-3');
    mkdirSync(wrongDir);
    writeFileSync(path.join(wrongDir, 'trusted_root.json'), other.trustedRoot());
    writeFileSync(path.join(wrongDir, 'p256.pub'), readFileSync(path.join(out, 'p256.pub')));
    expect((await runCommand(cmds['3'], '3', ref, wrongDir)).code).not.toBe(0);
  });

  it('bundle only, without and with Rekor: cosign 3.1 verify and cosign 2.5 verify-attestation --new-bundle-format (as the README writes them) accept; another key or log is refused', async () => {
    for (const [rule, key, repo] of [
      [4, 'other', 'bundle/app'],
      [5, 'p256', 'bundle-tlog/app'],
    ] as const) {
      const ref = await signed(repo);
      const cmds = readmeCommands(rule, key);
      expect(cmds['2']).toMatch(/^cosign verify-attestation --new-bundle-format --trusted-root trusted_root\.json /);
      for (const v of ['3', '2'] as const) {
        const ok = await runCommand(cmds[v], v, ref);
        expect(ok.code, `${repo} cosign ${v}: ${ok.stderr}`).toBe(0);
        const otherKey = key === 'p256' ? 'other' : 'p256';
        const wrong = await runCommand(cmds[v].replace(`${key}.pub`, `${otherKey}.pub`), v, ref);
        expect(wrong.code, `${repo} cosign ${v} with another key`).not.toBe(0);
      }
    }
    const wrongDir = file('wrong-log-4');
    mkdirSync(wrongDir);
    const other = await startRekor();
    await other.stop();
    writeFileSync(path.join(wrongDir, 'trusted_root.json'), other.trustedRoot());
    writeFileSync(path.join(wrongDir, 'p256.pub'), readFileSync(path.join(out, 'p256.pub')));
    const ref = await signed('bundle-tlog/two');
    for (const v of ['3', '2'] as const)
      expect((await runCommand(readmeCommands(5, 'p256')[v], v, ref, wrongDir)).code, `cosign ${v}, another log`).not.toBe(0);
  });

  it('a key with a certificate chain, bundle and Rekor: cosign 3.1 checks the certificate against the exported CA and log (another CA, another identity refused); cosign 2.5 the .sig through the certificate', async () => {
    const ref = await signed('pkib/app');
    const cmds = readmeCommands(6, 'certkey');
    expect(cmds['3']).toBe(
      `cosign verify --trusted-root trusted_root.json --certificate-identity signet@example.com --certificate-oidc-issuer-regexp '.*' --insecure-ignore-sct=true "$IMAGE"`,
    );
    const v3 = await runCommand(cmds['3'], '3', ref);
    console.log(`cosign 3.1 verify (BYO-PKI bundle + Rekor, trusted root CA): exit ${v3.code}\n${v3.stderr}`);
    expect(v3.code, v3.stderr).toBe(0);
    expect(v3.stderr).toMatch(/verified using trusted certificate authority certificates/);
    const v2 = await runCommand(cmds['2'], '2', ref);
    expect(v2.code, v2.stderr).toBe(0);
    // negative controls: the same log with a CA that did not issue the certificate; another identity
    const wrongDir = file('wrong-ca');
    mkdirSync(wrongDir);
    writeFileSync(path.join(wrongDir, 'trusted_root.json'), rekor.trustedRoot({ certificateAuthorities: [{ certificates: strangerChain }] }));
    const wrongCa = await runCommand(cmds['3'], '3', ref, wrongDir);
    expect(wrongCa.code, 'another CA').not.toBe(0);
    const wrongId = await runCommand(cmds['3'].replace('signet@example.com', 'someone@example.com'), '3', ref);
    expect(wrongId.code, 'another identity').not.toBe(0);
    // what cosign 3 says to --key on a certificate bundle (why the README does not write it)
    const byKey = await runCommand('cosign verify --key certkey.pub --trusted-root trusted_root.json "$IMAGE"', '3', ref);
    expect(byKey.stderr).toMatch(/expected key signature, not certificate/);
  });

  it('a key with a certificate chain, bundle only, no Rekor: cosign 3.1 verify and cosign 2.5 verify-attestation (SIGSTORE_ROOT_FILE) accept; another CA is refused', async () => {
    const ref = await signed('pkin/app');
    const cmds = readmeCommands(7, 'certkey');
    expect(cmds['2']).toMatch(
      /^SIGSTORE_ROOT_FILE=certkey\.chain\.pem cosign verify-attestation --new-bundle-format --trusted-root trusted_root\.json --certificate-identity signet@example\.com /,
    );
    for (const v of ['3', '2'] as const) {
      const ok = await runCommand(cmds[v], v, ref);
      expect(ok.code, `cosign ${v}: ${ok.stderr}`).toBe(0);
    }
    const wrongDir = file('wrong-ca-2');
    mkdirSync(wrongDir);
    const { trustedRoot } = await import('../../src/policy/verifiers/cosign.js');
    writeFileSync(path.join(wrongDir, 'trusted_root.json'), JSON.stringify(trustedRoot([], [strangerChain])));
    writeFileSync(path.join(wrongDir, 'certkey.chain.pem'), strangerChain.join(''));
    for (const v of ['3', '2'] as const) expect((await runCommand(cmds[v], v, ref, wrongDir)).code, `cosign ${v}, another CA`).not.toBe(0);
  });

  it('a key with a certificate chain, legacy only, Rekor: the entry names the certificate; cosign 3.1 (trusted root CA + identity, log checked; also --key) and cosign 2.5 (--certificate-chain) accept; another log, CA or identity is refused', async () => {
    const ref = await signed('pki/app');
    const cmds = readmeCommands(3, 'certkey');
    const id = `--certificate-identity signet@example.com --certificate-oidc-issuer-regexp '.*' --insecure-ignore-sct=true`;
    expect(cmds['3']).toBe(`cosign verify --trusted-root trusted_root.json ${id} "$IMAGE"`);
    expect(cmds['2']).toBe(`SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub cosign verify --certificate-chain certkey.chain.pem ${id} --rekor-url ${rekor.url} "$IMAGE"`);
    const v3 = await runCommand(cmds['3'], '3', ref);
    console.log(`cosign 3.1 verify (BYO-PKI legacy + Rekor, trusted root CA): exit ${v3.code}\n${v3.stderr}`);
    expect(v3.code, v3.stderr).toBe(0);
    expect(v3.stderr).toMatch(/Existence of the claims in the transparency log was verified offline/);
    expect(v3.stderr).toMatch(/verified using trusted certificate authority certificates/);
    // cosign >= 3.0.3 compares the entry with the certificate under --key too
    const byKey3 = await runCommand('cosign verify --key certkey.pub --trusted-root trusted_root.json "$IMAGE"', '3', ref);
    console.log(`cosign 3.1 verify --key (BYO-PKI legacy + Rekor): exit ${byKey3.code}\n${byKey3.stderr}`);
    expect(byKey3.code, byKey3.stderr).toBe(0);
    expect(byKey3.stderr).toMatch(/Existence of the claims in the transparency log was verified offline/);
    const v2 = await runCommand(cmds['2'], '2', ref);
    console.log(`cosign 2.5 verify (BYO-PKI legacy + Rekor, --certificate-chain): exit ${v2.code}\n${v2.stderr}`);
    expect(v2.code, v2.stderr).toBe(0);
    expect(v2.stderr).toMatch(/Existence of the claims in the transparency log was verified offline/);
    // cosign 2.x compares the entry with --key when given one (why the README does not write it)
    const byKey2 = await runCommand(`SIGSTORE_REKOR_PUBLIC_KEY=rekor.pub cosign verify --key certkey.pub --rekor-url ${rekor.url} "$IMAGE"`, '2', ref);
    console.log(`cosign 2.5 verify --key (BYO-PKI legacy + Rekor): exit ${byKey2.code}\n${byKey2.stderr}`);
    expect(byKey2.code).not.toBe(0);
    expect(byKey2.stderr).toMatch(/comparing public key PEMs, expected -----BEGIN PUBLIC KEY-----[\s\S]*got -----BEGIN CERTIFICATE-----/);

    // negative controls: another log (3.1: trusted root, 2.5: rekor.pub), another CA, another identity
    const other = await startRekor();
    await other.stop();
    const wrongLog = file('wrong-log-pki');
    mkdirSync(wrongLog);
    writeFileSync(
      path.join(wrongLog, 'trusted_root.json'),
      other.trustedRoot({
        certificateAuthorities: [
          { certificates: readFileSync(file('chain.pem'), 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g)! },
        ],
      }),
    );
    writeFileSync(path.join(wrongLog, 'rekor.pub'), other.publicKeyPem);
    writeFileSync(path.join(wrongLog, 'certkey.chain.pem'), readFileSync(path.join(out, 'certkey.chain.pem')));
    for (const v of ['3', '2'] as const) {
      const r = await runCommand(cmds[v], v, ref, wrongLog);
      console.log(`cosign ${v} (BYO-PKI legacy + Rekor), another log: exit ${r.code}: ${r.stderr.split('\n')[0]}`);
      expect(r.code, `cosign ${v}, another log`).not.toBe(0);
      expect(r.stderr, `cosign ${v}, another log`).toMatch(/verifying bundle|transparency log|tlog|rekor/i);
    }
    const wrongCa = file('wrong-ca-pki');
    mkdirSync(wrongCa);
    writeFileSync(path.join(wrongCa, 'trusted_root.json'), rekor.trustedRoot({ certificateAuthorities: [{ certificates: strangerChain }] }));
    writeFileSync(path.join(wrongCa, 'rekor.pub'), rekor.publicKeyPem);
    writeFileSync(path.join(wrongCa, 'certkey.chain.pem'), strangerChain.join(''));
    for (const v of ['3', '2'] as const) {
      const r = await runCommand(cmds[v], v, ref, wrongCa);
      console.log(`cosign ${v} (BYO-PKI legacy + Rekor), another CA: exit ${r.code}: ${r.stderr.split('\n')[0]}`);
      expect(r.code, `cosign ${v}, another CA`).not.toBe(0);
      expect(r.stderr, `cosign ${v}, another CA`).toMatch(/certificate signed by unknown authority|certificate verification failed/);
    }
    for (const v of ['3', '2'] as const) {
      expect((await runCommand(cmds[v].replace('signet@example.com', 'someone@example.com'), v, ref)).code, `cosign ${v}, another identity`).not.toBe(0);
    }
  });
});
