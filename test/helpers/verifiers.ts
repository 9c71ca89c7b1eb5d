/**
 * The four verifiers of the verification matrix (test/integration/verification-matrix.test.ts),
 * one function each: `(cell, ref, trust dir) => { accepted, detail }`. Each runs what the docs or
 * `signet policy export` give for that cell, nothing private:
 *
 *   cosign 2.5      the `# cosign 2.x` line of the exported README.md for the cell's rule and key,
 *                   run as written (bash, in <trust>/cosign), `cosign` = 2.5 on PATH
 *   cosign 3.1      the `# cosign 3.x` line, `cosign` = /opt/sid-tools/usr/bin/cosign first on PATH
 *   containers      skopeo 1.18 (containers/image 5.34, the trixie chroot of .ci/install-test-kit.sh)
 *                   `copy docker://REF dir:OUT` under <trust>/containers/policy.json and
 *                   registries.d (`signet policy export --for containers`); exit 0 = accepted
 *   @sigstore/verify 3.1.1 on the bundles read from the registry (referrers API, else the
 *                   `sha256-<hex>` fallback tag), with a TrustMaterial built from the exported
 *                   <trust>/cosign/trusted_root.json plus the cell's key (<key>.pub)
 *
 * The trust dir holds `cosign/` (the cosign export) and `containers/` (the containers export);
 * the negative controls hand the same functions a copy with one piece of trust material swapped.
 *
 * Why code here that a library might do: @sigstore/verify has no OCI discovery (sigstore-js's
 * own @sigstore/oci 0.6.1 only writes), so the bundles are fetched with the test kit's registry
 * client; and it verifies the DSSE envelope only, not the in-toto statement, so the subject
 * digest and the predicate type (what cosign checks for `cosign sign` bundles) are checked here.
 */
import { createPublicKey } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier, type VerificationPolicy } from '@sigstore/verify';
import { COSIGN3_BIN, COSIGN_BIN, cosignEnv } from './cosign.js';
import { MANIFEST_ACCEPT, RegistryClient } from './images.js';
import { runProcess } from './proc.js';

export type KeyAlg = 'p256' | 'rsa';
export type Format = 'legacy' | 'bundle';
export type Transparency = 'none' | 'rekor' | 'tsa';
export type Material = 'key' | 'pki';
export type Shape = 'single' | 'index';

export interface Cell {
  /** `<key>-<format>-<transparency>-<material>-<shape>`; also the repository namespace. */
  id: string;
  key: KeyAlg;
  format: Format;
  transparency: Transparency;
  material: Material;
  shape: Shape;
  /** The signet key the cell's rule names (`p256`, `rsa`, or `p256c`/`rsac` with a certificate). */
  keyName: string;
  /** The rule's index in the exported config (README.md `## rules[i]`), once assigned. */
  ruleIndex?: number;
  /** The certificate identity (SAN email) of the pki keys. */
  identity?: string;
}

export interface Verdict {
  accepted: boolean;
  detail: string;
}

export type VerifierId = 'cosign-2.5' | 'cosign-3.1' | 'containers' | 'sigstore-js';
export type VerifierFn = (cell: Cell, ref: string, trust: string) => Promise<Verdict>;

export const SKOPEO_ROOTFS = (): string => process.env.SIGNET_TEST_SKOPEO_ROOTFS || '/var/tmp/skopeo-trixie';
export const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

/** The last informative stderr lines, one line, bounded. */
function tail(s: string, max = 400): string {
  const lines = s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^(WARNING|Verification for|The following checks| {2}-|- )/.test(l) && !l.startsWith('main.go:'));
  const t = lines.slice(-2).join(' | ');
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

// ---- cosign (the exported README's commands) -------------------------------------------------

/** The README line for `rules[ruleIndex]`, key `keyName`, cosign `major`.x. */
export function readmeCommand(cosignDir: string, ruleIndex: number, keyName: string, major: '2' | '3'): string {
  const readme = readFileSync(path.join(cosignDir, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith(`rules[${ruleIndex}] `));
  const keyPart = section?.split(/^### /m).find((s) => s.startsWith(`key ${keyName}\n`));
  const lines = keyPart?.split('\n') ?? [];
  const i = lines.indexOf(`# cosign ${major}.x`);
  if (i < 0 || !lines[i + 1]) throw new Error(`README.md has no cosign ${major}.x command for rules[${ruleIndex}] key ${keyName}`);
  return lines[i + 1]!;
}

let cosign3Dir: string | undefined;
/** A directory whose `cosign` is cosign 3.1 (put first on PATH for the 3.x lines). */
function cosign3PathDir(): string {
  if (!cosign3Dir) {
    const d = mkdtempSync(path.join(tmpdir(), 'signet-cosign3-bin-'));
    symlinkSync(COSIGN3_BIN(), path.join(d, 'cosign'));
    cosign3Dir = d;
  }
  return cosign3Dir;
}

/**
 * Runs the README command as written in `<trust>/cosign` with IMAGE=ref; the registry is plain
 * http, so `--allow-http-registry` goes before the image (the README says to add registry flags).
 */
async function runReadme(cell: Cell, ref: string, trust: string, major: '2' | '3'): Promise<Verdict> {
  const dir = path.join(trust, 'cosign');
  let command: string;
  try {
    command = readmeCommand(dir, cell.ruleIndex ?? -1, cell.keyName, major);
  } catch (err) {
    return { accepted: false, detail: (err as Error).message };
  }
  if (!/ "\$IMAGE"$/.test(command)) return { accepted: false, detail: `README command does not end in "$IMAGE": ${command}` };
  const line = command.replace(/ "\$IMAGE"$/, ' --allow-http-registry "$IMAGE"');
  const sandbox = mkdtempSync(path.join(tmpdir(), 'signet-cosign-'));
  try {
    mkdirSync(path.join(sandbox, 'home', '.docker'), { recursive: true });
    mkdirSync(path.join(sandbox, 'tuf'), { recursive: true });
    const env = cosignEnv(sandbox, { IMAGE: ref });
    env['PATH'] = major === '3' ? `${cosign3PathDir()}:${env['PATH'] ?? ''}` : env['PATH'];
    const r = await runProcess('bash', ['-c', line], { env, cwd: dir, timeoutMs: 90_000 });
    const accepted = r.code === 0 && !r.timedOut;
    return { accepted, detail: `${command} -> exit ${r.code}${r.timedOut ? ' (timed out)' : ''}${accepted ? '' : `: ${tail(r.stderr)}`}` };
  } finally {
    rmSync(sandbox, { recursive: true, force: true });
  }
}

export const verifyCosign25: VerifierFn = (cell, ref, trust) => runReadme(cell, ref, trust, '2');
export const verifyCosign31: VerifierFn = (cell, ref, trust) => runReadme(cell, ref, trust, '3');

// ---- containers/image (skopeo 1.18 under the exported policy) --------------------------------

/**
 * `skopeo --policy policy.json --registries.d registries.d copy --src-tls-verify=false
 * docker://REF dir:OUT` in the chroot (the files are copied into it for the call). A multi-arch
 * reference copies the instance for this machine's platform, as a node's pull does: containers/image
 * then checks that instance's signatures (copy.Image, CopySystemImage -> copySingleImage on the
 * instance), not the index's; the other children are checked by their own digests.
 */
export const verifyContainers: VerifierFn = async (_cell, ref, trust) => {
  const rootfs = SKOPEO_ROOTFS();
  const work = mkdtempSync(path.join(rootfs, 'tmp', 'signet-matrix-'));
  try {
    cpSync(path.join(trust, 'containers', 'policy.json'), path.join(work, 'policy.json'));
    cpSync(path.join(trust, 'containers', 'registries.d'), path.join(work, 'registries.d'), { recursive: true });
    const inside = `/tmp/${path.basename(work)}`;
    const args = [
      rootfs,
      'skopeo',
      '--policy',
      `${inside}/policy.json`,
      '--registries.d',
      `${inside}/registries.d`,
      'copy',
      '--src-tls-verify=false',
      `docker://${ref}`,
      `dir:${inside}/out`,
    ];
    const r = await runProcess('chroot', args, { timeoutMs: 60_000 });
    const accepted = r.code === 0 && !r.timedOut;
    return { accepted, detail: `skopeo copy docker://…@${ref.split('@')[1]?.slice(7, 19)}… dir: -> exit ${r.code}${accepted ? '' : `: ${tail(r.stderr)}`}` };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
};

// ---- @sigstore/verify on the registry's bundles ----------------------------------------------

/** host, repository and digest of `host/repo@sha256:...`. */
export function parseDigestRef(ref: string): { host: string; repository: string; digest: string } {
  const at = ref.indexOf('@');
  const slash = ref.indexOf('/');
  if (at < 0 || slash < 0) throw new Error(`not a digest reference: ${ref}`);
  return { host: ref.slice(0, slash), repository: ref.slice(slash + 1, at), digest: ref.slice(at + 1) };
}

/** The sigstore bundle v0.3 referrers of `ref` (referrers API, else the fallback tag), as JSON texts. */
export async function fetchBundles(ref: string): Promise<string[]> {
  const { host, repository, digest } = parseDigestRef(ref);
  const client = new RegistryClient({ url: `http://${host}` });
  let index: { manifests?: { digest: string; artifactType?: string }[] } | undefined;
  const api = await client.request('GET', `/v2/${repository}/referrers/${digest}`, { headers: { Accept: 'application/vnd.oci.image.index.v1+json' } });
  if (api.status === 200 && /index/.test(String(api.headers['content-type'] ?? 'index'))) {
    try {
      index = JSON.parse(api.body.toString('utf8'));
    } catch {
      index = undefined;
    }
  }
  if (!index?.manifests) {
    const tag = await client.request('GET', `/v2/${repository}/manifests/${digest.replace(':', '-')}`, { headers: { Accept: MANIFEST_ACCEPT } });
    if (tag.status === 404) return [];
    if (tag.status !== 200) throw new Error(`GET fallback tag: HTTP ${tag.status}`);
    index = JSON.parse(tag.body.toString('utf8'));
  }
  const out: string[] = [];
  for (const m of index?.manifests ?? []) {
    if (m.artifactType !== BUNDLE_V03) continue;
    const res = await client.request('GET', `/v2/${repository}/manifests/${m.digest}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    if (res.status !== 200) continue;
    const manifest = JSON.parse(res.body.toString('utf8')) as { layers?: { digest: string; mediaType: string }[] };
    const layer = manifest.layers?.find((l) => l.mediaType === BUNDLE_V03);
    if (!layer) continue;
    const blob = await client.request('GET', `/v2/${repository}/blobs/${layer.digest}`);
    if (blob.status === 200) out.push(blob.body.toString('utf8'));
  }
  return out;
}

/**
 * The options a verifier of this cell's policy sets (the VerifierOptions thresholds):
 * tlogThreshold 1 with Rekor (the entry must be there and verify), else 0; timestampThreshold 1
 * when the cell has a verified time to offer (Rekor's integrated time or an RFC 3161 timestamp)
 * or a certificate (a certificate is only valid at a time: without one @sigstore/verify has
 * nothing to check the chain at), else 0 (a bare key needs no time); ctlogThreshold 0 (BYO-PKI
 * certificates have no SCTs). With a certificate the SAN must equal the identity.
 */
export function sigstoreJsOptions(cell: Cell): { tlogThreshold: number; ctlogThreshold: number; timestampThreshold: number; policy?: VerificationPolicy } {
  return {
    tlogThreshold: cell.transparency === 'rekor' ? 1 : 0,
    ctlogThreshold: 0,
    timestampThreshold: cell.transparency !== 'none' || cell.material === 'pki' ? 1 : 0,
    ...(cell.material === 'pki' && cell.identity ? { policy: { subjectAlternativeName: cell.identity } } : {}),
  };
}

export const verifySigstoreJs: VerifierFn = async (cell, ref, trust) => {
  const { digest } = parseDigestRef(ref);
  let bundles: string[];
  try {
    bundles = await fetchBundles(ref);
  } catch (err) {
    return { accepted: false, detail: `reading the bundles: ${(err as Error).message}` };
  }
  if (bundles.length === 0) return { accepted: false, detail: 'no sigstore bundle referrer' };
  const root = TrustedRoot.fromJSON(JSON.parse(readFileSync(path.join(trust, 'cosign', 'trusted_root.json'), 'utf8')));
  const keyFile = path.join(trust, 'cosign', `${cell.keyName}.pub`);
  const key = existsSync(keyFile) ? createPublicKey(readFileSync(keyFile, 'utf8')) : undefined;
  const material = toTrustMaterial(root, (hint) => {
    if (!key) throw new Error(`no ${cell.keyName}.pub for hint ${hint}`);
    return { publicKey: key, validFor: () => true };
  });
  const { policy, ...options } = sigstoreJsOptions(cell);
  const verifier = new Verifier(material, options);
  const errors: string[] = [];
  for (const text of bundles) {
    try {
      const bundle = bundleFromJSON(JSON.parse(text));
      verifier.verify(toSignedEntity(bundle), policy);
      if (bundle.content.$case !== 'dsseEnvelope') throw new Error('not a DSSE bundle');
      const env = bundle.content.dsseEnvelope;
      if (env.payloadType !== 'application/vnd.in-toto+json') throw new Error(`payloadType ${env.payloadType}`);
      const statement = JSON.parse(env.payload.toString('utf8')) as { predicateType?: string; subject?: { digest?: { sha256?: string } }[] };
      if (statement.predicateType !== COSIGN_SIGN_PREDICATE) throw new Error(`predicateType ${statement.predicateType}`);
      if (!statement.subject?.some((s) => `sha256:${s.digest?.sha256}` === digest)) throw new Error(`statement subject is not ${digest}`);
      return { accepted: true, detail: `bundle verified (${JSON.stringify(options)}${policy ? `, SAN ${policy.subjectAlternativeName}` : ''})` };
    } catch (err) {
      const e = err as Error & { code?: string };
      errors.push(`${e.code ? `${e.code}: ` : ''}${e.message}`);
    }
  }
  return { accepted: false, detail: `${bundles.length} bundle(s), none verified (${JSON.stringify(options)}): ${[...new Set(errors)].join('; ')}` };
};

// ---- the set ----------------------------------------------------------------------------------

export interface VerifierSpec {
  id: VerifierId;
  /** Whether the verifier reads this cell's format at all (else n.a.). */
  reads: (cell: Cell) => boolean;
  run: VerifierFn;
}

export const VERIFIERS: readonly VerifierSpec[] = [
  { id: 'cosign-2.5', reads: () => true, run: verifyCosign25 },
  { id: 'cosign-3.1', reads: () => true, run: verifyCosign31 },
  { id: 'containers', reads: (c) => c.format === 'legacy', run: verifyContainers },
  { id: 'sigstore-js', reads: (c) => c.format === 'bundle', run: verifySigstoreJs },
];

/** What each verifier is, from the tools themselves (cosign's Debian builds say "devel": the package version is added). */
export async function toolVersions(): Promise<Record<VerifierId, string>> {
  const first = async (bin: string, args: string[]) => {
    try {
      const r = await runProcess(bin, args, { timeoutMs: 30_000 });
      return `${r.stdout}${r.stderr}`.trim();
    } catch (err) {
      return `(${(err as Error).message})`;
    }
  };
  const cosignVersion = async (bin: string) => {
    const v = await first(bin, ['version', '--json']);
    try {
      const j = JSON.parse(v) as { gitVersion?: string; goVersion?: string };
      return `gitVersion ${j.gitVersion}, ${j.goVersion}`;
    } catch {
      return v.split('\n')[0] ?? '';
    }
  };
  const debianCosign = (await first('dpkg-query', ['-W', '-f=${Version}', 'cosign'])).split('\n')[0];
  let sidCosign = '?';
  const changelog = path.join(path.dirname(path.dirname(COSIGN3_BIN())), 'share/doc/cosign/changelog.Debian.gz');
  if (existsSync(changelog)) sidCosign = (await first('bash', ['-c', `zcat '${changelog}' | head -1`])).match(/\(([^)]+)\)/)?.[1] ?? '?';
  const skopeo = (await first('chroot', [SKOPEO_ROOTFS(), 'skopeo', '--version'])).split('\n')[0];
  const cimage = (await first('chroot', [SKOPEO_ROOTFS(), 'dpkg-query', '-W', '-f=${Built-Using}', 'skopeo'])).match(
    /golang-github-containers-image \(= ([^)]+)\)/,
  )?.[1];
  const req = createRequire(import.meta.url);
  const sjs = (req('@sigstore/verify/package.json') as { version: string }).version;
  return {
    'cosign-2.5': `cosign ${debianCosign} (Debian; \`cosign version\`: ${await cosignVersion(COSIGN_BIN())})`,
    'cosign-3.1': `cosign ${sidCosign} (Debian; \`cosign version\`: ${await cosignVersion(COSIGN3_BIN())})`,
    containers: `${skopeo}${cimage ? `, containers/image ${cimage}` : ''}`,
    'sigstore-js': `@sigstore/verify ${sjs} (Node ${process.version})`,
  };
}

/** Writes `text` to `file`, creating its directory. */
export function writeText(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
}
