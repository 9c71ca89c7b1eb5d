/**
 * Bring-your-own-PKI certificates on keys: what is accepted, what is refused at startup, and that
 * the loaded certificate travels with the key provider.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { createSigningKeys } from '../../../src/kms/providers.js';
import { loadKeyCertificate } from '../../../src/signing/certificate.js';
import { tempDir } from '../../helpers/cosign.js';
import { EKU, issueCertificate, makeIntermediateCa, makeRootCa } from '../../helpers/pki.js';

const tmp = tempDir();
afterAll(() => tmp.remove());

const root = makeRootCa();
const inter = makeIntermediateCa(root);
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pub = key.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const leaf = (o: Partial<Parameters<typeof issueCertificate>[0]> = {}) =>
  issueCertificate({ cn: 'signer', publicKey: key.publicKey, issuer: inter, eku: [EKU.codeSigning], email: 'signer@example.com', ...o });
const load = (certificate?: string, chain?: string, now?: Date) => loadKeyCertificate({ name: 'k', certificate, chain }, pub, tmp.dir, now);

describe('key certificates', () => {
  it('accepts leaf + chain (intermediate, root); the PEMs are normalised', () => {
    const c = load(leaf(), inter.pem + root.pem)!;
    expect(c.certificate.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(c.chain!.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(c.notAfter.getTime()).toBeGreaterThan(Date.now());
  });
  it('accepts a leaf alone, and a "fullchain" file split into leaf and chain; files resolve against the config folder', () => {
    expect(load(leaf())!.chain).toBeUndefined();
    writeFileSync(path.join(tmp.dir, 'full.pem'), leaf() + inter.pem + root.pem);
    expect(load('full.pem')!.chain!.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(load()).toBeUndefined();
  });
  it('refuses a certificate for another key', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    expect(() => load(leaf({ publicKey: other }))).toThrow(/key "k": certificate .* is for another key/);
  });
  it('refuses an expired or not-yet-valid certificate (and chain certificates alike)', () => {
    const expired = leaf({ notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
    expect(() => load(expired, inter.pem + root.pem)).toThrow(/certificate expired on 2021-01-01/);
    expect(() => load(leaf(), inter.pem + root.pem, new Date(Date.now() + 30 * 86400_000))).toThrow(/expired/);
    expect(() => load(leaf({ notBefore: new Date(Date.now() + 86400_000), notAfter: new Date(Date.now() + 2 * 86400_000) }))).toThrow(/not valid before/);
    const oldInter = makeIntermediateCa(root, 'old', { notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
    expect(() => load(leaf({ issuer: oldInter }), oldInter.pem + root.pem)).toThrow(/chain certificate 1 .* expired/);
  });
  it('refuses a certificate that does not allow code signing; no EKU at all is fine', () => {
    expect(() => load(leaf({ eku: [EKU.serverAuth] }))).toThrow(/code signing/);
    expect(load(leaf({ eku: undefined }))).toBeDefined();
  });
  it('refuses a chain that does not link the leaf to a self-signed root', () => {
    expect(() => load(leaf(), root.pem + inter.pem)).toThrow(/did not issue the certificate/);
    expect(() => load(leaf(), inter.pem)).toThrow(/not a self-signed root/);
    const stranger = makeRootCa('stranger');
    expect(() => load(leaf(), makeIntermediateCa(stranger).pem + stranger.pem)).toThrow(/did not issue/);
    expect(() => load(undefined, root.pem)).toThrow(/chain is set but certificate is not/);
    expect(() => load('missing.pem')).toThrow(/cannot read certificate file/);
    expect(() => load('-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n')).toThrow(/no PEM CERTIFICATE/);
  });

  it('config: certificate/chain are accepted on any key (provider or ref); startup refuses a bad one with KEY_INVALID', async () => {
    writeFileSync(path.join(tmp.dir, 'k.pem'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(path.join(tmp.dir, 'k.crt'), leaf());
    writeFileSync(path.join(tmp.dir, 'chain.pem'), inter.pem + root.pem);
    writeFileSync(path.join(tmp.dir, 'wrong.crt'), leaf({ publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey }));
    const cfg = parseConfigText(
      `registries: [{ host: "r:5000" }]
keys:
  - { name: good, provider: file, path: k.pem, certificate: k.crt, chain: chain.pem }
  - { name: bad, provider: file, path: k.pem, certificate: wrong.crt }
  - { name: plain, provider: file, path: k.pem }
  - { name: viaref, ref: "awskms:///alias/x", certificate: k.crt }
`,
      'c.yaml',
      {},
    ).config;
    expect(cfg.keys[3]).toMatchObject({ provider: 'awskms', certificate: 'k.crt' });
    const good = await createSigningKeys([cfg.keys[0]!, cfg.keys[2]!], { baseDir: tmp.dir });
    expect(good.get('good')!.certificate!.chain).toContain('BEGIN CERTIFICATE');
    expect(good.get('plain')!.certificate).toBeUndefined();
    expect(good.get('good')!.verifierPem).toMatch(/BEGIN CERTIFICATE/);
    expect(good.get('plain')!.verifierPem).toMatch(/BEGIN PUBLIC KEY/);
    await expect(createSigningKeys([cfg.keys[1]!], { baseDir: tmp.dir })).rejects.toMatchObject({
      code: 'KEY_INVALID',
      message: expect.stringMatching(/key "bad"/),
    });
  });
});
