/**
 * End to end on real parts, one test per cloud key provider: a real docker-registry notifies
 * signet (in-process receiver + worker, real Redis), signet signs through the REAL cloud SDK
 * against a local stand-in that signs with a real key, and the real `cosign verify --key` accepts
 * the signature with the public key the provider exports (and rejects it with another key).
 *
 * - gcpkms: configured by its cosign reference (`ref: gcpkms://.../cryptoKeyVersions/1`) plus the
 *   endpoint fields; gRPC transport (the SDK's default), service-account key file; RSA-2048.
 * - azurekv: ClientSecretCredential (secret from `${ENV}`) against an https authority stand-in
 *   trusted through `caFile`; the vault stand-in enforces the 401 challenge; EC P-256 (Azure
 *   returns raw r||s, which signet must turn into DER for cosign).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { freePort } from '../helpers/ports.js';
import { selfSignedCert, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';
import { startAuthorityStandIn, startAzureKvStandIn, type AuthorityStandIn, type AzureKvStandIn } from '../helpers/standins/azure-kv.js';
import { startGcpKmsStandIn, type GcpKmsStandIn } from '../helpers/standins/gcp-kms.js';

// Tests never reach cloud metadata endpoints or ambient credentials.
process.env.METADATA_SERVER_DETECTION = 'none';
for (const v of [
  'GOOGLE_APPLICATION_CREDENTIALS',
  'AZURE_CLIENT_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_TENANT_ID',
  'AZURE_FEDERATED_TOKEN_FILE',
  'IDENTITY_ENDPOINT',
  'MSI_ENDPOINT',
]) {
  delete process.env[v];
}

const HOOK_SECRET = 'kms-hook-secret-0123456789';
const GCP_VERSION = 'projects/signet-e2e/locations/europe-west1/keyRings/signing/cryptoKeys/images/cryptoKeyVersions/1';
const TENANT = '0b6f2a55-6e2c-4b8f-9d1e-1f2e3d4c5b6a';
const CLIENT_SECRET = `e2e-${randomBytes(12).toString('hex')}`;

let tmp: { dir: string; remove: () => void };
let registry: RunningRegistry;
let signet: RunningSignet;
let gcp: GcpKmsStandIn;
let vault: AzureKvStandIn;
let authority: AuthorityStandIn;
const pubFile: Record<string, string> = {};

beforeAll(async () => {
  tmp = tempDir('signet-kms-e2e-');

  // Google Cloud KMS stand-in (gRPC) with an RSA-2048 PKCS#1 version, and a service-account key file.
  gcp = await startGcpKmsStandIn();
  gcp.addKey(GCP_VERSION, 'RSA_SIGN_PKCS1_2048_SHA256');
  await writeFile(path.join(tmp.dir, 'gcp-sa.json'), JSON.stringify(gcp.addServiceAccount().json), { mode: 0o600 });

  // Entra ID (https, self-signed, trusted via caFile) + Key Vault stand-ins with an EC P-256 key.
  const { certFile, keyFile } = await selfSignedCert(tmp.dir, 'loopback', { cn: '127.0.0.1', san: 'IP:127.0.0.1' });
  const tls = { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  await writeFile(path.join(tmp.dir, 'entra-ca.pem'), tls.cert);
  const accepted = new Set<string>();
  authority = await startAuthorityStandIn({ tls, tenantId: TENANT, accept: accepted });
  authority.addClient('signet-app', CLIENT_SECRET);
  vault = await startAzureKvStandIn({ authority: authority.url, tenantId: TENANT, tokens: accepted });
  const azKey = vault.addKey('image-signing', { kty: 'EC-HSM', crv: 'P-256' });

  // Another key, for the negative check.
  pubFile.other = path.join(tmp.dir, 'other.pub');
  await writeFile(pubFile.other, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));

  const port = await freePort();
  registry = await startRegistry({ notifyUrl: `http://127.0.0.1:${port}/hooks/local`, notifyHeaders: { Authorization: [`Bearer ${HOOK_SECRET}`] } });
  const H = registry.host;
  const yaml = `
registries:
  - host: ${H}
    insecure: true
integrations:
  - name: local
    kind: distribution
    secret: "${HOOK_SECRET}"
keys:
  - name: gcp-rsa
    ref: gcpkms://${GCP_VERSION}
    keyFilename: gcp-sa.json
    endpoint: "${gcp.grpcHost}:${gcp.grpcPort}"
    insecureEndpoint: true        # test only: plaintext gRPC to the stand-in
  - name: azure-p256
    provider: azurekv
    vaultUrl: ${vault.vaultUrl}
    keyName: image-signing
    keyVersion: ${azKey.version}
    tenantId: ${TENANT}
    clientId: signet-app
    clientSecret: "\${E2E_AZURE_CLIENT_SECRET}"
    authorityHost: ${authority.url}
    caFile: entra-ca.pem
    insecureEndpoint: true        # test only: http vault
    skipChallengeResourceVerification: true   # test only: vault at 127.0.0.1
rules:
  - { match: "${H}/gcp/**", keys: [gcp-rsa] }
  - { match: "${H}/azure/**", keys: [azure-p256] }
`;
  signet = await startSignet(yaml, { baseDir: tmp.dir, port, env: { E2E_AZURE_CLIENT_SECRET: CLIENT_SECRET } });
  for (const name of ['gcp-rsa', 'azure-p256']) {
    const pem = await signet.runtime.keys.get(name)!.publicKeyPem;
    pubFile[name] = path.join(tmp.dir, `${name}.pub`);
    await writeFile(pubFile[name]!, pem);
  }
}, 120_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await gcp?.close();
  await vault?.close();
  await authority?.close();
  tmp?.remove();
});

async function signedOnce(repo: string, digest: string): Promise<void> {
  await waitFor(`signature on ${repo}@${digest.slice(0, 19)}`, async () => (await getManifest(registry, repo, sigTag(digest))).status === 200, 30_000);
}

describe('cloud KMS keys end to end, verified by the real cosign', () => {
  it('gcpkms (gRPC, cosign ref, RSA-2048): a push ends in a signature cosign accepts with the exported key', async () => {
    const img = await pushImage(registry, 'gcp/app', 'v1');
    await signedOnce('gcp/app', img.digest);
    const ok = await cosignVerify(`${registry.host}/gcp/app:v1`, pubFile['gcp-rsa']!);
    expect(ok.ok, ok.stderr).toBe(true);
    expect(ok.payloads[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    expect((await cosignVerify(`${registry.host}/gcp/app:v1`, pubFile.other!)).ok).toBe(false);
    // one GetPublicKey at startup, and one AsymmetricSign per signature (the .sig and the bundle: two)
    expect(gcp.count('GetPublicKey')).toBe(1);
    expect(gcp.count('AsymmetricSign')).toBe(2);
  });

  it('azurekv (client secret via Entra stand-in, challenge flow, EC P-256 raw->DER): cosign accepts, another key is rejected', async () => {
    const img = await pushImage(registry, 'azure/app', 'v1');
    await signedOnce('azure/app', img.digest);
    const ok = await cosignVerify(`${registry.host}/azure/app@${img.digest}`, pubFile['azure-p256']!);
    expect(ok.ok, ok.stderr).toBe(true);
    expect(ok.payloads[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    expect((await cosignVerify(`${registry.host}/azure/app@${img.digest}`, pubFile.other!)).ok).toBe(false);
    expect((await cosignVerify(`${registry.host}/azure/app@${img.digest}`, pubFile['gcp-rsa']!)).ok).toBe(false);
    expect(authority.tokenRequests.every((r) => r.ok && r.clientId === 'signet-app')).toBe(true);
    expect(vault.count('getKey')).toBe(1);
    expect(vault.count('sign')).toBe(2); // the .sig and the bundle
    // the secret reached signet through ${ENV} expansion and appears in no log line
    expect(JSON.stringify(signet.logs)).not.toContain(CLIENT_SECRET);
  });
});
