/**
 * The `.sig` config signet writes (src/signing/legacy-sig.ts SIGNATURE_CONFIG): one constant
 * blob for every signature of a repository instead of cosign's per-signature config (rootfs
 * diff_ids and history listing the layers). It is kept only because every reader of the `.sig`
 * accepts it; this file is that evidence, on a real registry:
 *
 * - cosign 2.5 and 3.1 `verify` a signature signet wrote;
 * - containers/image (skopeo 1.18, trixie chroot) pulls the image under a sigstoreSigned policy;
 * - `crane validate --fast --remote` passes on the `.sig` (its manifest and config consistent,
 *   rootfs type "layers"; crane validate without --fast gunzips every layer and refuses cosign's
 *   own `.sig` too, since a simple-signing payload is not gzip);
 * - cosign 2.5 `sign` appends its signature to signet's `.sig` (ggcr's mutate on our config),
 *   and signet merges into a `.sig` cosign wrote: every signature still verifies;
 * - the control: the OCI empty descriptor (`{}`), the other alternative measured, fails
 *   `crane validate --fast`, which is why it was not kept.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGNATURE_CONFIG } from '../../src/signing/legacy-sig.js';
import { signetArgv } from '../helpers/cli.js';
import { COSIGN3_BIN, cosignGenerateKeyPair, cosignSign, cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { runProcess } from '../helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../helpers/signet.js';
import { verifyContainers, type Cell } from '../helpers/verifiers.js';

const CRANE = process.env.CRANE_BIN ?? '/opt/sid-tools/usr/bin/crane';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let registry: RunningRegistry;
let tmp: { dir: string; remove: () => void };
let prefix: string;
const keys: Record<'a' | 'b', { keyPath: string; pubPath: string }> = {} as never;

beforeAll(async () => {
  tmp = tempDir();
  for (const k of ['a', 'b'] as const) {
    mkdirSync(path.join(tmp.dir, k));
    keys[k] = await cosignGenerateKeyPair(path.join(tmp.dir, k), 'sig-config-pw');
  }
  registry = await startRegistry();
  prefix = uniquePrefix();
  writeFileSync(
    path.join(tmp.dir, 'signet.yaml'),
    `redis: { url: "${REDIS_URL}", prefix: ${prefix} }
registries: [{ host: "${registry.host}", insecure: true }]
keys: [{ name: a, provider: file, path: a/cosign.key, password: "\${PW}" }]
rules: [{ match: "${registry.host}/**", keys: [a], formats: [legacy] }]
`,
  );
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  await deletePrefix(prefix);
  tmp?.remove();
});

async function signetSign(ref: string): Promise<void> {
  const cmd = signetArgv(['sign', ref, '-c', 'signet.yaml']);
  const r = await runProcess(cmd.bin, cmd.args, { cwd: tmp.dir, env: { ...process.env, SIGNET_CONFIG: '', PW: 'sig-config-pw' }, timeoutMs: 60_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout).status).toBe('signed');
}

async function sigDocument(repo: string, digest: string): Promise<{ config: { mediaType: string; digest: string; size: number }; layers: unknown[] }> {
  const m = await getManifest(registry, repo, sigTag(digest));
  expect(m.status).toBe(200);
  return JSON.parse(m.body.toString());
}

async function craneValidate(repo: string, digest: string): Promise<{ ok: boolean; out: string }> {
  const r = await runProcess(CRANE, ['validate', '--fast', '--insecure', '--remote', `${registry.host}/${repo}:${sigTag(digest)}`], { timeoutMs: 60_000 });
  return { ok: r.code === 0, out: `${r.stdout}${r.stderr}` };
}

/** skopeo copy under a sigstoreSigned policy with `pub` (the matrix's containers/image verifier): containers/image reads the .sig and checks the signature. */
async function containersAccept(ref: string, pub: string): Promise<{ ok: boolean; out: string }> {
  const trust = mkdtempSync(path.join(tmp.dir, 'trust-'));
  mkdirSync(path.join(trust, 'containers', 'registries.d'), { recursive: true });
  const keyData = Buffer.from(readFileSync(pub)).toString('base64');
  writeFileSync(
    path.join(trust, 'containers', 'policy.json'),
    JSON.stringify({
      default: [{ type: 'reject' }],
      transports: { docker: { [registry.host]: [{ type: 'sigstoreSigned', keyData, signedIdentity: { type: 'matchRepository' } }] } },
    }),
  );
  writeFileSync(path.join(trust, 'containers', 'registries.d', 'signet.yaml'), `docker:\n  ${registry.host}:\n    use-sigstore-attachments: true\n`);
  const v = await verifyContainers({} as Cell, ref, trust);
  return { ok: v.accepted, out: v.detail };
}

async function cosignAccepts(ref: string, pub: string): Promise<void> {
  for (const bin of [undefined, COSIGN3_BIN()]) {
    const v = await cosignVerify(ref, pub, [], bin ? { bin } : {});
    expect(v.ok, `${bin ?? 'cosign 2.5'}: ${v.stderr}`).toBe(true);
  }
}

describe('the shared .sig config', () => {
  it('is what signet writes, the same blob for every signature of a repository', async () => {
    const one = await pushImage(registry, 'cfg/same', 'v1');
    const two = await pushImage(registry, 'cfg/same', 'v2');
    await signetSign(`${registry.host}/cfg/same:v1`);
    await signetSign(`${registry.host}/cfg/same:v2`);
    const d1 = await sigDocument('cfg/same', one.digest);
    const d2 = await sigDocument('cfg/same', two.digest);
    expect(d1.config).toEqual({ mediaType: 'application/vnd.oci.image.config.v1+json', size: SIGNATURE_CONFIG.length, digest: sha(SIGNATURE_CONFIG) });
    expect(d2.config).toEqual(d1.config);
    const blob = await fetch(`${registry.url}/v2/cfg/same/blobs/${d1.config.digest}`);
    expect(Buffer.from(await blob.arrayBuffer())).toEqual(SIGNATURE_CONFIG);
  });

  it('cosign 2.5 and 3.1 verify, containers/image accepts, crane validate --fast passes', async () => {
    const img = await pushImage(registry, 'cfg/verifiers', 'v1');
    await signetSign(`${registry.host}/cfg/verifiers:v1`);
    const ref = `${registry.host}/cfg/verifiers@${img.digest}`;
    await cosignAccepts(ref, keys.a.pubPath);
    const c = await containersAccept(ref, keys.a.pubPath);
    expect(c.ok, c.out).toBe(true);
    const wrong = await containersAccept(ref, keys.b.pubPath);
    expect(wrong.ok, 'a key that did not sign is refused').toBe(false);
    const v = await craneValidate('cfg/verifiers', img.digest);
    expect(v.ok, v.out).toBe(true);
  });

  it('cosign sign appends to a .sig signet wrote, and signet merges into one cosign wrote: every signature verifies', async () => {
    const first = await pushImage(registry, 'cfg/mixed', 'v1');
    await signetSign(`${registry.host}/cfg/mixed:v1`);
    await cosignSign(`${registry.host}/cfg/mixed@${first.digest}`, keys.b.keyPath, 'sig-config-pw');
    expect((await sigDocument('cfg/mixed', first.digest)).layers).toHaveLength(2);
    await cosignAccepts(`${registry.host}/cfg/mixed@${first.digest}`, keys.a.pubPath);
    await cosignAccepts(`${registry.host}/cfg/mixed@${first.digest}`, keys.b.pubPath);
    expect((await craneValidate('cfg/mixed', first.digest)).ok).toBe(true);

    const second = await pushImage(registry, 'cfg/mixed', 'v2');
    await cosignSign(`${registry.host}/cfg/mixed@${second.digest}`, keys.b.keyPath, 'sig-config-pw');
    const byCosign = await sigDocument('cfg/mixed', second.digest);
    expect(byCosign.config.digest).not.toBe(sha(SIGNATURE_CONFIG)); // cosign's own per-signature config
    await signetSign(`${registry.host}/cfg/mixed:v2`);
    const merged = await sigDocument('cfg/mixed', second.digest);
    expect(merged.layers).toHaveLength(2);
    expect(merged.config.digest).toBe(sha(SIGNATURE_CONFIG));
    await cosignAccepts(`${registry.host}/cfg/mixed@${second.digest}`, keys.a.pubPath);
    await cosignAccepts(`${registry.host}/cfg/mixed@${second.digest}`, keys.b.pubPath);
    const c = await containersAccept(`${registry.host}/cfg/mixed@${second.digest}`, keys.b.pubPath);
    expect(c.ok, c.out).toBe(true);
  });

  it('control: the OCI empty descriptor as the .sig config fails crane validate --fast (why it was not kept)', async () => {
    const img = await pushImage(registry, 'cfg/empty', 'v1');
    await signetSign(`${registry.host}/cfg/empty:v1`);
    const doc = await sigDocument('cfg/empty', img.digest);
    const empty = Buffer.from('{}');
    const start = await fetch(`${registry.url}/v2/cfg/empty/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(start.headers.get('location')!, registry.url);
    loc.searchParams.set('digest', sha(empty));
    expect((await fetch(loc, { method: 'PUT', body: empty })).status).toBe(201);
    doc.config = { mediaType: 'application/vnd.oci.empty.v1+json', size: 2, digest: sha(empty) };
    const put = await fetch(`${registry.url}/v2/cfg/empty/manifests/${sigTag(img.digest)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: JSON.stringify(doc),
    });
    expect(put.status).toBe(201);
    const v = await craneValidate('cfg/empty', img.digest);
    expect(v.ok).toBe(false);
    expect(v.out).toMatch(/RootFS\.Type/);
  });
});
