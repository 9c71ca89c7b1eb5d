/**
 * The real cosign (2.5) as the verifier of signet's formats: Rekor SETs on legacy signatures,
 * sigstore bundles (cosign 2.5 verifies v0.3 bundles with `verify-attestation --new-bundle-format`
 * and a trusted root file; its `verify --new-bundle-format` answers "not yet implemented"), and
 * certificate chains. Same sandbox as helpers/cosign.ts: private HOME/TUF_ROOT, internet blocked
 * by a dead proxy.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COSIGN_BIN, cosignEnv } from './cosign.js';
import { runProcess } from './proc.js';

export interface CosignRun {
  ok: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
  /** JSON documents cosign printed on stdout. */
  outputs: any[];
}

export async function cosign(args: string[], env: Record<string, string> = {}): Promise<CosignRun> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-cosign-'));
  try {
    mkdirSync(join(dir, 'home', '.docker'), { recursive: true });
    mkdirSync(join(dir, 'tuf'), { recursive: true });
    const r = await runProcess(COSIGN_BIN(), args, { env: cosignEnv(dir, env), cwd: dir, timeoutMs: 60_000 });
    const outputs: any[] = [];
    if (r.code === 0) {
      for (const line of r.stdout.split('\n')) {
        const t = line.trim();
        if (!t.startsWith('[') && !t.startsWith('{')) continue;
        try {
          const v = JSON.parse(t);
          if (Array.isArray(v)) outputs.push(...v);
          else outputs.push(v);
        } catch {
          /* not JSON */
        }
      }
    }
    return { ok: r.code === 0 && !r.timedOut, code: r.code, stdout: r.stdout, stderr: r.stderr, outputs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `cosign verify --key` with the transparency log checked: the Rekor key comes from
 * SIGSTORE_REKOR_PUBLIC_KEY, and --offline makes the SET in the bundle annotation mandatory.
 */
export function verifyWithRekor(ref: string, keyPath: string, rekorKeyPath: string, extra: string[] = []): Promise<CosignRun> {
  return cosign(['verify', `--key=${keyPath}`, '--offline=true', '--allow-http-registry', '--output=json', ...extra, ref], {
    SIGSTORE_REKOR_PUBLIC_KEY: rekorKeyPath,
  });
}

/** `cosign verify --key` without the transparency log (annotations via extra `-a k=v`). */
export function verifyNoTlog(ref: string, keyPath: string, extra: string[] = []): Promise<CosignRun> {
  return cosign(['verify', `--key=${keyPath}`, '--insecure-ignore-tlog=true', '--allow-http-registry', '--output=json', ...extra, ref]);
}

/**
 * Bring-your-own-PKI: the certificate on the signature, checked against a chain file (no key
 * given; `env` e.g. SIGSTORE_REKOR_PUBLIC_KEY to check the log).
 */
export function verifyCertChain(ref: string, chainPath: string, identity: string, extra: string[] = [], env: Record<string, string> = {}): Promise<CosignRun> {
  return cosign(
    [
      'verify',
      `--certificate-chain=${chainPath}`,
      `--certificate-identity=${identity}`,
      '--certificate-oidc-issuer-regexp=.*',
      '--insecure-ignore-sct=true',
      '--allow-http-registry',
      '--output=json',
      ...extra,
      ref,
    ],
    env,
  );
}

/**
 * The sigstore bundle (v0.3 referrer) check of cosign 2.5: verify-attestation with
 * --new-bundle-format, a trusted root file, the key (or a certificate identity), and the cosign
 * sign predicate type.
 */
export function verifyBundle(
  ref: string,
  opts: { trustedRoot: string; key?: string; ignoreTlog?: boolean; identity?: string; extra?: string[]; caFile?: string },
): Promise<CosignRun> {
  // Without --key, cosign 2.5 loads Fulcio roots before it looks at the trusted root (TUF, i.e.
  // the network, unless SIGSTORE_ROOT_FILE names a local file); the bundle check itself then
  // uses the CAs of the trusted root.
  const env: Record<string, string> = opts.caFile ? { SIGSTORE_ROOT_FILE: opts.caFile } : {};
  return cosign(
    [
      'verify-attestation',
      '--new-bundle-format',
      `--trusted-root=${opts.trustedRoot}`,
      ...(opts.key ? [`--key=${opts.key}`] : []),
      ...(opts.identity ? [`--certificate-identity=${opts.identity}`, '--certificate-oidc-issuer-regexp=.*', '--insecure-ignore-sct=true'] : []),
      ...(opts.ignoreTlog ? ['--insecure-ignore-tlog=true'] : []),
      '--type=https://sigstore.dev/cosign/sign/v1',
      '--allow-http-registry',
      ...(opts.extra ?? []),
      ref,
    ],
    env,
  );
}
