/**
 * The `pkcs11` key provider against a REAL SoftHSM2 token created by this test (own tokendir via
 * SOFTHSM2_CONF), keys made with pkcs11-tool, signatures checked with node:crypto.
 */
import { constants, createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SignetError } from '../../../src/errors.js';
import {
  createPkcs11KeyProvider,
  parsePkcs11Ref,
  pkcs11KeySchema,
  pkcs11Status,
  type Pkcs11KeyConfig,
  type Pkcs11KeyProvider,
} from '../../../src/kms/pkcs11.js';
import { keyConfigSchema } from '../../../src/kms/providers.js';
import { tempDir } from '../../helpers/cosign.js';
import { runProcess } from '../../helpers/proc.js';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '1234';
const SECOND_PIN = '87654321';
/** A wrong PIN no slot number can contain (a numeric one did: slot 461189999 held "9999"). */
const WRONG_PIN = 'wrong-PIN-q7';

let tmp: { dir: string; remove: () => void };
let savedConf: string | undefined;
let serial = '';
let slotId = 0;
const open: Pkcs11KeyProvider[] = [];
const messages: string[] = [];

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

async function run(bin: string, args: string[]): Promise<string> {
  const r = await runProcess(bin, args, { env: { ...process.env }, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const tool = (token: string, pin: string, ...args: string[]) =>
  run('pkcs11-tool', ['--module', MODULE, '--token-label', token, '--login', '--pin', pin, ...args]);

beforeAll(async () => {
  tmp = tempDir('signet-pkcs11-');
  mkdirSync(path.join(tmp.dir, 'tokens'));
  const conf = path.join(tmp.dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${path.join(tmp.dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  savedConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = conf; // read by SoftHSM at C_Initialize, in this process
  await run('softhsm2-util', ['--init-token', '--free', '--label', 'signet', '--so-pin', '5678', '--pin', PIN]);
  await run('softhsm2-util', ['--init-token', '--free', '--label', 'second', '--so-pin', '5678', '--pin', SECOND_PIN]);
  await Promise.all([
    tool('signet', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'k', '--id', '01'),
    tool('second', SECOND_PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'k2', '--id', '01'),
  ]);
  await tool('signet', PIN, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'r', '--id', '02');
  await tool('signet', PIN, '--keypairgen', '--key-type', 'EC:secp384r1', '--label', 'p384', '--id', '03');
  await tool(
    'signet',
    PIN,
    '--keypairgen',
    '--key-type',
    'rsa:2048',
    '--label',
    'pss',
    '--id',
    '05',
    '--allowed-mechanisms',
    'RSA-PKCS-PSS,SHA256-RSA-PKCS-PSS',
  );
  await tool('signet', PIN, '--keypairgen', '--key-type', 'rsa:1024', '--label', 'small', '--id', '06');
  await tool('signet', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'dup', '--id', '08');
  await tool('signet', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'dup', '--id', '09');
  await tool('signet', PIN, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'nopub', '--id', '0a');
  await tool('signet', PIN, '--delete-object', '--type', 'pubkey', '--id', '0a');
  await tool('signet', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'doomed', '--id', '0b');
  const slots = await run('softhsm2-util', ['--show-slots']);
  const block = slots.split(/\nSlot /).find((b) => /Label:\s+signet\s*$/m.test(b))!;
  slotId = Number(/^(?:Slot )?(\d+)/.exec(block.trim())![1]);
  serial = /Serial number:\s+(\S+)/.exec(block)![1]!;
}, 120_000);

afterAll(async () => {
  await Promise.all(open.map((p) => p.close()));
  if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
  else process.env.SOFTHSM2_CONF = savedConf;
  tmp?.remove();
  for (const m of messages) for (const secret of [PIN, SECOND_PIN, WRONG_PIN]) expect(m).not.toContain(`pin ${secret}`);
});

function cfg(extra: Partial<Pkcs11KeyConfig>): Pkcs11KeyConfig {
  return { name: `hsm-${extra.label ?? extra.id}`, provider: 'pkcs11', module: MODULE, token: 'signet', pin: PIN, ...extra } as Pkcs11KeyConfig;
}

async function provider(extra: Partial<Pkcs11KeyConfig>): Promise<Pkcs11KeyProvider> {
  const p = await createPkcs11KeyProvider(cfg(extra));
  open.push(p);
  return p;
}

async function rejection(p: Promise<unknown>): Promise<SignetError> {
  try {
    const v = await p;
    if (v && typeof (v as Pkcs11KeyProvider).close === 'function') await (v as Pkcs11KeyProvider).close();
  } catch (err) {
    expect(err).toBeInstanceOf(SignetError);
    messages.push((err as Error).message);
    return err as SignetError;
  }
  throw new Error('expected a rejection');
}

function payload(): { payload: Buffer; digest: Buffer } {
  const payload = Buffer.from(JSON.stringify({ critical: { image: { 'docker-manifest-digest': `sha256:${randomBytes(32).toString('hex')}` } } }));
  return { payload, digest: sha256(payload) };
}

function tokenStatus(label: string) {
  return pkcs11Status()
    .flatMap((m) => m.tokens)
    .find((t) => t.token === label);
}

describe('pkcs11 (SoftHSM2): login', () => {
  // first, so that no other key on this token has logged in yet
  it('a wrong PIN -> KEY_DENIED, not retryable, PIN not in the message', async () => {
    const err = await rejection(createPkcs11KeyProvider(cfg({ label: 'k2', token: 'second', pin: WRONG_PIN })));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('hsm-k2');
    expect(err.message).toMatch(/CKR_PIN_INCORRECT/);
    expect(err.message).not.toContain(WRONG_PIN);
    // nothing left open by the failed attempt
    expect(tokenStatus('second')).toBeUndefined();
  });

  it('a wrong PIN for a token another key already logged in to -> KEY_DENIED as well', async () => {
    await provider({ label: 'k2', token: 'second', pin: SECOND_PIN });
    const err = await rejection(createPkcs11KeyProvider(cfg({ label: 'k2', token: 'second', pin: WRONG_PIN })));
    expect(err.code).toBe('KEY_DENIED');
    expect(err.retryable).toBe(false);
    const none = await rejection(createPkcs11KeyProvider(cfg({ label: 'k2', token: 'second', pin: undefined })));
    expect(none.code).toBe('KEY_DENIED');
    expect(none.message).toMatch(/requires a PIN/);
  });
});

describe('pkcs11 (SoftHSM2): signing', () => {
  it('RSA-2048: CKM_SHA256_RSA_PKCS over the payload and CKM_RSA_PKCS over DigestInfo||digest give the same verified signature', async () => {
    const p = await provider({ label: 'r' });
    expect(p.algorithm).toBe('rsa-2048');
    expect(p.keyBits).toBe(2048);
    const pub = createPublicKey(await p.publicKeyPem());
    const { payload: msg, digest } = payload();
    const a = await p.sign(digest, msg);
    const b = await p.sign(digest);
    expect(a.length).toBe(256);
    expect(verify('sha256', msg, pub, a)).toBe(true);
    expect(b.equals(a)).toBe(true); // PKCS#1 v1.5 is deterministic
  });

  it('ECDSA P-256: CKM_ECDSA raw r||s converted to DER, verified over the payload', async () => {
    const p = await provider({ label: 'k', id: '01' });
    expect(p.algorithm).toBe('ecdsa-p256');
    const pub = createPublicKey(await p.publicKeyPem());
    for (let i = 0; i < 5; i++) {
      const { payload: msg, digest } = payload();
      const sig = await p.sign(digest, i % 2 ? msg : undefined);
      expect(sig[0]).toBe(0x30);
      expect(verify('sha256', msg, pub, sig)).toBe(true);
    }
  });

  it('the public key is the token public key object (as pkcs11-tool exports it), SPKI PEM', async () => {
    const der = path.join(tmp.dir, 'k.der');
    await run('pkcs11-tool', ['--module', MODULE, '--token-label', 'signet', '--read-object', '--type', 'pubkey', '--id', '01', '-o', der]);
    const expected = createPublicKey({ key: readFileSync(der), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' });
    const p = await provider({ id: '01' });
    expect(await p.publicKeyPem()).toBe(expected);
    expect(await p.publicKeyPem()).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
  });

  it('an RSA key without a public key object: the public key comes from the private key attributes', async () => {
    const p = await provider({ label: 'nopub' });
    const { payload: msg, digest } = payload();
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), await p.sign(digest, msg))).toBe(true);
  });

  it('20 concurrent signatures per key all verify; sessions are pooled (at most `sessions`) and reused', async () => {
    const ec = await provider({ label: 'k', sessions: 3 });
    const rsa = await provider({ label: 'r', sessions: 3 });
    const before = tokenStatus('signet')!;
    const pubs = [createPublicKey(await ec.publicKeyPem()), createPublicKey(await rsa.publicKeyPem())];
    const items = Array.from({ length: 20 }, () => payload());
    const sigs = await Promise.all([...items.map((i) => ec.sign(i.digest)), ...items.map((i) => rsa.sign(i.digest, i.payload))]);
    sigs.forEach((s, i) => expect(verify('sha256', items[i % 20]!.payload, pubs[i < 20 ? 0 : 1]!, s)).toBe(true));
    const after = tokenStatus('signet')!;
    expect(after.loggedIn).toBe(true);
    expect(after.open).toBeLessThanOrEqual(Math.max(before.open, 4)); // the pool's size: the largest `sessions` (default 4)
    await Promise.all(items.map((i) => ec.sign(i.digest)));
    expect(tokenStatus('signet')!.open).toBe(after.open); // reused, not reopened
  });

  it('selects the token by slot id and by serial, and reads module and PIN from COSIGN_PKCS11_* when not configured', async () => {
    const bySlot = await provider({ token: undefined, slot: slotId, label: 'k' });
    const bySerial = await provider({ token: undefined, serial, id: '01' });
    expect(await bySlot.publicKeyPem()).toBe(await bySerial.publicKeyPem());
    vi.stubEnv('COSIGN_PKCS11_MODULE_PATH', MODULE);
    vi.stubEnv('COSIGN_PKCS11_PIN', PIN);
    try {
      const p = await createPkcs11KeyProvider({ name: 'env', provider: 'pkcs11', token: 'signet', label: 'k' });
      open.push(p);
      expect(await p.publicKeyPem()).toBe(await bySlot.publicKeyPem());
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('a key deleted while signet runs: KEY_UNAVAILABLE (retryable) then KEY_NOT_FOUND', async () => {
    const p = await provider({ label: 'doomed' });
    await p.sign(payload().digest);
    await tool('signet', PIN, '--delete-object', '--type', 'privkey', '--id', '0b');
    // SoftHSM answers CKR_OBJECT_HANDLE_INVALID for the stale handle; the next call looks the key up again
    const first = await rejection(p.sign(payload().digest));
    expect(first.code).toBe('KEY_UNAVAILABLE');
    expect(first.retryable).toBe(true);
    expect(first.message).toMatch(/CKR_(OBJECT|KEY)_HANDLE_INVALID/);
    const second = await rejection(p.sign(payload().digest));
    expect(second.code).toBe('KEY_NOT_FOUND');
    expect(second.retryable).toBe(false);
    expect(second.message).toContain('no private key with label "doomed"');
    // the token stays logged in: other keys keep signing
    expect(tokenStatus('signet')!.loggedIn).toBe(true);
  });

  it('measures sign latency (sequential)', async () => {
    const ec = await provider({ label: 'k' });
    const rsa = await provider({ label: 'r' });
    const n = 200;
    const time = async (k: Pkcs11KeyProvider, withPayload: boolean) => {
      const items = Array.from({ length: n }, () => payload());
      const t0 = performance.now();
      for (const i of items) await k.sign(i.digest, withPayload ? i.payload : undefined);
      return (performance.now() - t0) / n;
    };
    const e = await time(ec, false);
    const r = await time(rsa, false);
    const rp = await time(rsa, true);
    console.log(
      `pkcs11 SoftHSM2 sign latency: ECDSA P-256 ${e.toFixed(2)} ms, RSA-2048 CKM_RSA_PKCS ${r.toFixed(2)} ms, CKM_SHA256_RSA_PKCS ${rp.toFixed(2)} ms (mean of ${n})`,
    );
    expect(e).toBeLessThan(100);
  });
});

describe('pkcs11 (SoftHSM2): refused at startup', () => {
  it('an EC P-384 key -> KEY_UNSUPPORTED naming the key and the curve', async () => {
    const err = await rejection(createPkcs11KeyProvider(cfg({ label: 'p384' })));
    expect(err.code).toBe('KEY_UNSUPPORTED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('key "hsm-p384" is EC P-384 (secp384r1)');
    expect(err.message).toMatch(/only the P-256 curve/);
  });

  it('an RSA key restricted to PSS is accepted for PSS only: paddings [pss], PKCS#1 v1.5 -> KEY_SIGN_FAILED naming the key', async () => {
    const p = await provider({ label: 'pss' });
    expect(await p.paddings!()).toEqual(['pss']);
    const pub = createPublicKey(await p.publicKeyPem());
    const { payload: msg, digest } = payload();
    const sig = await p.sign(digest, msg, { rsaPadding: 'pss' });
    expect(verify('sha256', msg, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)).toBe(true);
    for (const opts of [undefined, { rsaPadding: 'pkcs1v15' as const }]) {
      const err = await rejection(p.sign(digest, msg, opts));
      expect(err.code).toBe('KEY_SIGN_FAILED');
      expect(err.message).toContain('key "hsm-pss"');
      expect(err.message).toMatch(/cannot sign PKCS#1 v1\.5 .*restricted to RSASSA-PSS/);
    }
  });

  it('an RSA-1024 key -> KEY_UNSUPPORTED', async () => {
    const err = await rejection(createPkcs11KeyProvider(cfg({ label: 'small' })));
    expect(err.code).toBe('KEY_UNSUPPORTED');
    expect(err.message).toContain('RSA-1024');
  });

  it('a missing label, id or token -> KEY_NOT_FOUND; two keys with one label -> KEY_INVALID', async () => {
    const label = await rejection(createPkcs11KeyProvider(cfg({ label: 'missing' })));
    expect(label.code).toBe('KEY_NOT_FOUND');
    expect(label.retryable).toBe(false);
    expect(label.message).toContain('no private key with label "missing" on token "signet"');
    const id = await rejection(createPkcs11KeyProvider(cfg({ label: 'k', id: '02' })));
    expect(id.code).toBe('KEY_NOT_FOUND');
    const token = await rejection(createPkcs11KeyProvider(cfg({ token: 'nope', label: 'k' })));
    expect(token.code).toBe('KEY_NOT_FOUND');
    expect(token.message).toMatch(/no token with label "nope".*tokens: .*"signet"/);
    const dup = await rejection(createPkcs11KeyProvider(cfg({ label: 'dup' })));
    expect(dup.code).toBe('KEY_INVALID');
    expect(dup.message).toMatch(/2 private keys match/);
    const one = await provider({ label: 'dup', id: '09' });
    expect(one.algorithm).toBe('ecdsa-p256');
  });

  it('a module that is missing, relative or not a PKCS#11 library -> KEY_INVALID', async () => {
    for (const module of ['/nonexistent/libp11.so', 'libsofthsm2.so', '/etc/hostname']) {
      const err = await rejection(createPkcs11KeyProvider(cfg({ label: 'k', module })));
      expect(err.code, module).toBe('KEY_INVALID');
    }
    vi.stubEnv('COSIGN_PKCS11_MODULE_PATH', '');
    try {
      const none = await rejection(createPkcs11KeyProvider(cfg({ label: 'k', module: undefined })));
      expect(none.code).toBe('KEY_INVALID');
      expect(none.message).toMatch(/COSIGN_PKCS11_MODULE_PATH/);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('pkcs11: references and config', () => {
  it('parses pkcs11: URIs as cosign writes them', () => {
    expect(parsePkcs11Ref(`pkcs11:token=signet;object=k?module-path=${MODULE}&pin-value=1234`)).toEqual({
      token: 'signet',
      label: 'k',
      module: MODULE,
      pin: '1234',
    });
    // cosign's Construct(): token, slot-id, id (percent-encoded bytes), object, module-path, pin-value
    expect(parsePkcs11Ref(`pkcs11:token=my%20token;slot-id=1273116458;id=%01%a2;object=release%2Dkey?module-path=${MODULE}&pin-value=12%2634`)).toEqual({
      token: 'my token',
      slot: 1273116458,
      id: '01a2',
      label: 'release-key',
      module: MODULE,
      pin: '12&34',
    });
    expect(parsePkcs11Ref('pkcs11:slot-id=0;id=%01')).toEqual({ slot: 0, id: '01' });
    // p11tool style: informational attributes are accepted, serial is matched, type=private allowed
    expect(parsePkcs11Ref('pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=76a9a0234be2372a;token=signet;object=k;type=private')).toEqual({
      serial: '76a9a0234be2372a',
      token: 'signet',
      label: 'k',
    });
    expect(parsePkcs11Ref('PKCS11:token=a;object=b')).toEqual({ token: 'a', label: 'b' });
    expect(parsePkcs11Ref('hashivault://k')).toBeUndefined();
    expect(parsePkcs11Ref('awskms:///alias/x')).toBeUndefined();
  });

  it.each([
    ['pkcs11:object=k', /one of token and slot-id/],
    ['pkcs11:token=signet', /one of object and id/],
    ['pkcs11:token=signet;slot-id=x1;object=k', /slot-id 'x1' is not a valid number/],
    ['pkcs11:token=signet;object=k;x-vendor=1', /unsupported path attribute "x-vendor"/],
    ['pkcs11:token=signet;object=k?pin-source=file:/pin', /pin-source/],
    ['pkcs11:token=signet;object=k;object=j', /given twice/],
    ['pkcs11:token=signet;object=k?module-path=lib.so', /absolute/],
    ['pkcs11:token=sig%zznet;object=k', /percent-encoding/],
    ['pkcs11:token=signet;object=k;type=cert', /type=cert/],
    ['pkcs11:token=signet;object', /malformed path attribute/],
  ])('refuses %s', (ref, why) => {
    expect(() => parsePkcs11Ref(ref)).toThrow(why);
  });

  it('a PIN in a malformed reference never reaches the error', () => {
    try {
      parsePkcs11Ref('pkcs11:token=signet?pin-value=s3cr3t-pin&module-path=rel.so');
    } catch (err) {
      expect((err as Error).message).not.toContain('s3cr3t-pin');
    }
    const r = keyConfigSchema.safeParse({ name: 'h', ref: 'pkcs11:token=signet?pin-value=s3cr3t-pin' });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error!.issues)).not.toContain('s3cr3t-pin');
  });

  it('a ref in keys[] resolves to the pkcs11 provider (a pin next to it wins) and signs', async () => {
    const r = keyConfigSchema.safeParse({ name: 'hsm', ref: `pkcs11:token=signet;id=%01?module-path=${MODULE}&pin-value=0000`, pin: PIN });
    expect(r.success).toBe(true);
    expect(r.data).toEqual({ name: 'hsm', provider: 'pkcs11', token: 'signet', id: '01', module: MODULE, pin: PIN });
    const p = await createPkcs11KeyProvider(r.data as Pkcs11KeyConfig);
    open.push(p);
    const { payload: msg, digest } = payload();
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), await p.sign(digest))).toBe(true);
  });

  it('schema: strict; needs a token selector and a key selector; id is hex', () => {
    const base = { name: 'h', provider: 'pkcs11', token: 't', label: 'k' };
    expect(pkcs11KeySchema.safeParse(base).success).toBe(true);
    expect(pkcs11KeySchema.safeParse({ ...base, keyring: 'x' }).success).toBe(false);
    expect(pkcs11KeySchema.safeParse({ name: 'h', provider: 'pkcs11', label: 'k' }).success).toBe(false);
    expect(pkcs11KeySchema.safeParse({ name: 'h', provider: 'pkcs11', token: 't' }).success).toBe(false);
    expect(pkcs11KeySchema.safeParse({ ...base, id: '1' }).success).toBe(false);
    expect(pkcs11KeySchema.safeParse({ ...base, id: 'zz' }).success).toBe(false);
    expect(pkcs11KeySchema.safeParse({ ...base, id: 'A1b2' }).success).toBe(true);
    expect(pkcs11KeySchema.safeParse({ ...base, sessions: 0 }).success).toBe(false);
  });
});

describe('pkcs11: close', () => {
  it('closing every key finalizes the module; a new key initializes it again', async () => {
    await Promise.all(open.splice(0).map((p) => p.close()));
    expect(pkcs11Status()).toEqual([]);
    const p = await provider({ label: 'k' });
    const { payload: msg, digest } = payload();
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), await p.sign(digest))).toBe(true);
    expect(pkcs11Status()).toHaveLength(1);
    const inflight = p.sign(payload().digest);
    await p.close();
    await inflight; // close waits for signatures in flight
    open.splice(open.indexOf(p), 1);
    expect(pkcs11Status()).toEqual([]);
    const closed = await rejection(p.sign(digest));
    expect(closed.code).toBe('KEY_UNAVAILABLE');
  });
});

describe('pkcs11 (SoftHSM2): RSASSA-PSS (Notation) through rsaPadding', () => {
  const pssOk = (pub: ReturnType<typeof createPublicKey>, msg: Buffer, sig: Buffer, saltLength = 32) =>
    verify('sha256', msg, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, sig);

  it('RSA-2048: CKM_RSA_PKCS_PSS over the digest (SHA-256, MGF1-SHA-256, salt 32) verifies in node:crypto; PKCS#1 v1.5 unchanged', async () => {
    const p = await provider({ label: 'r' });
    expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
    const pub = createPublicKey(await p.publicKeyPem());
    const { payload: msg, digest } = payload();
    const a = await p.sign(digest, msg, { rsaPadding: 'pss' });
    const b = await p.sign(digest, undefined, { rsaPadding: 'pss' });
    for (const sig of [a, b]) {
      expect(sig).toHaveLength(256);
      expect(pssOk(pub, msg, sig)).toBe(true);
      expect(pssOk(pub, msg, sig, 20)).toBe(false); // the salt is 32, not another length
      expect(verify('sha256', msg, pub, sig)).toBe(false);
    }
    expect(a.equals(b)).toBe(false); // PSS is randomised
    const plain = await p.sign(digest, msg);
    expect(verify('sha256', msg, pub, plain)).toBe(true);
    expect((await p.sign(digest, undefined, { rsaPadding: 'pkcs1v15' })).equals(plain)).toBe(true);
  });

  it('ECDSA P-256 ignores rsaPadding', async () => {
    const p = await provider({ label: 'k', id: '01' });
    expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
    const { payload: msg, digest } = payload();
    const sig = await p.sign(digest, undefined, { rsaPadding: 'pss' });
    expect(verify('sha256', msg, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
  });
});
