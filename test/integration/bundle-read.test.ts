/**
 * bundle-read.ts against what the real `cosign sign` 3.1 writes: a bundle referrer in a real
 * registry (distribution 2.8: no referrers API, so cosign maintains the `sha256-<hex>` fallback
 * index), read the way signet reads referrers (fallback index -> referrer manifest -> bundle
 * layer blob), then judged by checkBundle for a P-256 key and an RSA key, with and without
 * `-a team=x`, without a transparency log and with the Rekor stand-in as cosign's Rekor v1.
 */
import { createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBundle, imageClaim, parseSigstoreBundle, type SigstoreBundle } from '../../src/signing/bundle-read.js';
import { verifyTimestamp as verifyTs } from '../../src/transparency/timestamp.js';
import { startTsa, type TsaStandIn } from '../helpers/tsa.js';
import { COSIGN3_BIN, cosignEnv, tempDir } from '../helpers/cosign.js';
import { issueSignerChain } from '../helpers/pki.js';
import { MT, pushImage, RegistryClient, sha256 } from '../helpers/images.js';
import { runProcess, type RunResult } from '../helpers/proc.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startRekor, type RekorStandIn } from '../helpers/rekor.js';

const PASSWORD = 'bundle-read-test';
let reg: RunningRegistry;
let rekor: RekorStandIn;
let work: { dir: string; remove: () => void };
const file = (...p: string[]) => path.join(work.dir, ...p);
const keys: Record<'p256' | 'rsa', KeyObject> = {} as never;
let tsa: TsaStandIn;
let otherTsa: TsaStandIn;
let tsaUrl: string;

/** cosign 3.1 in a private sandbox (HOME, TUF_ROOT, dead proxy: no network but loopback), run in the work dir. */
async function cosign3(args: string[]): Promise<RunResult> {
  const sandbox = tempDir('signet-cosign3-');
  try {
    mkdirSync(path.join(sandbox.dir, 'home', '.docker'), { recursive: true });
    mkdirSync(path.join(sandbox.dir, 'tuf'), { recursive: true });
    return await runProcess(COSIGN3_BIN(), args, { env: cosignEnv(sandbox.dir, { COSIGN_PASSWORD: PASSWORD }), cwd: work.dir, timeoutMs: 120_000 });
  } finally {
    sandbox.remove();
  }
}

async function ok(args: string[]): Promise<RunResult> {
  const r = await cosign3(args);
  if (r.code !== 0 || r.timedOut) throw new Error(`cosign ${args.join(' ')} failed (${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.stderr}`);
  return r;
}

/** `cosign sign` 3.1 with a key and a signing config (what decides the tlog), writing a bundle referrer. */
const sign = (ref: string, key: 'p256' | 'rsa', signingConfig: string, extra: string[] = []) =>
  ok(['sign', `--key=${file(`${key}.key`)}`, `--signing-config=${signingConfig}`, '--allow-http-registry=true', '-y', ...extra, ref]);

/** Every sigstore bundle referring to `digest`, read through the referrers fallback tag as signet reads it. */
async function bundlesOf(repo: string, digest: string): Promise<{ bundle: SigstoreBundle; bytes: Buffer; descriptor: Record<string, unknown> }[]> {
  const client = new RegistryClient(reg);
  const accept = { Accept: [MT.ociIndex, MT.ociManifest].join(', ') };
  const idx = await client.expect('GET', `/v2/${repo}/manifests/${digest.replace(':', '-')}`, [200], { headers: accept });
  const out: { bundle: SigstoreBundle; bytes: Buffer; descriptor: Record<string, unknown> }[] = [];
  for (const d of (JSON.parse(idx.body.toString()) as { manifests: Record<string, unknown>[] }).manifests) {
    const m = await client.expect('GET', `/v2/${repo}/manifests/${String(d['digest'])}`, [200], { headers: accept });
    expect(sha256(m.body)).toBe(d['digest']);
    const manifest = JSON.parse(m.body.toString()) as { layers: { mediaType: string; digest: string }[]; subject?: { digest: string } };
    expect(manifest.subject?.digest).toBe(digest);
    const layer = manifest.layers[0]!;
    expect(layer.mediaType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
    const blob = await client.expect('GET', `/v2/${repo}/blobs/${layer.digest}`, [200]);
    expect(sha256(blob.body)).toBe(layer.digest);
    const bundle = parseSigstoreBundle(blob.body);
    expect(bundle, blob.body.toString()).toBeDefined();
    out.push({ bundle: bundle!, bytes: blob.body, descriptor: d });
  }
  return out;
}

beforeAll(async () => {
  work = tempDir('signet-bundle-read-');
  reg = await startRegistry();
  rekor = await startRekor();
  tsa = await startTsa();
  otherTsa = await startTsa();
  tsaUrl = tsa.url;
  // a P-256 key cosign generates, and an RSA-2048 key imported into cosign's format
  await ok(['generate-key-pair', '--output-key-prefix=p256']);
  writeFileSync(file('rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await ok(['import-key-pair', `--key=${file('rsa.pem')}`, '--output-key-prefix=rsa']);
  keys.p256 = createPublicKey(readFileSync(file('p256.pub')));
  keys.rsa = createPublicKey(readFileSync(file('rsa.pub')));
  expect(keys.p256.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  expect(keys.rsa.asymmetricKeyType).toBe('rsa');
  // signing configs: no services at all (the CI-without-Rekor case), and the Rekor stand-in as a Rekor v1
  await ok(['signing-config', 'create', '--no-default-fulcio', '--no-default-rekor', '--no-default-tsa', '--no-default-oidc', `--out=${file('none.json')}`]);
  await ok([
    'signing-config',
    'create',
    '--no-default-fulcio',
    '--no-default-rekor',
    '--no-default-tsa',
    '--no-default-oidc',
    `--rekor=url=${rekor.url},api-version=1,start-time=2020-01-01T00:00:00Z,operator=signet-test`,
    '--rekor-config=ANY',
    `--out=${file('rekor.json')}`,
  ]);
  await ok([
    'signing-config',
    'create',
    '--no-default-fulcio',
    '--no-default-rekor',
    '--no-default-tsa',
    '--no-default-oidc',
    `--tsa=url=${tsaUrl},api-version=1,start-time=2020-01-01T00:00:00Z,operator=signet-test`,
    '--tsa-config=ANY',
    `--out=${file('tsa.json')}`,
  ]);
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  await rekor?.stop();
  await tsa?.stop();
  await otherTsa?.stop();
  work?.remove();
});

describe('cosign sign 3.1 bundles, read and checked', () => {
  for (const key of ['p256', 'rsa'] as const) {
    it(`${key}: accepted for that key, digest and annotation; refused for another key, digest or a missing annotation`, async () => {
      const repo = `bundles/${key}`;
      const img = await pushImage(reg, repo, 'v1');
      const other = await pushImage(reg, repo, 'v2');
      await sign(`${reg.host}/${repo}@${img.digest}`, key, file('none.json'), ['-a', 'team=x']);

      const found = await bundlesOf(repo, img.digest);
      expect(found).toHaveLength(1);
      const { bundle, descriptor } = found[0]!;
      // what the fallback index says about cosign's referrer: neither the bundle media type nor annotations
      expect(descriptor['artifactType']).toBe('application/vnd.oci.empty.v1+json');
      expect(descriptor['annotations']).toBeUndefined();
      expect(bundle.version).toBe('0.3');
      expect(bundle.verifier.kind).toBe('publicKey');
      expect(bundle.tlogEntries).toEqual([]);
      expect(imageClaim(bundle)).toEqual({
        kind: 'statement',
        statementType: 'https://in-toto.io/Statement/v1',
        predicateType: 'https://sigstore.dev/cosign/sign/v1',
        subjects: [{ digests: [img.digest], annotations: { team: 'x' } }],
      });

      const signer = { publicKey: keys[key] };
      expect(await checkBundle(bundle, { digest: img.digest, annotations: { team: 'x' } }, signer)).toEqual({ ok: true, tlogEntries: 0, timestamps: 0 });
      expect(await checkBundle(bundle, { digest: img.digest }, signer)).toEqual({ ok: true, tlogEntries: 0, timestamps: 0 });
      const otherKey = key === 'p256' ? keys.rsa : keys.p256;
      expect(await checkBundle(bundle, { digest: img.digest }, { publicKey: otherKey })).toEqual({ ok: false, why: 'signature does not verify with the key' });
      expect(await checkBundle(bundle, { digest: other.digest }, signer)).toEqual({ ok: false, why: `statement does not name ${other.digest}` });
      expect(await checkBundle(bundle, { digest: img.digest, annotations: { team: 'x', env: 'prod' } }, signer)).toEqual({
        ok: false,
        why: 'annotation env missing',
      });
      expect(await checkBundle(bundle, { digest: img.digest, annotations: { team: 'y' } }, signer)).toEqual({ ok: false, why: 'annotation team differs' });
      // no log was used: a caller that requires one gets told so
      expect(await checkBundle(bundle, { digest: img.digest }, signer, { rekorKeys: [createPublicKey(rekor.publicKeyPem)] })).toEqual({
        ok: false,
        why: 'no tlog entry',
      });
    }, 120_000);
  }

  it('without -a cosign signs `annotations: {}`: accepted without wanted annotations, refused with one', async () => {
    const repo = 'bundles/plain';
    const img = await pushImage(reg, repo, 'v1');
    await sign(`${reg.host}/${repo}@${img.digest}`, 'p256', file('none.json'));
    const found = await bundlesOf(repo, img.digest);
    expect(found).toHaveLength(1);
    const { bundle, bytes } = found[0]!;
    const statement = JSON.parse(Buffer.from(JSON.parse(bytes.toString()).dsseEnvelope.payload, 'base64').toString());
    expect(statement.subject).toEqual([{ digest: { sha256: img.digest.slice('sha256:'.length) }, annotations: {} }]);
    expect(await checkBundle(bundle, { digest: img.digest }, { publicKey: keys.p256 })).toEqual({ ok: true, tlogEntries: 0, timestamps: 0 });
    expect(await checkBundle(bundle, { digest: img.digest, annotations: { team: 'x' } }, { publicKey: keys.p256 })).toEqual({
      ok: false,
      why: 'annotation team missing',
    });
  }, 120_000);

  it('with the Rekor stand-in as its Rekor v1, cosign writes a dsse entry whose SET and inclusion proof check out with that log key only', async () => {
    const repo = 'bundles/logged';
    const img = await pushImage(reg, repo, 'v1');
    const before = rekor.size();
    await sign(`${reg.host}/${repo}@${img.digest}`, 'p256', file('rekor.json'), ['-a', 'team=x']);
    expect(rekor.size()).toBe(before + 1);
    const found = await bundlesOf(repo, img.digest);
    expect(found).toHaveLength(1);
    const { bundle } = found[0]!;
    expect(bundle.tlogEntries).toHaveLength(1);
    expect(bundle.tlogEntries[0]).toMatchObject({ kind: 'dsse', version: '0.0.1', logId: Buffer.from(rekor.logId, 'hex') });
    expect(bundle.tlogEntries[0]!.signedEntryTimestamp).toBeDefined();
    expect(bundle.tlogEntries[0]!.inclusionProof).toBeDefined();

    const rekorKey = createPublicKey(rekor.publicKeyPem);
    const want = { digest: img.digest, annotations: { team: 'x' } };
    expect(await checkBundle(bundle, want, { publicKey: keys.p256 }, { rekorKeys: [rekorKey] })).toEqual({ ok: true, tlogEntries: 1, timestamps: 0 });
    const anotherLog = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    expect(await checkBundle(bundle, want, { publicKey: keys.p256 }, { rekorKeys: [anotherLog] })).toEqual({
      ok: false,
      why: 'no tlog entry with a SET by a configured Rekor key',
    });
    expect(await checkBundle(bundle, want, { publicKey: keys.rsa }, { rekorKeys: [rekorKey] })).toEqual({
      ok: false,
      why: 'signature does not verify with the key',
    });

    // cosign 3.1 itself reaches the same verdicts with the log checked (trusted root naming the stand-in)
    writeFileSync(file('trusted_root.json'), rekor.trustedRoot());
    const verify = (pub: string, annotation: string) =>
      cosign3([
        'verify',
        `--key=${file(pub)}`,
        `--trusted-root=${file('trusted_root.json')}`,
        '--allow-http-registry=true',
        '-a',
        annotation,
        `${reg.host}/${repo}@${img.digest}`,
      ]);
    const good = await verify('p256.pub', 'team=x');
    expect(good.code, good.stderr).toBe(0);
    expect((await verify('p256.pub', 'team=y')).code).not.toBe(0);
    expect((await verify('rsa.pub', 'team=x')).code).not.toBe(0);
  }, 120_000);

  it('with --certificate (BYO PKI) and the Rekor stand-in: the bundle carries the leaf, the dsse entry names it; accepted for the configured certificate only', async () => {
    const repo = 'bundles/cert';
    const img = await pushImage(reg, repo, 'v1');
    const { certificate, chain } = issueSignerChain(keys.p256);
    writeFileSync(file('leaf.pem'), certificate);
    writeFileSync(file('chain.pem'), chain);
    await sign(`${reg.host}/${repo}@${img.digest}`, 'p256', file('rekor.json'), [
      `--certificate=${file('leaf.pem')}`,
      `--certificate-chain=${file('chain.pem')}`,
    ]);
    const found = await bundlesOf(repo, img.digest);
    expect(found).toHaveLength(1);
    const { bundle } = found[0]!;
    expect(bundle.verifier.kind).toBe('certificate');
    expect(bundle.verifier.kind === 'certificate' && bundle.verifier.certificates.map((c) => c.toString())).toEqual([
      new X509Certificate(certificate).toString(),
    ]);
    const rekorKey = createPublicKey(rekor.publicKeyPem);
    expect(
      await checkBundle(bundle, { digest: img.digest }, { publicKey: keys.p256, certificatePem: certificate, chainPem: chain }, { rekorKeys: [rekorKey] }),
    ).toEqual({
      ok: true,
      tlogEntries: 1,
      timestamps: 0,
    });
    const renewed = issueSignerChain(keys.p256).certificate;
    expect(await checkBundle(bundle, { digest: img.digest }, { publicKey: keys.p256, certificatePem: renewed }, { rekorKeys: [rekorKey] })).toEqual({
      ok: false,
      why: 'certificate is not the configured certificate',
    });
    expect(await checkBundle(bundle, { digest: img.digest }, { publicKey: keys.rsa })).toEqual({ ok: false, why: 'certificate is for another key' });
  }, 120_000);

  it('with a TSA, cosign adds an RFC 3161 timestamp over the signature: the callback gets exactly that, and a verifier of it accepts', async () => {
    const repo = 'bundles/tsa';
    const img = await pushImage(reg, repo, 'v1');
    await sign(`${reg.host}/${repo}@${img.digest}`, 'rsa', file('tsa.json'), ['-a', 'team=x']);
    const found = await bundlesOf(repo, img.digest);
    expect(found).toHaveLength(1);
    const { bundle } = found[0]!;
    expect(bundle.rfc3161Timestamps).toHaveLength(1);
    expect(bundle.tlogEntries).toEqual([]);
    // signet's own verifier, with the TSA's chain (what the rule's timestamp.certificateChain gives)
    const verifyTimestamp = (signature: Buffer, signed: Buffer): Date => verifyTs(signed, signature, tsa.chainPem).genTime;
    const want = { digest: img.digest, annotations: { team: 'x' } };
    expect(await checkBundle(bundle, want, { publicKey: keys.rsa }, { verifyTimestamp, requireTimestamp: true })).toEqual({
      ok: true,
      tlogEntries: 0,
      timestamps: 1,
    });
    const verifyOther = (signature: Buffer, signed: Buffer): Date => verifyTs(signed, signature, otherTsa.chainPem).genTime;
    expect(await checkBundle(bundle, want, { publicKey: keys.rsa }, { verifyTimestamp: verifyOther, requireTimestamp: true })).toEqual({
      ok: false,
      why: 'no timestamp verifies',
    });
  }, 120_000);
});
