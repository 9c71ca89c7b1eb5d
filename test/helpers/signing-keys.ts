/**
 * Unit-test stand-ins for the signing flow: an in-process P-256 key (a real SigningKey over a
 * backend that counts its signatures and exposes its key pair), the format writers called with
 * keys and a Rekor policy (each key becomes a Signer), a lock that just runs the function, and a
 * digest of a string.
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { SigningKey } from '../../src/kms/signing-key.js';
import type { KeyProvider } from '../../src/kms/types.js';
import type { KeyCertificate } from '../../src/signing/certificate.js';
import type { DigestLock } from '../../src/signing/lock.js';
import { attachBundles as attachBundle } from '../../src/formats/bundle/write.js';
import { attachLegacySignatures as attachLegacy } from '../../src/formats/legacy/write.js';
import type { SignResult, Subject } from '../../src/formats/types.js';
import type { RegistryClient } from '../../src/registry/client.js';
import type { SignatureLimitMetrics } from '../../src/signing/carry.js';
import { Signer } from '../../src/signing/signer.js';
import type { TlogPolicy } from '../../src/signing/tlog.js';

const newPair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

export type TestKey = SigningKey & { readonly signs: number; raw: ReturnType<typeof newPair> };

/** A key named `name` signing with a fresh (or the given) P-256 key pair; `signs` counts its backend calls. */
export function testKey(name: string, opts: { certificate?: KeyCertificate; pair?: ReturnType<typeof newPair> } = {}): TestKey {
  const pair = opts.pair ?? newPair();
  let signs = 0;
  const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const backend: KeyProvider = {
    name,
    publicKeyPem: async () => pem,
    sign: async (_d: Buffer, payload?: Buffer) => (signs++, sign('sha256', payload!, pair.privateKey)),
  };
  const k = new SigningKey(backend, pem, { certificate: opts.certificate }) as TestKey;
  Object.defineProperty(k, 'signs', { get: () => signs });
  Object.defineProperty(k, 'raw', { value: pair });
  return k;
}

/** A DigestLock that takes no lock. */
export const noLock = { withLock: <T>(_n: string, fn: () => Promise<T>) => fn() } as unknown as DigestLock;

export const digestOf = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;

const asKey = new WeakMap<KeyProvider, SigningKey>();
/** A SigningKey for a test's own KeyProvider (one value per provider, so its memo lasts across calls). */
export async function signingKeyOf(k: SigningKey | KeyProvider): Promise<SigningKey> {
  if (k instanceof SigningKey) return k;
  let v = asKey.get(k);
  if (!v) asKey.set(k, (v = new SigningKey(k, await k.publicKeyPem())));
  return v;
}

/** The legacy writer called the way tests used to: keys and payloads, the Rekor policy as an option. */
export async function attachLegacySignatures(
  c: RegistryClient,
  repo: string,
  digest: string,
  reqs: { key: SigningKey | KeyProvider; payload: Buffer }[],
  lock: DigestLock,
  opts: { tlog?: TlogPolicy; expectNew?: boolean; verifyWrite?: boolean; metrics?: SignatureLimitMetrics } = {},
): Promise<SignResult[]> {
  const { tlog, ...rest } = opts;
  const requests = await Promise.all(reqs.map(async (r) => ({ signer: new Signer(await signingKeyOf(r.key), { tlog }), payload: r.payload })));
  return attachLegacy(c, repo, digest, requests, lock, rest);
}

/** The bundle writer called the way tests used to. */
export async function attachBundles(
  c: RegistryClient,
  repo: string,
  subject: Subject,
  reqs: { key: SigningKey | KeyProvider; statement: Buffer }[],
  lock: DigestLock,
  opts: { tlog?: TlogPolicy; apiReadbackMs?: number } = {},
): Promise<SignResult[]> {
  const { tlog, ...rest } = opts;
  // the annotations a present bundle must carry: those of the statement's subject
  const annotationsOf = (st: Buffer) => (JSON.parse(st.toString()) as { subject: { annotations?: Record<string, string> }[] }).subject[0]?.annotations;
  const requests = await Promise.all(
    reqs.map(async (r) => ({ signer: new Signer(await signingKeyOf(r.key), { tlog }), statement: r.statement, annotations: annotationsOf(r.statement) })),
  );
  return attachBundle(c, repo, subject, requests, lock, rest);
}
