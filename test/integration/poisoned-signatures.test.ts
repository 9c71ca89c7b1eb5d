/**
 * Hostile signature storage on real parts (issue 14 items 4 and 7): a real docker-registry that
 * notifies signet (receiver and worker in process, real Redis), the real cosign 2.5, and the
 * fault proxy where the registry must misbehave on purpose.
 *
 * - A `.sig` planted before the image is pushed, with 12,000 layers claiming the payload signet
 *   signs (it is deterministic) and signatures by no key: the worker writes a .sig cosign
 *   verifies, with no planted layer, and the event loop is not stalled meanwhile.
 * - A .sig that already holds 1,000 layers signet may not drop: the job fails with
 *   SIGNATURE_LIMIT_EXCEEDED (counted in a metric), never `signed`.
 * - `signet verify` refuses a .sig over cosign's layer limit, as cosign does.
 * - An index child the registry answers HEAD for but does not serve by GET (or serves other bytes
 *   for) is not signed.
 * - A referrer whose annotations claim signet's bundle, behind a blob redirect signet does not
 *   follow, does not count as present: signet writes its own bundle.
 */
import { generateKeyPairSync, randomBytes, sign as rawSign, verify, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { isSignetError } from '../../src/errors.js';
import {
  buildBundle,
  keyId,
  pae,
  INTOTO_PAYLOAD_TYPE,
  referrerAnnotations,
  referrerManifest,
  referrersTag,
  appendToIndex,
  signStatement,
  EMPTY_CONFIG,
  BUNDLE_V03,
} from '../../src/signing/bundle.js';
import { buildSignatureManifest, type SignatureLayer } from '../../src/signing/legacy-sig.js';
import { simpleSigningPayload } from '../../src/signing/payload.js';
import type { VerifyReport } from '../../src/verify/verify.js';
import { COSIGN3_BIN, cosignVerify, tempDir } from '../helpers/cosign.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { getManifest, pushImage, pushIndex, RegistryClient as KitClient, sha256, sigTag, MT } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'poison-hook-secret-0123456789';
const SIG = 'dev.cosignproject.cosign/signature';
const SIMPLE = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** cosign reads no .sig with more layers (maxLayers in sigstore/cosign pkg/oci/remote/signatures.go). */
const COSIGN_MAX_LAYERS = 1000;

let loud: RunningRegistry; // notifies signet: signed on push by the worker
let quiet: RunningRegistry; // behind the fault proxy: signed by direct pipeline calls
let proxy: FaultProxy;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let ourPub: KeyObject;
let cfg: string;
const file = (name: string) => path.join(tmp.dir, name);

beforeAll(async () => {
  tmp = tempDir();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  ourPub = publicKey;
  writeFileSync(file('a.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(file('a.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const port = await freePort();
  loud = await startRegistry({ notifyUrl: `http://127.0.0.1:${port}/hooks/local`, notifyHeaders: { Authorization: [`Bearer ${SECRET}`] } });
  quiet = await startRegistry();
  proxy = await startFaultProxy(quiet.host);
  const yaml = `
registries:
  - { host: "${loud.host}", insecure: true }
  - { host: "${proxy.host}", insecure: true }
integrations:
  - { name: local, kind: distribution, secret: "${SECRET}" }
keys:
  - { name: a, provider: file, path: a.pem }
rules:
  # the .sig under attack: legacy only (with a bundle too, cosign 3 reads the bundle and never the poisoned .sig)
  - { match: "${loud.host}/poison/**", keys: [a], formats: [legacy] }
  - { match: "${proxy.host}/multi/**", keys: [a], formats: [legacy] }
  - { match: "${proxy.host}/bundle/**", keys: [a], formats: [bundle] }
`;
  cfg = file('signet.yaml');
  writeFileSync(cfg, yaml);
  signet = await startSignet(yaml, { baseDir: tmp.dir, port });
}, 120_000);

afterAll(async () => {
  await signet?.stop();
  await proxy?.close();
  await loud?.stop();
  await quiet?.stop();
  tmp?.remove();
});

/** The digest an image variant will have, learnt by pushing it to a repository no rule matches. */
async function digestOfVariant(variant: string): Promise<string> {
  return (await pushImage(loud, 'scratch/any', undefined, { variant })).digest;
}

/** Write `layers` as the .sig of `digest` in `repo`, uploading the blobs they name (`blobs`). */
async function plantSig(reg: RunningRegistry, repo: string, digest: string, layers: SignatureLayer[], blobs: Buffer[]): Promise<void> {
  const c = new KitClient(reg);
  for (const b of blobs) await c.pushBlob(repo, b);
  const built = buildSignatureManifest(layers);
  await c.pushBlob(repo, built.config);
  await c.putManifest(repo, sigTag(digest), built.manifest, MT.ociManifest);
}

const junkSignature = () => randomBytes(71).toString('base64');
const layerOf = (payload: Buffer, signature: string): SignatureLayer => ({
  mediaType: SIMPLE,
  size: payload.length,
  digest: sha256(payload),
  annotations: { [SIG]: signature },
});

async function sigLayers(reg: RunningRegistry, repo: string, digest: string): Promise<SignatureLayer[]> {
  const m = await getManifest(reg, repo, sigTag(digest));
  return m.status === 404 ? [] : JSON.parse(m.body.toString()).layers;
}

/** Wait for the worker's verdict on repo:tag: the log line it writes when the job ends. */
async function jobEnd(repo: string, tag: string): Promise<Record<string, any>> {
  const ref = `${loud.host}/${repo}:${tag}`;
  return waitFor(`the job for ${ref}`, () => signet.logs.find((l) => l.ref === ref && (l.msg === 'signed' || l.msg === 'sign failed')), 60_000);
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await signet.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + v.value, 0);
}

const verifiesWithOurKey = (l: SignatureLayer, payload: Buffer) => {
  try {
    return verify('sha256', payload, ourPub, Buffer.from(l.annotations[SIG]!, 'base64'));
  } catch {
    return false;
  }
};

describe('poisoned .sig (item 4)', () => {
  it("12,000 planted layers claiming signet's payload: not carried forward, the .sig cosign verifies has only signet's layer, the event loop is not stalled", async () => {
    const digest = await digestOfVariant('poison-12000');
    const payload = simpleSigningPayload(`${loud.host}/poison/app:v1`, digest);
    // well-formed ECDSA signatures over that payload by another key: each costs a full verification
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const planted = Array.from({ length: 12_000 }, () => layerOf(payload, rawSign('sha256', payload, attacker).toString('base64')));
    await plantSig(loud, 'poison/app', digest, planted, [payload]);
    expect(await sigLayers(loud, 'poison/app', digest)).toHaveLength(12_000);

    const invalid = await metric('signet_signature_layers_dropped_total', { reason: 'invalid' });
    const unchecked = await metric('signet_signature_layers_dropped_total', { reason: 'unchecked' });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    await pushImage(loud, 'poison/app', 'v1', { variant: 'poison-12000' });
    const end = await jobEnd('poison/app', 'v1');
    delay.disable();
    const maxStallMs = delay.max / 1e6;
    console.log(`event loop: max delay ${maxStallMs.toFixed(1)} ms while the worker handled a .sig with 12,000 planted layers`);

    // The event-loop delay is reported, not asserted (timings are the bench's; a loaded CI machine
    // adds its own). What keeps it small is asserted below, deterministically: the verification work
    // per read is bounded (16 claims verified, on the thread pool) instead of 12,000 on the event loop.
    expect(end.msg).toBe('signed');
    const layers = await sigLayers(loud, 'poison/app', digest);
    expect(layers.length).toBeLessThanOrEqual(COSIGN_MAX_LAYERS);
    expect(layers).toHaveLength(1);
    expect(layers.every((l) => verifiesWithOurKey(l, payload))).toBe(true);
    const v = await cosignVerify(`${loud.host}/poison/app@${digest}`, file('a.pub'));
    expect(v.stderr).not.toContain('exceeded the limit');
    expect(v.ok).toBe(true);
    expect(v.payloads).toHaveLength(1);
    const v3 = await cosignVerify(`${loud.host}/poison/app@${digest}`, file('a.pub'), [], { bin: COSIGN3_BIN() });
    expect(v3.ok, v3.stderr).toBe(true);
    // 16 planted layers verified and refused per .sig read, the others dropped unchecked
    const verifiedRefused = (await metric('signet_signature_layers_dropped_total', { reason: 'invalid' })) - invalid;
    const droppedUnchecked = (await metric('signet_signature_layers_dropped_total', { reason: 'unchecked' })) - unchecked;
    expect(verifiedRefused + droppedUnchecked).toBe(12_000);
    expect(verifiedRefused).toBe(16);
  }, 120_000);

  it('a .sig already at 1,000 layers signet may not drop: SIGNATURE_LIMIT_EXCEEDED and a metric, never signed', async () => {
    const digest = await digestOfVariant('poison-full');
    // another tool's signatures over another payload: not signet's to judge, so kept, and they fill the .sig
    const theirs = simpleSigningPayload(`${loud.host}/poison/full:other`, digest);
    const planted = Array.from({ length: COSIGN_MAX_LAYERS }, () => layerOf(theirs, junkSignature()));
    await plantSig(loud, 'poison/full', digest, planted, [theirs]);

    const before = await metric('signet_signature_limit_exceeded_total', { limit: 'layers' });
    await pushImage(loud, 'poison/full', 'v1', { variant: 'poison-full' });
    const end = await jobEnd('poison/full', 'v1');
    expect(end.msg).toBe('sign failed');
    expect(end.err).toMatch(/^SIGNATURE_LIMIT_EXCEEDED: /);
    expect(await metric('signet_signature_limit_exceeded_total', { limit: 'layers' })).toBe(before + 1);
    expect(signet.logs.some((l) => l.ref === `${loud.host}/poison/full:v1` && l.msg === 'signed')).toBe(false);
    // nothing written: the .sig is as planted
    const layers = await sigLayers(loud, 'poison/full', digest);
    expect(layers).toHaveLength(COSIGN_MAX_LAYERS);
    expect(layers.some((l) => l.digest !== sha256(theirs))).toBe(false);
    // the status store says failed, with the code
    const st = await signet.runtime.status.get(`${loud.host}/poison/full`, digest, 'v1');
    expect(st.map((e) => [e.state, e.code])).toContainEqual(['failed', 'SIGNATURE_LIMIT_EXCEEDED']);
  }, 120_000);

  it("signet verify refuses a .sig over cosign's layer limit (cosign refuses it too), even with signet's signature in it", async () => {
    const img = await pushImage(loud, 'poison/verify', 'v1');
    await jobEnd('poison/verify', 'v1');
    const ours = await sigLayers(loud, 'poison/verify', img.digest);
    expect(ours).toHaveLength(1);
    const ok = await main(
      ['verify', `${loud.host}/poison/verify:v1`, '-c', cfg],
      () => undefined,
      () => undefined,
    );
    expect(ok).toBe(0);

    // someone appends 1,000 layers after signet's
    const junk = Buffer.from('{"junk":true}');
    await plantSig(loud, 'poison/verify', img.digest, [...ours, ...Array.from({ length: COSIGN_MAX_LAYERS }, () => layerOf(junk, junkSignature()))], [junk]);
    const cv = await cosignVerify(`${loud.host}/poison/verify@${img.digest}`, file('a.pub'));
    expect(cv.ok).toBe(false);
    expect(cv.stderr).toContain('exceeded the limit (1000)');
    const cv3 = await cosignVerify(`${loud.host}/poison/verify@${img.digest}`, file('a.pub'), [], { bin: COSIGN3_BIN() });
    expect(cv3.ok).toBe(false);
    expect(cv3.stderr).toContain('exceeded the limit (1000)');

    const out: string[] = [];
    const code = await main(
      ['verify', '--json', `${loud.host}/poison/verify:v1`, '-c', cfg],
      (l) => out.push(l),
      () => undefined,
    );
    const report = JSON.parse(out.join('\n')) as VerifyReport;
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.manifests[0]!.refused).toContain('1001 layers');
    expect(report.manifests[0]!.missing).toEqual([{ key: 'a', format: 'legacy', why: report.manifests[0]!.refused }]);
  }, 120_000);
});

describe('index children are read, not only HEAD-checked (item 7)', () => {
  const childGet = (child: string) => (req: { method?: string; url?: string }) => req.method === 'GET' && req.url === `/v2/multi/app/manifests/${child}`;

  for (const [what, fault, code] of [
    ['answers 404 to a GET of a child it answers HEAD 200 for', { status: 404 }, 'MANIFEST_NOT_FOUND'],
    ['serves other bytes for a child digest', { status: 200 }, 'DIGEST_MISMATCH'],
  ] as const) {
    it(`a registry that ${what}: nothing is signed (${code})`, async () => {
      const tag = `t-${code.toLowerCase()}`;
      const idx = await pushIndex(quiet, 'multi/app', tag, ['linux/amd64', 'linux/arm64']);
      const child = idx.children[1]!;
      proxy.faults.push({ match: childGet(child), times: Infinity, ...fault });
      try {
        const err = await signet.runtime.pipeline.sign({ host: proxy.host, repository: 'multi/app', tag }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isSignetError(err) ? err.code : err).toBe(code);
        expect((err as Error).message).toContain(child);
      } finally {
        proxy.faults.length = 0;
      }
      for (const d of [idx.digest, ...idx.children]) expect((await getManifest(quiet, 'multi/app', sigTag(d))).status).toBe(404);
      // the HEAD alone said yes
      const head = await new KitClient(quiet).request('HEAD', `/v2/multi/app/manifests/${child}`, { headers: { Accept: MT.ociManifest } });
      expect(head.status).toBe(200);
    }, 60_000);
  }
});

describe('bundle dedup trusts verified content only (item 7)', () => {
  it("a planted referrer claiming signet's bundle (annotations), its blob behind a redirect: not present, signet writes its own", async () => {
    const img = await pushImage(quiet, 'bundle/app', 'v1');
    const subject = { mediaType: img.mediaType, digest: img.digest, size: img.size };
    const statement = signStatement(img.digest);
    const ourPem = ourPub.export({ type: 'spki', format: 'pem' }) as string;
    // signed by another key, but annotated as signet's statement and signet's key
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = buildBundle({ statement, signature: rawSign('sha256', pae(INTOTO_PAYLOAD_TYPE, statement), other.privateKey), publicKeyPem: ourPem });
    const manifest = referrerManifest(forged, subject, referrerAnnotations(statement, ourPem));
    const c = new KitClient(quiet);
    await c.pushBlob('bundle/app', forged);
    await c.pushBlob('bundle/app', EMPTY_CONFIG);
    const planted = await c.putManifest('bundle/app', sha256(manifest), manifest, MT.ociManifest);
    const annotations = (JSON.parse(manifest.toString()) as { annotations: Record<string, string> }).annotations;
    expect(annotations['dev.signet.bundle.key']).toBe(keyId(ourPem));
    const index = appendToIndex(undefined, [{ mediaType: MT.ociManifest, digest: planted, size: manifest.length, artifactType: BUNDLE_V03, annotations }]);
    await c.putManifest('bundle/app', referrersTag(img.digest), index.body, MT.ociIndex);

    // S3/GCS-backed registries answer blob GETs with a redirect to storage (not followed by signet)
    proxy.faults.push({
      match: (req) => req.method === 'GET' && req.url === `/v2/bundle/app/blobs/${sha256(forged)}`,
      times: Infinity,
      status: 307,
      headers: { location: 'http://storage.invalid/blob' },
    });
    try {
      const report = await signet.runtime.pipeline.sign({ host: proxy.host, repository: 'bundle/app', tag: 'v1' });
      expect(report.status).toBe('signed');
      if (report.status !== 'signed') return;
      expect(report.signatures).toHaveLength(1);
      expect(report.signatures[0]).toMatchObject({ format: 'bundle', outcome: 'signed' });
      expect(report.signatures[0]!.referrer).not.toBe(planted);
    } finally {
      proxy.faults.length = 0;
    }
    const listed = JSON.parse((await getManifest(quiet, 'bundle/app', referrersTag(img.digest))).body.toString()).manifests;
    expect(listed.map((d: { digest: string }) => d.digest)).toContain(planted);
    expect(listed).toHaveLength(2);
  }, 60_000);
});
