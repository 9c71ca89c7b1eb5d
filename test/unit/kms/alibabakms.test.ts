/**
 * The alibabakms provider with the real @alicloud/kms20160120 (RPC client, HMAC-SHA1 signature
 * v1.0) against a local stand-in (test/helpers/standins/alibaba-kms.ts) that checks the request
 * signature and signs with real keys generated per run.
 */
import { constants, createHash, createPublicKey, verify } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SignetError } from '../../../src/errors.js';
import {
  alibabaEndpoint,
  alibabaKmsKeySchema,
  classifyAlibabaKmsError,
  createAlibabaKmsKeyProvider,
  parseAlibabaKmsRef,
  type AlibabaKmsKeyConfig,
} from '../../../src/kms/alibabakms.js';
import { createKeyProvider, keyConfigSchema } from '../../../src/kms/providers.js';
import { startAlibabaKmsStandin, type AlibabaKmsStandin, type AlibabaStandinKey } from '../../helpers/standins/alibaba-kms.js';

// Never reach the ECS metadata service (100.100.100.200) or the developer's own credentials.
const ENV_KEYS = [
  'ALIBABA_CLOUD_ECS_METADATA_DISABLED',
  'ALIBABA_CLOUD_ACCESS_KEY_ID',
  'ALIBABA_CLOUD_ACCESS_KEY_SECRET',
  'ALIBABA_CLOUD_SECURITY_TOKEN',
  'ALIBABA_CLOUD_CREDENTIALS_FILE',
  'ALIBABA_CLOUD_CONFIG_FILE',
  'ALIBABA_CLOUD_PROFILE',
  'ALIBABA_CLOUD_ROLE_ARN',
  'ALIBABA_CLOUD_OIDC_PROVIDER_ARN',
  'ALIBABA_CLOUD_OIDC_TOKEN_FILE',
  'ALIBABA_CLOUD_CREDENTIALS_URI',
  'ALIBABA_CLOUD_ECS_METADATA',
  'ALIBABA_CLOUD_REGION_ID',
  'ALIBABA_CLOUD_CLI_PROFILE_DISABLED',
] as const;
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
function isolateEnv(): void {
  for (const k of ENV_KEYS) delete process.env[k];
  process.env.ALIBABA_CLOUD_ECS_METADATA_DISABLED = 'true';
  process.env.ALIBABA_CLOUD_CLI_PROFILE_DISABLED = 'true';
  process.env.ALIBABA_CLOUD_CREDENTIALS_FILE = '/nonexistent/signet-test/credentials';
}

let kms: AlibabaKmsStandin;
let rsa: AlibabaStandinKey;
let ec: AlibabaStandinKey;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

beforeAll(async () => {
  isolateEnv();
  kms = await startAlibabaKmsStandin();
  rsa = kms.addKey({ keySpec: 'RSA_2048', alias: 'signet-rsa' });
  ec = kms.addKey({ keySpec: 'EC_P256', alias: 'signet-ec' });
});
afterAll(async () => {
  await kms?.close();
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});
afterEach(() => {
  isolateEnv();
});

function cfg(keyId: string, extra: Partial<AlibabaKmsKeyConfig> = {}): AlibabaKmsKeyConfig {
  return {
    name: 'acr',
    provider: 'alibabakms',
    keyId,
    endpoint: kms.url,
    accessKeyId: kms.accessKeyId,
    accessKeySecret: kms.accessKeySecret,
    timeoutMs: 2_000,
    ...extra,
  };
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

describe('alibabakms: signing with the real SDK against the stand-in', () => {
  it('RSA_2048 with an explicit version: RSA_PKCS1_SHA_256 verifies over the payload; one AsymmetricSign per signature', async () => {
    kms.reset();
    const p = await createAlibabaKmsKeyProvider(cfg(rsa.keyId, { keyVersionId: rsa.versions[0]! }));
    expect(p.algorithm).toBe('rsa-2048');
    expect([p.keyId, p.keyVersionId, p.keySpec]).toEqual([rsa.keyId, rsa.versions[0], 'RSA_2048']);
    expect(await p.publicKeyPem()).toBe(rsa.publicKeyPem);
    expect(await p.publicKeyPem()).toBe(rsa.publicKeyPem);
    expect(kms.calls).toEqual({ DescribeKey: 1, GetPublicKey: 1 });

    for (let i = 0; i < 3; i++) {
      const payload = Buffer.from(`{"critical":{"n":${i}}}`);
      const sig = await p.sign(sha256(payload));
      expect(sig).toHaveLength(256);
      expect(verify('sha256', payload, createPublicKey(rsa.publicKeyPem!), sig)).toBe(true);
    }
    expect(kms.calls).toEqual({ DescribeKey: 1, GetPublicKey: 1, AsymmetricSign: 3 });
    const req = kms.requests.find((r) => r.query.Action === 'AsymmetricSign')!;
    expect(req.method).toBe('POST');
    expect(req.query).toMatchObject({
      KeyId: rsa.keyId,
      KeyVersionId: rsa.versions[0],
      Algorithm: 'RSA_PKCS1_SHA_256',
      Format: 'json',
      Version: '2016-01-20',
      SignatureMethod: 'HMAC-SHA1',
      SignatureVersion: '1.0',
      AccessKeyId: kms.accessKeyId,
    });
    expect(Buffer.from(req.query.Digest!, 'base64')).toHaveLength(32);
  });

  it('EC_P256 through an alias without a version: the primary version and the real key id are pinned; DER ECDSA', async () => {
    kms.reset();
    const p = await createAlibabaKmsKeyProvider(cfg('alias/signet-ec'));
    expect([p.algorithm, p.keyId, p.keyVersionId]).toEqual(['ecdsa-p256', ec.keyId, ec.primaryKeyVersion]);
    const payload = Buffer.from('{"critical":{}}');
    const sig = await p.sign(sha256(payload));
    expect(sig[0]).toBe(0x30);
    expect(verify('sha256', payload, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
    expect(kms.requests.find((r) => r.query.Action === 'AsymmetricSign')!.query).toMatchObject({ KeyId: ec.keyId, Algorithm: 'ECDSA_SHA_256' });
    expect(kms.calls).toEqual({ DescribeKey: 1, GetPublicKey: 1, AsymmetricSign: 1 });
  });

  it('no PrimaryKeyVersion reported: the only version from ListKeyVersions; several versions need keyVersionId', async () => {
    const one = kms.addKey({ keySpec: 'EC_P256', reportPrimaryVersion: false });
    kms.reset();
    const p = await createAlibabaKmsKeyProvider(cfg(one.keyId));
    expect(p.keyVersionId).toBe(one.versions[0]);
    expect(kms.calls).toEqual({ DescribeKey: 1, ListKeyVersions: 1, GetPublicKey: 1 });

    const two = kms.addKey({ keySpec: 'EC_P256', versions: 2, reportPrimaryVersion: false });
    const e = await rejection(createAlibabaKmsKeyProvider(cfg(two.keyId)));
    expect(e.code).toBe('KEY_INVALID');
    expect(e.message).toMatch(/has 2 versions and no primary version; set keys\[\]\.keyVersionId/);
  });

  it('concurrent signatures: each verifies, one call each (nonces never collide)', async () => {
    const p = await createAlibabaKmsKeyProvider(cfg(ec.keyId));
    kms.reset();
    const payloads = Array.from({ length: 20 }, (_, i) => Buffer.from(`payload ${i}`));
    const sigs = await Promise.all(payloads.map((x) => p.sign(sha256(x))));
    const pub = createPublicKey(await p.publicKeyPem());
    sigs.forEach((s, i) => expect(verify('sha256', payloads[i]!, pub, s)).toBe(true));
    expect(kms.calls).toEqual({ AsymmetricSign: 20 });
  });

  it('STS credentials: the SecurityToken is sent and signed', async () => {
    const sts = await startAlibabaKmsStandin({ securityToken: 'STS.test-token-value' });
    try {
      const k = sts.addKey({ keySpec: 'EC_P256' });
      const p = await createAlibabaKmsKeyProvider({
        name: 'sts',
        provider: 'alibabakms',
        keyId: k.keyId,
        endpoint: sts.url,
        accessKeyId: sts.accessKeyId,
        accessKeySecret: sts.accessKeySecret,
        securityToken: 'STS.test-token-value',
      });
      await p.sign(sha256(Buffer.from('x')));
      expect(sts.requests.every((r) => r.query.SecurityToken === 'STS.test-token-value')).toBe(true);
    } finally {
      await sts.close();
    }
  });

  it("the SDK's default credential chain: ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET", async () => {
    process.env.ALIBABA_CLOUD_ACCESS_KEY_ID = kms.accessKeyId;
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = kms.accessKeySecret;
    const p = await createAlibabaKmsKeyProvider({ name: 'env', provider: 'alibabakms', keyId: ec.keyId, endpoint: kms.url });
    const sig = await p.sign(sha256(Buffer.from('x')));
    expect(verify('sha256', Buffer.from('x'), createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
  });

  it("a key reference (signet's alibabakms://...) resolves through the provider map, extra fields kept", async () => {
    const parsed = keyConfigSchema.parse({
      name: 'by-ref',
      ref: `alibabakms://${kms.endpoint}/alias/signet-rsa/versions/${rsa.versions[0]}`,
      endpoint: kms.url, // the stand-in speaks http; the reference's endpoint means https
      accessKeyId: kms.accessKeyId,
      accessKeySecret: kms.accessKeySecret,
    });
    expect(parsed).toMatchObject({ provider: 'alibabakms', keyId: 'alias/signet-rsa', keyVersionId: rsa.versions[0], endpoint: kms.url });
    const p = await createKeyProvider(parsed, { baseDir: '.' });
    expect(await p.publicKeyPem()).toBe(rsa.publicKeyPem);
  });
});

describe('alibabakms: keys that cosign cannot verify are refused at startup', () => {
  const cases: [string, () => AlibabaStandinKey, Partial<AlibabaKmsKeyConfig>, string, RegExp][] = [
    [
      'algorithm RSA_PSS_SHA_256 (what ACR signing also offers)',
      () => rsa,
      { algorithm: 'RSA_PSS_SHA_256' },
      'KEY_UNSUPPORTED',
      /RSA_PSS_SHA_256 is not supported: cosign verifies RSA signatures as PKCS#1 v1\.5/,
    ],
    ['an algorithm that does not fit the key', () => ec, { algorithm: 'RSA_PKCS1_SHA_256' }, 'KEY_UNSUPPORTED', /does not fit this key; use ECDSA_SHA_256/],
    ['EC_P256K (secp256k1)', () => kms.addKey({ keySpec: 'EC_P256K' }), {}, 'KEY_UNSUPPORTED', /EC_P256K SIGN\/VERIFY.*secp256k1/],
    ['EC_SM2', () => kms.addKey({ keySpec: 'EC_SM2', keyUsage: 'SIGN/VERIFY' }), {}, 'KEY_UNSUPPORTED', /SM2/],
    ['a symmetric key', () => kms.addKey({ keySpec: 'Aliyun_AES_256' }), {}, 'KEY_UNSUPPORTED', /Aliyun_AES_256 ENCRYPT\/DECRYPT.*SIGN\/VERIFY/],
    ['an RSA ENCRYPT/DECRYPT key', () => kms.addKey({ keySpec: 'RSA_2048', keyUsage: 'ENCRYPT/DECRYPT' }), {}, 'KEY_UNSUPPORTED', /ENCRYPT\/DECRYPT/],
    ['a disabled key', () => kms.addKey({ keySpec: 'EC_P256', keyState: 'Disabled' }), {}, 'KEY_DISABLED', /key state is Disabled, not Enabled/],
    ['a key pending deletion', () => kms.addKey({ keySpec: 'EC_P256', keyState: 'PendingDeletion' }), {}, 'KEY_DISABLED', /PendingDeletion/],
  ];
  for (const [label, key, extra, code, msg] of cases) {
    it(label, async () => {
      const k = key();
      kms.reset();
      const e = await rejection(createAlibabaKmsKeyProvider(cfg(k.keyId, extra)));
      expect(e.code).toBe(code);
      expect(e.retryable).toBe(false);
      expect(e.message).toContain('key "acr"');
      expect(e.message).toMatch(msg);
      expect(kms.calls.AsymmetricSign).toBeUndefined();
      expect(kms.calls.GetPublicKey).toBeUndefined();
    });
  }

  it('RSA_3072 is accepted (cosign verifies it)', async () => {
    const k = kms.addKey({ keySpec: 'RSA_3072' });
    const p = await createAlibabaKmsKeyProvider(cfg(k.keyId));
    const sig = await p.sign(sha256(Buffer.from('x')));
    expect(sig).toHaveLength(384);
    expect(verify('sha256', Buffer.from('x'), createPublicKey(k.publicKeyPem!), sig)).toBe(true);
  });
});

describe('alibabakms: errors are classified, with the key named and no credentials', () => {
  const noSecrets = (e: Error, token?: string) => {
    expect(e.message).not.toContain(kms.accessKeySecret);
    expect(e.message).not.toContain(kms.accessKeyId);
    expect(e.message).not.toMatch(/Signature=|SignatureNonce|string to sign/i);
    if (token) expect(e.message).not.toContain(token);
  };

  const throttles: [string, Parameters<AlibabaKmsStandin['fail']>[1]][] = [
    ['Rejected.Throttling (HTTP 429)', { code: 'Rejected.Throttling', status: 429, message: 'Request was denied due to request throttling.' }],
    ['Throttling (HTTP 400)', { code: 'Throttling', status: 400, message: 'Request was denied due to request throttling.' }],
    ['Throttling.User (HTTP 400)', { code: 'Throttling.User', status: 400 }],
  ];
  for (const [label, fault] of throttles) {
    it(`${label} -> KEY_THROTTLED, retryable, no SDK retry`, async () => {
      const p = await createAlibabaKmsKeyProvider(cfg(ec.keyId));
      kms.reset();
      kms.fail('AsymmetricSign', fault);
      const e = await rejection(p.sign(sha256(Buffer.from('x'))));
      expect(e.code).toBe('KEY_THROTTLED');
      expect(e.retryable).toBe(true);
      expect(e.message).toMatch(
        new RegExp(
          `key "acr" \\(alibabakms ${ec.keyId} version ${ec.primaryKeyVersion}\\): AsymmetricSign: throttled by Alibaba Cloud KMS \\(${fault.code!.replace('.', '\\.')}, HTTP ${fault.status}, RequestId [0-9a-f-]+\\)`,
        ),
      );
      expect(kms.calls).toEqual({ AsymmetricSign: 1 });
      noSecrets(e);
    });
  }

  const transient: [string, Parameters<AlibabaKmsStandin['fail']>[1], RegExp][] = [
    ['InternalFailure (HTTP 500)', { code: 'InternalFailure', status: 500 }, /unavailable \(InternalFailure, HTTP 500/],
    ['ServiceUnavailableTemporary (HTTP 503)', { code: 'ServiceUnavailableTemporary', status: 503 }, /ServiceUnavailableTemporary, HTTP 503/],
    ['a non-JSON 502 from a proxy', { rawBody: '<html>502</html>', status: 502 }, /not JSON/],
    ['a timeout', { delayMs: 2_500 }, /timed out/],
    ['a dropped connection', { hangUp: true }, /unreachable \(ECONNRESET\)/],
  ];
  for (const [label, fault, msg] of transient) {
    it(`${label} -> KEY_UNAVAILABLE, retryable, and the signed URL is not quoted`, async () => {
      const p = await createAlibabaKmsKeyProvider(cfg(ec.keyId));
      kms.reset();
      kms.fail('AsymmetricSign', fault);
      const e = await rejection(p.sign(sha256(Buffer.from('x'))));
      expect(e.code).toBe('KEY_UNAVAILABLE');
      expect(e.retryable).toBe(true);
      expect(e.message).toMatch(msg);
      expect(e.message).toContain('key "acr"');
      expect(kms.calls).toEqual({ AsymmetricSign: 1 });
      noSecrets(e);
    });
  }

  it("an answer dripped a byte at a time hits the overall deadline (the SDK's readTimeout does not reach the body)", async () => {
    const p = await createAlibabaKmsKeyProvider(cfg(ec.keyId, { timeoutMs: 400 }));
    kms.fail('AsymmetricSign', { dripMs: 50 });
    const started = Date.now();
    const e = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect([e.code, e.retryable]).toEqual(['KEY_UNAVAILABLE', true]);
    expect(Date.now() - started).toBeLessThan(10_000); // bounded (it would drip for ever)
    noSecrets(e);
  }, 20_000);

  it('an unreachable endpoint -> KEY_UNAVAILABLE at startup', async () => {
    const e = await rejection(createAlibabaKmsKeyProvider(cfg(ec.keyId, { endpoint: 'http://127.0.0.1:9' })));
    expect(e.code).toBe('KEY_UNAVAILABLE');
    expect(e.message).toMatch(/DescribeKey: Alibaba Cloud KMS unreachable \(ECONNREFUSED\)/);
    noSecrets(e);
  });

  it('Forbidden.NoPermission -> KEY_DENIED, not retryable, says which key and what it needs', async () => {
    const p = await createAlibabaKmsKeyProvider(cfg(ec.keyId));
    kms.fail('AsymmetricSign', { code: 'Forbidden.NoPermission', status: 403, message: 'This operation is forbidden by permission system.' });
    const e = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(e.code).toBe('KEY_DENIED');
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(/key "acr" .*: AsymmetricSign: access denied \(Forbidden\.NoPermission, HTTP 403.*kms:AsymmetricSign/);
  });

  it('a wrong secret with an STS token -> KEY_DENIED (SignatureDoesNotMatch) without the string to sign, key id or token', async () => {
    const e = await rejection(createAlibabaKmsKeyProvider(cfg(ec.keyId, { accessKeySecret: 'wrong-secret', securityToken: 'STS.very-secret-token-1234' })));
    expect(e.code).toBe('KEY_DENIED');
    expect(e.message).toMatch(/SignatureDoesNotMatch/);
    expect(e.message).not.toContain('wrong-secret');
    noSecrets(e, 'STS.very-secret-token-1234');
    expect(e.cause).toBeUndefined();
  });

  it('an unknown AccessKeyId -> KEY_DENIED', async () => {
    const e = await rejection(createAlibabaKmsKeyProvider(cfg(ec.keyId, { accessKeyId: 'LTAIunknownunknown00' })));
    expect(e.code).toBe('KEY_DENIED');
    expect(e.message).toMatch(/InvalidAccessKeyId\.NotFound/);
    expect(e.message).not.toContain('LTAIunknownunknown00');
  });

  it('no credentials anywhere (metadata disabled) -> KEY_DENIED naming the standard sources', async () => {
    const e = await rejection(createAlibabaKmsKeyProvider({ name: 'acr', provider: 'alibabakms', keyId: ec.keyId, endpoint: kms.url }));
    expect(e.code).toBe('KEY_DENIED');
    expect(e.message).toMatch(/no usable Alibaba Cloud credentials/);
  });

  it('a missing key or version -> KEY_NOT_FOUND', async () => {
    const e = await rejection(createAlibabaKmsKeyProvider(cfg('alias/nope')));
    expect(e.code).toBe('KEY_NOT_FOUND');
    expect(e.message).toMatch(/key "acr" \(alibabakms alias\/nope\): DescribeKey: key or key version not found \(Forbidden\.KeyNotFound, HTTP 404/);
    const v = await rejection(createAlibabaKmsKeyProvider(cfg(ec.keyId, { keyVersionId: 'no-such-version' })));
    expect(v.code).toBe('KEY_NOT_FOUND');
    expect(v.message).toMatch(/GetPublicKey \(version no-such-version\).*Forbidden\.ResourceNotFound/);
  });

  it('a key disabled after startup -> KEY_DISABLED at sign time, not retryable', async () => {
    const k = kms.addKey({ keySpec: 'EC_P256' });
    const p = await createAlibabaKmsKeyProvider(cfg(k.keyId));
    k.keyState = 'Disabled';
    const e = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect([e.code, e.retryable]).toEqual(['KEY_DISABLED', false]);
    expect(e.message).toMatch(/Rejected\.Disabled, HTTP 409/);
    k.keyState = 'PendingDeletion';
    const e2 = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(e2.code).toBe('KEY_DISABLED');
    expect(e2.message).toMatch(/Rejetced\.PendingDeletion/);
  });

  it('classification of odd shapes', () => {
    const t = classifyAlibabaKmsError({ code: 'WhateverError', message: 'WhateverError: code: 429, slow down requestid: x', data: { Code: 'Whatever' } }, 'k');
    expect([t.code, t.retryable, t.status]).toEqual(['KEY_THROTTLED', true, 429]);
    const u = classifyAlibabaKmsError(
      { code: 'InvalidParameterError', message: 'InvalidParameterError: code: 400, bad requestid: x', data: { Code: 'InvalidParameter' } },
      'k',
    );
    expect([u.code, u.retryable]).toEqual(['KEY_SIGN_FAILED', false]);
    const s = classifyAlibabaKmsError(
      {
        code: 'SignatureDoesNotMatchError',
        message: 'x',
        data: {
          Code: 'SignatureDoesNotMatch',
          Message: 'Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DLTAIabcdefghijkl',
        },
      },
      'k',
    );
    expect(s.code).toBe('KEY_UNAVAILABLE'); // no "code: NNN," in the message: not recognizably a service answer
    expect(s.message).not.toMatch(/LTAIabcdefghijkl|string to sign/);
  });
});

describe("alibabakms: references (signet's own alibabakms:// scheme)", () => {
  const ok: [string, Record<string, string>][] = [
    ['alibabakms://cn-hangzhou/key-hzz62f1cb66fa42qo3bqb', { regionId: 'cn-hangzhou', keyId: 'key-hzz62f1cb66fa42qo3bqb' }],
    [
      'alibabakms://cn-hangzhou/5c438b18-05be-40ad-b6c2-3be6752c1234/versions/2ab1a983-7072-4bbc-a582-584b5bd81234',
      { regionId: 'cn-hangzhou', keyId: '5c438b18-05be-40ad-b6c2-3be6752c1234', keyVersionId: '2ab1a983-7072-4bbc-a582-584b5bd81234' },
    ],
    ['alibabakms://ap-southeast-1/alias/acr-signing', { regionId: 'ap-southeast-1', keyId: 'alias/acr-signing' }],
    [
      'alibabakms://kms.cn-shanghai.aliyuncs.com/alias/team/acr/versions/v1',
      { endpoint: 'kms.cn-shanghai.aliyuncs.com', keyId: 'alias/team/acr', keyVersionId: 'v1' },
    ],
    ['alibabakms:///key-abc', { keyId: 'key-abc' }],
    ['alibabakms://127.0.0.1:8443/key-abc', { endpoint: '127.0.0.1:8443', keyId: 'key-abc' }],
    // the layout of the unmerged sigstore proposal: ENDPOINT/[INSTANCE_ID]/KEY_ID/versions/VERSION_ID
    [
      'alibabakms://kst-hzz123.cryptoservice.kms.aliyuncs.com/kst-hzz123/key-abc/versions/ver-1',
      { endpoint: 'kst-hzz123.cryptoservice.kms.aliyuncs.com', keyId: 'key-abc', keyVersionId: 'ver-1' },
    ],
    [
      'alibabakms://kms.cn-hangzhou.aliyuncs.com//key-abc/versions/ver-1',
      { endpoint: 'kms.cn-hangzhou.aliyuncs.com', keyId: 'key-abc', keyVersionId: 'ver-1' },
    ],
    ['alibabakms://kms.cn-hangzhou.aliyuncs.com/kst-1/alias/x', { endpoint: 'kms.cn-hangzhou.aliyuncs.com', keyId: 'alias/x' }],
  ];
  for (const [ref, want] of ok) {
    it(`parses ${ref}`, () => {
      expect(parseAlibabaKmsRef(ref)).toEqual(want);
    });
  }
  const bad = [
    'alibabakms://cn-hangzhou/',
    'alibabakms://cn-hangzhou',
    'alibabakms://cn-hangzhou/a/b/c',
    'alibabakms://cn-hangzhou/key abc',
    'alibabakms://cn-hangzhou/alias/',
    'alibabakms://cn-hangzhou/key/versions/bad version',
    'alibabakms://user@host.example/key',
    'alibabakms:key',
  ];
  for (const ref of bad) {
    it(`refuses ${ref}`, () => {
      expect(() => parseAlibabaKmsRef(ref)).toThrow(/signet's own format/);
    });
  }
  it('leaves other schemes alone, and a malformed one is reported at the key path', () => {
    expect(parseAlibabaKmsRef('awskms:///alias/x')).toBeUndefined();
    const r = keyConfigSchema.safeParse({ name: 'x', ref: 'alibabakms://cn-hangzhou/' });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error!.issues)).toMatch(/invalid alibabakms reference/);
  });
});

describe('alibabakms: config', () => {
  it('schema is strict and pairs the access key fields', () => {
    const base = { name: 'k', provider: 'alibabakms', keyId: 'key-1', regionId: 'cn-hangzhou' };
    expect(alibabaKmsKeySchema.safeParse(base).success).toBe(true);
    expect(alibabaKmsKeySchema.safeParse({ ...base, keyVersion: 'typo' }).success).toBe(false);
    expect(alibabaKmsKeySchema.safeParse({ ...base, accessKeyId: 'a' }).success).toBe(false);
    expect(alibabaKmsKeySchema.safeParse({ ...base, accessKeySecret: 'b' }).success).toBe(false);
    expect(alibabaKmsKeySchema.safeParse({ ...base, securityToken: 't' }).success).toBe(false);
    expect(alibabaKmsKeySchema.safeParse({ ...base, accessKeyId: 'a', accessKeySecret: 'b', securityToken: 't' }).success).toBe(true);
    expect(keyConfigSchema.safeParse(base).success).toBe(true);
    expect(keyConfigSchema.safeParse({ ...base, accessKeyId: 'a' }).success).toBe(false);
  });

  it('endpoint: explicit host or URL, else kms.<region>.aliyuncs.com over https (never the SDK\'s "undefined.<region>")', () => {
    expect(alibabaEndpoint({ regionId: 'cn-hangzhou' })).toEqual({ endpoint: 'kms.cn-hangzhou.aliyuncs.com', protocol: 'https' });
    expect(alibabaEndpoint({}, { ALIBABA_CLOUD_REGION_ID: 'eu-central-1' })).toEqual({ endpoint: 'kms.eu-central-1.aliyuncs.com', protocol: 'https' });
    expect(alibabaEndpoint({ endpoint: 'kst-1.cryptoservice.kms.aliyuncs.com', regionId: 'cn-hangzhou' })).toEqual({
      endpoint: 'kst-1.cryptoservice.kms.aliyuncs.com',
      protocol: 'https',
    });
    expect(alibabaEndpoint({ endpoint: 'http://127.0.0.1:1234' })).toEqual({ endpoint: '127.0.0.1:1234', protocol: 'http' });
    expect(() => alibabaEndpoint({}, {})).toThrow(/no Alibaba Cloud region/);
    expect(() => alibabaEndpoint({ endpoint: 'http://h/path' })).toThrow(/host\[:port\]/);
  });

  it('no region and no endpoint -> KEY_INVALID naming the key', async () => {
    const e = await rejection(createAlibabaKmsKeyProvider({ name: 'acr', provider: 'alibabakms', keyId: 'k', accessKeyId: 'a', accessKeySecret: 'b' }));
    expect(e.code).toBe('KEY_INVALID');
    expect(e.message).toMatch(/key "acr" .*no Alibaba Cloud region/);
  });

  it('a non-32-byte digest is refused before any call', async () => {
    const p = await createAlibabaKmsKeyProvider(cfg(ec.keyId));
    kms.reset();
    const e = await rejection(p.sign(Buffer.alloc(31)));
    expect(e.code).toBe('KEY_SIGN_FAILED');
    expect(kms.calls).toEqual({});
  });
});

describe('alibabakms: stand-in round trip', () => {
  it('measures sequential sign latency through the real SDK', async () => {
    for (const [label, key] of [
      ['RSA_2048', rsa],
      ['EC_P256', ec],
    ] as const) {
      const p = await createAlibabaKmsKeyProvider(cfg(key.keyId));
      const d = sha256(Buffer.from('warm-up'));
      for (let i = 0; i < 5; i++) await p.sign(d);
      kms.reset();
      const n = 100;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await p.sign(d);
      const mean = (performance.now() - t0) / n;
      const server = kms.signTimesMs.reduce((a, b) => a + b, 0) / kms.signTimesMs.length;
      console.info(`[latency] alibabakms ${label}: ${mean.toFixed(2)} ms per sign through the SDK (stand-in work ${server.toFixed(2)} ms), n=${n}`);
      expect(mean).toBeLessThan(100);
    }
  });
});

describe('alibabakms: RSASSA-PSS (Notation) through rsaPadding', () => {
  const pssVerify = (pem: string, payload: Buffer, sig: Buffer) =>
    verify('sha256', payload, { key: createPublicKey(pem), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);

  it('RSA_2048: pss asks for RSA_PSS_SHA_256 and verifies with salt 32; the default stays RSA_PKCS1_SHA_256', async () => {
    kms.reset();
    const p = await createAlibabaKmsKeyProvider(cfg(rsa.keyId));
    expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
    const payload = Buffer.from('{"targetArtifact":{}}');
    const sig = await p.sign(sha256(payload), payload, { rsaPadding: 'pss' });
    expect(sig).toHaveLength(256);
    expect(pssVerify(rsa.publicKeyPem!, payload, sig)).toBe(true);
    expect(verify('sha256', payload, createPublicKey(rsa.publicKeyPem!), sig)).toBe(false);
    const plain = await p.sign(sha256(payload), payload);
    expect(verify('sha256', payload, createPublicKey(rsa.publicKeyPem!), plain)).toBe(true);
    expect(kms.requests.filter((r) => r.query.Action === 'AsymmetricSign').map((r) => r.query.Algorithm)).toEqual(['RSA_PSS_SHA_256', 'RSA_PKCS1_SHA_256']);
  });

  it('a PSS answer with another salt length (20) is refused with KEY_SIGN_FAILED naming the key', async () => {
    kms.reset();
    const p = await createAlibabaKmsKeyProvider(cfg(rsa.keyId));
    kms.pssSaltLength = 20;
    try {
      const e = await rejection(p.sign(sha256(Buffer.from('x')), undefined, { rsaPadding: 'pss' }));
      expect(e.code).toBe('KEY_SIGN_FAILED');
      expect(e.message).toMatch(/key "acr" .*does not verify as RSASSA-PSS with SHA-256 and a 32-byte salt/);
    } finally {
      kms.pssSaltLength = 32;
    }
  });

  it('EC_P256 ignores rsaPadding (ECDSA_SHA_256)', async () => {
    kms.reset();
    const p = await createAlibabaKmsKeyProvider(cfg(ec.keyId));
    const payload = Buffer.from('ec');
    const sig = await p.sign(sha256(payload), payload, { rsaPadding: 'pss' });
    expect(verify('sha256', payload, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
    expect(kms.requests.find((r) => r.query.Action === 'AsymmetricSign')!.query).toMatchObject({ Algorithm: 'ECDSA_SHA_256' });
  });
});
