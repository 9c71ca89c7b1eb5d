import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encryptCosignKey } from '../../../src/kms/cosign-key.js';
import { createFileKeyProvider, fileKeySchema, generateP256KeyFile, type FileKeyConfig } from '../../../src/kms/file.js';
import { SignetError } from '../../../src/errors.js';
import { cosignOk, cosignVerifyBlob, makeTempDir } from './cosign-cli.js';

let dir: string;
let cleanup: () => Promise<void>;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();
const spki = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'pem' }) as string;

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir());
  await mkdir(path.join(dir, 'keys'));
});
afterAll(async () => {
  await cleanup?.();
});

const savedCosignPassword = process.env.COSIGN_PASSWORD;
afterEach(() => {
  if (savedCosignPassword === undefined) delete process.env.COSIGN_PASSWORD;
  else process.env.COSIGN_PASSWORD = savedCosignPassword;
});

/** Write `pem` to keys/<file> and build a provider with a path relative to `dir`. */
async function providerFor(file: string, pem: string, extra: Partial<FileKeyConfig> = {}) {
  await writeFile(path.join(dir, 'keys', file), pem, { mode: 0o600 });
  return createFileKeyProvider({ name: `key-${file}`, provider: 'file', path: `keys/${file}`, ...extra }, { baseDir: dir });
}

async function rejection(p: Promise<unknown>): Promise<SignetError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SignetError);
    return err as SignetError;
  }
  throw new Error('expected a rejection');
}

const rsa = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const pkcs8 = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;

interface Case {
  label: string;
  key: KeyObject;
  pem: string;
  algorithm: string;
  extra?: Partial<FileKeyConfig>;
}

describe('file key provider: signatures verified by the real cosign', () => {
  const rsaKey = rsa(2048);
  const ecKey = p256();
  const cases: Case[] = [
    { label: 'RSA-2048 PKCS#8', key: rsaKey, pem: pkcs8(rsaKey), algorithm: 'rsa-2048' },
    {
      label: 'RSA-2048 PKCS#1',
      key: rsaKey,
      pem: rsaKey.export({ type: 'pkcs1', format: 'pem' }) as string,
      algorithm: 'rsa-2048',
    },
    { label: 'P-256 PKCS#8', key: ecKey, pem: pkcs8(ecKey), algorithm: 'ecdsa-p256' },
    {
      label: 'P-256 SEC1',
      key: ecKey,
      pem: ecKey.export({ type: 'sec1', format: 'pem' }) as string,
      algorithm: 'ecdsa-p256',
    },
    {
      label: 'P-256 SEC1 with EC PARAMETERS block (openssl ecparam -genkey)',
      key: ecKey,
      pem: '-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n' + (ecKey.export({ type: 'sec1', format: 'pem' }) as string),
      algorithm: 'ecdsa-p256',
    },
    {
      label: 'P-256 encrypted PKCS#8',
      key: ecKey,
      pem: ecKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pkcs8-pass' }) as string,
      algorithm: 'ecdsa-p256',
      extra: { password: 'pkcs8-pass' },
    },
    {
      label: 'RSA-2048 in a cosign encrypted key',
      key: rsaKey,
      pem: encryptCosignKey(rsaKey, 'cosign-pass', { N: 32768 }),
      algorithm: 'rsa-2048',
      extra: { password: 'cosign-pass' },
    },
  ];

  it.each(cases.map((c) => [c.label, c] as const))(
    '%s',
    async (_label, c) => {
      const file = `${c.label.replace(/\W+/g, '_')}.pem`;
      const provider = await providerFor(file, c.pem, c.extra);
      expect(provider.name).toBe(`key-${file}`);
      expect(provider.algorithm).toBe(c.algorithm);
      const pub = await provider.publicKeyPem();
      expect(pub).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
      expect(pub).toBe(spki(c.key));

      const payload = Buffer.from(`{"critical":{"type":"cosign container image signature"},"case":"${c.label}"}`);
      const sig = await provider.sign(sha256(payload));
      expect(verify('sha256', payload, createPublicKey(c.key), sig)).toBe(true);

      const ok = await cosignVerifyBlob(dir, pub, payload, sig);
      expect(ok.stderr).toContain('Verified OK');
      expect(ok.code).toBe(0);

      // Against a different key of the same type, cosign must refuse.
      const other = c.algorithm === 'rsa-2048' ? rsa(2048) : p256();
      const bad = await cosignVerifyBlob(dir, spki(other), payload, sig);
      expect(bad.code).not.toBe(0);
      // And a different payload fails with the right key.
      const badPayload = await cosignVerifyBlob(dir, pub, Buffer.concat([payload, Buffer.from(' ')]), sig);
      expect(badPayload.code).not.toBe(0);
    },
    60_000,
  );

  it('signs with a key generated by the real cosign (password from config, then from COSIGN_PASSWORD)', async () => {
    await cosignOk(['generate-key-pair', '--output-key-prefix', 'keys/cosign'], {
      cwd: dir,
      env: { COSIGN_PASSWORD: 's3cret' },
    });
    const cosignPub = await readFile(path.join(dir, 'keys/cosign.pub'), 'utf8');
    const cfg: FileKeyConfig = { name: 'cosign-key', provider: 'file', path: 'keys/cosign.key', password: 's3cret' };

    const provider = await createFileKeyProvider(cfg, { baseDir: dir });
    expect(provider.algorithm).toBe('ecdsa-p256');
    expect(await provider.publicKeyPem()).toBe(cosignPub);
    const payload = Buffer.from('signed with a cosign.key');
    const res = await cosignVerifyBlob(dir, cosignPub, payload, await provider.sign(sha256(payload)));
    expect(res.code).toBe(0);

    // No password in config: COSIGN_PASSWORD is used.
    const { password: _omit, ...noPassword } = cfg;
    process.env.COSIGN_PASSWORD = 's3cret';
    const fromEnv = await createFileKeyProvider(noPassword, { baseDir: dir });
    expect(await fromEnv.publicKeyPem()).toBe(cosignPub);

    // Neither: KEY_PASSWORD naming the key.
    delete process.env.COSIGN_PASSWORD;
    const none = await rejection(createFileKeyProvider(noPassword, { baseDir: dir }));
    expect(none.code).toBe('KEY_PASSWORD');
    expect(none.message).toContain('cosign-key');

    // Wrong password: KEY_PASSWORD, password not echoed.
    const wrong = await rejection(createFileKeyProvider({ ...cfg, password: 'hunter2-wrong' }, { baseDir: dir }));
    expect(wrong.code).toBe('KEY_PASSWORD');
    expect(wrong.message).toContain('cosign-key');
    expect(wrong.message).not.toContain('hunter2-wrong');

    // An explicitly empty password is a password (it does not fall back to the env).
    process.env.COSIGN_PASSWORD = 's3cret';
    expect((await rejection(createFileKeyProvider({ ...cfg, password: '' }, { baseDir: dir }))).code).toBe('KEY_PASSWORD');
  }, 60_000);

  it('accepts RSA-3072 and RSA-4096 (cosign verifies them)', async () => {
    for (const bits of [3072, 4096]) {
      const key = rsa(bits);
      const provider = await providerFor(`rsa${bits}.pem`, pkcs8(key));
      expect(provider.keyBits).toBe(bits);
      const payload = Buffer.from(`rsa ${bits}`);
      const res = await cosignVerifyBlob(dir, await provider.publicKeyPem(), payload, await provider.sign(sha256(payload)));
      expect(res.code).toBe(0);
    }
  }, 60_000);
});

describe('file key provider: refusals and errors', () => {
  it.each([
    ['ed25519', () => generateKeyPairSync('ed25519').privateKey, /Ed25519/],
    ['p384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, /EC P-384 \(secp384r1\)/],
    ['secp256k1', () => generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey, /secp256k1/],
    ['rsa1024', () => rsa(1024), /RSA-1024/],
    ['rsapss', () => generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey, /RSA-PSS/],
    ['x25519', () => generateKeyPairSync('x25519').privateKey, /x25519/],
  ] as const)('refuses %s with KEY_UNSUPPORTED naming the key', async (label, gen, what) => {
    await writeFile(path.join(dir, 'keys', `${label}.pem`), pkcs8(gen()));
    const err = await rejection(createFileKeyProvider({ name: `my-${label}-key`, provider: 'file', path: `keys/${label}.pem` }, { baseDir: dir }));
    expect(err.code).toBe('KEY_UNSUPPORTED');
    expect(err.message).toContain(`my-${label}-key`);
    expect(err.message).toMatch(what);
  });

  it('refuses an Ed25519 key imported by the real cosign', async () => {
    const ed = generateKeyPairSync('ed25519').privateKey;
    await writeFile(path.join(dir, 'ed.pem'), pkcs8(ed));
    await cosignOk(['import-key-pair', '--key', 'ed.pem', '--output-key-prefix', 'keys/imported-ed'], {
      cwd: dir,
      env: { COSIGN_PASSWORD: 'pw' },
    });
    const err = await rejection(
      createFileKeyProvider({ name: 'imported-ed', provider: 'file', path: 'keys/imported-ed.key', password: 'pw' }, { baseDir: dir }),
    );
    expect(err.code).toBe('KEY_UNSUPPORTED');
    expect(err.message).toContain('imported-ed');
  }, 60_000);

  it('missing file gives KEY_INVALID naming the key and path', async () => {
    const err = await rejection(createFileKeyProvider({ name: 'ghost', provider: 'file', path: 'keys/nope.key' }, { baseDir: dir }));
    expect(err.code).toBe('KEY_INVALID');
    expect(err.message).toContain('ghost');
    expect(err.message).toContain(path.join(dir, 'keys/nope.key'));
  });

  it('non-key files give KEY_INVALID', async () => {
    const pub = spki(p256());
    for (const [file, content] of [
      ['pub.pem', pub],
      ['garbage.pem', 'hello world\n'],
      ['broken.pem', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'],
    ] as const) {
      const err = await rejection(providerFor(file, content));
      expect(err.code).toBe('KEY_INVALID');
      expect(err.message).toContain(`key-${file}`);
    }
  });

  it('encrypted PKCS#8 without or with a wrong password gives KEY_PASSWORD', async () => {
    const pem = p256().export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'right' }) as string;
    expect((await rejection(providerFor('enc.pem', pem))).code).toBe('KEY_PASSWORD');
    const wrong = await rejection(providerFor('enc.pem', pem, { password: 'wrong-pass-xyz' }));
    expect(wrong.code).toBe('KEY_PASSWORD');
    expect(wrong.message).not.toContain('wrong-pass-xyz');
    // Legacy OpenSSL encrypted PKCS#1 ("Proc-Type: 4,ENCRYPTED") also works.
    const legacy = rsa(2048).export({ type: 'pkcs1', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'right' }) as string;
    expect(legacy).toContain('Proc-Type: 4,ENCRYPTED');
    expect((await rejection(providerFor('legacy.pem', legacy))).code).toBe('KEY_PASSWORD');
    expect((await providerFor('legacy.pem', legacy, { password: 'right' })).algorithm).toBe('rsa-2048');
  });

  it('absolute paths ignore baseDir', async () => {
    const file = path.join(dir, 'keys', 'abs.pem');
    await writeFile(file, pkcs8(p256()));
    const provider = await createFileKeyProvider({ name: 'abs', provider: 'file', path: file }, { baseDir: '/nonexistent' });
    expect(provider.algorithm).toBe('ecdsa-p256');
  });

  it('sign() refuses anything but a 32-byte digest', async () => {
    const provider = await providerFor('digest.pem', pkcs8(p256()));
    for (const bad of [Buffer.alloc(31), Buffer.alloc(33), Buffer.alloc(0), Buffer.alloc(48)]) {
      const err = await rejection(provider.sign(bad));
      expect(err.code).toBe('KEY_SIGN_FAILED');
    }
  });

  it('schema is strict', () => {
    expect(fileKeySchema.safeParse({ name: 'a', provider: 'file', path: 'k.pem' }).success).toBe(true);
    expect(fileKeySchema.safeParse({ name: 'a', provider: 'file', path: 'k.pem', password: '' }).success).toBe(true);
    expect(fileKeySchema.safeParse({ name: 'a', provider: 'file', path: 'k.pem', extra: 1 }).success).toBe(false);
    expect(fileKeySchema.safeParse({ name: '', provider: 'file', path: 'k.pem' }).success).toBe(false);
    expect(fileKeySchema.safeParse({ name: 'a', provider: 'aws', path: 'k.pem' }).success).toBe(false);
  });
});

describe('generateP256KeyFile', () => {
  it('writes a 0600 PKCS#8 key and an SPKI .pub that cosign verifies against; never overwrites', async () => {
    const keyPath = path.join(dir, 'gen', 'nested', 'signet.key');
    const { privatePath, publicPath } = await generateP256KeyFile(keyPath);
    expect(privatePath).toBe(keyPath);
    expect(publicPath).toBe(path.join(dir, 'gen', 'nested', 'signet.pub'));
    expect((await stat(privatePath)).mode & 0o777).toBe(0o600);

    const pem = await readFile(privatePath, 'utf8');
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const pub = await readFile(publicPath, 'utf8');
    expect(pub).toBe(spki(createPrivateKey(pem)));

    const provider = await createFileKeyProvider({ name: 'generated', provider: 'file', path: 'gen/nested/signet.key' }, { baseDir: dir });
    expect(await provider.publicKeyPem()).toBe(pub);
    const payload = Buffer.from('first run');
    const res = await cosignVerifyBlob(dir, pub, payload, await provider.sign(sha256(payload)));
    expect(res.code).toBe(0);

    const again = await rejection(generateP256KeyFile(keyPath));
    expect(again.code).toBe('KEY_INVALID');
    expect(await readFile(privatePath, 'utf8')).toBe(pem);

    const other = await generateP256KeyFile(path.join(dir, 'gen', 'plain'));
    expect(other.publicPath).toBe(path.join(dir, 'gen', 'plain.pub'));
  }, 60_000);
});

describe('file provider: signing with the payload at hand', () => {
  it('signs the payload through OpenSSL when it hashes to the digest, else falls back to the digest path', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const crypto = await import('node:crypto');
    const dir = mkdtempSync(join(tmpdir(), 'signet-file-payload-'));
    try {
      for (const kind of ['ec', 'rsa'] as const) {
        const { privateKey } =
          kind === 'ec' ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }) : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
        writeFileSync(join(dir, `${kind}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
        const p = await createFileKeyProvider({ name: kind, provider: 'file', path: `${kind}.pem` }, { baseDir: dir });
        const pub = crypto.createPublicKey(await p.publicKeyPem());
        const payload = Buffer.from(`payload for ${kind}`);
        const digest = crypto.createHash('sha256').update(payload).digest();
        expect(crypto.verify('sha256', payload, pub, await p.sign(digest, payload))).toBe(true);
        // a payload that does not match the digest is not what gets signed
        const other = Buffer.from('something else');
        const sig = await p.sign(digest, other);
        expect(crypto.verify('sha256', payload, pub, sig)).toBe(true);
        expect(crypto.verify('sha256', other, pub, sig)).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('file provider: private key file permissions', () => {
  /** Writes a fresh P-256 key (or cosign-encrypted key) at keys/<file> with exactly `mode`. */
  async function keyWithMode(file: string, mode: number, pem = pkcs8(p256())): Promise<string> {
    const full = path.join(dir, 'keys', file);
    await writeFile(full, pem, { mode: 0o600 });
    await chmod(full, mode);
    return full;
  }
  const load = (file: string, extra: Partial<FileKeyConfig> = {}) =>
    createFileKeyProvider({ name: 'perm', provider: 'file', path: `keys/${file}`, ...extra }, { baseDir: dir });

  it.each(['0644', '0604', '0602', '0601', '0666'])('refuses a key file others may access (mode %s), naming the file and the fix', async (label) => {
    const mode = parseInt(label, 8);
    const full = await keyWithMode(`others-${mode.toString(8)}.pem`, mode);
    const err = await rejection(load(`others-${mode.toString(8)}.pem`));
    expect(err.code).toBe('KEY_FILE_PERMISSIONS');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(full);
    expect(err.message).toContain(`mode 0${mode.toString(8)}`);
    expect(err.message).toContain(`chmod 600 ${full}`);
  });

  it('refuses a world-readable cosign-encrypted key too (checked before decrypting)', async () => {
    await keyWithMode('cosign-0644.key', 0o644, encryptCosignKey(p256(), 'pw', { N: 32768 }));
    expect((await rejection(load('cosign-0644.key', { password: 'pw' }))).code).toBe('KEY_FILE_PERMISSIONS');
  });

  it('accepts 0600, 0400 and group-readable 0640/0440 (a Kubernetes secret volume with fsGroup)', async () => {
    for (const mode of [0o600, 0o400, 0o640, 0o440]) {
      await keyWithMode(`ok-${mode.toString(8)}.pem`, mode);
      const p = await load(`ok-${mode.toString(8)}.pem`);
      expect(p.algorithm).toBe('ecdsa-p256');
    }
  });

  it('judges the file a symlink points to (Kubernetes mounts secrets as ..data symlinks)', async () => {
    await keyWithMode('target-0600.pem', 0o600);
    await symlink('target-0600.pem', path.join(dir, 'keys', 'link-ok.pem'));
    expect((await load('link-ok.pem')).algorithm).toBe('ecdsa-p256');
    await keyWithMode('target-0644.pem', 0o644);
    await symlink('target-0644.pem', path.join(dir, 'keys', 'link-bad.pem'));
    expect((await rejection(load('link-bad.pem'))).code).toBe('KEY_FILE_PERMISSIONS');
  });
});
