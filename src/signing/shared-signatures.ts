/**
 * Signatures a worker made recently, kept in Redis for 30 minutes so that another worker
 * process reuses them (the in-process memo, signature-memo.ts, cannot reach there).
 *
 * The case: a job fails after its signature was made (a 5xx on the .sig PUT, a lost lock) and
 * its retry runs in another worker process. Without this it would call the key again, and an
 * ECDSA signature differs each time, so Rekor would get a second permanent entry. With it the
 * retry finds the same signature, and Rekor answers 409 with the entry the first attempt made.
 * (Concurrent jobs for one digest are kept apart by the signing lock instead: pipeline.ts.)
 *
 * A record is only a hint: what comes back from Redis is used only if it verifies with the
 * key's public key over this exact payload (anyone who can write to Redis could write it), and
 * any Redis error just means "not found" / "not kept". Keyed by the key id (sha256 of the public
 * key, so a key replaced under the same name never gets the old one's signature) and the
 * payload's sha256.
 */
import { constants, createHash, verify } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ownKeyPrefix } from '../config/redis.js';
import type { SigningKey } from '../kms/signing-key.js';
import type { SignOptions } from '../kms/types.js';

export interface SharedSignatures {
  /** A verified signature by `key` over `payload` another worker made recently, if any. */
  find(key: SigningKey, payload: Buffer, opts?: SignOptions): Promise<Buffer | undefined>;
  /** Keep a signature for other workers (best effort). */
  keep(key: SigningKey, payload: Buffer, opts: SignOptions | undefined, signature: Buffer): Promise<void>;
}

const TTL_MS = 30 * 60_000;

export class RedisSignatures implements SharedSignatures {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly ttlMs = TTL_MS,
  ) {}

  /** The record's Redis key: the one place it is built. */
  private keyOf(key: SigningKey, payload: Buffer, opts: SignOptions | undefined): string {
    const payloadHex = createHash('sha256').update(payload).digest('hex');
    const keyHex = key.keyId.slice('sha256:'.length);
    return `${ownKeyPrefix(this.prefix)}:signature:${keyHex}:${payloadHex}${opts?.rsaPadding === 'pss' ? ':pss' : ''}`;
  }

  async find(key: SigningKey, payload: Buffer, opts?: SignOptions): Promise<Buffer | undefined> {
    const b64 = await this.redis.get(this.keyOf(key, payload, opts)).catch(() => null);
    if (!b64) return undefined;
    const signature = Buffer.from(b64, 'base64');
    return verifies(key, payload, signature, opts) ? signature : undefined;
  }

  async keep(key: SigningKey, payload: Buffer, opts: SignOptions | undefined, signature: Buffer): Promise<void> {
    await this.redis.set(this.keyOf(key, payload, opts), signature.toString('base64'), 'PX', this.ttlMs).catch(() => undefined);
  }
}

/** Does `signature` verify with the key over `payload` (SHA-256; PSS when the format asks for it)? */
export function verifies(key: SigningKey, payload: Buffer, signature: Buffer, opts?: SignOptions): boolean {
  try {
    const pk = key.publicKey;
    if (pk.asymmetricKeyType === 'ed25519') return verify(null, payload, pk, signature);
    if (opts?.rsaPadding === 'pss')
      return verify('sha256', payload, { key: pk, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature);
    return verify('sha256', payload, pk, signature);
  } catch {
    return false;
  }
}
