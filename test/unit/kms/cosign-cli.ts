/**
 * Runs the real cosign binary for the KMS tests. Tests that use it FAIL (never skip) when it is
 * missing: the point of them is to prove compatibility with cosign itself.
 * Override the binary with COSIGN_BIN.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const COSIGN_BIN = process.env.COSIGN_BIN ?? 'cosign';

export interface CosignResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCosign(args: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}): Promise<CosignResult> {
  return new Promise((resolve, reject) => {
    execFile(COSIGN_BIN, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: 60_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`cosign binary "${COSIGN_BIN}" not found: these tests require the real cosign (set COSIGN_BIN)`));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Like runCosign but throws with cosign's stderr on a non-zero exit. */
export async function cosignOk(args: string[], opts: Parameters<typeof runCosign>[1] = {}): Promise<CosignResult> {
  const res = await runCosign(args, opts);
  if (res.code !== 0) throw new Error(`cosign ${args.join(' ')} exited ${res.code}: ${res.stderr}`);
  return res;
}

export async function makeTempDir(prefix = 'signet-kms-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * `cosign verify-blob` of a base64 signature over `payload` with the SPKI PEM `publicKeyPem`, offline
 * (`--insecure-ignore-tlog=true`: no Rekor lookup, no TUF fetch). Returns cosign's exit code.
 */
export async function cosignVerifyBlob(dir: string, publicKeyPem: string, payload: Buffer, signature: Buffer): Promise<CosignResult> {
  const tag = Math.random().toString(36).slice(2);
  const pub = path.join(dir, `verify-${tag}.pub`);
  const sig = path.join(dir, `verify-${tag}.sig`);
  const blob = path.join(dir, `verify-${tag}.payload`);
  await writeFile(pub, publicKeyPem);
  await writeFile(sig, signature.toString('base64'));
  await writeFile(blob, payload);
  return runCosign(['verify-blob', '--key', pub, '--signature', sig, '--insecure-ignore-tlog=true', blob], { cwd: dir });
}
