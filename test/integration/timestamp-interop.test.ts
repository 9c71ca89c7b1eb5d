/**
 * Real verifiers accept signet's RFC 3161 timestamps: sigstore bundles v0.3 for a blob signed with
 * a P-256 key (a message signature, and a DSSE in-toto statement), whose
 * `timestampVerificationData.rfc3161Timestamps` come from TimestampClient against the TSA
 * stand-in, checked by
 * - @sigstore/verify 3.1.1 with a trust material listing the TSA and the key (a timestamp is
 *   required: no tlog entry), and refused when the trust material lists another TSA;
 * - cosign 3.1 `verify-blob` / `verify-blob-attestation --bundle --key --trusted-root
 *   --use-signed-timestamps --insecure-ignore-tlog`, with a trusted root made by
 *   `cosign trusted-root create --tsa url=...,certificate-chain=...`, and refused with another
 *   TSA's root;
 * - cosign 3.1 on the legacy form: `{"SignedRFC3161Timestamp": ...}` (the .sig annotation value)
 *   over the raw signature bytes is accepted, over their base64 text refused;
 * - openssl ts -verify (the TimeStampResp on its own, over the signature bytes).
 * The trust material for @sigstore/verify is signet's own TrustedRoot entry
 * (trustedRootTimestampAuthority), checked equal to what `cosign trusted-root create --tsa` writes.
 * The bundle JSON is built here (signet's buildBundle will gain the field when the lead wires it).
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundleRfc3161Timestamp,
  legacyRfc3161Annotation,
  parseTimestampChain,
  TimestampClient,
  trustedRootTimestampAuthority,
  verifyTimestamp,
} from '../../src/transparency/timestamp.js';
import { COSIGN3_BIN, cosignEnv, tempDir } from '../helpers/cosign.js';
import { runProcess, type RunResult } from '../helpers/proc.js';
import { startTsa, type TsaStandIn } from '../helpers/tsa.js';

const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const PREDICATE_TYPE = 'https://signet.dev/test/v1';

let tsa: TsaStandIn;
let wrongTsa: TsaStandIn;
let client: TimestampClient;
const tmp = tempDir('signet-tsa-interop-');
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = key.publicKey.export({ type: 'spki', format: 'der' });
const hint = createHash('sha256').update(spki).digest('base64');
const blob = Buffer.from('a blob signet signs\n');
const blobPath = join(tmp.dir, 'blob.txt');
const pubPath = join(tmp.dir, 'key.pub');

let messageBundle: Record<string, unknown>;
let dsseBundle: Record<string, unknown>;
let messageSignature: Buffer;

function pae(type: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload]);
}

function verificationMaterial(ts: { response: Buffer }) {
  return { publicKey: { hint }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [bundleRfc3161Timestamp(ts)] } };
}

/** A TrustedRoot (JSON form) listing one timestamp authority, with signet's entry for it. */
function trustedRootJson(t: TsaStandIn) {
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    timestampAuthorities: [trustedRootTimestampAuthority(parseTimestampChain(t.chainPem), t.url)],
  };
}

function sigstoreJsVerify(bundle: Record<string, unknown>, t: TsaStandIn): void {
  const trust = toTrustMaterial(TrustedRoot.fromJSON(trustedRootJson(t)), {
    [hint]: { rawBytes: spki, keyDetails: 5 /* PKIX_ECDSA_P256_SHA_256 */, validFor: { start: new Date(0) } },
  });
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 1 });
  verifier.verify(toSignedEntity(bundleFromJSON(bundle), blob));
}

async function cosign(args: string[]): Promise<RunResult> {
  const sandbox = tempDir('signet-cosign-');
  try {
    execFileSync('mkdir', ['-p', join(sandbox.dir, 'home', '.docker'), join(sandbox.dir, 'tuf')]);
    return await runProcess(COSIGN3_BIN(), args, { env: cosignEnv(sandbox.dir), cwd: sandbox.dir, timeoutMs: 60_000 });
  } finally {
    sandbox.remove();
  }
}

async function cosignTrustedRoot(t: TsaStandIn, name: string): Promise<string> {
  const chain = join(tmp.dir, `${name}-chain.pem`);
  const out = join(tmp.dir, `${name}-trusted-root.json`);
  writeFileSync(chain, t.chainPem);
  const r = await cosign(['trusted-root', 'create', `--tsa=url=${t.url},certificate-chain=${chain}`, '--out', out]);
  expect(r.code, `cosign trusted-root create: ${r.stderr}`).toBe(0);
  return out;
}

beforeAll(async () => {
  expect(existsSync(COSIGN3_BIN()), `cosign 3.1 at ${COSIGN3_BIN()}`).toBe(true);
  [tsa, wrongTsa] = await Promise.all([startTsa(), startTsa()]);
  client = new TimestampClient({ url: tsa.url, chain: tsa.chainPem });
  writeFileSync(blobPath, blob);
  writeFileSync(pubPath, key.publicKey.export({ type: 'spki', format: 'pem' }) as string);

  // a message signature over the blob; the timestamp covers the signature bytes
  messageSignature = sign('sha256', blob, key.privateKey);
  const ts1 = await client.timestamp(messageSignature);
  messageBundle = {
    mediaType: BUNDLE_V03,
    verificationMaterial: verificationMaterial(ts1),
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(blob).digest('base64') },
      signature: messageSignature.toString('base64'),
    },
  };

  // a DSSE in-toto statement about the blob; the timestamp covers the envelope signature bytes
  const statement = Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'blob.txt', digest: { sha256: createHash('sha256').update(blob).digest('hex') } }],
      predicateType: PREDICATE_TYPE,
      predicate: { note: 'timestamped by signet' },
    }),
  );
  const type = 'application/vnd.in-toto+json';
  const dsseSig = sign('sha256', pae(type, statement), key.privateKey);
  const ts2 = await client.timestamp(dsseSig);
  dsseBundle = {
    mediaType: BUNDLE_V03,
    verificationMaterial: verificationMaterial(ts2),
    dsseEnvelope: { payload: statement.toString('base64'), payloadType: type, signatures: [{ sig: dsseSig.toString('base64') }] },
  };
  writeFileSync(join(tmp.dir, 'message.bundle.json'), JSON.stringify(messageBundle));
  writeFileSync(join(tmp.dir, 'dsse.bundle.json'), JSON.stringify(dsseBundle));
});

afterAll(async () => {
  await client?.close();
  await Promise.all([tsa?.stop(), wrongTsa?.stop()]);
  tmp.remove();
});

describe('@sigstore/verify 3.1.1', () => {
  it('accepts the message-signature bundle timestamped by the configured TSA, refuses it with another TSA', () => {
    expect(() => sigstoreJsVerify(messageBundle, tsa)).not.toThrow();
    expect(() => sigstoreJsVerify(messageBundle, wrongTsa)).toThrow(/timestamp/i);
  });

  it('accepts the DSSE bundle, refuses it with another TSA', () => {
    expect(() => sigstoreJsVerify(dsseBundle, tsa)).not.toThrow();
    expect(() => sigstoreJsVerify(dsseBundle, wrongTsa)).toThrow(/timestamp/i);
  });

  it('the timestamp is what makes it pass: without one (and no tlog) the same bundle is refused', () => {
    const bare = { ...messageBundle, verificationMaterial: { publicKey: { hint }, tlogEntries: [] } };
    expect(() => sigstoreJsVerify(bare, tsa)).toThrow();
  });
});

describe('cosign 3.1', () => {
  const verifyArgs = (bundle: string, root: string) => [
    '--bundle',
    join(tmp.dir, bundle),
    '--key',
    pubPath,
    '--trusted-root',
    root,
    '--use-signed-timestamps',
    '--insecure-ignore-tlog',
  ];

  it('trusted-root create --tsa writes the same timestampAuthorities entry as signet (trustedRootTimestampAuthority)', async () => {
    const made = JSON.parse(readFileSync(await cosignTrustedRoot(tsa, 'same'), 'utf8')) as Record<string, unknown>;
    expect(made).toEqual(trustedRootJson(tsa));
  });

  it('verify-blob accepts the message-signature bundle with the TSA in its trusted root, refuses another TSA', async () => {
    const root = await cosignTrustedRoot(tsa, 'good');
    const ok = await cosign(['verify-blob', ...verifyArgs('message.bundle.json', root), blobPath]);
    expect(`${ok.code} ${ok.stderr}`).toMatch(/^0 [\s\S]*Verified OK/);
    const wrongRoot = await cosignTrustedRoot(wrongTsa, 'wrong');
    const bad = await cosign(['verify-blob', ...verifyArgs('message.bundle.json', wrongRoot), blobPath]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/threshold not met for verified signed timestamps/);
  });

  it('verify-blob-attestation accepts the DSSE bundle, refuses another TSA', async () => {
    const root = await cosignTrustedRoot(tsa, 'good2');
    const args = (r: string) => ['verify-blob-attestation', ...verifyArgs('dsse.bundle.json', r), '--type', PREDICATE_TYPE, blobPath];
    const ok = await cosign(args(root));
    expect(`${ok.code} ${ok.stderr}`).toMatch(/^0 [\s\S]*Verified OK/);
    const bad = await cosign(args(await cosignTrustedRoot(wrongTsa, 'wrong2')));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/threshold not met for verified signed timestamps/);
  });
});

describe('cosign 3.1, the legacy annotation', () => {
  // verify-blob --signature/--rfc3161-timestamp goes through the same check as a legacy .sig layer
  // (pkg/cosign/verify.go VerifyRFC3161Timestamp over static.NewSignature(blob, b64sig, WithRFC3161Timestamp))
  // cosign 3.1 takes --trusted-root only with the new bundle format: the legacy path is given the
  // TSA chain file (--timestamp-certificate-chain, what cosign 2.x users pass)
  const legacy = async (timestamped: Buffer, name: string, t: TsaStandIn) => {
    const chain = join(tmp.dir, `${name}-tsa-chain.pem`);
    writeFileSync(chain, t.chainPem);
    const ts = await client.timestamp(timestamped);
    writeFileSync(join(tmp.dir, `${name}.sig`), messageSignature.toString('base64'));
    writeFileSync(join(tmp.dir, `${name}.ts.json`), legacyRfc3161Annotation(ts));
    return cosign([
      'verify-blob',
      '--signature',
      join(tmp.dir, `${name}.sig`),
      '--rfc3161-timestamp',
      join(tmp.dir, `${name}.ts.json`),
      '--key',
      pubPath,
      '--timestamp-certificate-chain',
      chain,
      '--use-signed-timestamps',
      '--insecure-ignore-tlog',
      blobPath,
    ]);
  };

  it('accepts {"SignedRFC3161Timestamp": TimeStampResp} over the raw signature bytes, not over their base64 text', async () => {
    const ok = await legacy(messageSignature, 'raw', tsa);
    expect(`${ok.code} ${ok.stderr}`).toMatch(/^0 [\s\S]*Verified OK/);
    const b64 = await legacy(Buffer.from(messageSignature.toString('base64')), 'b64', tsa);
    expect(b64.code).not.toBe(0);
    expect(b64.stderr).toMatch(/unable to verify RFC3161 timestamp bundle: hashed messages don't match/);
    const wrong = await legacy(messageSignature, 'wrong', wrongTsa);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/unable to verify RFC3161 timestamp/);
  });
});

describe('openssl ts -verify', () => {
  it('verifies the TimeStampResp over the signature bytes with the TSA root; not with another root', () => {
    const ts = Buffer.from(
      (messageBundle['verificationMaterial'] as ReturnType<typeof verificationMaterial>).timestampVerificationData.rfc3161Timestamps[0]!.signedTimestamp,
      'base64',
    );
    expect(verifyTimestamp(ts, messageSignature, tsa.chainPem).genTime).toBeInstanceOf(Date);
    const files = {
      resp: join(tmp.dir, 'resp.tsr'),
      data: join(tmp.dir, 'sig.bin'),
      root: join(tmp.dir, 'root.pem'),
      leaf: join(tmp.dir, 'leaf.pem'),
      wrong: join(tmp.dir, 'wrong-root.pem'),
    };
    writeFileSync(files.resp, ts);
    writeFileSync(files.data, messageSignature);
    writeFileSync(files.root, tsa.rootPem);
    writeFileSync(files.leaf, tsa.leafPem);
    writeFileSync(files.wrong, wrongTsa.rootPem);
    const run = (root: string) =>
      runProcess('openssl', ['ts', '-verify', '-data', files.data, '-in', files.resp, '-CAfile', root, '-untrusted', files.leaf], { timeoutMs: 30_000 });
    return Promise.all([run(files.root), run(files.wrong)]).then(([ok, bad]) => {
      expect(`${ok.code} ${ok.stdout}${ok.stderr}`).toMatch(/^0 [\s\S]*Verification: OK/);
      expect(bad.code).not.toBe(0);
    });
  });
});
