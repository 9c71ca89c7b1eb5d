/**
 * Writes legacy cosign signatures for one digest: under the per-digest lock, read the .sig
 * manifest, skip keys whose valid signature over the same payload is already there, sign the
 * rest, upload payload and config blobs, PUT the manifest by tag, then read it back to confirm.
 */
import { createHash, createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { SignetError } from '../errors.js';
import type { KeyProvider } from '../kms/types.js';
import type { RegistryClient } from '../registry/client.js';
import { OCI_MANIFEST, COSIGN_SIMPLE_SIGNING } from '../registry/media-types.js';
import { signatureTag } from '../registry/reference.js';
import { sha256Digest } from '../util/digest.js';
import type { DigestLock } from './lock.js';
import {
  buildSignatureManifest,
  parseSignatureManifest,
  SIGNATURE_ANNOTATION,
  signatureLayer,
  type SignatureLayer,
} from './legacy-sig.js';

export interface SignRequest {
  key: KeyProvider;
  payload: Buffer;
}

export interface SignResult {
  key: string;
  /** signed: a new layer was written; present: an equal valid signature was already there. */
  outcome: 'signed' | 'present';
  payloadDigest: string;
}

const MAX_ATTEMPTS = 3;
const publicKeys = new WeakMap<KeyProvider, KeyObject>();

async function publicKeyOf(key: KeyProvider): Promise<KeyObject> {
  let k = publicKeys.get(key);
  if (!k) {
    k = createPublicKey(await key.publicKeyPem());
    publicKeys.set(key, k);
  }
  return k;
}

/** Does `layer` hold a signature by `key` over exactly `payload`? */
export async function layerSignedBy(layer: SignatureLayer, payload: Buffer, payloadDigest: string, key: KeyProvider): Promise<boolean> {
  if (layer.digest !== payloadDigest || layer.mediaType !== COSIGN_SIMPLE_SIGNING) return false;
  const b64 = layer.annotations[SIGNATURE_ANNOTATION];
  if (!b64) return false;
  try {
    return verifySignature('sha256', payload, await publicKeyOf(key), Buffer.from(b64, 'base64'));
  } catch {
    return false;
  }
}

export async function attachLegacySignatures(
  client: RegistryClient,
  repository: string,
  digest: string,
  requests: readonly SignRequest[],
  lock: DigestLock,
): Promise<SignResult[]> {
  const tag = signatureTag(digest);
  return lock.withLock(`${client.host}/${repository}@${digest}`, async () => {
    for (let attempt = 1; ; attempt++) {
      const existing = await client.getManifest(repository, tag, OCI_MANIFEST);
      const layers = existing ? parseSignatureManifest(existing.body) : [];
      const results: SignResult[] = [];
      const added: { layer: SignatureLayer; payload: Buffer }[] = [];

      await Promise.all(
        requests.map(async (req) => {
          const payloadDigest = sha256Digest(req.payload);
          for (const l of layers) {
            if (await layerSignedBy(l, req.payload, payloadDigest, req.key)) {
              results.push({ key: req.key.name, outcome: 'present', payloadDigest });
              return;
            }
          }
          const hash = createHash('sha256').update(req.payload).digest();
          const signature = await req.key.sign(hash, req.payload);
          added.push({ layer: signatureLayer(req.payload, payloadDigest, signature.toString('base64')), payload: req.payload });
          results.push({ key: req.key.name, outcome: 'signed', payloadDigest });
        }),
      );
      if (added.length === 0) return order(results, requests);

      // Keep the order of `requests` for the new layers so output is deterministic.
      added.sort((a, b) => indexOfLayer(a.layer) - indexOfLayer(b.layer));
      const all = [...layers, ...added.map((a) => a.layer)];
      const built = buildSignatureManifest(all);
      const uploaded = new Set<string>();
      for (const a of added) {
        if (uploaded.has(a.layer.digest)) continue;
        uploaded.add(a.layer.digest);
        await client.uploadBlob(repository, a.payload, !existing);
      }
      await client.uploadBlob(repository, built.config, true);
      await client.putManifest(repository, tag, built.manifest, OCI_MANIFEST);

      // Read back: another writer outside our lock (cosign, a second signet) may have raced us.
      const check = await client.getManifest(repository, tag, OCI_MANIFEST);
      const stored = check ? parseSignatureManifest(check.body) : [];
      const kept = added.every((a) =>
        stored.some((l) => l.digest === a.layer.digest && l.annotations[SIGNATURE_ANNOTATION] === a.layer.annotations[SIGNATURE_ANNOTATION]),
      );
      if (kept) return order(results, requests);
      if (attempt >= MAX_ATTEMPTS) {
        throw new SignetError(
          'SIGNATURE_READBACK_FAILED',
          `${repository}:${tag} changed under us ${MAX_ATTEMPTS} times (another writer outside signet?)`,
          { retryable: true },
        );
      }
    }

    function indexOfLayer(l: SignatureLayer): number {
      return requests.findIndex((r) => sha256Digest(r.payload) === l.digest);
    }
  });
}

function order(results: SignResult[], requests: readonly SignRequest[]): SignResult[] {
  const rank = new Map(requests.map((r, i) => [r.key.name, i]));
  return results.sort((a, b) => (rank.get(a.key) ?? 0) - (rank.get(b.key) ?? 0));
}
