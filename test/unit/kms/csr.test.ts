/**
 * `signet keys csr`: PKCS#10 requests signed by the key through its backend, checked by the real
 * `openssl req -verify`, for P-256 and RSA-2048 file keys (through the CLI) and SoftHSM2 PKCS#11
 * keys; then issued by a test CA with `openssl x509 -req -copy_extensions copy` and accepted by
 * signet as keys[].certificate (loadKeyCertificate).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli.js';
import { SignetError } from '../../../src/errors.js';
import { createCsr, csrPublicKey, parseSan, parseSubject } from '../../../src/kms/csr.js';
import { derEcdsaToRaw } from '../../../src/kms/ecdsa.js';
import { createPkcs11KeyProvider, type Pkcs11KeyConfig } from '../../../src/kms/pkcs11.js';
import { SigningKey } from '../../../src/kms/signing-key.js';
import type { KeyProvider } from '../../../src/kms/types.js';
import { loadKeyCertificate } from '../../../src/signing/certificate.js';
import { tempDir } from '../../helpers/cosign.js';
import { makeRootCa } from '../../helpers/pki.js';
import { runProcess } from '../../helpers/proc.js';
import { startAwsKmsStandin } from '../../helpers/standins/aws-kms.js';

const SUBJECT = 'CN=signet signer,OU=Platform\\, Build,O=Acme Rockets,L=Seattle,ST=WA,C=US';
const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '1234';

let tmp: { dir: string; remove: () => void };
let config: string;
const pub: Record<string, string> = {};
let savedConf: string | undefined;

async function run(bin: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runProcess(bin, args, { env: { ...process.env }, timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function must(bin: string, args: string[]): Promise<string> {
  const r = await run(bin, args);
  if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** `openssl req -verify -noout -text` on a PEM request: its exit code and output. */
async function opensslVerify(pem: string): Promise<{ code: number; text: string }> {
  const file = path.join(tmp.dir, `req-${Math.random().toString(36).slice(2)}.csr`);
  writeFileSync(file, pem);
  const r = await run('openssl', ['req', '-in', file, '-verify', '-noout', '-text']);
  return { code: r.code, text: `${r.stdout}\n${r.stderr}` };
}

function expectCodeSigningRequest(text: string): void {
  expect(text).toMatch(/verify OK/);
  expect(text).toMatch(/Subject: C = US, ST = WA, L = Seattle, O = Acme Rockets, OU = "Platform, Build", CN = signet signer/);
  expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\s/);
  expect(text).toMatch(/X509v3 Extended Key Usage:\s+Code Signing\s/);
  expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
}

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ['--config', config, 'keys', 'csr', ...args],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(() => {
  tmp = tempDir('signet-csr-');
  for (const [name, kind] of [
    ['rsa', 'rsa'],
    ['p256', 'ec'],
  ] as const) {
    const { privateKey, publicKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(path.join(tmp.dir, `${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    pub[name] = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }
  config = path.join(tmp.dir, 'signet.yaml');
  writeFileSync(
    config,
    `registries:
  - { host: registry.example.com }
keys:
  - { name: rsa, provider: file, path: rsa.pem }
  - { name: p256, provider: file, path: p256.pem }
rules:
  - { match: "registry.example.com/**", keys: [p256] }
`,
  );
});
afterAll(() => {
  if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
  else process.env.SOFTHSM2_CONF = savedConf;
  tmp?.remove();
});

describe('signet keys csr (file keys, openssl req -verify)', () => {
  it('P-256: prints a request openssl verifies, with the code-signing extensions and the SANs', async () => {
    const r = await cli('p256', '--subject', SUBJECT, '--san', 'email:signer@acme.example', '--san', 'uri:https://acme.example/signet');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+\n-----END CERTIFICATE REQUEST-----$/);
    const v = await opensslVerify(`${r.out}\n`);
    expect(v.code, v.text).toBe(0);
    expectCodeSigningRequest(v.text);
    expect(v.text).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
    expect(v.text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(v.text).toMatch(/X509v3 Subject Alternative Name:\s+email:signer@acme\.example, URI:https:\/\/acme\.example\/signet/);
    // the request is for the configured key
    expect(csrPublicKey(r.out).export({ type: 'spki', format: 'pem' })).toBe(pub['p256']);
  });

  it('RSA-2048 with --out: sha256WithRSAEncryption, openssl verifies', async () => {
    const file = path.join(tmp.dir, 'rsa.csr');
    const r = await cli('rsa', '--subject', SUBJECT, '--san', 'dns:builder.acme.example', '--out', file);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('');
    expect(r.err).toContain(file);
    const pem = readFileSync(file, 'utf8');
    const v = await opensslVerify(pem);
    expect(v.code, v.text).toBe(0);
    expectCodeSigningRequest(v.text);
    expect(v.text).toMatch(/Public-Key: \(2048 bit\)/);
    expect(v.text).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    expect(v.text).toMatch(/DNS:builder\.acme\.example/);
    expect(csrPublicKey(pem).export({ type: 'spki', format: 'pem' })).toBe(pub['rsa']);
  });

  it('no SAN: no subjectAltName extension', async () => {
    const r = await cli('p256', '--subject', 'CN=x,O=Acme,ST=WA,C=US');
    expect(r.code, r.err).toBe(0);
    const v = await opensslVerify(`${r.out}\n`);
    expect(v.code).toBe(0);
    expect(v.text).not.toContain('Subject Alternative Name');
  });

  it('usage errors: no --subject, no key name, an unknown key, a bad subject or SAN', async () => {
    expect((await cli('p256')).err).toMatch(/needs --subject/);
    expect((await cli('p256')).code).toBe(2);
    expect((await cli('--subject', 'CN=x')).code).toBe(2);
    // an unknown key is not a usage error: exit 1 with KEY_NOT_FOUND and the configured names
    const unknown = await cli('nope', '--subject', 'CN=x');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no key named "nope"');
    expect(unknown.err).toMatch(/configured keys: .*p256/);
    const badAttr = await cli('p256', '--subject', 'CN=x,FOO=y');
    expect(badAttr.code).toBe(1);
    expect(badAttr.err).toMatch(/attribute "FOO" is not one of/);
    const badSan = await cli('p256', '--subject', 'CN=x', '--san', 'ip:10.0.0.1');
    expect(badSan.code).toBe(1);
    expect(badSan.err).toMatch(/must be email:ADDRESS, uri:URI or dns:NAME/);
  });
});

describe('subject and SAN parsing', () => {
  it('RFC 4514 order reversed into DER order, escapes undone', () => {
    expect(parseSubject('CN=a\\,b,O=Acme\\+Co,C=de')).toEqual([
      { type: 'C', value: 'de' },
      { type: 'O', value: 'Acme+Co' },
      { type: 'CN', value: 'a,b' },
    ]);
    expect(() => parseSubject('CN=a+O=b')).toThrow(/multi-valued/);
    expect(() => parseSubject('C=USA')).toThrow(/two-letter/);
    expect(() => parseSubject('CN=')).toThrow(/empty/);
    expect(() => parseSubject('CN')).toThrow(/not TYPE=value/);
  });

  it('SANs', () => {
    expect(parseSan('EMAIL:a@b')).toEqual({ type: 'email', value: 'a@b' });
    expect(parseSan('uri:spiffe://acme/signet')).toEqual({ type: 'uri', value: 'spiffe://acme/signet' });
    expect(() => parseSan('email:nobody')).toThrow(/not an email/);
    expect(() => parseSan('uri:relative/path')).toThrow(/absolute URI/);
  });
});

describe('backends', () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const key = (signFn: KeyProvider['sign']) => new SigningKey({ name: 'stub', publicKeyPem: async () => pem, sign: signFn }, pem);

  it('a backend returning raw r||s (64 bytes) still gives a DER signature openssl verifies', async () => {
    const csr = await createCsr(
      key(async (_d, payload) => derEcdsaToRaw(sign('sha256', payload!, pair.privateKey))),
      { subject: SUBJECT },
    );
    const v = await opensslVerify(csr);
    expect(v.code, v.text).toBe(0);
    expect(v.text).toMatch(/verify OK/);
  });

  it('a backend that signs with another key -> KEY_SIGN_FAILED, nothing printed', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const err = await createCsr(
      key(async (_d, payload) => sign('sha256', payload!, other.privateKey)),
      { subject: SUBJECT },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignetError);
    expect((err as SignetError).code).toBe('KEY_SIGN_FAILED');
  });

  it('an Ed25519 key -> KEY_UNSUPPORTED', async () => {
    const ed = generateKeyPairSync('ed25519');
    const edPem = ed.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const k = new SigningKey({ name: 'ed', publicKeyPem: async () => edPem, sign: async () => Buffer.alloc(64) }, edPem);
    const err = await createCsr(k, { subject: SUBJECT }).catch((e: unknown) => e);
    expect((err as SignetError).code).toBe('KEY_UNSUPPORTED');
  });
});

describe('a cloud KMS key (AWS KMS stand-in), through the CLI', () => {
  it('RSA-2048 and P-256 keys in KMS: the requests are signed by KMS Sign and openssl verifies them', async () => {
    const kms = await startAwsKmsStandin();
    const ENV = ['AWS_EC2_METADATA_DISABLED', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE'] as const;
    const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/signet-test/credentials';
    process.env.AWS_CONFIG_FILE = '/nonexistent/signet-test/config';
    try {
      const rsa = kms.addKey({ keySpec: 'RSA_2048', alias: 'csr-rsa' });
      const ec = kms.addKey({ keySpec: 'ECC_NIST_P256', alias: 'csr-ec' });
      const awsConfig = path.join(tmp.dir, 'aws.yaml');
      const common = `provider: awskms, region: ${kms.region}, endpoint: "${kms.url}", credentials: { accessKeyId: ${kms.accessKeyId}, secretAccessKey: ${kms.secretAccessKey} }`;
      writeFileSync(
        awsConfig,
        `registries:\n  - { host: registry.example.com }\nkeys:\n  - { name: kms-rsa, keyId: alias/csr-rsa, ${common} }\n  - { name: kms-ec, keyId: alias/csr-ec, ${common} }\nrules:\n  - { match: "registry.example.com/**", keys: [kms-ec] }\n`,
      );
      for (const [name, key, alg] of [
        ['kms-rsa', rsa, /sha256WithRSAEncryption/],
        ['kms-ec', ec, /ecdsa-with-SHA256/],
      ] as const) {
        const before = kms.calls['Sign'] ?? 0;
        const out: string[] = [];
        const err: string[] = [];
        const code = await main(
          ['--config', awsConfig, 'keys', 'csr', name, '--subject', SUBJECT, '--san', 'uri:https://acme.example/kms'],
          (l) => out.push(l),
          (l) => err.push(l),
        );
        expect(code, err.join('\n')).toBe(0);
        expect(kms.calls['Sign'] ?? 0).toBe(before + 1); // one KMS signature per request
        const v = await opensslVerify(`${out.join('\n')}\n`);
        expect(v.code, v.text).toBe(0);
        expectCodeSigningRequest(v.text);
        expect(v.text).toMatch(alg);
        expect(
          csrPublicKey(out.join('\n'))
            .export({ type: 'spki', format: 'der' })
            .equals(key.publicKey!.export({ type: 'spki', format: 'der' })),
        ).toBe(true);
      }
    } finally {
      for (const k of ENV) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
      await kms.close();
    }
  });
});

describe('SoftHSM2 PKCS#11 keys', () => {
  const providers: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    mkdirSync(path.join(tmp.dir, 'tokens'));
    const conf = path.join(tmp.dir, 'softhsm2.conf');
    writeFileSync(conf, `directories.tokendir = ${path.join(tmp.dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    savedConf = process.env.SOFTHSM2_CONF;
    process.env.SOFTHSM2_CONF = conf;
    await must('softhsm2-util', ['--init-token', '--free', '--label', 'csr', '--so-pin', '5678', '--pin', PIN]);
    const tool = (...args: string[]) => must('pkcs11-tool', ['--module', MODULE, '--token-label', 'csr', '--login', '--pin', PIN, ...args]);
    await tool('--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'ec', '--id', '01');
    await tool('--keypairgen', '--key-type', 'rsa:2048', '--label', 'rsa', '--id', '02');
  }, 120_000);
  afterAll(async () => {
    await Promise.all(providers.map((p) => p.close()));
  });

  async function hsmKey(label: string): Promise<SigningKey> {
    const p = await createPkcs11KeyProvider({ name: `hsm-${label}`, provider: 'pkcs11', module: MODULE, token: 'csr', pin: PIN, label } as Pkcs11KeyConfig);
    providers.push(p);
    return new SigningKey(p, await p.publicKeyPem());
  }

  for (const label of ['ec', 'rsa']) {
    it(`${label}: the request is signed in the token, openssl verifies it, a test CA issues it and signet accepts the certificate`, async () => {
      const key = await hsmKey(label);
      const csr = await createCsr(key, { subject: SUBJECT, sans: ['email:hsm@acme.example'] });
      const v = await opensslVerify(csr);
      expect(v.code, v.text).toBe(0);
      expectCodeSigningRequest(v.text);
      expect(v.text).toMatch(label === 'ec' ? /ecdsa-with-SHA256/ : /sha256WithRSAEncryption/);
      expect(v.text).toMatch(/email:hsm@acme\.example/);

      // the PKI team's side: a CA issues the certificate from the request, copying its extensions
      const dir = path.join(tmp.dir, `ca-${label}`);
      mkdirSync(dir);
      const root = makeRootCa('acme test root');
      writeFileSync(path.join(dir, 'root.crt'), root.pem);
      writeFileSync(path.join(dir, 'root.key'), root.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      writeFileSync(path.join(dir, 'req.csr'), csr);
      await must('openssl', [
        'x509',
        '-req',
        '-in',
        path.join(dir, 'req.csr'),
        '-CA',
        path.join(dir, 'root.crt'),
        '-CAkey',
        path.join(dir, 'root.key'),
        '-CAcreateserial',
        '-days',
        '30',
        '-sha256',
        '-copy_extensions',
        'copy',
        '-out',
        path.join(dir, 'leaf.crt'),
      ]);
      const text = await must('openssl', ['x509', '-in', path.join(dir, 'leaf.crt'), '-noout', '-text']);
      expect(text).toMatch(/Extended Key Usage:\s+Code Signing/);
      expect(text).toMatch(/Key Usage: critical\s+Digital Signature/);

      // keys[].certificate / keys[].chain as signet loads them at startup
      const cert = loadKeyCertificate({ name: key.name, certificate: 'leaf.crt', chain: 'root.crt' }, key.publicKeyPem, dir);
      expect(cert).toBeDefined();
      expect(cert!.chain).toContain('BEGIN CERTIFICATE');
      expect(cert!.notAfter.getTime()).toBeGreaterThan(Date.now());
      // and not for another key
      expect(() => loadKeyCertificate({ name: key.name, certificate: 'leaf.crt', chain: 'root.crt' }, pem(), dir)).toThrow(/for another key/);
    });
  }
});

function pem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
}
