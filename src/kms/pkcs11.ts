/**
 * The `pkcs11` key provider: a key in any PKCS#11 token (HSM, smart card, SoftHSM2), through the
 * pkcs11js addon.
 *
 * - Selecting the key: the module (`module`, else COSIGN_PKCS11_MODULE_PATH, like cosign), the
 *   token by `token` label and/or `slot` id and/or `serial`, the private key by `label` (CKA_LABEL)
 *   and/or `id` (CKA_ID, hex). All given attributes must match (RFC 7512), and exactly one token
 *   and one private key must match.
 * - Reference: RFC 7512 `pkcs11:` URIs as cosign writes and reads them
 *   (`pkcs11:token=signet;slot-id=1;id=%01;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234`);
 *   see `parsePkcs11Ref`. The PIN is `pin` (use ${VAR}), else COSIGN_PKCS11_PIN.
 * - Public key: the CKO_PUBLIC_KEY object with the same CKA_ID (or label), else the private key's
 *   RSA modulus/exponent, else the certificate with the same CKA_ID; exported as SPKI PEM and
 *   cross-checked at startup with one signature that must verify.
 * - Accepted keys: RSA with 2048 to 4096 bits that may use PKCS#1 v1.5 or RSASSA-PSS, and EC
 *   P-256. Refused at startup (KEY_UNSUPPORTED): other sizes and curves, EdDSA, keys whose
 *   CKA_ALLOWED_MECHANISMS exclude both PKCS#1 v1.5 and PSS / ECDSA, keys with CKA_SIGN false or
 *   CKA_ALWAYS_AUTHENTICATE. `paddings()` reports what the token offers for the key (a PSS-only
 *   key: `pss` alone, so the runtime refuses it for cosign formats at startup).
 * - Signing: RSA with CKM_SHA256_RSA_PKCS over the payload when the caller passes it (the token
 *   hashes), else CKM_RSA_PKCS over DigestInfo||digest; ECDSA with CKM_ECDSA over the digest, whose
 *   raw r||s is converted to DER. With `rsaPadding: 'pss'` (Notation): CKM_RSA_PKCS_PSS over the
 *   digest with CK_RSA_PKCS_PSS_PARAMS { CKM_SHA256, CKG_MGF1_SHA256, sLen 32 }, else
 *   CKM_SHA256_RSA_PKCS_PSS (same parameters) over the payload. One C_SignInit + C_Sign
 *   (asynchronous, off the event loop) per signature.
 * - Sessions: one module load and C_Initialize (CKF_OS_LOCKING_OK) per module path per process,
 *   one session pool per token shared by all keys on it (a session per concurrent signature,
 *   up to the largest `sessions` of those keys, default 4; reused), one C_Login per token.
 *   `close()` releases the key; the last key of a token closes its sessions, the last key of a
 *   module calls C_Finalize.
 *
 * Errors: a wrong/locked/expired PIN or a key the token will not use -> KEY_DENIED; no such
 * token/key -> KEY_NOT_FOUND; device errors, removed tokens, lost sessions -> KEY_UNAVAILABLE
 * (retryable; the broken session is closed, the key handle or login redone on the next call).
 * The PIN never appears in messages.
 *
 * The parts live in ./pkcs11/: binding (the addon), uri (RFC 7512 references), tokens (modules
 * and session pools), objects (token objects), errors (CKR_ codes), key (one key: inspect, sign).
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { SignetError } from '../errors.js';
import { defineKeyProvider } from './define.js';
import type { KeyAlgorithm, KeyProvider } from './types.js';
import { pkcs11js } from './pkcs11/binding.js';
import { setUpKey } from './pkcs11/key.js';
import { acquireModule, findToken, releaseModule, slotNumber, type TokenPool } from './pkcs11/tokens.js';
import { parsePkcs11Ref } from './pkcs11/uri.js';

export { parsePkcs11Ref } from './pkcs11/uri.js';
export { pkcs11Status } from './pkcs11/tokens.js';

export const pkcs11KeySchema = z
  .object({
    name: z.string().min(1),
    provider: z.literal('pkcs11'),
    /** Absolute path of the PKCS#11 module (default: COSIGN_PKCS11_MODULE_PATH). */
    module: z.string().min(1).optional(),
    /** Token label (CKA token info label, without padding). */
    token: z.string().min(1).optional(),
    /** Slot id (the number C_GetSlotList returns; cosign's slot-id). */
    slot: z.number().int().nonnegative().optional(),
    /** Token serial number. */
    serial: z.string().min(1).optional(),
    /** CKA_LABEL of the private key. */
    label: z.string().min(1).optional(),
    /** CKA_ID of the private key, hex (as pkcs11-tool --id takes it). */
    id: z
      .string()
      .regex(/^(?:[0-9a-fA-F]{2})+$/, 'id must be hex bytes, e.g. 01 or a1b2')
      .optional(),
    /** User PIN (default: COSIGN_PKCS11_PIN). Use ${VAR}. */
    pin: z.string().min(1).optional(),
    /** Most sessions (concurrent signatures) on the token (default 4). */
    sessions: z.number().int().min(1).max(64).optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.token === undefined && v.slot === undefined && v.serial === undefined) {
      ctx.addIssue({ code: 'custom', message: 'name the token: token (label), slot or serial', path: ['token'] });
    }
    if (v.label === undefined && v.id === undefined) {
      ctx.addIssue({ code: 'custom', message: 'name the key: label and/or id', path: ['label'] });
    }
  });
export type Pkcs11KeyConfig = z.infer<typeof pkcs11KeySchema>;

export interface Pkcs11KeyProvider extends KeyProvider {
  readonly algorithm: KeyAlgorithm;
  /** RSA modulus length, or 256 for P-256. */
  readonly keyBits: number;
  /** Release the key's sessions (and the module when it was the last user). */
  close(): Promise<void>;
}

const modulePathOf = (cfg: Pkcs11KeyConfig): string | undefined => {
  const v = cfg.module ?? process.env.COSIGN_PKCS11_MODULE_PATH;
  return v === '' ? undefined : v;
};

export async function createPkcs11KeyProvider(cfg: Pkcs11KeyConfig): Promise<Pkcs11KeyProvider> {
  const modulePath = modulePathOf(cfg);
  if (!modulePath) throw new SignetError('KEY_INVALID', `key "${cfg.name}": no PKCS#11 module (set keys[].module or COSIGN_PKCS11_MODULE_PATH)`);
  if (!path.isAbsolute(modulePath)) throw new SignetError('KEY_INVALID', `key "${cfg.name}": PKCS#11 module path must be absolute: ${modulePath}`);
  let resolved: string;
  try {
    if (!(await stat(modulePath)).isFile()) throw new Error('not a file');
    resolved = await realpath(modulePath); // one load per library, whatever symlink names it
  } catch (err) {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": PKCS#11 module ${modulePath} is not a readable file`, { cause: err });
  }
  const pin = cfg.pin ?? (process.env.COSIGN_PKCS11_PIN || undefined);
  const p = pkcs11js();
  const mod = acquireModule(resolved, cfg.name);
  let pool: TokenPool | undefined;
  try {
    pool = findToken(mod, cfg);
    pool.refs++;
    pool.max = Math.max(pool.max, cfg.sessions ?? 4);
    return await setUpKey(cfg, p, mod, pool, pin);
  } catch (err) {
    if (pool && --pool.refs === 0) {
      pool.closeAll();
      mod.tokens.delete(slotNumber(pool.slot).toString());
    }
    releaseModule(mod);
    throw err;
  }
}

export const pkcs11Provider = defineKeyProvider({
  id: 'pkcs11',
  schema: pkcs11KeySchema,
  create: (cfg: Pkcs11KeyConfig) => createPkcs11KeyProvider(cfg),
  parseRef: parsePkcs11Ref,
});
