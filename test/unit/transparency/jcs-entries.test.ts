/** RFC 8785 canonical JSON, and the shapes of the Rekor entries / annotations signet writes. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  bundleTlogEntry,
  checkDsseBody,
  cosignBundleAnnotation,
  parseCosignBundleAnnotation,
  proposedDsse,
  proposedHashedRekord,
} from '../../../src/transparency/entries.js';
import { canonicalize } from '../../../src/transparency/jcs.js';
import type { RekorLogEntry } from '../../../src/transparency/rekor.js';

const entry = (body: unknown, extra: Partial<RekorLogEntry> = {}): RekorLogEntry => ({
  uuid: 'a'.repeat(64),
  body: Buffer.from(JSON.stringify(body)).toString('base64'),
  integratedTime: 1700000000,
  logIndex: 1234,
  logID: 'c'.repeat(64),
  signedEntryTimestamp: 'MEUCIQ==',
  existing: false,
  ...extra,
});

describe('JCS (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units, recursively, with no whitespace', () => {
    expect(canonicalize({ b: 1, a: [true, null, { d: 'x', c: 2 }], '\u20ac': 1, '\r': 0 })).toBe('{"\\r":0,"a":[true,null,{"c":2,"d":"x"}],"b":1,"€":1}');
  });
  it('serialises numbers and strings the ECMAScript way', () => {
    expect(canonicalize([1e21, 0.000001, -0, 333333333.33333329, 'é\u2028"'])).toBe('[1e+21,0.000001,0,333333333.3333333,"é\u2028\\""]');
    expect(() => canonicalize(Number.NaN)).toThrow();
  });
  it('is the form the SET covers: body, integratedTime, logIndex, logID', () => {
    expect(canonicalize({ logID: 'ab', logIndex: 3, integratedTime: 2, body: 'Zm9v' })).toBe('{"body":"Zm9v","integratedTime":2,"logID":"ab","logIndex":3}');
  });
});

describe('entries', () => {
  it('hashedrekord proposal: sha256 hash, base64 signature, base64 of the PEM', () => {
    const p = proposedHashedRekord('ab'.repeat(32), Buffer.from('sig'), '-----BEGIN PUBLIC KEY-----\nX\n-----END PUBLIC KEY-----\n') as any;
    expect(p).toEqual({
      apiVersion: '0.0.1',
      kind: 'hashedrekord',
      spec: {
        data: { hash: { algorithm: 'sha256', value: 'ab'.repeat(32) } },
        signature: { content: 'c2ln', publicKey: { content: Buffer.from('-----BEGIN PUBLIC KEY-----\nX\n-----END PUBLIC KEY-----\n').toString('base64') } },
      },
    });
  });

  it('dsse proposal carries the envelope as a string; the stored body is checked', () => {
    const p = proposedDsse('{"payload":"x"}', 'PEM') as any;
    expect(p.spec.proposedContent).toEqual({ envelope: '{"payload":"x"}', verifiers: [Buffer.from('PEM').toString('base64')] });
    const pem = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n';
    const payload = Buffer.from('statement');
    const body = {
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: {
        payloadHash: { algorithm: 'sha256', value: '6d0e4b5d5d04b1db7d1fc6c1e1d0cde56d2b5e6b4c4bc33e6b3e5c1e3de3c7b2' },
        signatures: [{ signature: Buffer.from('s').toString('base64'), verifier: Buffer.from(pem).toString('base64') }],
      },
    };
    expect(() => checkDsseBody(entry(body), payload, Buffer.from('s'), pem)).toThrow(/payload hash/);
    body.spec.payloadHash.value = createHash('sha256').update(payload).digest('hex');
    expect(() => checkDsseBody(entry(body), payload, Buffer.from('s'), pem)).not.toThrow();
    expect(() => checkDsseBody(entry(body), payload, Buffer.from('t'), pem)).toThrow(/signature/);
    expect(() => checkDsseBody(entry({ ...body, kind: 'hashedrekord' }), payload, Buffer.from('s'), pem)).toThrow(/expected dsse/);
  });

  it("the bundle annotation has exactly cosign's fields, in Go struct order, and parses back", () => {
    const e = entry({});
    const a = cosignBundleAnnotation(e);
    expect(a).toBe(
      `{"SignedEntryTimestamp":"MEUCIQ==","Payload":{"body":"${e.body}","integratedTime":1700000000,"logIndex":1234,"logID":"${'c'.repeat(64)}"}}`,
    );
    expect(parseCosignBundleAnnotation(a)).toEqual({
      signedEntryTimestamp: 'MEUCIQ==',
      body: e.body,
      integratedTime: 1700000000,
      logIndex: 1234,
      logID: 'c'.repeat(64),
    });
    expect(parseCosignBundleAnnotation('{"Payload":{}}')).toBeUndefined();
    expect(parseCosignBundleAnnotation('not json')).toBeUndefined();
  });

  it('a bundle tlog entry is protobuf JSON (int64 as strings, bytes as base64) and needs the inclusion proof', () => {
    expect(() => bundleTlogEntry(entry({}), 'dsse')).toThrow(/inclusion proof/);
    const e = entry({}, { inclusionProof: { logIndex: 0, rootHash: 'ff00', treeSize: 1, hashes: ['0a'], checkpoint: 'note\n' } });
    expect(bundleTlogEntry(e, 'dsse')).toEqual({
      logIndex: '1234',
      logId: { keyId: Buffer.from('c'.repeat(64), 'hex').toString('base64') },
      kindVersion: { kind: 'dsse', version: '0.0.1' },
      integratedTime: '1700000000',
      inclusionPromise: { signedEntryTimestamp: 'MEUCIQ==' },
      inclusionProof: { logIndex: '0', rootHash: '/wA=', treeSize: '1', hashes: ['Cg=='], checkpoint: { envelope: 'note\n' } },
      canonicalizedBody: e.body,
    });
  });
});
