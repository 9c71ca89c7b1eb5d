/**
 * Registry webhook dialects end to end: images are pushed to a real docker-registry that sends
 * no notifications; the test posts each registry's payload (as Quay, ACR and GitHub send it) to
 * signet's /hooks/<name>; signet (receiver + worker, real Redis) resolves the image from the
 * registry, signs, and the real `cosign verify` decides. The payloads name the hosts those
 * registries use (quay.example.com, myregistry.azurecr.io, ghcr.io): `aliases` map them to
 * the test registry, and the signature identity names the configured host.
 */
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignVerify, tempDir } from '../helpers/cosign.js';
import { getManifest, pushImage, pushIndex, sigTag } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, waitFor, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'adapters-e2e-secret-0123456789';
const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));

let registry: RunningRegistry;
let signet: RunningSignet;
let tmp: { dir: string; remove: () => void };
let pub: string;
/** Stands in for Google's key that signs Pub/Sub push JWTs. */
const google = generateKeyPairSync('rsa', { modulusLength: 2048 });
const AUDIENCE = 'https://signet.example.com/hooks/gar';

beforeAll(async () => {
  tmp = tempDir();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, 'p256.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  pub = path.join(tmp.dir, 'p256.pub');
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(path.join(tmp.dir, 'google-keys.pem'), google.publicKey.export({ type: 'spki', format: 'pem' }));
  registry = await startRegistry(); // no notifications: only the posted payloads reach signet
  const yaml = `
registries:
  - host: ${registry.host}
    insecure: true
    aliases: ["quay.example.com", "myregistry.azurecr.io", "ghcr.io", "us-west1-docker.pkg.dev"]
integrations:
  - { name: quay, kind: quay, secret: "${SECRET}" }
  - { name: acr, kind: acr, secret: "${SECRET}", header: X-Signet-Token }
  - { name: github, kind: github, secret: "${SECRET}" }
  - name: gar
    kind: gar
    secret: "${SECRET}"
    jwt: { audience: "${AUDIENCE}", keys: google-keys.pem }
keys:
  - { name: p256, provider: file, path: p256.pem }
rules:
  - { match: "${registry.host}/**", keys: [p256] }
`;
  // gar's jwt.keys must be an absolute path (or inline keys)
  signet = await startSignet(yaml.replace('keys: google-keys.pem', `keys: ${path.join(tmp.dir, 'google-keys.pem')}`), { baseDir: tmp.dir });
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  tmp?.remove();
});

async function signed(repo: string, digest: string): Promise<void> {
  await waitFor(`signature on ${repo}@${digest.slice(0, 19)}`, async () => (await getManifest(registry, repo, sigTag(digest))).status === 200);
}

async function verified(ref: string, digest: string): Promise<void> {
  const v = await cosignVerify(ref, pub);
  expect(v.ok, v.stderr).toBe(true);
  expect(v.payloads.map((p) => p.critical.image['docker-manifest-digest'])).toContain(digest);
}

describe('registry webhook dialects through the real pipeline, verified by cosign', () => {
  it('Quay repo_push (tag only, no digest): the worker resolves the tag and signs it', async () => {
    const img = await pushImage(registry, 'myorg/api', 'v1');
    const body = {
      ...fixture('quay-repo_push.json'),
      docker_url: 'quay.example.com/myorg/api',
      homepage: 'https://quay.example.com/repository/myorg/api',
      updated_tags: ['v1'],
    };
    const res = await fetch(`${signet.url}/hooks/quay?token=${SECRET}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(202);
    await signed('myorg/api', img.digest);
    const v = await cosignVerify(`${registry.host}/myorg/api:v1`, pub);
    expect(v.ok, v.stderr).toBe(true);
    expect(v.payloads[0].critical.image['docker-manifest-digest']).toBe(img.digest);
    expect(v.payloads[0].critical.identity['docker-reference']).toBe(`${registry.host}/myorg/api:v1`);
  });

  it('ACR push of a multi-arch index (secret in a custom header): the index and every child verify; ping is 200', async () => {
    const idx = await pushIndex(registry, 'team-a/api', 'v2', ['linux/amd64', 'linux/arm64']);
    const body = fixture('acr-push-index.json');
    body.target = { ...body.target, digest: idx.digest, tag: 'v2', size: idx.manifest.length, length: idx.manifest.length };
    const post = (b: unknown, token: string) =>
      fetch(`${signet.url}/hooks/acr`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-signet-token': token }, body: JSON.stringify(b) });
    expect((await post(fixture('acr-ping.json'), SECRET)).status).toBe(200);
    expect((await post(body, 'wrong-secret-0123456789')).status).toBe(401);
    expect((await post(body, SECRET)).status).toBe(202);
    for (const d of [idx.digest, ...idx.children]) await signed('team-a/api', d);
    for (const d of [idx.digest, ...idx.children]) await verified(`${registry.host}/team-a/api@${d}`, d);
  });

  it('GitHub package published (HMAC over the raw body; owner in upper case in package_url)', async () => {
    const img = await pushImage(registry, 'myorg/web', 'v3');
    const body = fixture('github-package-published.json');
    const v = body.package.package_version;
    v.package_url = 'ghcr.io/MyOrg/web:v3';
    v.name = v.version = img.digest;
    v.container_metadata.tag = { name: 'v3', digest: img.digest };
    v.container_metadata.manifest = { ...v.container_metadata.manifest, digest: img.digest, media_type: img.mediaType };
    const raw = JSON.stringify(body);
    const sig = `sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`;
    const res = await fetch(`${signet.url}/hooks/github`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'package', 'x-github-delivery': 'e2e-1', 'x-hub-signature-256': sig },
      body: raw,
    });
    expect(res.status).toBe(202);
    await signed('myorg/web', img.digest);
    await verified(`${registry.host}/myorg/web:v3`, img.digest);
  });

  it('GAR Pub/Sub push (base64 message.data, push JWT verified, digest-only child ignored as untagged)', async () => {
    const img = await pushImage(registry, 'my-project/my-repo/api', 'v4');
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ aud: AUDIENCE, iss: 'https://accounts.google.com', iat: now, exp: now + 600 })}`;
    const token = `${input}.${sign('sha256', Buffer.from(input), google.privateKey).toString('base64url')}`;
    const message = (data: unknown, id: string) => ({
      message: { data: Buffer.from(JSON.stringify(data)).toString('base64'), messageId: id, publishTime: new Date().toISOString() },
      subscription: 'projects/my-project/subscriptions/gcr-to-signet',
    });
    const post = (body: unknown, auth: string) =>
      fetch(`${signet.url}/hooks/gar?token=${SECRET}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: auth },
        body: JSON.stringify(body),
      });
    const ref = `us-west1-docker.pkg.dev/my-project/my-repo/api`;
    const insert = message({ action: 'INSERT', digest: `${ref}@${img.digest}`, tag: `${ref}:v4` }, 'm-1');
    expect((await post(insert, 'Bearer not.a.jwt')).status).toBe(401);
    expect((await post(insert, `Bearer ${token}`)).status).toBe(202);
    const untagged = await post(message({ action: 'INSERT', digest: `${ref}@${img.digest}` }, 'm-2'), `Bearer ${token}`);
    expect(untagged.status).toBe(200);
    expect(((await untagged.json()) as any).ignored[0].reason).toMatch(/untagged/);
    await signed('my-project/my-repo/api', img.digest);
    await verified(`${registry.host}/my-project/my-repo/api:v4`, img.digest);
  });
});
