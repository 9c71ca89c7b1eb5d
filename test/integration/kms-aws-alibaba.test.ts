/**
 * End to end through the whole pipeline with the cloud KMS providers: a real docker-registry
 * notifies signet (receiver + worker in-process, real Redis), signet signs with the real AWS and
 * Alibaba SDKs talking to local wire-compatible stand-ins (real keys, generated per run), writes
 * the .sig, and the real `cosign verify --key` accepts it with the public key the provider
 * exports, and rejects it with another key. One transient backend failure per provider shows
 * that the queue's backoff, not the SDK, does the retrying.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';
import { startAlibabaKmsStandin, type AlibabaKmsStandin, type AlibabaStandinKey } from '../helpers/standins/alibaba-kms.js';
import { startAwsKmsStandin, type AwsKmsStandin, type AwsStandinKey } from '../helpers/standins/aws-kms.js';

const SECRET = 'test-hook-secret-kms-aws-alibaba';

// No metadata services, whatever the machine's environment says.
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.ALIBABA_CLOUD_ECS_METADATA_DISABLED = 'true';

let registry: RunningRegistry;
let signet: RunningSignet;
let aws: AwsKmsStandin;
let ali: AlibabaKmsStandin;
let tmp: { dir: string; remove: () => void };
const keys: { awsRsa?: AwsStandinKey; awsEc?: AwsStandinKey; aliRsa?: AlibabaStandinKey; aliEc?: AlibabaStandinKey } = {};
let otherPub: string;

beforeAll(async () => {
  tmp = tempDir();
  aws = await startAwsKmsStandin();
  ali = await startAlibabaKmsStandin();
  keys.awsRsa = aws.addKey({ keySpec: 'RSA_2048', alias: 'signet-e2e-rsa' });
  keys.awsEc = aws.addKey({ keySpec: 'ECC_NIST_P256' });
  keys.aliRsa = ali.addKey({ keySpec: 'RSA_2048', alias: 'signet-e2e-rsa' });
  keys.aliEc = ali.addKey({ keySpec: 'EC_P256', versions: 2, reportPrimaryVersion: false });
  otherPub = path.join(tmp.dir, 'other.pub');
  writeFileSync(otherPub, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));

  const port = await freePort();
  registry = await startRegistry({
    notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
    notifyHeaders: { Authorization: [`Bearer ${SECRET}`] },
  });
  const H = registry.host;
  // awskms by cosign reference (its https endpoint overridden by the stand-in's http URL) and by
  // provider fields; alibabakms by signet's own reference and by fields with a pinned version.
  // Secrets come from ${VAR} expansion.
  const yaml = `
registries:
  - host: ${H}
    insecure: true
integrations:
  - name: local
    kind: distribution
    secret: "${SECRET}"
worker:
  backoffMs: 200
keys:
  - name: aws-rsa
    ref: "awskms://127.0.0.1:${aws.port}/alias/signet-e2e-rsa"
    endpoint: "${aws.url}"
    region: ${aws.region}
    credentials: { accessKeyId: "\${TEST_AWS_ACCESS_KEY_ID}", secretAccessKey: "\${TEST_AWS_SECRET_ACCESS_KEY}" }
  - name: aws-ec
    provider: awskms
    keyId: "${keys.awsEc.arn}"
    endpoint: "${aws.url}"
    credentials: { accessKeyId: "\${TEST_AWS_ACCESS_KEY_ID}", secretAccessKey: "\${TEST_AWS_SECRET_ACCESS_KEY}" }
  - name: ali-rsa
    ref: "alibabakms://${ali.endpoint}/alias/signet-e2e-rsa"
    endpoint: "${ali.url}"
    accessKeyId: "\${TEST_ALI_ACCESS_KEY_ID}"
    accessKeySecret: "\${TEST_ALI_ACCESS_KEY_SECRET}"
  - name: ali-ec
    provider: alibabakms
    keyId: "${keys.aliEc.keyId}"
    keyVersionId: "${keys.aliEc.versions[1]}"
    endpoint: "${ali.url}"
    accessKeyId: "\${TEST_ALI_ACCESS_KEY_ID}"
    accessKeySecret: "\${TEST_ALI_ACCESS_KEY_SECRET}"
rules:
  - { match: "${H}/aws/**", keys: [aws-rsa, aws-ec] }
  - { match: "${H}/ali/**", keys: [ali-rsa, ali-ec] }
`;
  signet = await startSignet(yaml, {
    baseDir: tmp.dir,
    port,
    env: {
      TEST_AWS_ACCESS_KEY_ID: aws.accessKeyId,
      TEST_AWS_SECRET_ACCESS_KEY: aws.secretAccessKey,
      TEST_ALI_ACCESS_KEY_ID: ali.accessKeyId,
      TEST_ALI_ACCESS_KEY_SECRET: ali.accessKeySecret,
    },
  });
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await aws?.close();
  await ali?.close();
  tmp?.remove();
});

async function signatures(repo: string, digest: string, n: number): Promise<unknown[]> {
  return waitFor(`${n} signatures on ${repo}@${digest.slice(0, 19)}`, async () => {
    const m = await getManifest(registry, repo, sigTag(digest));
    if (m.status !== 200) return undefined;
    const layers = JSON.parse(m.body.toString()).layers as unknown[];
    return layers.length >= n ? layers : undefined;
  });
}

/** The provider's exported public key, written for cosign. */
async function exportedKey(name: string): Promise<string> {
  const p = signet.runtime.keys.get(name);
  if (!p) throw new Error(`no key ${name}`);
  const file = path.join(tmp.dir, `${name}.pub`);
  writeFileSync(file, p.publicKeyPem);
  return file;
}

function noSecretsInLogs(): void {
  const text = JSON.stringify(signet.logs);
  for (const s of [aws.secretAccessKey, aws.accessKeyId, ali.accessKeySecret, ali.accessKeyId]) expect(text).not.toContain(s);
}

describe('cloud KMS keys end to end, verified by the real cosign', () => {
  it('awskms: RSA_2048 (by awskms:// reference) and ECC_NIST_P256 (by key ARN); a throttled Sign is retried by the queue', async () => {
    expect(await signet.runtime.keys.get('aws-rsa')!.publicKeyPem).toBe(keys.awsRsa!.publicKeyPem);
    expect(await signet.runtime.keys.get('aws-ec')!.publicKeyPem).toBe(keys.awsEc!.publicKeyPem);
    aws.fail('Sign', { type: 'ThrottlingException', message: 'Rate exceeded' });

    const img = await pushImage(registry, 'aws/app', 'v1');
    await signatures('aws/app', img.digest, 2);
    const ref = `${registry.host}/aws/app:v1`;
    for (const name of ['aws-rsa', 'aws-ec']) {
      const v = await cosignVerify(ref, await exportedKey(name));
      expect(v.ok, v.stderr).toBe(true);
      expect(v.payloads.some((p) => p.critical.image['docker-manifest-digest'] === img.digest)).toBe(true);
    }
    expect((await cosignVerify(ref, otherPub)).ok).toBe(false);

    const retried = signet.logs.find((l) => l.msg === 'sign failed, will retry' && /KEY_THROTTLED/.test(l.err));
    expect(retried?.err).toMatch(/awskms arn:aws:kms:.*Sign: throttled by AWS KMS \(ThrottlingException\)/);
    expect(aws.calls.Sign).toBeGreaterThanOrEqual(3);
    const signs = aws.requests.filter((r) => r.target === 'TrentService.Sign').map((r) => r.body);
    expect(signs.every((b) => b.MessageType === 'DIGEST')).toBe(true);
    expect(new Set(signs.map((b) => b.KeyId))).toEqual(new Set([keys.awsRsa!.arn, keys.awsEc!.arn]));
    noSecretsInLogs();
  });

  it('alibabakms: RSA_2048 (by alibabakms:// reference and alias) and EC_P256 (pinned version); a 500 is retried by the queue', async () => {
    expect(await signet.runtime.keys.get('ali-rsa')!.publicKeyPem).toBe(keys.aliRsa!.publicKeyPem);
    expect(await signet.runtime.keys.get('ali-ec')!.publicKeyPem).toBe(keys.aliEc!.publicKeyPem);
    ali.fail('AsymmetricSign', { code: 'InternalFailure', status: 500, message: 'Internal Failure.' });

    const img = await pushImage(registry, 'ali/app', 'v1');
    await signatures('ali/app', img.digest, 2);
    const ref = `${registry.host}/ali/app@${img.digest}`;
    for (const name of ['ali-rsa', 'ali-ec']) {
      const v = await cosignVerify(ref, await exportedKey(name));
      expect(v.ok, v.stderr).toBe(true);
      expect(v.payloads[0].critical.identity['docker-reference']).toBe(`${registry.host}/ali/app:v1`);
    }
    expect((await cosignVerify(ref, otherPub)).ok).toBe(false);

    const retried = signet.logs.find((l) => l.msg === 'sign failed, will retry' && /KEY_UNAVAILABLE/.test(l.err));
    expect(retried?.err).toMatch(/alibabakms .*AsymmetricSign: Alibaba Cloud KMS unavailable \(InternalFailure, HTTP 500/);
    const signs = ali.requests.filter((r) => r.query.Action === 'AsymmetricSign').map((r) => r.query);
    expect(new Set(signs.map((q) => `${q.KeyId}/${q.KeyVersionId}/${q.Algorithm}`))).toEqual(
      new Set([`${keys.aliRsa!.keyId}/${keys.aliRsa!.versions[0]}/RSA_PKCS1_SHA_256`, `${keys.aliEc!.keyId}/${keys.aliEc!.versions[1]}/ECDSA_SHA_256`]),
    );
    noSecretsInLogs();
  });
});
