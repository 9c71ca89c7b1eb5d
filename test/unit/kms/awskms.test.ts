/**
 * The awskms provider with the real @aws-sdk/client-kms against a local AWS JSON 1.1 stand-in
 * (test/helpers/standins/aws-kms.ts) that signs with real keys generated per run.
 */
import { constants, createHash, createPublicKey, verify } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_SECONDS } from '../../../src/edge/retry-after.js';
import { SignetError } from '../../../src/errors.js';
import { awsKmsKeySchema, classifyAwsKmsError, createAwsKmsKeyProvider, parseAwsKmsRef, regionOfArn, type AwsKmsKeyConfig } from '../../../src/kms/awskms.js';
import { createKeyProvider, keyConfigSchema } from '../../../src/kms/providers.js';
import { startAwsKmsStandin, type AwsKmsStandin, type AwsStandinKey } from '../../helpers/standins/aws-kms.js';

// Never reach a metadata service or the developer's own AWS config.
const ENV_KEYS = [
  'AWS_EC2_METADATA_DISABLED',
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_CONFIG_FILE',
  'AWS_ENDPOINT_URL_KMS',
  'AWS_ENDPOINT_URL',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_PROFILE',
] as const;
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
function isolateEnv(): void {
  for (const k of ENV_KEYS) delete process.env[k];
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/signet-test/credentials';
  process.env.AWS_CONFIG_FILE = '/nonexistent/signet-test/config';
}

let kms: AwsKmsStandin;
let rsa: AwsStandinKey;
let ec: AwsStandinKey;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

beforeAll(async () => {
  isolateEnv();
  kms = await startAwsKmsStandin();
  rsa = kms.addKey({ keySpec: 'RSA_2048', alias: 'signet-rsa' });
  ec = kms.addKey({ keySpec: 'ECC_NIST_P256', alias: 'signet-ec' });
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

function cfg(keyId: string, extra: Partial<AwsKmsKeyConfig> = {}): AwsKmsKeyConfig {
  return {
    name: 'release',
    provider: 'awskms',
    keyId,
    region: kms.region,
    endpoint: kms.url,
    credentials: { accessKeyId: kms.accessKeyId, secretAccessKey: kms.secretAccessKey },
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

const noSecrets = (e: Error) => {
  expect(e.message).not.toContain(kms.secretAccessKey);
  expect(e.message).not.toContain(kms.accessKeyId);
};

describe('awskms: signing with the real SDK against the stand-in', () => {
  it('RSA_2048: PKCS#1 v1.5 over the digest verifies over the payload; public key fetched once; one Sign per signature', async () => {
    kms.reset();
    const p = await createAwsKmsKeyProvider(cfg(rsa.keyId));
    expect(p.algorithm).toBe('rsa-2048');
    expect(p.keyBits).toBe(2048);
    expect(p.keyArn).toBe(rsa.arn);
    expect(await p.publicKeyPem()).toBe(rsa.publicKeyPem);
    expect(await p.publicKeyPem()).toBe(rsa.publicKeyPem);
    expect(kms.calls).toEqual({ GetPublicKey: 1 });

    for (let i = 0; i < 3; i++) {
      const payload = Buffer.from(`{"critical":{"n":${i}}}`);
      const sig = await p.sign(sha256(payload));
      expect(sig.length).toBe(256);
      expect(verify('sha256', payload, createPublicKey(rsa.publicKeyPem!), sig)).toBe(true);
      expect(verify('sha256', Buffer.from('other'), createPublicKey(rsa.publicKeyPem!), sig)).toBe(false);
    }
    expect(kms.calls).toEqual({ GetPublicKey: 1, Sign: 3 });
    const signReq = kms.requests.find((r) => r.target === 'TrentService.Sign')!;
    expect(signReq.body).toMatchObject({ KeyId: rsa.arn, MessageType: 'DIGEST', SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256' });
    expect(Buffer.from(String(signReq.body.Message), 'base64')).toHaveLength(32);
    expect(signReq.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIA/);
  });

  it('ECC_NIST_P256 through an alias: DER ECDSA, signed with the key ARN the alias pointed to at startup', async () => {
    kms.reset();
    const p = await createAwsKmsKeyProvider(cfg('alias/signet-ec'));
    expect(p.algorithm).toBe('ecdsa-p256');
    expect(p.keyArn).toBe(ec.arn);
    const payload = Buffer.from('{"critical":{"identity":{}}}');
    const sig = await p.sign(sha256(payload));
    expect(sig[0]).toBe(0x30);
    expect(verify('sha256', payload, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
    expect(kms.requests.find((r) => r.target === 'TrentService.Sign')!.body).toMatchObject({ KeyId: ec.arn, SigningAlgorithm: 'ECDSA_SHA_256' });
    expect(kms.calls).toEqual({ GetPublicKey: 1, Sign: 1 });
  });

  it('concurrent signatures: each one verifies and costs exactly one Sign call', async () => {
    const p = await createAwsKmsKeyProvider(cfg(ec.arn));
    kms.reset();
    const payloads = Array.from({ length: 20 }, (_, i) => Buffer.from(`payload ${i}`));
    const sigs = await Promise.all(payloads.map((x) => p.sign(sha256(x))));
    const pub = createPublicKey(await p.publicKeyPem());
    sigs.forEach((s, i) => expect(verify('sha256', payloads[i]!, pub, s)).toBe(true));
    expect(kms.calls).toEqual({ Sign: 20 });
  });

  it('a key reference (awskms:///alias/...) resolves through the provider map, extra fields kept', async () => {
    const parsed = keyConfigSchema.parse({
      name: 'by-ref',
      ref: 'awskms:///alias/signet-rsa',
      region: kms.region,
      endpoint: kms.url,
      credentials: { accessKeyId: kms.accessKeyId, secretAccessKey: kms.secretAccessKey },
    });
    expect(parsed).toMatchObject({ provider: 'awskms', keyId: 'alias/signet-rsa', endpoint: kms.url });
    const p = await createKeyProvider(parsed, { baseDir: '.' });
    expect(await p.publicKeyPem()).toBe(rsa.publicKeyPem);
  });

  it('the SDK standard settings work: AWS_ENDPOINT_URL_KMS, AWS_REGION and env credentials', async () => {
    process.env.AWS_ENDPOINT_URL_KMS = kms.url;
    process.env.AWS_REGION = kms.region;
    process.env.AWS_ACCESS_KEY_ID = kms.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = kms.secretAccessKey;
    const p = await createAwsKmsKeyProvider({ name: 'env', provider: 'awskms', keyId: 'alias/signet-rsa' });
    const sig = await p.sign(sha256(Buffer.from('x')));
    expect(verify('sha256', Buffer.from('x'), createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
  });

  it('the region comes from a key ARN when none is configured', async () => {
    const other = await startAwsKmsStandin({ region: 'eu-west-3' });
    try {
      const k = other.addKey({ keySpec: 'ECC_NIST_P256' });
      const p = await createAwsKmsKeyProvider({
        name: 'arn-region',
        provider: 'awskms',
        keyId: k.arn,
        endpoint: other.url,
        credentials: { accessKeyId: other.accessKeyId, secretAccessKey: other.secretAccessKey },
      });
      expect(await p.publicKeyPem()).toBe(k.publicKeyPem);
    } finally {
      await other.close();
    }
  });
});

describe('awskms: keys that cosign cannot verify are refused at startup', () => {
  const cases: [string, () => AwsStandinKey, Partial<AwsKmsKeyConfig>, RegExp][] = [
    [
      'an RSA key offering only PSS',
      () => kms.addKey({ keySpec: 'RSA_2048', signingAlgorithms: ['RSASSA_PSS_SHA_256'] }),
      {},
      /RSASSA_PSS_SHA_256.*PKCS#1 v1\.5/,
    ],
    [
      'signingAlgorithm RSASSA_PSS_SHA_256 in the config',
      () => rsa,
      { signingAlgorithm: 'RSASSA_PSS_SHA_256' },
      /RSASSA_PSS_SHA_256 is not supported: cosign verifies RSA signatures as PKCS#1 v1\.5/,
    ],
    ['signingAlgorithm that does not fit the key', () => ec, { signingAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256' }, /does not fit this key; use ECDSA_SHA_256/],
    ['ECC_NIST_P384', () => kms.addKey({ keySpec: 'ECC_NIST_P384' }), {}, /ECC_NIST_P384 SIGN_VERIFY.*only RSA_2048/],
    ['ECC_SECG_P256K1', () => kms.addKey({ keySpec: 'ECC_SECG_P256K1' }), {}, /secp256k1/],
    ['an RSA ENCRYPT_DECRYPT key', () => kms.addKey({ keySpec: 'RSA_2048', keyUsage: 'ENCRYPT_DECRYPT' }), {}, /ENCRYPT_DECRYPT.*SIGN_VERIFY/],
    ['a symmetric key', () => kms.addKey({ keySpec: 'SYMMETRIC_DEFAULT' }), {}, /UnsupportedOperationException/],
  ];
  for (const [label, key, extra, msg] of cases) {
    it(label, async () => {
      const k = key();
      kms.reset();
      const e = await rejection(createAwsKmsKeyProvider(cfg(k.keyId, extra)));
      expect(e.code).toBe('KEY_UNSUPPORTED');
      expect(e.retryable).toBe(false);
      expect(e.message).toContain('key "release"');
      expect(e.message).toMatch(msg);
      expect(kms.calls.Sign).toBeUndefined();
    });
  }

  it('RSA_3072 is accepted (cosign verifies it), with a 384-byte PKCS#1 v1.5 signature', async () => {
    const k = kms.addKey({ keySpec: 'RSA_3072' });
    const p = await createAwsKmsKeyProvider(cfg(k.keyId));
    expect(p.keyBits).toBe(3072);
    const sig = await p.sign(sha256(Buffer.from('x')));
    expect(sig).toHaveLength(384);
    expect(verify('sha256', Buffer.from('x'), createPublicKey(k.publicKeyPem!), sig)).toBe(true);
  });
});

describe('awskms: errors are classified, with the key named and no credentials', () => {
  it('throttling -> KEY_THROTTLED, retryable, Retry-After kept, no SDK retry (one Sign call)', async () => {
    const p = await createAwsKmsKeyProvider(cfg(rsa.keyId));
    kms.reset();
    kms.fail('Sign', { type: 'ThrottlingException', message: 'Rate exceeded', headers: { 'retry-after': '7' } });
    const e = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(e.code).toBe('KEY_THROTTLED');
    expect(e.retryable).toBe(true);
    expect(e.retryAfterSeconds).toBe(7);
    expect(e.message).toMatch(/key "release" \(awskms arn:aws:kms:.*\): Sign: throttled by AWS KMS \(ThrottlingException\): Rate exceeded/);
    expect(kms.calls).toEqual({ Sign: 1 });
    // the next call goes through
    expect((await p.sign(sha256(Buffer.from('x')))).length).toBe(256);
  });

  it('an answer dripped a byte at a time hits the overall deadline (the SDK bounds only the headers)', async () => {
    const p = await createAwsKmsKeyProvider({ ...cfg(rsa.keyId), timeoutMs: 400 });
    kms.fail('Sign', { dripMs: 50 });
    const started = Date.now();
    const e = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect([e.code, e.retryable]).toEqual(['KEY_UNAVAILABLE', true]);
    expect(e.message).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(10_000); // bounded (it would drip for ever)
  }, 20_000);

  it('a huge Retry-After (seconds or a far date) is capped at 10 minutes', async () => {
    const p = await createAwsKmsKeyProvider(cfg(rsa.keyId));
    kms.fail('Sign', { type: 'ThrottlingException', message: 'Rate exceeded', headers: { 'retry-after': '99999999' } });
    expect(await rejection(p.sign(sha256(Buffer.from('x'))))).toMatchObject({ code: 'KEY_THROTTLED', retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
    kms.fail('Sign', { type: 'ServiceUnavailableException', status: 503, message: 'down', headers: { 'retry-after': 'Fri, 31 Dec 9999 23:59:59 GMT' } });
    expect(await rejection(p.sign(sha256(Buffer.from('x'))))).toMatchObject({ code: 'KEY_UNAVAILABLE', retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
  });

  const transient: [string, Parameters<AwsKmsStandin['fail']>[1], RegExp][] = [
    ['KMSInternalException (HTTP 500)', { type: 'KMSInternalException', status: 500 }, /unavailable \(KMSInternalException, HTTP 500\)/],
    ['a non-JSON 502 from a proxy', { rawBody: '<html>502 Bad Gateway</html>', status: 502 }, /unavailable \(SyntaxError, HTTP 502\)/],
    ['KeyUnavailableException', { type: 'KeyUnavailableException', status: 500 }, /KeyUnavailableException/],
    ['DependencyTimeoutException (HTTP 503)', { type: 'DependencyTimeoutException', status: 503 }, /DependencyTimeoutException/],
    ['a timeout', { delayMs: 2_500 }, /Sign: AWS KMS timed out/],
    ['a dropped connection', { hangUp: true }, /unreachable/],
  ];
  for (const [label, fault, msg] of transient) {
    it(`${label} -> KEY_UNAVAILABLE, retryable`, async () => {
      const p = await createAwsKmsKeyProvider(cfg(rsa.keyId));
      kms.reset();
      kms.fail('Sign', fault);
      const e = await rejection(p.sign(sha256(Buffer.from('x'))));
      expect(e.code).toBe('KEY_UNAVAILABLE');
      expect(e.retryable).toBe(true);
      expect(e.message).toMatch(msg);
      expect(e.message).toContain('key "release"');
      expect(kms.calls).toEqual({ Sign: 1 });
    });
  }

  it('an unreachable endpoint -> KEY_UNAVAILABLE at startup', async () => {
    const e = await rejection(createAwsKmsKeyProvider(cfg(rsa.keyId, { endpoint: 'http://127.0.0.1:9' })));
    expect(e.code).toBe('KEY_UNAVAILABLE');
    expect(e.retryable).toBe(true);
    expect(e.message).toMatch(/GetPublicKey: AWS KMS unreachable \(ECONNREFUSED\)/);
  });

  it('AccessDeniedException -> KEY_DENIED, not retryable, says which key and why', async () => {
    const p = await createAwsKmsKeyProvider(cfg(rsa.keyId));
    kms.fail('Sign', {
      type: 'AccessDeniedException',
      message: `User: arn:aws:iam::111122223333:user/ci is not authorized to perform: kms:Sign on resource: ${rsa.arn}`,
    });
    const e = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(e.code).toBe('KEY_DENIED');
    expect(e.retryable).toBe(false);
    expect(e.message).toContain(`key "release" (awskms ${rsa.arn})`);
    expect(e.message).toContain('is not authorized to perform: kms:Sign');
  });

  it('wrong credentials -> KEY_DENIED at startup, and neither the secret nor the access key id appears', async () => {
    const e = await rejection(
      createAwsKmsKeyProvider(cfg(rsa.keyId, { credentials: { accessKeyId: 'AKIAWRONGWRONGWRONG1', secretAccessKey: 'wrong-secret-value' } })),
    );
    expect(e.code).toBe('KEY_DENIED');
    expect(e.message).toMatch(/UnrecognizedClientException/);
    expect(e.message).not.toContain('wrong-secret-value');
    expect(e.message).not.toContain('AKIAWRONGWRONGWRONG1');
    noSecrets(e);
  });

  it('no credentials anywhere (metadata disabled) -> KEY_DENIED naming the standard sources', async () => {
    const { credentials: _omit, ...rest } = cfg(rsa.keyId);
    const e = await rejection(createAwsKmsKeyProvider(rest));
    expect(e.code).toBe('KEY_DENIED');
    expect(e.message).toMatch(/no usable AWS credentials/);
  });

  it('no region anywhere (and no key ARN) -> KEY_INVALID saying where to set it', async () => {
    const { region: _omit, ...rest } = cfg('alias/signet-rsa');
    const e = await rejection(createAwsKmsKeyProvider(rest));
    expect(e.code).toBe('KEY_INVALID');
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(/key "release" \(awskms alias\/signet-rsa\): GetPublicKey: no AWS region/);
  });

  it('a missing key -> KEY_NOT_FOUND at startup', async () => {
    const e = await rejection(createAwsKmsKeyProvider(cfg('alias/does-not-exist')));
    expect(e.code).toBe('KEY_NOT_FOUND');
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(/key "release" \(awskms alias\/does-not-exist\): GetPublicKey: key not found \(NotFoundException\)/);
  });

  it('a disabled key -> KEY_DISABLED at startup, and when disabled after startup', async () => {
    const k = kms.addKey({ keySpec: 'ECC_NIST_P256', state: 'Disabled' });
    const e = await rejection(createAwsKmsKeyProvider(cfg(k.keyId)));
    expect(e.code).toBe('KEY_DISABLED');
    expect(e.message).toMatch(/DisabledException/);

    k.state = 'Enabled';
    const p = await createAwsKmsKeyProvider(cfg(k.keyId));
    k.state = 'PendingDeletion';
    const e2 = await rejection(p.sign(sha256(Buffer.from('x'))));
    expect(e2.code).toBe('KEY_DISABLED');
    expect(e2.retryable).toBe(false);
    expect(e2.message).toMatch(/KMSInvalidStateException.*pending deletion/);
  });

  it('classifies errors without an HTTP answer and unknown 4xx', () => {
    expect(classifyAwsKmsError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', name: 'TimeoutError' }), 'k').code).toBe('KEY_UNAVAILABLE');
    const v = classifyAwsKmsError({ name: 'ValidationException', message: 'bad', $fault: 'client', $metadata: { httpStatusCode: 400 } }, 'k');
    expect([v.code, v.retryable]).toEqual(['KEY_SIGN_FAILED', false]);
    const t = classifyAwsKmsError({ name: 'Whatever', $metadata: { httpStatusCode: 429 }, $response: { headers: { 'retry-after': 'not a date' } } }, 'k');
    expect([t.code, t.retryable, t.retryAfterSeconds]).toEqual(['KEY_THROTTLED', true, undefined]);
    const m = classifyAwsKmsError(
      { name: 'AccessDeniedException', message: 'denied for AKIAABCDEFGHIJKLMNOP with X-Amz-Security-Token=abc', $metadata: { httpStatusCode: 400 } },
      'k',
    );
    expect(m.message).not.toContain('AKIAABCDEFGHIJKLMNOP');
    expect(m.message).not.toContain('=abc');
  });
});

describe('awskms: key references as cosign/sigstore parse them', () => {
  const ok: [string, { keyId: string; endpoint?: string }][] = [
    ['awskms:///1234abcd-12ab-34cd-56ef-1234567890ab', { keyId: '1234abcd-12ab-34cd-56ef-1234567890ab' }],
    ['awskms:///mrk-1234abcd12ab34cd56ef1234567890ab', { keyId: 'mrk-1234abcd12ab34cd56ef1234567890ab' }],
    ['awskms:///1234ABCD-12AB-34CD-56EF-1234567890AB', { keyId: '1234ABCD-12AB-34CD-56EF-1234567890AB' }],
    ['awskms://localhost:4566/1234abcd-12ab-34cd-56ef-1234567890ab', { keyId: '1234abcd-12ab-34cd-56ef-1234567890ab', endpoint: 'https://localhost:4566' }],
    [
      'awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      { keyId: 'arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab' },
    ],
    [
      'awskms://localhost:4566/arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      { keyId: 'arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab', endpoint: 'https://localhost:4566' },
    ],
    ['awskms:///alias/ExampleAlias', { keyId: 'alias/ExampleAlias' }],
    ['awskms://localhost:4566/alias/ExampleAlias', { keyId: 'alias/ExampleAlias', endpoint: 'https://localhost:4566' }],
    ['awskms:///arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias', { keyId: 'arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias' }],
    ['awskms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x', { keyId: 'arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x' }],
    ['awskms:///arn:aws-cn:kms:cn-north-1:111122223333:alias/team/x', { keyId: 'arn:aws-cn:kms:cn-north-1:111122223333:alias/team/x' }],
    ['awskms://kms.us-east-1.amazonaws.com/alias/a', { keyId: 'alias/a', endpoint: 'https://kms.us-east-1.amazonaws.com' }],
  ];
  for (const [ref, want] of ok) {
    it(`parses ${ref}`, () => {
      expect(parseAwsKmsRef(ref)).toEqual(want);
    });
  }

  const bad = [
    'awskms:///missingalias', // no alias/ prefix
    'awskms:///1234abcd-12ab-YYYY-56ef-1234567890ab', // invalid UUID
    'awskms://1234abcd-12ab-34cd-56ef-1234567890ab', // two slashes: no endpoint separator
    'awskms:///alias/', // empty alias
    'awskms:///arn:aws:kms:us-east-2:111122223333:key/not-a-uuid',
    'awskms:///arn:aws:s3:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    'awskms://user@host/alias/x',
    'awskms:/alias/x',
    'awskms:',
  ];
  for (const ref of bad) {
    it(`refuses ${ref}`, () => {
      expect(() => parseAwsKmsRef(ref)).toThrow(/awskms:\/\/\[ENDPOINT\]\/ID\|ALIAS\|ARN/);
    });
  }

  it('leaves other schemes alone', () => {
    expect(parseAwsKmsRef('gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1')).toBeUndefined();
    expect(parseAwsKmsRef('hashivault://k')).toBeUndefined();
  });

  it('a malformed reference is a config problem at the key path', () => {
    const r = keyConfigSchema.safeParse({ name: 'x', ref: 'awskms://1234abcd-12ab-34cd-56ef-1234567890ab' });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error!.issues)).toMatch(/invalid awskms reference.*three slashes/);
  });

  it('reads the region of key and alias ARNs', () => {
    expect(regionOfArn('arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab')).toBe('eu-central-1');
    expect(regionOfArn('arn:aws-us-gov:kms:us-gov-east-1:111122223333:alias/x')).toBe('us-gov-east-1');
    expect(regionOfArn('alias/x')).toBeUndefined();
  });
});

describe('awskms: config schema', () => {
  it('is strict and validates its fields', () => {
    const base = { name: 'k', provider: 'awskms', keyId: 'alias/x' };
    expect(awsKmsKeySchema.safeParse(base).success).toBe(true);
    expect(awsKmsKeySchema.safeParse({ ...base, keyID: 'typo' }).success).toBe(false);
    expect(awsKmsKeySchema.safeParse({ ...base, endpoint: 'localhost:4566' }).success).toBe(false);
    expect(awsKmsKeySchema.safeParse({ ...base, endpoint: 'ftp://x' }).success).toBe(false);
    expect(awsKmsKeySchema.safeParse({ ...base, credentials: { accessKeyId: 'a' } }).success).toBe(false);
    expect(awsKmsKeySchema.safeParse({ ...base, credentials: { accessKeyId: 'a', secretAccessKey: 'b', sessionToken: 't' } }).success).toBe(true);
    expect(keyConfigSchema.safeParse(base).success).toBe(true);
  });

  it('a non-32-byte digest is refused before any call', async () => {
    const p = await createAwsKmsKeyProvider(cfg(ec.keyId));
    kms.reset();
    const e = await rejection(p.sign(Buffer.alloc(20)));
    expect(e.code).toBe('KEY_SIGN_FAILED');
    expect(kms.calls).toEqual({});
  });
});

describe('awskms: stand-in round trip', () => {
  it('measures sequential sign latency through the real SDK', async () => {
    for (const [label, key] of [
      ['RSA_2048', rsa],
      ['ECC_NIST_P256', ec],
    ] as const) {
      const p = await createAwsKmsKeyProvider(cfg(key.keyId));
      const d = sha256(Buffer.from('warm-up'));
      for (let i = 0; i < 5; i++) await p.sign(d);
      kms.reset();
      const n = 100;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await p.sign(d);
      const mean = (performance.now() - t0) / n;
      const server = kms.signTimesMs.reduce((a, b) => a + b, 0) / kms.signTimesMs.length;
      console.info(`[latency] awskms ${label}: ${mean.toFixed(2)} ms per sign through the SDK (stand-in work ${server.toFixed(2)} ms), n=${n}`);
      expect(mean).toBeLessThan(100);
    }
  });
});

describe('awskms: RSASSA-PSS (Notation) through rsaPadding', () => {
  const pssVerify = (pem: string, payload: Buffer, sig: Buffer) =>
    verify('sha256', payload, { key: createPublicKey(pem), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);

  it('RSA_2048: pss asks for RSASSA_PSS_SHA_256 and the signature verifies with salt 32; the default stays PKCS#1 v1.5', async () => {
    kms.reset();
    const p = await createAwsKmsKeyProvider(cfg(rsa.keyId));
    expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
    const payload = Buffer.from('{"targetArtifact":{}}');
    const sig = await p.sign(sha256(payload), payload, { rsaPadding: 'pss' });
    expect(sig).toHaveLength(256);
    expect(pssVerify(rsa.publicKeyPem!, payload, sig)).toBe(true);
    expect(verify('sha256', payload, createPublicKey(rsa.publicKeyPem!), sig)).toBe(false); // not PKCS#1 v1.5
    expect(kms.requests.filter((r) => r.target === 'TrentService.Sign').map((r) => r.body.SigningAlgorithm)).toEqual(['RSASSA_PSS_SHA_256']);

    const plain = await p.sign(sha256(payload), payload, { rsaPadding: 'pkcs1v15' });
    expect(verify('sha256', payload, createPublicKey(rsa.publicKeyPem!), plain)).toBe(true);
    expect(kms.requests.filter((r) => r.target === 'TrentService.Sign').map((r) => r.body.SigningAlgorithm)).toEqual([
      'RSASSA_PSS_SHA_256',
      'RSASSA_PKCS1_V1_5_SHA_256',
    ]);
  });

  it('a key whose SigningAlgorithms lack RSASSA_PSS_SHA_256 reports pkcs1v15 only and refuses pss with KEY_SIGN_FAILED, without a call', async () => {
    const k = kms.addKey({ keySpec: 'RSA_2048', signingAlgorithms: ['RSASSA_PKCS1_V1_5_SHA_256'] });
    const p = await createAwsKmsKeyProvider(cfg(k.keyId));
    expect(await p.paddings!()).toEqual(['pkcs1v15']);
    kms.reset();
    const e = await rejection(p.sign(sha256(Buffer.from('x')), undefined, { rsaPadding: 'pss' }));
    expect(e.code).toBe('KEY_SIGN_FAILED');
    expect(e.message).toMatch(/key "release" .*does not offer RSASSA_PSS_SHA_256/);
    expect(kms.calls.Sign ?? 0).toBe(0);
  });

  it('ECC_NIST_P256 ignores rsaPadding (ECDSA_SHA_256, DER)', async () => {
    kms.reset();
    const p = await createAwsKmsKeyProvider(cfg(ec.keyId));
    expect(await p.paddings!()).toEqual(['pkcs1v15', 'pss']);
    const payload = Buffer.from('ec');
    const sig = await p.sign(sha256(payload), payload, { rsaPadding: 'pss' });
    expect(verify('sha256', payload, createPublicKey(await p.publicKeyPem()), sig)).toBe(true);
    expect(kms.requests.find((r) => r.target === 'TrentService.Sign')!.body).toMatchObject({ SigningAlgorithm: 'ECDSA_SHA_256' });
  });
});
