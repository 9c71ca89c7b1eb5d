/**
 * Cloud registry credential flows with the real SDKs against local stand-ins that speak their
 * token APIs, ending at a real docker-registry that accepts signet's push ONLY with the token
 * the flow produced:
 *
 * - ECR: @aws-sdk/client-ecr GetAuthorizationToken (AWS JSON 1.1 stand-in) -> base64 "AWS:<pw>"
 *   -> htpasswd registry whose only user is AWS:<pw>.
 * - ACR: @azure/identity ClientSecretCredential against an https Entra stand-in -> access token
 *   -> POST /oauth2/exchange on the registry host -> refresh token -> token-auth registry whose
 *   token service accepts only 00000000-0000-0000-0000-000000000000:<refresh token>.
 * - GAR: google-auth-library with a service-account key file (JWT-bearer grant, RS256 checked by
 *   the stand-in) -> access token -> htpasswd registry whose only user is oauth2accesstoken:<token>.
 * - Docker config.json (auths) against the ECR registry.
 * No test contacts a cloud metadata address: static credentials, AWS_EC2_METADATA_DISABLED,
 * METADATA_SERVER_DETECTION=none, and an explicit Entra client secret.
 */
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.METADATA_SERVER_DETECTION = 'none';

import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { createRuntime } from '../../src/runtime.js';
import { cosignVerify } from '../helpers/cosign.js';
import { getManifest, pushImage, sigTag } from '../helpers/images.js';
import { selfSignedCert, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { deletePrefix, REDIS_URL, tempKeyDir, uniquePrefix, type KeyDir } from '../helpers/signet.js';
import { fakeJwt, startAcrFront, startEntraStandIn, type AcrFront, type EntraStandIn } from '../helpers/standins/acr-exchange.js';
import { startEcrStandIn, type EcrStandIn } from '../helpers/standins/ecr.js';
import { startGarTokenStandIn, type GarTokenStandIn } from '../helpers/standins/gar-token.js';

const ACR_USER = '00000000-0000-0000-0000-000000000000';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const CLIENT_SECRET = 'entra-client-secret-1';

const ecrPassword = `ecr-${Date.now()}-pw`;
const acrRefresh = fakeJwt({ aud: 'acr', grant_type: 'refresh_token', exp: Math.floor(Date.now() / 1000) + 3 * 3600 });
const garToken = `ya29.signet-test-${Date.now()}`;

let tmp: KeyDir;
let pubPath: string;
let ecr: EcrStandIn;
let entra: EntraStandIn;
let front: AcrFront;
let gar: GarTokenStandIn;
let regEcr: RunningRegistry;
let regAcr: RunningRegistry;
let regGar: RunningRegistry;
let entraCa: string;
let keyFile: string;

beforeAll(async () => {
  tmp = tempKeyDir();
  pubPath = tmp.pub;
  const cert = await selfSignedCert(tmp.dir, 'entra', { cn: '127.0.0.1', san: 'IP:127.0.0.1,DNS:localhost' });
  entraCa = cert.certFile;
  [ecr, entra, gar, regEcr, regAcr, regGar] = await Promise.all([
    startEcrStandIn({ password: ecrPassword }),
    startEntraStandIn({ tenantId: TENANT, certFile: cert.certFile, keyFile: cert.keyFile }),
    startGarTokenStandIn({ accessToken: garToken }),
    startRegistry({ auth: { kind: 'htpasswd', username: 'AWS', password: ecrPassword } }),
    startRegistry({ auth: { kind: 'token', username: ACR_USER, password: acrRefresh } }),
    startRegistry({ auth: { kind: 'htpasswd', username: 'oauth2accesstoken', password: garToken } }),
  ]);
  entra.addClient(CLIENT_ID, CLIENT_SECRET);
  front = await startAcrFront({ upstream: regAcr.host, refreshToken: acrRefresh, tenantId: TENANT, acceptAccessToken: (t) => entra.issued.includes(t) });
  keyFile = gar.addServiceAccount(path.join(tmp.dir, 'sa.json'));
});

afterAll(async () => {
  await Promise.allSettled([regEcr?.stop(), regAcr?.stop(), regGar?.stop(), ecr?.close(), entra?.close(), front?.close(), gar?.close()]);
  tmp?.remove();
});

function yamlFor(host: string, registryExtra: string): string {
  return `
registries:
  - host: ${host}
    insecure: true
${registryExtra}
keys:
  - { name: k, provider: file, path: k.pem }
rules:
  - { match: "${host}/**", keys: [k] }
`;
}

async function signWith(yaml: string, env: Record<string, string>, target: { host: string; repository: string; tag: string }) {
  const prefix = uniquePrefix();
  const loaded = parseConfigText(yaml, 'creds.yaml', env);
  loaded.config.redis.url = REDIS_URL;
  loaded.config.redis.prefix = prefix;
  const lines: string[] = [];
  const sink = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
  const rt = await createRuntime({ ...loaded, baseDir: tmp.dir }, { logger: createLogger({ level: 'debug', destination: sink }), metrics: new Metrics() });
  try {
    return { report: await rt.pipeline.sign(target), logs: lines.join('') };
  } finally {
    await rt.close();
    await deletePrefix(prefix);
  }
}

async function expectSigned(reg: { url: string }, repository: string, digest: string, auth: { username: string; password: string }) {
  const sig = await getManifest(reg, repository, sigTag(digest), { auth });
  expect(sig.status).toBe(200);
}

describe('registry credentials: the token each flow produces is what the registry accepts', () => {
  it('ECR: GetAuthorizationToken through @aws-sdk/client-ecr; one call serves the whole job', async () => {
    const auth = { username: 'AWS', password: ecrPassword };
    const img = await pushImage(regEcr, 'team/ecr', 'v1', { auth });
    const ecrBlock = `    credentials:\n      ecr: { region: eu-west-1, endpoint: "${ecr.url}", accessKeyId: ${ecr.accessKeyId}, secretAccessKey: "\${AWS_SECRET}" }`;
    const before = ecr.issued;
    const { report, logs } = await signWith(
      yamlFor(regEcr.host, ecrBlock),
      { AWS_SECRET: ecr.secretAccessKey },
      { host: regEcr.host, repository: 'team/ecr', tag: 'v1' },
    );
    expect(report).toMatchObject({ status: 'signed', digest: img.digest });
    expect(ecr.issued - before).toBe(1);
    expect(logs).not.toContain(ecrPassword);
    await expectSigned(regEcr, 'team/ecr', img.digest, auth);
    const v = await cosignVerify(`${regEcr.host}/team/ecr:v1`, pubPath, [], { auth });
    expect(v.ok, v.stderr).toBe(true);

    // the same flow with a token the registry does not know: refused, not retried
    ecr.password = 'not-the-registry-password';
    try {
      const bad = signWith(yamlFor(regEcr.host, ecrBlock), { AWS_SECRET: ecr.secretAccessKey }, { host: regEcr.host, repository: 'team/ecr', tag: 'v1' });
      await expect(bad).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', retryable: false });
    } finally {
      ecr.password = ecrPassword;
    }
    // and an access key ECR does not know stops at ECR
    const wrongKey = signWith(
      yamlFor(regEcr.host, ecrBlock.replace(ecr.accessKeyId, 'AKIAWRONGWRONGWRONG1')),
      { AWS_SECRET: 'x' },
      { host: regEcr.host, repository: 'team/ecr', tag: 'v1' },
    );
    await expect(wrongKey).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', retryable: false });
  });

  it('ACR: Entra client secret (real ClientSecretCredential) -> /oauth2/exchange on the registry host -> refresh token', async () => {
    const auth = { username: ACR_USER, password: acrRefresh };
    const img = await pushImage(regAcr, 'team/acr', 'v1', { auth });
    const tokenHost = new URL(regAcr.tokenServer!.realm).host;
    const block = [
      `    authHosts: ["${tokenHost}"]`,
      '    credentials:',
      `      acr: { tenantId: ${TENANT}, clientId: ${CLIENT_ID}, clientSecret: "\${ACR_SECRET}", authorityHost: "${entra.url}", caFile: "${entraCa}" }`,
    ].join('\n');
    const { report, logs } = await signWith(yamlFor(front.host, block), { ACR_SECRET: CLIENT_SECRET }, { host: front.host, repository: 'team/acr', tag: 'v1' });
    expect(report).toMatchObject({ status: 'signed', digest: img.digest });
    expect(entra.tokenRequests).toEqual([{ clientId: CLIENT_ID, scope: 'https://containerregistry.azure.net/.default', ok: true }]);
    expect(front.exchanges).toEqual([{ service: front.host, tenant: TENANT, ok: true }]);
    expect(logs).not.toContain(acrRefresh);
    await expectSigned(regAcr, 'team/acr', img.digest, auth);

    // a wrong client secret is refused by Entra: no exchange, REGISTRY_AUTH_FAILED
    const bad = signWith(yamlFor(front.host, block), { ACR_SECRET: 'wrong' }, { host: front.host, repository: 'team/acr', tag: 'v1' });
    await expect(bad).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', retryable: false });
    expect(front.exchanges).toHaveLength(1);
  });

  it('GAR: service-account key file, JWT-bearer grant through google-auth-library, token as oauth2accesstoken', async () => {
    const auth = { username: 'oauth2accesstoken', password: garToken };
    const img = await pushImage(regGar, 'proj/repo/app', 'v1', { auth });
    const block = `    credentials:\n      gar: { keyFile: sa.json, tokenUrl: "${gar.tokenUrl}" }`;
    const { report, logs } = await signWith(yamlFor(regGar.host, block), {}, { host: regGar.host, repository: 'proj/repo/app', tag: 'v1' });
    expect(report).toMatchObject({ status: 'signed', digest: img.digest });
    expect(gar.requests).toEqual([{ iss: 'signet@signet-test.iam.gserviceaccount.com', scope: 'https://www.googleapis.com/auth/cloud-platform', ok: true }]);
    expect(logs).not.toContain(garToken);
    await expectSigned(regGar, 'proj/repo/app', img.digest, auth);

    // a key the token endpoint does not know: invalid_grant -> REGISTRY_AUTH_FAILED
    const other = path.join(tmp.dir, 'other-sa.json');
    writeFileSync(
      other,
      JSON.stringify({
        ...JSON.parse(readFileSync(keyFile, 'utf8')),
        private_key: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
      }),
    );
    const bad = signWith(yamlFor(regGar.host, block.replace('sa.json', 'other-sa.json')), {}, { host: regGar.host, repository: 'proj/repo/app', tag: 'v1' });
    await expect(bad).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', retryable: false });
  });

  it('Docker config.json: auths entry for the host (base64 auth)', async () => {
    const auth = { username: 'AWS', password: ecrPassword };
    const img = await pushImage(regEcr, 'team/docker-config', 'v1', { auth });
    const dir = path.join(tmp.dir, 'docker');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({
        auths: { [`http://${regEcr.host}/v2/`]: { auth: Buffer.from(`AWS:${ecrPassword}`).toString('base64') }, 'other.example.com': { auth: 'eDp5' } },
      }),
    );
    const { report } = await signWith(
      yamlFor(regEcr.host, '    credentials: { dockerConfig: docker }'),
      {},
      { host: regEcr.host, repository: 'team/docker-config', tag: 'v1' },
    );
    expect(report).toMatchObject({ status: 'signed', digest: img.digest });
    await expectSigned(regEcr, 'team/docker-config', img.digest, auth);
  });
});
