/**
 * Formats, transparency, certificates and identity, each proved by the real cosign (2.5) against a
 * real docker-registry: Rekor entries (a stand-in with its own ECDSA log key, served over HTTP
 * here) with the SET checked by `cosign verify` and a tampered SET rejected; sigstore bundle v0.3
 * referrers (fallback tag schema: distribution 2.8 has no referrers API) checked by cosign's
 * new-bundle-format verification; both formats at once; a key with a certificate chain checked by
 * `cosign verify --certificate-chain`; identity tag and payload annotations with `cosign verify -a`.
 */
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cosign.js';
import { verifyBundle, verifyCertChain, verifyNoTlog, verifyWithRekor } from '../helpers/cosign-formats.js';
import { deleteManifest, getManifest, pushImage, pushIndex, RegistryClient as KitClient, sha256, sigTag } from '../helpers/images.js';
import { EKU, issueCertificate, makeIntermediateCa, makeRootCa } from '../helpers/pki.js';
import { freePort } from '../helpers/ports.js';
import { emptyTrustedRoot, startRekor, type RekorStandIn } from '../helpers/rekor.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { keySignCalls, pendingJobs, startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'formats-hook-secret-0123456789';
const IDENTITY = 'signet@example.com';
const PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

let quiet: RunningRegistry; // no notifications: signed by direct pipeline calls
let loud: RunningRegistry; // notifies signet: signed on push
let rekor: RekorStandIn;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
const file = (name: string) => path.join(tmp.dir, name);

function writeKey(name: string, kind: 'rsa' | 'ec'): KeyObject {
  const { privateKey, publicKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file(`${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(file(`${name}.pub`), publicKey.export({ type: 'spki', format: 'pem' }));
  return publicKey;
}

beforeAll(async () => {
  tmp = tempDir();
  writeKey('p256', 'ec');
  writeKey('rsa', 'rsa');
  writeKey('other', 'ec');
  const certPub = writeKey('certkey', 'ec');
  // bring-your-own PKI: root -> intermediate -> leaf for certkey (code signing, an email SAN)
  const root = makeRootCa();
  const inter = makeIntermediateCa(root);
  writeFileSync(file('certkey.crt'), issueCertificate({ cn: 'signet signer', publicKey: certPub, issuer: inter, eku: [EKU.codeSigning], email: IDENTITY }));
  writeFileSync(file('chain.pem'), inter.pem + root.pem);
  writeFileSync(file('ca-bundle.json'), emptyTrustedRoot([{ certificates: [inter.pem, root.pem] }]));
  const stranger = makeRootCa('some other root');
  writeFileSync(file('other-chain.pem'), makeIntermediateCa(stranger).pem + stranger.pem);
  // a second log key: what cosign must refuse the SETs with
  writeFileSync(file('wrong-rekor.pub'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));

  rekor = await startRekor();
  writeFileSync(file('rekor.pub'), rekor.publicKeyPem);
  writeFileSync(file('trusted-root.json'), rekor.trustedRoot());
  writeFileSync(file('trusted-root-ca.json'), rekor.trustedRoot({ certificateAuthorities: [{ certificates: [inter.pem, root.pem] }] }));
  writeFileSync(file('no-tlog-root.json'), emptyTrustedRoot());
  writeFileSync(file('wrong-trusted-root.json'), (await startRekorKeyOnly()).trustedRoot());

  const port = await freePort();
  quiet = await startRegistry();
  loud = await startRegistry({ notifyUrl: `http://127.0.0.1:${port}/hooks/local`, notifyHeaders: { Authorization: [`Bearer ${SECRET}`] } });
  const Q = quiet.host;
  const R = rekor.url;
  const yaml = `
registries:
  - { host: "${Q}", insecure: true }
  - { host: "${loud.host}", insecure: true }
integrations:
  - { name: local, kind: distribution, secret: "${SECRET}" }
keys:
  - { name: p256, provider: file, path: p256.pem }
  - { name: rsa, provider: file, path: rsa.pem }
  - { name: certkey, provider: file, path: certkey.pem, certificate: certkey.crt, chain: chain.pem }
rules:
  - match: "${Q}/tlog/**"
    keys: [p256, rsa]
    formats: [legacy]
    rekor: { url: "${R}", publicKey: "\${REKOR_PUB}" }
  - { match: "${Q}/besteffort/**", keys: [p256], rekor: { url: "${R}", required: false, timeoutMs: 1000 } }
  - { match: "${Q}/strict/**", keys: [p256], rekor: { url: "${R}", timeoutMs: 1000 } }
  - { match: "${Q}/bundle/**", keys: [p256], formats: [bundle] }
  - { match: "${Q}/both/**", keys: [p256, rsa], formats: [legacy, bundle], rekor: { url: "${R}" } }
  - { match: "${Q}/pki/**", keys: [certkey], formats: [legacy, bundle] }
  - { match: "${Q}/pki-tlog/**", keys: [certkey], formats: [legacy, bundle], rekor: { url: "${R}" } }
  - match: "${Q}/annotated/**"
    keys: [p256]
    formats: [legacy, bundle]
    annotations: { team: platform, tag: "$\${tag}", pusher: "$\${pusher}", source: "$\${registry}/$\${repository}" }
  - { match: "${loud.host}/**", keys: [p256], formats: [legacy, bundle], untagged: sign }
`;
  signet = await startSignet(yaml, { baseDir: tmp.dir, port, env: { REKOR_PUB: rekor.publicKeyPem } });
}, 120_000);

/** A trusted root for a log whose key is not the stand-in's. */
async function startRekorKeyOnly(): Promise<RekorStandIn> {
  const r = await startRekor();
  await r.stop();
  return r;
}

afterAll(async () => {
  await signet?.stop();
  await quiet?.stop();
  await loud?.stop();
  await rekor?.stop();
  tmp?.remove();
});

const sign = (repository: string, tag: string, extra: { pusher?: string } = {}) =>
  signet.runtime.pipeline.sign({ host: quiet.host, repository, tag, ...extra });

async function sigLayers(reg: RunningRegistry, repo: string, digest: string): Promise<any[]> {
  const m = await getManifest(reg, repo, sigTag(digest));
  return m.status === 404 ? [] : JSON.parse(m.body.toString()).layers;
}

async function fallbackIndex(reg: RunningRegistry, repo: string, digest: string): Promise<any | undefined> {
  const m = await getManifest(reg, repo, digest.replace(':', '-'));
  return m.status === 404 ? undefined : JSON.parse(m.body.toString());
}

describe('Rekor (hashedrekord entries, dev.sigstore.cosign/bundle)', () => {
  it('logs each signature; cosign verify checks the SET with the log key; another log key and a tampered SET are rejected', async () => {
    const img = await pushImage(quiet, 'tlog/app', 'v1');
    const before = rekor.size();
    const report = await sign('tlog/app', 'v1');
    expect(report.status).toBe('signed');
    if (report.status !== 'signed') return;
    expect(report.signatures.map((s) => [s.key, s.format, s.outcome, s.tlog?.status])).toEqual([
      ['p256', 'legacy', 'signed', 'logged'],
      ['rsa', 'legacy', 'signed', 'logged'],
    ]);
    expect(rekor.size()).toBe(before + 2);
    const layers = await sigLayers(quiet, 'tlog/app', img.digest);
    expect(layers).toHaveLength(2);
    for (const l of layers) {
      const b = JSON.parse(l.annotations['dev.sigstore.cosign/bundle']);
      expect(Object.keys(b)).toEqual(['SignedEntryTimestamp', 'Payload']);
      expect(Object.keys(b.Payload)).toEqual(['body', 'integratedTime', 'logIndex', 'logID']);
      expect(b.Payload.logID).toBe(rekor.logId);
      const body = JSON.parse(Buffer.from(b.Payload.body, 'base64').toString());
      expect([body.kind, body.apiVersion, body.spec.data.hash.value]).toEqual(['hashedrekord', '0.0.1', l.digest.slice(7)]);
    }
    const ref = `${quiet.host}/tlog/app@${img.digest}`;
    for (const k of ['p256', 'rsa']) {
      const v = await verifyWithRekor(ref, file(`${k}.pub`), file('rekor.pub'));
      expect(v.ok, v.stderr).toBe(true);
    }
    const wrongLog = await verifyWithRekor(ref, file('p256.pub'), file('wrong-rekor.pub'));
    expect(wrongLog.ok).toBe(false);
    expect(wrongLog.stderr).toMatch(/rekor|bundle|log/i);

    // tamper with one SET byte on every layer and put the manifest back
    const kit = new KitClient(quiet);
    const m = await getManifest(quiet, 'tlog/app', sigTag(img.digest));
    const doc = JSON.parse(m.body.toString());
    for (const l of doc.layers) {
      const b = JSON.parse(l.annotations['dev.sigstore.cosign/bundle']);
      const set = Buffer.from(b.SignedEntryTimestamp, 'base64');
      set[set.length - 3] ^= 0x01;
      b.SignedEntryTimestamp = set.toString('base64');
      l.annotations['dev.sigstore.cosign/bundle'] = JSON.stringify(b);
    }
    await kit.putManifest('tlog/app', sigTag(img.digest), Buffer.from(JSON.stringify(doc)), 'application/vnd.oci.image.manifest.v1+json');
    const tampered = await verifyWithRekor(ref, file('p256.pub'), file('rekor.pub'));
    expect(tampered.ok).toBe(false);
    expect(tampered.stderr).toMatch(/unable to verify SET|SET|signature/i);
    // the signature itself is intact: without the log check it still verifies
    expect((await verifyNoTlog(ref, file('p256.pub'))).ok).toBe(true);
  });

  it('the .sig lost after logging: signing again reuses each signature (no key call) and meets Rekor 409: the existing entries', async () => {
    const keyCalls = () => keySignCalls(signet);
    const img = await pushImage(quiet, 'tlog/rsa', 'v1');
    const first = await sign('tlog/rsa', 'v1');
    const firstLayers = await sigLayers(quiet, 'tlog/rsa', img.digest);
    // lose the .sig (as if the write had failed after logging) and sign again
    const sig = await getManifest(quiet, 'tlog/rsa', sigTag(img.digest));
    await deleteManifest(quiet, 'tlog/rsa', sha256(sig.body));
    const size = rekor.size();
    const calls = await keyCalls();
    const again = await sign('tlog/rsa', 'v1');
    if (first.status !== 'signed' || again.status !== 'signed') throw new Error('not signed');
    // the signatures made a moment ago are reused (src/signing/signature-memo.ts): the same
    // bytes, so Rekor answers 409 with the entry the first attempt made, for RSA and ECDSA alike
    expect((await keyCalls()) - calls).toBe(0);
    for (const key of ['rsa', 'p256']) {
      const a = first.signatures.find((s) => s.key === key)!;
      const b = again.signatures.find((s) => s.key === key)!;
      expect(b.outcome).toBe('signed');
      expect(b.tlog?.status).toBe('existing');
      expect(b.tlog?.logIndex).toBe(a.tlog?.logIndex);
    }
    expect(rekor.size()).toBe(size);
    expect(rekor.requests.filter((r) => r.status === 409).length).toBeGreaterThanOrEqual(2);
    // the same entries (Rekor signs a fresh SET whenever an entry is served, so compare the payloads)
    const payloads = (layers: any[]) => layers.map((l) => JSON.parse(l.annotations['dev.sigstore.cosign/bundle']).Payload);
    expect(payloads(await sigLayers(quiet, 'tlog/rsa', img.digest)).sort((x, y) => x.logIndex - y.logIndex)).toEqual(
      payloads(firstLayers).sort((x, y) => x.logIndex - y.logIndex),
    );
    for (const key of ['rsa', 'p256']) {
      const v = await verifyWithRekor(`${quiet.host}/tlog/rsa@${img.digest}`, file(`${key}.pub`), file('rekor.pub'));
      expect(v.ok, `${key}: ${v.stderr}`).toBe(true);
    }
  });

  it('required: Rekor down -> retryable REKOR_UNAVAILABLE and nothing written; Rekor back -> signed', async () => {
    const img = await pushImage(quiet, 'strict/app', 'v1');
    rekor.fail(503, Number.POSITIVE_INFINITY);
    try {
      await expect(sign('strict/app', 'v1')).rejects.toMatchObject({ code: 'REKOR_UNAVAILABLE', retryable: true });
    } finally {
      rekor.fail(0, 0);
    }
    expect(await sigLayers(quiet, 'strict/app', img.digest)).toEqual([]);
    const report = await sign('strict/app', 'v1');
    expect(report.status === 'signed' && report.signatures[0]!.tlog?.status).toBe('logged');
    expect((await verifyWithRekor(`${quiet.host}/strict/app@${img.digest}`, file('p256.pub'), file('rekor.pub'))).ok).toBe(true);
  });

  it('not required: Rekor down -> signed without an entry; signed again later -> the present signature gets its entry (no new layer)', async () => {
    const img = await pushImage(quiet, 'besteffort/app', 'v1');
    rekor.fail(503, Number.POSITIVE_INFINITY);
    let first;
    try {
      first = await sign('besteffort/app', 'v1');
    } finally {
      rekor.fail(0, 0);
    }
    if (first.status !== 'signed') throw new Error('not signed');
    expect(first.signatures[0]).toMatchObject({ outcome: 'signed', tlog: { status: 'unavailable' } });
    expect(first.signatures[0]!.tlog!.error).toMatch(/REKOR_UNAVAILABLE/);
    const ref = `${quiet.host}/besteffort/app@${img.digest}`;
    expect((await sigLayers(quiet, 'besteffort/app', img.digest))[0].annotations['dev.sigstore.cosign/bundle']).toBeUndefined();
    expect((await verifyNoTlog(ref, file('p256.pub'))).ok).toBe(true);
    expect((await verifyWithRekor(ref, file('p256.pub'), file('rekor.pub'))).ok).toBe(false);

    const later = await sign('besteffort/app', 'v1');
    if (later.status !== 'signed') throw new Error('not signed');
    expect(later.signatures[0]).toMatchObject({ outcome: 'present', upgraded: ['dev.sigstore.cosign/bundle'], tlog: { status: 'logged' } });
    const layers = await sigLayers(quiet, 'besteffort/app', img.digest);
    expect(layers).toHaveLength(1);
    expect(layers[0].annotations['dev.sigstore.cosign/bundle']).toBeDefined();
    const v = await verifyWithRekor(ref, file('p256.pub'), file('rekor.pub'));
    expect(v.ok, v.stderr).toBe(true);
    // and once complete, nothing more happens
    const third = await sign('besteffort/app', 'v1');
    expect(third.status === 'signed' && third.signatures[0]).toMatchObject({ outcome: 'present', tlog: { status: 'present' } });
  });
});

describe('sigstore bundle v0.3 as an OCI 1.1 referrer', () => {
  it('bundle only: a referrer in the fallback tag, no .sig; cosign new-bundle-format verification accepts it, another key does not', async () => {
    const img = await pushImage(quiet, 'bundle/app', 'v1');
    const report = await sign('bundle/app', 'v1');
    if (report.status !== 'signed') throw new Error('not signed');
    expect(report.formats).toEqual(['bundle']);
    expect(report.signatures).toHaveLength(1);
    const s = report.signatures[0]!;
    expect([s.format, s.outcome]).toEqual(['bundle', 'signed']);
    expect(await sigLayers(quiet, 'bundle/app', img.digest)).toEqual([]);
    const idx = await fallbackIndex(quiet, 'bundle/app', img.digest);
    expect(idx.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(idx.manifests).toHaveLength(1);
    expect(idx.manifests[0]).toMatchObject({ digest: s.referrer, artifactType: BUNDLE_V03 });
    expect(idx.manifests[0].annotations['dev.sigstore.bundle.predicateType']).toBe(PREDICATE);
    const referrer = JSON.parse((await getManifest(quiet, 'bundle/app', s.referrer!)).body.toString());
    expect(referrer).toMatchObject({
      artifactType: BUNDLE_V03,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2 },
      subject: { digest: img.digest, mediaType: img.mediaType, size: img.size },
    });
    expect(referrer.layers).toHaveLength(1);

    const ref = `${quiet.host}/bundle/app@${img.digest}`;
    const ok = await verifyBundle(ref, { trustedRoot: file('no-tlog-root.json'), key: file('p256.pub'), ignoreTlog: true });
    expect(ok.ok, ok.stderr).toBe(true);
    const wrong = await verifyBundle(ref, { trustedRoot: file('no-tlog-root.json'), key: file('other.pub'), ignoreTlog: true });
    expect(wrong.ok).toBe(false);
    // cosign 2.5's `verify` does not read bundles; legacy verification finds nothing here
    expect((await verifyNoTlog(ref, file('p256.pub'))).ok).toBe(false);

    // signing again finds the bundle present: no second referrer
    const again = await sign('bundle/app', 'v1');
    expect(again.status === 'signed' && again.signatures[0]).toMatchObject({ outcome: 'present', referrer: s.referrer });
    expect((await fallbackIndex(quiet, 'bundle/app', img.digest)).manifests).toHaveLength(1);
  });

  it('both formats with Rekor, on an index and its children: the legacy SET and the bundle tlog entry both verify', async () => {
    const idx = await pushIndex(quiet, 'both/multi', 'v1', ['linux/amd64', 'linux/arm64']);
    const report = await sign('both/multi', 'v1');
    if (report.status !== 'signed') throw new Error('not signed');
    expect(report.signatures).toHaveLength(3 * 2 * 2);
    expect(report.signatures.every((s) => s.outcome === 'signed' && s.tlog?.status === 'logged')).toBe(true);
    expect(report.signatures.slice(0, 4).map((s) => `${s.format}:${s.key}`)).toEqual(['legacy:p256', 'legacy:rsa', 'bundle:p256', 'bundle:rsa']);
    const ref = `${quiet.host}/both/multi@${idx.digest}`;
    for (const k of ['p256', 'rsa']) {
      const legacy = await verifyWithRekor(ref, file(`${k}.pub`), file('rekor.pub'));
      expect(legacy.ok, legacy.stderr).toBe(true);
      const bundle = await verifyBundle(ref, { trustedRoot: file('trusted-root.json'), key: file(`${k}.pub`) });
      expect(bundle.ok, bundle.stderr).toBe(true);
    }
    const child = await verifyBundle(`${quiet.host}/both/multi@${idx.children[1]}`, { trustedRoot: file('trusted-root.json'), key: file('p256.pub') });
    expect(child.ok, child.stderr).toBe(true);
    // the tlog entry is checked: a trusted root naming another log refuses the bundle
    const otherLog = await verifyBundle(ref, { trustedRoot: file('wrong-trusted-root.json'), key: file('p256.pub') });
    expect(otherLog.ok).toBe(false);
    const index = await fallbackIndex(quiet, 'both/multi', idx.digest);
    expect(index.manifests).toHaveLength(2);
  });
});

describe('certificates (bring your own PKI)', () => {
  it('certificate and chain annotations: cosign verify --certificate-chain accepts, another CA does not; the key still verifies', async () => {
    const img = await pushImage(quiet, 'pki/app', 'v1');
    const report = await sign('pki/app', 'v1');
    expect(report.status).toBe('signed');
    const [layer] = await sigLayers(quiet, 'pki/app', img.digest);
    expect(layer.annotations['dev.sigstore.cosign/certificate']).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(layer.annotations['dev.sigstore.cosign/chain'].match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const ref = `${quiet.host}/pki/app@${img.digest}`;
    const ok = await verifyCertChain(ref, file('chain.pem'), IDENTITY, ['--insecure-ignore-tlog=true']);
    expect(ok.ok, ok.stderr).toBe(true);
    const stranger = await verifyCertChain(ref, file('other-chain.pem'), IDENTITY, ['--insecure-ignore-tlog=true']);
    expect(stranger.ok).toBe(false);
    const wrongIdentity = await verifyCertChain(ref, file('chain.pem'), 'someone@example.com', ['--insecure-ignore-tlog=true']);
    expect(wrongIdentity.ok).toBe(false);
    expect((await verifyNoTlog(ref, file('certkey.pub'))).ok).toBe(true);
    // the bundle carries the certificate; the CA goes into the trusted root
    const bundle = await verifyBundle(ref, { trustedRoot: file('ca-bundle.json'), identity: IDENTITY, ignoreTlog: true, caFile: file('chain.pem') });
    expect(bundle.ok, bundle.stderr).toBe(true);
  });

  it('certificate and Rekor: both entries name the certificate; cosign 2.5 checks the .sig through the certificate with the log (another log refused; --key is refused: cosign 2.x compares the entry with the key it is given), the bundle with the CA and the log', async () => {
    const img = await pushImage(quiet, 'pki-tlog/app', 'v1');
    const report = await sign('pki-tlog/app', 'v1');
    expect(report.status === 'signed' && report.signatures.map((s) => s.tlog?.status)).toEqual(['logged', 'logged']);
    const ref = `${quiet.host}/pki-tlog/app@${img.digest}`;
    const [layer] = await sigLayers(quiet, 'pki-tlog/app', img.digest);
    const body = JSON.parse(Buffer.from(JSON.parse(layer.annotations['dev.sigstore.cosign/bundle']).Payload.body, 'base64').toString());
    expect(new X509Certificate(Buffer.from(body.spec.signature.publicKey.content, 'base64')).raw).toEqual(
      new X509Certificate(layer.annotations['dev.sigstore.cosign/certificate']).raw,
    );
    const withLog = (rekorPub: string) => verifyCertChain(ref, file('chain.pem'), IDENTITY, ['--offline=true'], { SIGSTORE_REKOR_PUBLIC_KEY: rekorPub });
    const legacy = await withLog(file('rekor.pub'));
    expect(legacy.ok, legacy.stderr).toBe(true);
    expect((await withLog(file('wrong-rekor.pub'))).ok).toBe(false);
    const byKey = await verifyWithRekor(ref, file('certkey.pub'), file('rekor.pub'));
    expect(byKey.ok).toBe(false);
    expect(byKey.stderr).toMatch(/comparing public key PEMs, expected -----BEGIN PUBLIC KEY-----/);
    expect((await verifyNoTlog(ref, file('certkey.pub'))).ok).toBe(true);
    const bundle = await verifyBundle(ref, { trustedRoot: file('trusted-root-ca.json'), identity: IDENTITY, caFile: file('chain.pem') });
    expect(bundle.ok, bundle.stderr).toBe(true);
  });
});

describe('identity and payload annotations', () => {
  it('identity tag writes registry/repo:tag; annotations reach the verified payload and cosign -a matches them', async () => {
    const img = await pushImage(quiet, 'annotated/app', 'v3');
    const report = await sign('annotated/app', 'v3', { pusher: 'alice' });
    if (report.status !== 'signed') throw new Error('not signed');
    const want = { pusher: 'alice', source: `${quiet.host}/annotated/app`, tag: 'v3', team: 'platform' };
    expect(report.identity).toBe(`${quiet.host}/annotated/app:v3`);
    expect(report.annotations).toEqual(want);
    const ref = `${quiet.host}/annotated/app:v3`;
    const v = await verifyNoTlog(ref, file('p256.pub'), ['-a', 'team=platform', '-a', 'tag=v3', '-a', 'pusher=alice']);
    expect(v.ok, v.stderr).toBe(true);
    expect(v.outputs[0].critical.identity['docker-reference']).toBe(`${quiet.host}/annotated/app:v3`);
    expect(v.outputs[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    expect(v.outputs[0].optional).toEqual(want);
    expect((await verifyNoTlog(ref, file('p256.pub'), ['-a', 'team=other'])).ok).toBe(false);
    expect((await verifyNoTlog(ref, file('p256.pub'), ['-a', 'pusher=mallory'])).ok).toBe(false);
    // the bundle's statement carries them as the subject's annotations (what cosign v3 sign -a writes)
    const b = await verifyBundle(ref, { trustedRoot: file('no-tlog-root.json'), key: file('p256.pub'), ignoreTlog: true });
    expect(b.ok, b.stderr).toBe(true);
    const envelope = JSON.parse(b.stdout.trim().split('\n').pop()!);
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString());
    expect(statement.subject).toEqual([{ digest: { sha256: img.digest.slice(7) }, annotations: want }]);
    expect(statement.predicateType).toBe(PREDICATE);
  });
});

describe('signing on push with both formats', () => {
  it("signet's referrer (pushed by digest, with a subject) and fallback tag pushes cause no further signing", async () => {
    const img = await pushImage(loud, 'loop/app', 'v1');
    await waitFor('legacy signature', async () => ((await sigLayers(loud, 'loop/app', img.digest)).length === 1 ? true : undefined));
    const index = await waitFor('bundle referrer', async () => (await fallbackIndex(loud, 'loop/app', img.digest))?.manifests?.[0]);
    await waitFor('the referrer push reached the worker and was skipped', () =>
      signet.logs.some((l) => l.msg === 'not signed' && /subject/.test(String(l.reason)) && String(l.ref).includes('loop/app')),
    );
    await waitFor('queue drained', async () => (await pendingJobs(signet)) === 0);
    const referrerDigest = index.digest as string;
    expect(await sigLayers(loud, 'loop/app', referrerDigest)).toEqual([]);
    expect(await fallbackIndex(loud, 'loop/app', referrerDigest)).toBeUndefined();
    const ignored = signet.logs.flatMap((l) => l.ignored ?? []).map((i: any) => `${i.ref} ${i.reason}`);
    expect(ignored.some((r) => r.includes(`loop/app:${img.digest.replace(':', '-')}`))).toBe(true);
    const signedJobs = signet.logs.filter((l) => l.msg === 'signed' && String(l.ref).includes('loop/app'));
    expect(signedJobs).toHaveLength(1);
    const v = await verifyBundle(`${loud.host}/loop/app:v1`, { trustedRoot: file('no-tlog-root.json'), key: file('p256.pub'), ignoreTlog: true });
    expect(v.ok, v.stderr).toBe(true);
  });
});
