/**
 * bundle-read.ts: parsing sigstore bundles anyone may have pushed, and deciding whether one is a
 * valid signature of an image digest by a configured key. Bundles are built with signet's own
 * writer (bundle.ts buildBundle) or by hand in cosign 3's shape; Rekor entries come from the Rekor
 * stand-in (real SETs, Merkle inclusion proofs and signed checkpoints).
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { RFC3161Timestamp } from '@sigstore/core';
import { initializeTSA } from '@sigstore/mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBundle, imageClaim, parseSigstoreBundle, rootFromInclusionProof, type SigstoreBundle } from '../../../src/signing/bundle-read.js';
import { camelKeys } from '../../../src/signing/bundle-schemas.js';
import { buildBundle, envelopeJson, INTOTO_PAYLOAD_TYPE, pae, signStatement } from '../../../src/signing/bundle.js';
import { bundleTlogEntry, proposedDsse, proposedHashedRekord } from '../../../src/transparency/entries.js';
import { RekorClient } from '../../../src/transparency/rekor.js';
import { issueCertificate, issueSignerChain, makeIntermediateCa, makeRootCa, EKU } from '../../helpers/pki.js';
import { startRekor, type RekorStandIn } from '../../helpers/rekor.js';

const HEX = 'ab'.repeat(32);
const D = `sha256:${HEX}`;
const OTHER = `sha256:${'cd'.repeat(32)}`;
const COSIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

type Pair = { privateKey: KeyObject; publicKey: KeyObject };
const p256 = (): Pair => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = (): Pair => generateKeyPairSync('rsa', { modulusLength: 2048 });
const pemOf = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;

let rekor: RekorStandIn;
let otherRekor: RekorStandIn;
let rc: RekorClient;
let rcOther: RekorClient;
let rekorKey: KeyObject;

beforeAll(async () => {
  rekor = await startRekor();
  otherRekor = await startRekor();
  rc = new RekorClient({ url: rekor.url, publicKeyPem: rekor.publicKeyPem, retryDelaysMs: [5], attempts: 2 });
  rcOther = new RekorClient({ url: otherRekor.url, publicKeyPem: otherRekor.publicKeyPem, retryDelaysMs: [5], attempts: 2 });
  rekorKey = createPublicKey(rekor.publicKeyPem);
  // a few unrelated entries first, so inclusion proofs have real audit paths
  for (let i = 0; i < 5; i++) {
    const k = p256();
    const st = signStatement(`sha256:${String(i).repeat(64)}`);
    await rc.createEntry(proposedDsse(envelopeJson(st, sign('sha256', pae(INTOTO_PAYLOAD_TYPE, st), k.privateKey)), pemOf(k.publicKey)));
  }
});

afterAll(async () => {
  await rc?.close();
  await rcOther?.close();
  await rekor?.stop();
  await otherRekor?.stop();
});

/** A DSSE bundle over `statement`, signed by `key`, as signet writes it; `log` adds a dsse entry from that Rekor. */
async function dsseBundle(key: Pair, statement: Buffer, o: { certificatePem?: string; log?: RekorClient } = {}): Promise<Buffer> {
  const signature = sign('sha256', pae(INTOTO_PAYLOAD_TYPE, statement), key.privateKey);
  const tlogEntries: Record<string, unknown>[] = [];
  if (o.log) {
    const e = await o.log.createEntry(proposedDsse(envelopeJson(statement, signature), o.certificatePem ?? pemOf(key.publicKey)));
    tlogEntries.push(bundleTlogEntry(e, 'dsse'));
  }
  return buildBundle({ statement, signature, publicKeyPem: pemOf(key.publicKey), certificatePem: o.certificatePem, tlogEntries });
}

const parse = (b: Buffer | string): SigstoreBundle => {
  const p = parseSigstoreBundle(Buffer.isBuffer(b) ? b : Buffer.from(b));
  expect(p).toBeDefined();
  return p!;
};

/** Rewrite a bundle's JSON (for tampering). */
const edit = (b: Buffer, f: (j: any) => void): Buffer => {
  const j = JSON.parse(b.toString());
  f(j);
  return Buffer.from(JSON.stringify(j));
};

/** The statement cosign 3.1 writes (protojson, `annotations` always present: `{}` without -a). */
const cosignStatement = (digest: string, annotations: Record<string, string> = {}, predicateType = COSIGN_PREDICATE): Buffer => {
  const [alg, hex] = digest.split(':');
  return Buffer.from(
    JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ digest: { [alg!]: hex }, annotations }], predicateType, predicate: {} }),
  );
};

describe('signet bundles', () => {
  it('a key bundle is accepted for its key and digest', async () => {
    const k = p256();
    const b = parse(await dsseBundle(k, signStatement(D)));
    expect(b.version).toBe('0.3');
    expect(b.verifier.kind).toBe('publicKey');
    expect(imageClaim(b)).toEqual({
      kind: 'statement',
      statementType: 'https://in-toto.io/Statement/v1',
      predicateType: COSIGN_PREDICATE,
      subjects: [{ digests: [D], annotations: {} }],
    });
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey })).toEqual({ ok: true, tlogEntries: 0, timestamps: 0 });
  });

  it('an RSA key bundle is accepted', async () => {
    const k = rsa();
    const b = parse(await dsseBundle(k, signStatement(D, { team: 'x' })));
    expect(await checkBundle(b, { digest: D, annotations: { team: 'x' } }, { publicKey: k.publicKey })).toEqual({ ok: true, tlogEntries: 0, timestamps: 0 });
  });

  it('refused: another key, another digest, a missing or different annotation', async () => {
    const k = p256();
    const b = parse(await dsseBundle(k, signStatement(D, { team: 'x' })));
    expect(await checkBundle(b, { digest: D }, { publicKey: p256().publicKey })).toEqual({ ok: false, why: 'signature does not verify with the key' });
    expect(await checkBundle(b, { digest: D }, { publicKey: rsa().publicKey })).toEqual({ ok: false, why: 'signature does not verify with the key' });
    expect(await checkBundle(b, { digest: OTHER }, { publicKey: k.publicKey })).toEqual({ ok: false, why: `statement does not name ${OTHER}` });
    expect(await checkBundle(b, { digest: D, annotations: { env: 'prod' } }, { publicKey: k.publicKey })).toEqual({ ok: false, why: 'annotation env missing' });
    expect(await checkBundle(b, { digest: D, annotations: { team: 'y' } }, { publicKey: k.publicKey })).toEqual({ ok: false, why: 'annotation team differs' });
    // the same subject without annotations carries none
    const bare = parse(await dsseBundle(k, signStatement(D)));
    expect(await checkBundle(bare, { digest: D, annotations: { team: 'x' } }, { publicKey: k.publicKey })).toEqual({
      ok: false,
      why: 'annotation team missing',
    });
  });

  it('refused: another predicate, a tampered payload, a second signature', async () => {
    const k = p256();
    const att = parse(await dsseBundle(k, cosignStatement(D, {}, 'https://slsa.dev/provenance/v1')));
    expect(await checkBundle(att, { digest: D }, { publicKey: k.publicKey })).toEqual({
      ok: false,
      why: 'predicate type https://slsa.dev/provenance/v1 is not https://sigstore.dev/cosign/sign/v1',
    });

    const good = await dsseBundle(k, signStatement(D));
    // the signature stays, the statement now names another image
    const tampered = parse(edit(good, (j) => (j.dsseEnvelope.payload = signStatement(OTHER).toString('base64'))));
    expect(await checkBundle(tampered, { digest: OTHER }, { publicKey: k.publicKey })).toEqual({ ok: false, why: 'signature does not verify with the key' });
    const retyped = parse(edit(good, (j) => (j.dsseEnvelope.payloadType = 'application/json')));
    expect(await checkBundle(retyped, { digest: D }, { publicKey: k.publicKey })).toEqual({ ok: false, why: 'payload type application/json is not in-toto' });
    const two = parse(edit(good, (j) => j.dsseEnvelope.signatures.push(j.dsseEnvelope.signatures[0])));
    expect(await checkBundle(two, { digest: D }, { publicKey: k.publicKey })).toEqual({ ok: false, why: 'DSSE envelope has 2 signatures, a bundle holds one' });
    const notJson = parse(edit(good, (j) => (j.dsseEnvelope.payload = Buffer.from('not json').toString('base64'))));
    expect(imageClaim(notJson)).toBeUndefined();
    expect(await checkBundle(notJson, { digest: D }, { publicKey: k.publicKey })).toEqual({ ok: false, why: 'payload is not an in-toto statement' });
  });

  it("cosign 3's statement (protojson, `annotations: {}`, other key order) is the same claim", async () => {
    const k = p256();
    const st = Buffer.from(
      `{"_type":"https://in-toto.io/Statement/v1", "subject":[{"digest":{"sha256":"${HEX}"}, "annotations":{"team":"x"}}], "predicateType":"${COSIGN_PREDICATE}", "predicate":{}}`,
    );
    const b = parse(await dsseBundle(k, st));
    expect(await checkBundle(b, { digest: D, annotations: { team: 'x' } }, { publicKey: k.publicKey })).toMatchObject({ ok: true });
    const none = parse(await dsseBundle(k, cosignStatement(D)));
    expect(imageClaim(none)).toMatchObject({ subjects: [{ digests: [D], annotations: {} }] });
    expect(await checkBundle(none, { digest: D }, { publicKey: k.publicKey })).toMatchObject({ ok: true });
    // a non-string annotation value never equals a wanted string (cosign compares interface values)
    const num = parse(await dsseBundle(k, Buffer.from(cosignStatement(D).toString().replace('"annotations":{}', '"annotations":{"n":1}'))));
    expect(await checkBundle(num, { digest: D, annotations: { n: '1' } }, { publicKey: k.publicKey })).toEqual({ ok: false, why: 'annotation n differs' });
  });
});

describe('certificates', () => {
  it('a certificate bundle is accepted with the configured certificate (and with the key alone)', async () => {
    const k = p256();
    const { certificate, chain } = issueSignerChain(k.publicKey);
    const b = parse(await dsseBundle(k, signStatement(D), { certificatePem: certificate }));
    expect(b.verifier.kind).toBe('certificate');
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey, certificatePem: certificate, chainPem: chain })).toEqual({
      ok: true,
      tlogEntries: 0,
      timestamps: 0,
    });
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey })).toMatchObject({ ok: true });
  });

  it('refused: another certificate for the same key, a certificate for another key', async () => {
    const k = p256();
    const { certificate } = issueSignerChain(k.publicKey);
    const b = parse(await dsseBundle(k, signStatement(D), { certificatePem: certificate }));
    const renewed = issueSignerChain(k.publicKey).certificate;
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey, certificatePem: renewed })).toEqual({
      ok: false,
      why: 'certificate is not the configured certificate',
    });
    const other = p256();
    const foreign = parse(await dsseBundle(k, signStatement(D), { certificatePem: issueSignerChain(other.publicKey).certificate }));
    expect(await checkBundle(foreign, { digest: D }, { publicKey: k.publicKey })).toEqual({ ok: false, why: 'certificate is for another key' });
  });

  it('a v0.1/v0.2 x509CertificateChain is read (leaf first); v0.3 may not carry one', async () => {
    const k = p256();
    const { certificate, chain } = issueSignerChain(k.publicKey);
    const good = await dsseBundle(k, signStatement(D), { certificatePem: certificate });
    const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('base64');
    const withChain = (mediaType: string) =>
      edit(good, (j) => {
        j.mediaType = mediaType;
        const raws = [certificate, ...chain.split(/(?<=-----END CERTIFICATE-----\n?)/).filter((s) => s.trim())].map((p) => ({ rawBytes: der(p) }));
        j.verificationMaterial = { x509CertificateChain: { certificates: raws } };
      });
    const v02 = parse(withChain('application/vnd.dev.sigstore.bundle+json;version=0.2'));
    expect(v02.version).toBe('0.2');
    expect(v02.verifier.kind === 'certificate' && v02.verifier.certificates.length).toBe(3);
    expect(await checkBundle(v02, { digest: D }, { publicKey: k.publicKey, certificatePem: certificate })).toMatchObject({ ok: true });
    expect(parseSigstoreBundle(withChain('application/vnd.dev.sigstore.bundle.v0.3+json'))).toBeUndefined();
  });
});

describe('transparency log', () => {
  it('a bundle with a dsse entry from the Rekor stand-in is accepted with its log key, and counted', async () => {
    const k = p256();
    const b = parse(await dsseBundle(k, signStatement(D, { team: 'x' }), { log: rc }));
    expect(b.tlogEntries).toHaveLength(1);
    expect(b.tlogEntries[0]).toMatchObject({ kind: 'dsse', version: '0.0.1' });
    expect(b.tlogEntries[0]!.inclusionProof!.hashes.length).toBeGreaterThan(0);
    expect(await checkBundle(b, { digest: D, annotations: { team: 'x' } }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({
      ok: true,
      tlogEntries: 1,
      timestamps: 0,
    });
    // not asked for: not checked, not counted
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey })).toEqual({ ok: true, tlogEntries: 0, timestamps: 0 });
  });

  it('a certificate bundle with a dsse entry naming the certificate is accepted', async () => {
    const k = rsa();
    const { certificate } = issueSignerChain(k.publicKey);
    const b = parse(await dsseBundle(k, signStatement(D), { certificatePem: certificate, log: rc }));
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey, certificatePem: certificate }, { rekorKeys: [rekorKey] })).toEqual({
      ok: true,
      tlogEntries: 1,
      timestamps: 0,
    });
  });

  it('refused: a SET by another log key, no entry, an entry for another signature, an entry naming another verifier', async () => {
    const k = p256();
    const elsewhere = parse(await dsseBundle(k, signStatement(D), { log: rcOther }));
    expect(await checkBundle(elsewhere, { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({
      ok: false,
      why: 'no tlog entry with a SET by a configured Rekor key',
    });
    expect(
      await checkBundle(elsewhere, { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey, createPublicKey(otherRekor.publicKeyPem)] }),
    ).toMatchObject({ ok: true, tlogEntries: 1 });
    // the other log's entry, relabelled with this log's id: its SET does not verify with this log's key
    const relabelled = parse(
      edit(
        await dsseBundle(k, signStatement(D), { log: rcOther }),
        (j) => (j.verificationMaterial.tlogEntries[0].logId.keyId = Buffer.from(rekor.logId, 'hex').toString('base64')),
      ),
    );
    expect(await checkBundle(relabelled, { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({
      ok: false,
      why: 'no tlog entry with a SET by a configured Rekor key',
    });

    const unlogged = parse(await dsseBundle(k, signStatement(D)));
    expect(await checkBundle(unlogged, { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({ ok: false, why: 'no tlog entry' });
    expect(await checkBundle(unlogged, { digest: D }, { publicKey: k.publicKey }, { requireTlog: true })).toEqual({
      ok: false,
      why: 'a tlog entry is required but no Rekor key is configured',
    });
    expect(await checkBundle(unlogged, { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey], requireTlog: false })).toEqual({
      ok: true,
      tlogEntries: 0,
      timestamps: 0,
    });

    // a genuine entry (valid SET) of another signature by the same key, moved into this bundle
    const logged = await dsseBundle(k, signStatement(D, { run: '2' }), { log: rc });
    const moved = parse(
      edit(await dsseBundle(k, signStatement(D)), (j) => (j.verificationMaterial.tlogEntries = JSON.parse(logged.toString()).verificationMaterial.tlogEntries)),
    );
    expect(await checkBundle(moved, { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({
      ok: false,
      why: 'tlog entry 0 does not match the bundle: payload hash',
    });

    // an entry naming the certificate, in a bundle that carries only the key
    const { certificate } = issueSignerChain(k.publicKey);
    const certLogged = await dsseBundle(k, signStatement(D, { run: '3' }), { certificatePem: certificate, log: rc });
    const asKey = parse(
      edit(certLogged, (j) => {
        j.verificationMaterial = { publicKey: { hint: 'x' }, tlogEntries: j.verificationMaterial.tlogEntries };
      }),
    );
    expect(await checkBundle(asKey, { digest: D, annotations: { run: '3' } }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({
      ok: false,
      why: 'tlog entry 0 does not match the bundle: public key or certificate',
    });
  });

  it('refused: a valid SET with a broken inclusion proof or checkpoint; a duplicated entry', async () => {
    const k = p256();
    const good = await dsseBundle(k, signStatement(D), { log: rc });
    const check = (b: Buffer) => checkBundle(parse(b), { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] });
    expect(await check(good)).toMatchObject({ ok: true });
    const flip = (b64: string) => {
      const x = Buffer.from(b64, 'base64');
      x[0]! ^= 1;
      return x.toString('base64');
    };
    expect(
      await check(
        edit(
          good,
          (j) => (j.verificationMaterial.tlogEntries[0].inclusionProof.hashes[0] = flip(j.verificationMaterial.tlogEntries[0].inclusionProof.hashes[0])),
        ),
      ),
    ).toEqual({
      ok: false,
      why: 'tlog entry 0: inclusion proof does not lead to its root hash',
    });
    expect(
      await check(
        edit(good, (j) => {
          const cp = j.verificationMaterial.tlogEntries[0].inclusionProof.checkpoint;
          cp.envelope = cp.envelope.replace(/\n(\d+)\n/, (_m: string, n: string) => `\n${Number(n) + 1}\n`);
        }),
      ),
    ).toEqual({ ok: false, why: 'tlog entry 0: checkpoint signature does not verify' });
    expect(await check(edit(good, (j) => j.verificationMaterial.tlogEntries.push(j.verificationMaterial.tlogEntries[0])))).toEqual({
      ok: false,
      why: 'tlog entry 1 is a duplicate',
    });
  });

  it('RFC 6962 audit paths: every leaf of trees of 1..9 leaves leads to the root, a wrong index does not', () => {
    const h = (b: Buffer) => createHash('sha256').update(b).digest();
    const leaf = (i: number) => h(Buffer.concat([Buffer.from([0]), Buffer.from(`leaf ${i}`)]));
    const node = (l: Buffer, r: Buffer) => h(Buffer.concat([Buffer.from([1]), l, r]));
    const split = (n: number) => {
      let k = 1;
      while (k * 2 < n) k *= 2;
      return k;
    };
    const mth = (ls: Buffer[]): Buffer => (ls.length === 1 ? ls[0]! : node(mth(ls.slice(0, split(ls.length))), mth(ls.slice(split(ls.length)))));
    const path = (m: number, ls: Buffer[]): Buffer[] => {
      if (ls.length <= 1) return [];
      const k = split(ls.length);
      return m < k ? [...path(m, ls.slice(0, k)), mth(ls.slice(k))] : [...path(m - k, ls.slice(k)), mth(ls.slice(0, k))];
    };
    for (let n = 1; n <= 9; n++) {
      const ls = Array.from({ length: n }, (_, i) => leaf(i));
      for (let m = 0; m < n; m++) {
        expect(rootFromInclusionProof(m, n, ls[m]!, path(m, ls))!.equals(mth(ls))).toBe(true);
        if (n > 1) expect(rootFromInclusionProof((m + 1) % n, n, ls[m]!, path(m, ls))?.equals(mth(ls)) ?? false).toBe(false);
      }
      expect(rootFromInclusionProof(n, n, ls[0]!, [])).toBeUndefined();
    }
  });

  it('a certificate must have been valid when the log saw the signature', async () => {
    const k = p256();
    const root = makeRootCa();
    const inter = makeIntermediateCa(root);
    const expired = issueCertificate({
      cn: 'old signer',
      publicKey: k.publicKey,
      issuer: inter,
      eku: [EKU.codeSigning],
      notBefore: new Date(Date.now() - 10 * 86400_000),
      notAfter: new Date(Date.now() - 5 * 86400_000),
    });
    const b = parse(await dsseBundle(k, signStatement(D), { certificatePem: expired, log: rc }));
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey, certificatePem: expired }, { rekorKeys: [rekorKey] })).toEqual({
      ok: false,
      why: 'signed outside the certificate validity',
    });
    // no observed time: the configured certificate is all there is to go by
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey, certificatePem: expired })).toMatchObject({ ok: true });
  });
});

describe('timestamps', () => {
  it('go through the caller’s verifier, over the signature bytes', async () => {
    const k = p256();
    const statement = signStatement(D);
    const good = await dsseBundle(k, statement);
    const sig = Buffer.from(JSON.parse(good.toString()).dsseEnvelope.signatures[0].sig, 'base64');
    const withTs = (...ts: string[]) =>
      parse(
        edit(
          good,
          (j) =>
            (j.verificationMaterial.timestampVerificationData = { rfc3161Timestamps: ts.map((t) => ({ signedTimestamp: Buffer.from(t).toString('base64') })) }),
        ),
      );
    const seen: string[] = [];
    const verifyTimestamp = (signature: Buffer, ts: Buffer): Date => {
      expect(signature.equals(sig)).toBe(true);
      seen.push(ts.toString());
      if (ts.toString() !== 'good') throw new Error('does not verify');
      return new Date();
    };
    expect(await checkBundle(withTs('bad', 'good'), { digest: D }, { publicKey: k.publicKey }, { verifyTimestamp, requireTimestamp: true })).toEqual({
      ok: true,
      tlogEntries: 0,
      timestamps: 1,
    });
    expect(seen).toEqual(['bad', 'good']);
    expect(await checkBundle(withTs('bad'), { digest: D }, { publicKey: k.publicKey }, { verifyTimestamp, requireTimestamp: true })).toEqual({
      ok: false,
      why: 'no timestamp verifies',
    });
    expect(await checkBundle(parse(good), { digest: D }, { publicKey: k.publicKey }, { verifyTimestamp, requireTimestamp: true })).toEqual({
      ok: false,
      why: 'no timestamp',
    });
    expect(await checkBundle(withTs('good'), { digest: D }, { publicKey: k.publicKey }, { requireTimestamp: true })).toEqual({
      ok: false,
      why: 'a timestamp is required but no timestamp verifier is configured',
    });
    expect(await checkBundle(withTs('bad'), { digest: D }, { publicKey: k.publicKey }, { verifyTimestamp })).toEqual({
      ok: true,
      tlogEntries: 0,
      timestamps: 0,
    });
  });
});

describe('RFC 3161 timestamps from a real TSA (@sigstore/mock), verified with @sigstore/core as the lead may', () => {
  it('a timestamp over the signature bytes counts; one over other bytes does not; its time must be in the certificate validity', async () => {
    const tsaKeys = p256();
    // a whole-second clock: @sigstore/core 3.2 cannot parse a genTime with 1 or 2 fraction digits,
    // which the mock writes for about one time in ten (signet reads genTime itself: timestamp.ts)
    const tsa = await initializeTSA(tsaKeys, new Date(Math.floor(Date.now() / 1000) * 1000));
    const stamp = async (data: Buffer) =>
      Buffer.from(
        (await tsa.timestamp({
          artifactHash: createHash('sha256').update(data).digest(),
          hashAlgorithmOID: '2.16.840.1.101.3.4.2.1',
          nonce: 7,
          policyOID: '1.3.6.1.4.1.57264.2',
          certReq: true,
        })) as Uint8Array,
      );
    // what a verifyTimestamp can be: parse, check the imprint and the TSA signature, answer the time
    const verifyTimestamp = (signature: Buffer, signed: Buffer): Date => {
      const t = RFC3161Timestamp.parse(signed as Buffer<ArrayBuffer>);
      t.verify(signature, tsaKeys.publicKey);
      return t.signingTime;
    };
    const k = p256();
    const good = await dsseBundle(k, signStatement(D));
    const sig = Buffer.from(JSON.parse(good.toString()).dsseEnvelope.signatures[0].sig, 'base64');
    const withTs = (b: Buffer, ...ts: Buffer[]) =>
      parse(
        edit(b, (j) => (j.verificationMaterial.timestampVerificationData = { rfc3161Timestamps: ts.map((t) => ({ signedTimestamp: t.toString('base64') })) })),
      );
    const opts = { verifyTimestamp, requireTimestamp: true };
    expect(await checkBundle(withTs(good, await stamp(sig)), { digest: D }, { publicKey: k.publicKey }, opts)).toEqual({
      ok: true,
      tlogEntries: 0,
      timestamps: 1,
    });
    expect(await checkBundle(withTs(good, await stamp(Buffer.from('another signature'))), { digest: D }, { publicKey: k.publicKey }, opts)).toEqual({
      ok: false,
      why: 'no timestamp verifies',
    });

    const root = makeRootCa();
    const expired = issueCertificate({
      cn: 'old signer',
      publicKey: k.publicKey,
      issuer: makeIntermediateCa(root),
      eku: [EKU.codeSigning],
      notBefore: new Date(Date.now() - 10 * 86400_000),
      notAfter: new Date(Date.now() - 5 * 86400_000),
    });
    const certBundle = await dsseBundle(k, signStatement(D), { certificatePem: expired });
    const certSig = Buffer.from(JSON.parse(certBundle.toString()).dsseEnvelope.signatures[0].sig, 'base64');
    expect(await checkBundle(withTs(certBundle, await stamp(certSig)), { digest: D }, { publicKey: k.publicKey, certificatePem: expired }, opts)).toEqual({
      ok: false,
      why: 'signed outside the certificate validity',
    });
  });
});

describe('messageSignature bundles', () => {
  it('are parsed; the claim is the message digest; verified against the manifest bytes, with a hashedrekord entry', async () => {
    const k = p256();
    const manifest = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');
    const digestHex = createHash('sha256').update(manifest).digest('hex');
    const signature = sign('sha256', manifest, k.privateKey);
    const e = await rc.createEntry(proposedHashedRekord(digestHex, signature, pemOf(k.publicKey)));
    const bytes = Buffer.from(
      JSON.stringify({
        mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
        verificationMaterial: { publicKey: { hint: 'h' }, tlogEntries: [bundleTlogEntry(e, 'hashedrekord')] },
        messageSignature: {
          messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(digestHex, 'hex').toString('base64') },
          signature: signature.toString('base64'),
        },
      }),
    );
    const b = parse(bytes);
    expect(b.content.kind).toBe('messageSignature');
    const want = `sha256:${digestHex}`;
    expect(imageClaim(b)).toEqual({ kind: 'messageDigest', digest: want });
    expect(await checkBundle(b, { digest: want, manifest }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({
      ok: true,
      tlogEntries: 1,
      timestamps: 0,
    });
    expect(await checkBundle(b, { digest: want }, { publicKey: k.publicKey })).toEqual({
      ok: false,
      why: 'message signature: the manifest is needed to verify it',
    });
    expect(await checkBundle(b, { digest: D, manifest }, { publicKey: k.publicKey })).toEqual({ ok: false, why: `message digest is not ${D}` });
    expect(await checkBundle(b, { digest: want, manifest, annotations: { a: 'b' } }, { publicKey: k.publicKey })).toEqual({
      ok: false,
      why: 'a message signature carries no annotations',
    });
    expect(await checkBundle(b, { digest: want, manifest }, { publicKey: p256().publicKey })).toEqual({
      ok: false,
      why: 'signature does not verify with the key',
    });
    // a DSSE-kind entry does not log a message signature
    const dsseEntry = JSON.parse((await dsseBundle(k, signStatement(D), { log: rc })).toString()).verificationMaterial.tlogEntries;
    const mixed = parse(edit(bytes, (j) => (j.verificationMaterial.tlogEntries = dsseEntry)));
    expect(await checkBundle(mixed, { digest: want, manifest }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({
      ok: false,
      why: 'tlog entry 0 is dsse 0.0.1, not hashedrekord 0.0.1',
    });
  });
});

describe('parsing what anyone may push', () => {
  it('refuses malformed bundles', async () => {
    const k = p256();
    const good = await dsseBundle(k, signStatement(D), { log: rc });
    expect(parseSigstoreBundle(good)).toBeDefined();
    const bad: [string, Buffer][] = [
      ['truncated', good.subarray(0, good.length - 7)],
      ['not JSON', Buffer.from('\u0000\u0001garbage')],
      ['JSON null', Buffer.from('null')],
      ['an array', Buffer.from('[]')],
      ['a v0.4 bundle', edit(good, (j) => (j.mediaType = 'application/vnd.dev.sigstore.bundle.v0.4+json'))],
      ['another media type', edit(good, (j) => (j.mediaType = 'application/json'))],
      ['no verification material', edit(good, (j) => delete j.verificationMaterial)],
      ['no key, no certificate', edit(good, (j) => delete j.verificationMaterial.publicKey)],
      ['a key and a certificate', edit(good, (j) => (j.verificationMaterial.certificate = { rawBytes: 'AAAA' }))],
      [
        'a certificate that is not one',
        edit(good, (j) => (delete j.verificationMaterial.publicKey, (j.verificationMaterial.certificate = { rawBytes: 'AAAA' }))),
      ],
      ['no content', edit(good, (j) => delete j.dsseEnvelope)],
      ['two contents', edit(good, (j) => (j.messageSignature = { signature: 'AAAA' }))],
      ['payload not base64', edit(good, (j) => (j.dsseEnvelope.payload = '%%%'))],
      ['no signatures', edit(good, (j) => (j.dsseEnvelope.signatures = []))],
      ['a signature that is a number', edit(good, (j) => (j.dsseEnvelope.signatures[0].sig = 7))],
      ['a v0.3 entry without inclusion proof', edit(good, (j) => delete j.verificationMaterial.tlogEntries[0].inclusionProof)],
      ['a negative log index', edit(good, (j) => (j.verificationMaterial.tlogEntries[0].logIndex = '-1'))],
      ['an unsafe integer', edit(good, (j) => (j.verificationMaterial.tlogEntries[0].integratedTime = '9999999999999999'))],
      ['33 tlog entries', edit(good, (j) => (j.verificationMaterial.tlogEntries = Array(33).fill(j.verificationMaterial.tlogEntries[0])))],
      ['both spellings of a field', edit(good, (j) => (j.verification_material = j.verificationMaterial))],
      ['too large', Buffer.concat([good.subarray(0, good.length - 1), Buffer.from(`,"pad":"${'x'.repeat(4 * 1024 * 1024)}"}`)])],
    ];
    for (const [what, bytes] of bad) expect(parseSigstoreBundle(bytes), what).toBeUndefined();
  });

  it('field names: snake_case becomes lowerCamel, a duplicate is refused, "__proto__" stays an own field (never a prototype)', () => {
    expect(camelKeys({ tlog_entries: [{ log_id: { key_id: 'x' } }], mediaType: 'm' })).toEqual({ tlogEntries: [{ logId: { keyId: 'x' } }], mediaType: 'm' });
    expect(() => camelKeys({ media_type: 'a', mediaType: 'b' })).toThrow(/duplicate/);
    const o = camelKeys(JSON.parse('{"__proto__":{"mediaType":"x"}}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect(Object.keys(o)).toEqual(['__proto__']);
    expect(o['mediaType']).toBeUndefined();
  });

  it('reads protojson as the Go writers may emit it: snake_case names, int64 numbers, URL-safe unpadded base64; v0.1/v0.2 media types', async () => {
    const k = p256();
    const good = await dsseBundle(k, signStatement(D), { log: rc });
    const j = JSON.parse(good.toString());
    const e = j.verificationMaterial.tlogEntries[0];
    const urlsafe = (s: string) => Buffer.from(s, 'base64').toString('base64url');
    const variant = {
      media_type: 'application/vnd.dev.sigstore.bundle+json;version=0.2',
      verification_material: {
        public_key: { hint: j.verificationMaterial.publicKey.hint },
        tlog_entries: [
          {
            log_index: Number(e.logIndex),
            log_id: { key_id: urlsafe(e.logId.keyId) },
            kind_version: e.kindVersion,
            integrated_time: Number(e.integratedTime),
            inclusion_promise: { signed_entry_timestamp: e.inclusionPromise.signedEntryTimestamp },
            inclusion_proof: { ...e.inclusionProof, log_index: Number(e.inclusionProof.logIndex), logIndex: undefined },
            canonicalized_body: urlsafe(e.canonicalizedBody),
          },
        ],
      },
      dsse_envelope: { ...j.dsseEnvelope, payload: urlsafe(j.dsseEnvelope.payload) },
    };
    const b = parse(JSON.stringify(variant));
    expect(b.version).toBe('0.2');
    expect(await checkBundle(b, { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({ ok: true, tlogEntries: 1, timestamps: 0 });
    // v0.1 needs the SET, not the proof
    const v01 = edit(good, (x) => {
      x.mediaType = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
      delete x.verificationMaterial.tlogEntries[0].inclusionProof;
    });
    expect(await checkBundle(parse(v01), { digest: D }, { publicKey: k.publicKey }, { rekorKeys: [rekorKey] })).toEqual({
      ok: true,
      tlogEntries: 1,
      timestamps: 0,
    });
    expect(parseSigstoreBundle(edit(v01, (x) => delete x.verificationMaterial.tlogEntries[0].inclusionPromise))).toBeUndefined();
  });
});
