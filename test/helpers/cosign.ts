import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess, type RunResult } from './proc.js';

/**
 * The real cosign (2.5, Debian trixie) driven as a verifier / baseline signer.
 *
 * Offline by construction:
 * - `HOME`, `TUF_ROOT` and `DOCKER_CONFIG` point into a private temp dir (no ~/.sigstore cache,
 *   no ~/.docker/config.json credentials).
 * - `verify --key K --insecure-ignore-tlog=true` and `sign --key K --tlog-upload=false` make no
 *   TUF or Rekor request at all (checked with strace: only loopback connects). Without
 *   `--insecure-ignore-tlog`, verify fetches the TUF root from tuf-repo-cdn.sigstore.dev
 *   ("getting Rekor public keys").
 * - As a safety net, HTTP(S)_PROXY point at a closed loopback port, so any attempt to reach
 *   the internet fails at once instead of hanging; Go never proxies loopback, so the test
 *   registries are unaffected.
 *
 * Registry flags (cosign 2.5): `--allow-http-registry` for plain http; for a TLS registry with
 * a self-signed CA, `--registry-cacert <pem>` (or `--allow-insecure-registry` to skip
 * verification); `--registry-username/--registry-password` for Basic or token-auth registries.
 */

export const COSIGN_BIN = (): string => process.env.COSIGN_BIN ?? 'cosign';
/** cosign 3.1 (Debian unstable, unpacked by .ci/install-test-kit.sh); pass it as `{ bin }` to the helpers. */
export const COSIGN3_BIN = (): string => process.env.COSIGN3_BIN ?? '/opt/sid-tools/usr/bin/cosign';

/**
 * Runs cosign with a private, throw-away HOME / TUF_ROOT / DOCKER_CONFIG (a fresh temp dir per
 * invocation, removed afterwards: vitest workers do not run process 'exit' hooks, so nothing
 * may rely on them for clean-up).
 */
/** cosign (2.5 by default; `bin: COSIGN3_BIN()` for 3.1) in a private sandbox: own HOME and TUF_ROOT, no network but loopback. */
export async function runCosign(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; bin?: string }): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-cosign-'));
  try {
    mkdirSync(join(dir, 'home', '.docker'), { recursive: true });
    mkdirSync(join(dir, 'tuf'), { recursive: true });
    return await runProcess(opts.bin ?? COSIGN_BIN(), args, {
      env: cosignEnv(dir, opts.env),
      cwd: opts.cwd ?? dir,
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The environment cosign runs with; `sandbox` holds home/ and tuf/. */
export function cosignEnv(sandbox: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ']) if (process.env[k] !== undefined) env[k] = process.env[k];
  Object.assign(env, {
    HOME: join(sandbox, 'home'),
    TUF_ROOT: join(sandbox, 'tuf'),
    DOCKER_CONFIG: join(sandbox, 'home', '.docker'),
    HTTP_PROXY: 'http://127.0.0.1:9',
    HTTPS_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '127.0.0.1,localhost',
    ...extra,
  });
  return env;
}

export interface CosignRegistryOptions {
  /** PEM CA for a TLS registry (`--registry-cacert`); a RunningRegistry's caFile */
  caFile?: string;
  /** registry credentials (`--registry-username/--registry-password`) */
  auth?: { username: string; password: string };
  /** add `--allow-http-registry` (default true; harmless for https registries) */
  allowHttp?: boolean;
  /** extra environment, e.g. { COSIGN_DOCKER_MEDIA_TYPES: '1' } */
  env?: Record<string, string>;
  /** hard timeout, default 60 s */
  timeoutMs?: number;
  cwd?: string;
  /** the cosign binary (default COSIGN_BIN(), 2.5; COSIGN3_BIN() for 3.1) */
  bin?: string;
}

function registryArgs(o: CosignRegistryOptions): string[] {
  const a: string[] = [];
  if (o.allowHttp ?? true) a.push('--allow-http-registry');
  if (o.caFile) a.push(`--registry-cacert=${o.caFile}`);
  if (o.auth) a.push(`--registry-username=${o.auth.username}`, `--registry-password=${o.auth.password}`);
  return a;
}

export interface CosignVerifyResult {
  ok: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
  /** the JSON array cosign prints on stdout (one simple-signing payload per valid signature) */
  payloads: any[];
  durationMs: number;
}

function parsePayloads(stdout: string): any[] {
  const out: any[] = [];
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('[') && !t.startsWith('{')) continue;
    try {
      const v: unknown = JSON.parse(t);
      if (Array.isArray(v)) out.push(...v);
      else out.push(v);
    } catch {
      /* not JSON */
    }
  }
  return out;
}

/**
 * `cosign verify --key <pub> --insecure-ignore-tlog=true --allow-http-registry <ref>`.
 * ok is true only on exit code 0.
 */
export async function cosignVerify(ref: string, pubKeyPath: string, extraArgs: string[] = [], opts: CosignRegistryOptions = {}): Promise<CosignVerifyResult> {
  const args = ['verify', `--key=${pubKeyPath}`, '--insecure-ignore-tlog=true', ...registryArgs(opts), '--output=json', ...extraArgs, ref];
  const r = await runCosign(args, opts);
  return {
    ok: r.code === 0 && !r.timedOut,
    code: r.code,
    stdout: r.stdout,
    stderr: r.timedOut ? `${r.stderr}\n[cosign verify killed after timeout]` : r.stderr,
    payloads: r.code === 0 ? parsePayloads(r.stdout) : [],
    durationMs: r.durationMs,
  };
}

export class CosignError extends Error {
  constructor(
    readonly args: string[],
    readonly result: RunResult,
  ) {
    super(`cosign ${args.join(' ')} failed (code ${result.code}${result.timedOut ? ', timed out' : ''}):\n${result.stderr}`);
    this.name = 'CosignError';
  }
}

/**
 * `cosign sign --key <key> --tlog-upload=false -y --allow-http-registry <ref>` with the key
 * password in COSIGN_PASSWORD. Throws CosignError on failure (this is the benchmark baseline).
 */
export async function cosignSign(
  ref: string,
  keyPath: string,
  password: string,
  extraArgs: string[] = [],
  opts: CosignRegistryOptions = {},
): Promise<RunResult> {
  const args = ['sign', `--key=${keyPath}`, '--tlog-upload=false', '--yes', ...registryArgs(opts), ...extraArgs, ref];
  const r = await runCosign(args, { ...opts, env: { COSIGN_PASSWORD: password, ...(opts.env ?? {}) } });
  if (r.code !== 0 || r.timedOut) throw new CosignError(args, r);
  return r;
}

/**
 * `cosign generate-key-pair` in `dir` (cosign.key, encrypted with `password`, and cosign.pub).
 */
export async function cosignGenerateKeyPair(dir: string, password: string): Promise<{ keyPath: string; pubPath: string }> {
  const args = ['generate-key-pair'];
  const r = await runCosign(args, { env: { COSIGN_PASSWORD: password }, cwd: dir });
  if (r.code !== 0 || r.timedOut) throw new CosignError(args, r);
  return { keyPath: join(dir, 'cosign.key'), pubPath: join(dir, 'cosign.pub') };
}

/** A private temp dir for keys etc.; remove with the returned function. */
export function tempDir(prefix = 'signet-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
