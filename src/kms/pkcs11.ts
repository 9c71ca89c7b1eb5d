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
 */
import { constants, createHash, createPublicKey, timingSafeEqual, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Pkcs11Types from 'pkcs11js';
import { z } from 'zod';
import { SignetError, type ErrorCode } from '../errors.js';
import { assertSha256Digest } from './digest-arg.js';
import { defineKeyProvider } from './define.js';
import { rawEcdsaToDer } from './ecdsa.js';
import { PSS_SALT_LENGTH } from './pss.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type KeyProvider, type RsaPadding, type SignOptions } from './types.js';

type Pkcs11Binding = typeof Pkcs11Types;
type PKCS11 = Pkcs11Types.PKCS11;
type Handle = Buffer;

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

const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const CURVES: Record<string, string> = {
  '06082a8648ce3d030107': 'P-256 (prime256v1)',
  '06052b81040022': 'P-384 (secp384r1)',
  '06052b81040023': 'P-521 (secp521r1)',
  '06052b8104000a': 'secp256k1',
  '06092b2403030208010107': 'brainpoolP256r1',
};
const CKK_EC_EDWARDS = 0x40;
const CKK_EC_MONTGOMERY = 0x41;
const CKF_LOGIN_REQUIRED = 0x4;
const CKF_USER_PIN_FINAL_TRY = 0x20000;
const CKF_USER_PIN_LOCKED = 0x40000;

// ---------------------------------------------------------------------------------------------
// the addon

let binding: Pkcs11Binding | undefined;
function pkcs11js(): Pkcs11Binding {
  if (!binding) {
    try {
      binding = createRequire(import.meta.url)('pkcs11js') as Pkcs11Binding;
    } catch (err) {
      throw new SignetError('KEY_INVALID', `the pkcs11js native addon cannot be loaded (${(err as Error).message.split('\n')[0]}); run npm rebuild pkcs11js`, {
        cause: err,
      });
    }
  }
  return binding;
}

// ---------------------------------------------------------------------------------------------
// reference

const REF_PATH_ATTRS = new Set(['token', 'slot-id', 'serial', 'object', 'id', 'type']);
/** Informational attributes (p11tool writes them): accepted and not matched. */
const REF_IGNORED = new Set([
  'manufacturer',
  'model',
  'library-manufacturer',
  'library-description',
  'library-version',
  'slot-description',
  'slot-manufacturer',
]);
const REF_QUERY_ATTRS = new Set(['module-path', 'pin-value']);

function pctDecode(v: string, attr: string): Buffer {
  if (/%(?![0-9a-fA-F]{2})/.test(v)) throw new Error(`bad percent-encoding in attribute ${attr}`);
  const bytes: number[] = [];
  for (let i = 0; i < v.length; ) {
    if (v[i] === '%') {
      bytes.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const cp = v.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  return Buffer.from(bytes);
}

function refAttrs(part: string, allowed: Set<string>, where: 'path' | 'query'): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (part === '') return out;
  for (const item of part.split(where === 'path' ? /[;&]/ : /[&;]/)) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`malformed ${where} attribute "${item.slice(0, 40).replace(/=.*/, '')}" (expected name=value)`);
    const name = item.slice(0, eq).toLowerCase();
    if (REF_IGNORED.has(name) && where === 'path') continue;
    if (!allowed.has(name)) {
      const hint = name === 'pin-source' ? ' (give the PIN with pin-value or the pin field)' : name === 'module-name' ? ' (give module-path)' : '';
      throw new Error(`unsupported ${where} attribute "${name.slice(0, 40)}"${hint}; supported: ${[...allowed].join(', ')}`);
    }
    if (out.has(name)) throw new Error(`attribute "${name}" given twice`);
    out.set(name, pctDecode(item.slice(eq + 1), name));
  }
  return out;
}

/**
 * RFC 7512 `pkcs11:` URI -> config fields, following cosign's `Pkcs11UriConfig.Parse`: path
 * attributes `token`, `slot-id`, `object`, `id` (and `serial`, `type=private`), query attributes
 * `module-path` and `pin-value`; one of token/slot-id and one of object/id are required. Values are
 * percent-decoded; `id` becomes hex. Returns undefined for other schemes.
 */
export function parsePkcs11Ref(ref: string): Record<string, unknown> | undefined {
  if (!/^pkcs11:/i.test(ref)) return undefined;
  const body = ref.slice('pkcs11:'.length);
  if (body.includes('#')) throw new Error('a pkcs11: URI has no fragment');
  const q = body.indexOf('?');
  const pathAttrs = refAttrs(q < 0 ? body : body.slice(0, q), REF_PATH_ATTRS, 'path');
  const queryAttrs = refAttrs(q < 0 ? '' : body.slice(q + 1), REF_QUERY_ATTRS, 'query');
  const text = (b: Buffer | undefined) => (b === undefined ? undefined : b.toString('utf8'));
  const out: Record<string, unknown> = {};
  const token = text(pathAttrs.get('token'));
  const slot = text(pathAttrs.get('slot-id'));
  const serial = text(pathAttrs.get('serial'));
  const object = text(pathAttrs.get('object'));
  const id = pathAttrs.get('id');
  const type = text(pathAttrs.get('type'));
  const modulePath = text(queryAttrs.get('module-path'));
  const pin = text(queryAttrs.get('pin-value'));
  if (!token && !slot && !serial) throw new Error('one of token and slot-id must be set');
  if (!object && (!id || id.length === 0)) throw new Error('one of object and id must be set');
  if (type !== undefined && type !== 'private' && type !== 'public') {
    throw new Error(`type=${type.slice(0, 20)} does not name a key pair (use type=private or leave it out)`);
  }
  if (slot !== undefined) {
    if (!/^\d+$/.test(slot) || !Number.isSafeInteger(Number(slot))) throw new Error(`slot-id '${slot.slice(0, 20)}' is not a valid number`);
    out.slot = Number(slot);
  }
  if (token) out.token = token;
  if (serial) out.serial = serial;
  if (object) out.label = object;
  if (id && id.length > 0) out.id = id.toString('hex');
  if (modulePath) {
    if (!path.isAbsolute(modulePath)) throw new Error('module-path must be an absolute path');
    out.module = modulePath;
  }
  if (pin) out.pin = pin;
  return out;
}

// ---------------------------------------------------------------------------------------------
// module and token state (process-wide)

interface ModuleEntry {
  path: string;
  lib: PKCS11;
  refs: number;
  /** We called C_Initialize (and so call C_Finalize). */
  initialized: boolean;
  tokens: Map<string, TokenPool>;
}

const modules = new Map<string, ModuleEntry>();

const ckr = (err: unknown): string | undefined => {
  const m = /\b(CKR_[A-Z0-9_]+)\b/.exec(String((err as Error)?.message ?? ''));
  return m?.[1];
};

function ulong(b: Buffer | undefined): number | undefined {
  if (!b || b.length === 0) return undefined;
  if (b.length >= 8) return Number(b.readBigUInt64LE(0));
  if (b.length >= 4) return b.readUInt32LE(0);
  return b[0];
}

function slotNumber(slot: Handle): bigint {
  return slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0));
}

/** A pool of sessions on one token, shared by every key on it. */
class TokenPool {
  refs = 0;
  max = 0;
  open = 0;
  loggedIn = false;
  pinDigest: Buffer | undefined;
  private readonly idle: Handle[] = [];
  private readonly waiters: ((s: Handle | Error) => void)[] = [];

  constructor(
    readonly mod: ModuleEntry,
    readonly slot: Handle,
    readonly label: string,
    readonly flags: number,
  ) {}

  get describe(): string {
    return `token "${this.label}" (slot ${slotNumber(this.slot)})`;
  }

  /** An idle session, a new one (up to `max`), or the next one released. */
  async acquire(keyName: string): Promise<Handle> {
    const s = this.idle.pop();
    if (s) return s;
    try {
      if (this.open < this.max) return this.openSession();
      const got = await new Promise<Handle | Error>((resolve) => this.waiters.push(resolve));
      if (got instanceof Error) throw got;
      return got;
    } catch (err) {
      throw classify(err, keyName, `C_OpenSession on ${this.describe}`);
    }
  }

  private openSession(): Handle {
    const p = pkcs11js();
    const s = this.mod.lib.C_OpenSession(this.slot, p.CKF_SERIAL_SESSION);
    this.open++;
    return s;
  }

  release(s: Handle, broken: boolean): void {
    if (broken) {
      try {
        this.mod.lib.C_CloseSession(s);
      } catch {
        // already gone
      }
      this.open--;
      if (this.open === 0) this.loggedIn = false; // closing the last session logs out (PKCS#11 5.6)
      const next = this.waiters.shift();
      if (next) {
        try {
          next(this.openSession());
        } catch (err) {
          next(err as Error);
        }
      }
      return;
    }
    const next = this.waiters.shift();
    if (next) next(s);
    else this.idle.push(s);
  }

  closeAll(): void {
    try {
      this.mod.lib.C_CloseAllSessions(this.slot);
    } catch {
      // token gone
    }
    this.idle.length = 0;
    this.open = 0;
    this.loggedIn = false;
  }
}

/** Loaded modules and their token pools (for tests and diagnostics). */
export function pkcs11Status(): { module: string; refs: number; tokens: { token: string; refs: number; open: number; loggedIn: boolean }[] }[] {
  return [...modules.values()].map((m) => ({
    module: m.path,
    refs: m.refs,
    tokens: [...m.tokens.values()].map((t) => ({ token: t.label, refs: t.refs, open: t.open, loggedIn: t.loggedIn })),
  }));
}

function acquireModule(modulePath: string, keyName: string): ModuleEntry {
  const existing = modules.get(modulePath);
  if (existing) {
    existing.refs++;
    return existing;
  }
  const p = pkcs11js();
  const lib = new p.PKCS11();
  try {
    lib.load(modulePath);
  } catch (err) {
    throw new SignetError('KEY_INVALID', `key "${keyName}": cannot load PKCS#11 module ${modulePath}: ${String((err as Error).message).split('\n')[0]}`, { cause: err });
  }
  let initialized = true;
  try {
    lib.C_Initialize({ flags: p.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (ckr(err) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      initialized = false; // someone else in this process initialized it: leave C_Finalize to them
    } else {
      try {
        lib.close();
      } catch {
        // ignore
      }
      throw classify(err, keyName, `C_Initialize of ${modulePath}`);
    }
  }
  const entry: ModuleEntry = { path: modulePath, lib, refs: 1, initialized, tokens: new Map() };
  modules.set(modulePath, entry);
  return entry;
}

function releaseModule(m: ModuleEntry): void {
  if (--m.refs > 0) return;
  modules.delete(m.path);
  for (const t of m.tokens.values()) t.closeAll();
  m.tokens.clear();
  try {
    if (m.initialized) m.lib.C_Finalize();
  } catch {
    // ignore
  }
  try {
    m.lib.close();
  } catch {
    // ignore
  }
}

function findToken(m: ModuleEntry, cfg: Pkcs11KeyConfig): TokenPool {
  const wanted = [
    cfg.token !== undefined ? `label "${cfg.token}"` : '',
    cfg.slot !== undefined ? `slot ${cfg.slot}` : '',
    cfg.serial !== undefined ? `serial ${cfg.serial}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  let slots: Handle[];
  try {
    slots = m.lib.C_GetSlotList(true);
  } catch (err) {
    throw classify(err, cfg.name, 'C_GetSlotList');
  }
  const seen: string[] = [];
  const matches: { slot: Handle; label: string; flags: number }[] = [];
  for (const slot of slots) {
    let info: Pkcs11Types.TokenInfo;
    try {
      info = m.lib.C_GetTokenInfo(slot);
    } catch {
      continue;
    }
    const label = info.label.replace(/[\s\0]+$/, '');
    const serial = info.serialNumber.replace(/[\s\0]+$/, '');
    seen.push(`"${label}" (slot ${slotNumber(slot)})`);
    if (cfg.token !== undefined && label !== cfg.token) continue;
    if (cfg.slot !== undefined && slotNumber(slot) !== BigInt(cfg.slot)) continue;
    if (cfg.serial !== undefined && serial !== cfg.serial) continue;
    matches.push({ slot, label, flags: info.flags });
  }
  if (matches.length === 0) {
    throw new SignetError(
      'KEY_NOT_FOUND',
      `key "${cfg.name}": no token with ${wanted} in PKCS#11 module ${m.path} (tokens: ${seen.join(', ') || 'none'})`,
    );
  }
  if (matches.length > 1) {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": ${matches.length} tokens match ${wanted}; add slot or serial`);
  }
  const { slot, label, flags } = matches[0]!;
  const key = slotNumber(slot).toString();
  let pool = m.tokens.get(key);
  if (!pool) {
    pool = new TokenPool(m, slot, label, flags);
    m.tokens.set(key, pool);
  }
  return pool;
}

// ---------------------------------------------------------------------------------------------
// errors

const DENIED = new Set([
  'CKR_PIN_INCORRECT',
  'CKR_PIN_INVALID',
  'CKR_PIN_LEN_RANGE',
  'CKR_PIN_EXPIRED',
  'CKR_PIN_LOCKED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_USER_PIN_NOT_INITIALIZED',
  'CKR_USER_TYPE_INVALID',
  'CKR_USER_ANOTHER_ALREADY_LOGGED_IN',
  'CKR_KEY_FUNCTION_NOT_PERMITTED',
  'CKR_FUNCTION_REJECTED',
]);
const UNAVAILABLE = new Set([
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_SESSION_COUNT',
  'CKR_OPERATION_ACTIVE',
  'CKR_HOST_MEMORY',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
  'CKR_FUNCTION_CANCELED',
  'CKR_CANT_LOCK',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_KEY_HANDLE_INVALID',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_SLOT_ID_INVALID',
]);
const UNSUPPORTED = new Set(['CKR_MECHANISM_INVALID', 'CKR_MECHANISM_PARAM_INVALID', 'CKR_KEY_TYPE_INCONSISTENT', 'CKR_KEY_SIZE_RANGE']);

function classify(err: unknown, keyName: string, what: string): SignetError {
  if (err instanceof SignetError) return err;
  const code = ckr(err);
  const hint: Record<string, string> = {
    CKR_PIN_INCORRECT: ': wrong PIN',
    CKR_PIN_LOCKED: ': the user PIN is locked (too many wrong PINs); unlock it with the SO PIN',
    CKR_PIN_EXPIRED: ': the PIN has expired',
    CKR_USER_NOT_LOGGED_IN: ': not logged in (is a PIN configured?)',
    CKR_KEY_FUNCTION_NOT_PERMITTED: ': the key may not sign',
    CKR_TOKEN_NOT_PRESENT: ': token not present',
    CKR_DEVICE_REMOVED: ': device removed',
  };
  const msg = `key "${keyName}": PKCS#11 ${what} failed: ${code ?? String((err as Error)?.message ?? err).split('\n')[0]}${code ? (hint[code] ?? '') : ''}`;
  let c: ErrorCode = 'KEY_SIGN_FAILED';
  if (code && DENIED.has(code)) c = 'KEY_DENIED';
  else if (code && UNAVAILABLE.has(code)) c = 'KEY_UNAVAILABLE';
  else if (code && UNSUPPORTED.has(code)) c = 'KEY_UNSUPPORTED';
  return new SignetError(c, msg, { cause: err });
}

// ---------------------------------------------------------------------------------------------
// objects

function findObjects(lib: PKCS11, session: Handle, template: Pkcs11Types.Template, max = 4): Handle[] {
  lib.C_FindObjectsInit(session, template);
  try {
    return lib.C_FindObjects(session, max);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

/** One attribute, or undefined when the object does not have it (or it is sensitive). */
function attr(lib: PKCS11, session: Handle, obj: Handle, type: number): Buffer | undefined {
  try {
    const [a] = lib.C_GetAttributeValue(session, obj, [{ type }]);
    return a?.value;
  } catch {
    return undefined;
  }
}

const b64u = (b: Buffer) => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i).toString('base64url');
};

function ecPointToSpki(point: Buffer): KeyObject | undefined {
  // CKA_EC_POINT is a DER OCTET STRING (04 41 04||X||Y); some tokens give the bare point
  let q = point;
  if (q.length === 67 && q[0] === 0x04 && q[1] === 0x41) q = q.subarray(2);
  if (q.length !== 65 || q[0] !== 0x04) return undefined;
  try {
    return createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, q]), format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

function describeCurve(params: Buffer | undefined): string {
  if (!params) return 'EC (unknown curve)';
  const hex = params.toString('hex');
  return `EC ${CURVES[hex] ?? `curve with parameters ${hex.slice(0, 40)}`}`;
}

// ---------------------------------------------------------------------------------------------
// provider

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
    return await setUp(cfg, p, mod, pool, pin);
  } catch (err) {
    if (pool && --pool.refs === 0) {
      pool.closeAll();
      mod.tokens.delete(slotNumber(pool.slot).toString());
    }
    releaseModule(mod);
    throw err;
  }
}

async function setUp(cfg: Pkcs11KeyConfig, p: Pkcs11Binding, mod: ModuleEntry, pool: TokenPool, pin: string | undefined): Promise<Pkcs11KeyProvider> {
  const lib = mod.lib;
  const keyDesc = [cfg.label !== undefined ? `label "${cfg.label}"` : '', cfg.id !== undefined ? `id ${cfg.id}` : ''].filter(Boolean).join(', ');
  const where = `${pool.describe} of ${mod.path}`;
  const pinDigest = pin === undefined ? undefined : createHash('sha256').update(pin).digest();

  /** C_Login once per token; a second key on the token must bring the same PIN. */
  function login(session: Handle): void {
    if (pool.loggedIn) {
      if (pinDigest && pool.pinDigest && !timingSafeEqual(pinDigest, pool.pinDigest)) {
        throw new SignetError('KEY_DENIED', `key "${cfg.name}": PKCS#11 C_Login failed: CKR_PIN_INCORRECT: wrong PIN (another key logged in to ${pool.describe} with a different PIN)`);
      }
      if (!pinDigest && pool.flags & CKF_LOGIN_REQUIRED) {
        throw new SignetError('KEY_DENIED', `key "${cfg.name}": ${where} requires a PIN and none is configured (set pin or COSIGN_PKCS11_PIN)`);
      }
      return;
    }
    if (pin === undefined) {
      if (pool.flags & CKF_LOGIN_REQUIRED) {
        throw new SignetError('KEY_DENIED', `key "${cfg.name}": ${where} requires a PIN and none is configured (set pin or COSIGN_PKCS11_PIN)`);
      }
      return;
    }
    let flags = pool.flags;
    try {
      flags = lib.C_GetTokenInfo(pool.slot).flags;
    } catch {
      // use what we saw when the token was found
    }
    if (flags & CKF_USER_PIN_LOCKED) throw new SignetError('KEY_DENIED', `key "${cfg.name}": the user PIN of ${where} is locked`);
    if (flags & CKF_USER_PIN_FINAL_TRY) {
      // a wrong PIN now would lock the token (e.g. in a restart loop): leave the last try to a human
      throw new SignetError('KEY_DENIED', `key "${cfg.name}": ${where} allows one more PIN attempt only; not logging in (check the PIN, then log in once by hand)`);
    }
    try {
      lib.C_Login(session, p.CKU_USER, pin);
    } catch (err) {
      if (ckr(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw classify(err, cfg.name, `C_Login to ${pool.describe}`);
    }
    pool.loggedIn = true;
    pool.pinDigest = pinDigest;
  }

  function findPrivate(session: Handle): Handle {
    const template: Pkcs11Types.Template = [{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }];
    if (cfg.id !== undefined) template.push({ type: p.CKA_ID, value: Buffer.from(cfg.id, 'hex') });
    if (cfg.label !== undefined) template.push({ type: p.CKA_LABEL, value: cfg.label });
    let found: Handle[];
    try {
      found = findObjects(lib, session, template);
    } catch (err) {
      throw classify(err, cfg.name, `C_FindObjects on ${pool.describe}`);
    }
    if (found.length === 0) {
      throw new SignetError('KEY_NOT_FOUND', `key "${cfg.name}": no private key with ${keyDesc} on ${where}`);
    }
    if (found.length > 1) {
      throw new SignetError('KEY_INVALID', `key "${cfg.name}": ${found.length} private keys match ${keyDesc} on ${where}; add id or label to pick one`);
    }
    return found[0]!;
  }

  // --- inspect the key (one session, synchronous calls)
  const session = await pool.acquire(cfg.name);
  let broken = false;
  let keyHandle: Handle | undefined;
  let algorithm: KeyAlgorithm;
  let keyBits: number;
  let publicKey: KeyObject;
  let sigLen: number;
  const mechs = new Set<number>();
  /** What the token offers for this key (its CKA_ALLOWED_MECHANISMS included). */
  let pkcs1Raw = false;
  let pkcs1Hash = false;
  let pssRaw = false;
  let pssHash = false;
  try {
    login(session);
    keyHandle = findPrivate(session);
    const keyType = ulong(attr(lib, session, keyHandle, p.CKA_KEY_TYPE));
    const idBytes = attr(lib, session, keyHandle, p.CKA_ID);
    const labelBytes = attr(lib, session, keyHandle, p.CKA_LABEL);
    const refuse = (what: string, why: string): never => {
      throw new SignetError('KEY_UNSUPPORTED', `key "${cfg.name}" is ${what} (${keyDesc} on ${pool.describe}): ${why}`);
    };
    try {
      for (const m of lib.C_GetMechanismList(pool.slot)) mechs.add(m);
    } catch (err) {
      throw classify(err, cfg.name, `C_GetMechanismList on ${pool.describe}`);
    }
    const allowedRaw = attr(lib, session, keyHandle, p.CKA_ALLOWED_MECHANISMS);
    const allowed = new Set<number>();
    if (allowedRaw && allowedRaw.length > 0) {
      const w = allowedRaw.length % 8 === 0 ? 8 : 4;
      for (let i = 0; i + w <= allowedRaw.length; i += w) allowed.add(ulong(allowedRaw.subarray(i, i + w))!);
    }
    const usable = (m: number) => mechs.has(m) && (allowed.size === 0 || allowed.has(m));

    /** The public half: the public key object, else attributes of the private key, else a certificate. */
    const companion = (cls: number): Handle | undefined => {
      const t: Pkcs11Types.Template = [{ type: p.CKA_CLASS, value: cls }];
      if (idBytes && idBytes.length > 0) t.push({ type: p.CKA_ID, value: idBytes });
      else if (labelBytes && labelBytes.length > 0) t.push({ type: p.CKA_LABEL, value: labelBytes });
      else return undefined;
      const found = findObjects(lib, session, t, 2);
      return found.length === 1 ? found[0] : undefined;
    };
    const fromCertificate = (): KeyObject | undefined => {
      const cert = companion(p.CKO_CERTIFICATE);
      const der = cert && attr(lib, session, cert, p.CKA_VALUE);
      if (!der) return undefined;
      try {
        return new X509Certificate(der).publicKey;
      } catch {
        return undefined;
      }
    };

    if (keyType === p.CKK_RSA) {
      const pubObj = companion(p.CKO_PUBLIC_KEY);
      const modulus = (pubObj && attr(lib, session, pubObj, p.CKA_MODULUS)) ?? attr(lib, session, keyHandle, p.CKA_MODULUS);
      const exponent = (pubObj && attr(lib, session, pubObj, p.CKA_PUBLIC_EXPONENT)) ?? attr(lib, session, keyHandle, p.CKA_PUBLIC_EXPONENT);
      let pub: KeyObject | undefined;
      if (modulus && exponent) pub = createPublicKey({ key: { kty: 'RSA', n: b64u(modulus), e: b64u(exponent) }, format: 'jwk' });
      pub ??= fromCertificate();
      if (!pub) throw new SignetError('KEY_INVALID', `key "${cfg.name}": no unique public key object (nor certificate) for the RSA key with ${keyDesc} on ${where}`);
      const privModulus = attr(lib, session, keyHandle, p.CKA_MODULUS);
      const pubJwk = pub.export({ format: 'jwk' });
      if (privModulus && pubJwk.n !== b64u(privModulus)) {
        throw new SignetError('KEY_INVALID', `key "${cfg.name}": the public key found for ${keyDesc} on ${where} does not belong to the private key`);
      }
      keyBits = pub.asymmetricKeyDetails?.modulusLength ?? 0;
      if (pub.asymmetricKeyType !== 'rsa') refuse(`${pub.asymmetricKeyType}`, 'not an RSA public key');
      if (keyBits < 2048 || keyBits > 4096) refuse(`RSA-${keyBits}`, 'RSA keys need 2048 to 4096 bits');
      pkcs1Raw = usable(p.CKM_RSA_PKCS);
      pkcs1Hash = usable(p.CKM_SHA256_RSA_PKCS);
      pssRaw = usable(p.CKM_RSA_PKCS_PSS);
      pssHash = usable(p.CKM_SHA256_RSA_PKCS_PSS);
      if (!pkcs1Raw && !pkcs1Hash && !pssRaw && !pssHash) {
        refuse(
          `RSA-${keyBits}`,
          allowed.size > 0
            ? 'its allowed mechanisms exclude both PKCS#1 v1.5 and RSASSA-PSS with SHA-256'
            : 'the token offers none of CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS',
        );
      }
      algorithm = 'rsa-2048';
      publicKey = pub;
      sigLen = Math.ceil(keyBits / 8);
    } else if (keyType === p.CKK_EC) {
      const params = attr(lib, session, keyHandle, p.CKA_EC_PARAMS);
      if (!params || !params.equals(P256_PARAMS)) refuse(describeCurve(params), 'only the P-256 curve is supported');
      const pubObj = companion(p.CKO_PUBLIC_KEY);
      const point = pubObj && attr(lib, session, pubObj, p.CKA_EC_POINT);
      const pub = (point && ecPointToSpki(point)) ?? fromCertificate();
      if (!pub) throw new SignetError('KEY_INVALID', `key "${cfg.name}": no unique public key object (nor certificate) for the EC key with ${keyDesc} on ${where}`);
      if (pub.asymmetricKeyType !== 'ec' || pub.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new SignetError('KEY_INVALID', `key "${cfg.name}": the public key found for ${keyDesc} on ${where} is not P-256`);
      }
      if (!usable(p.CKM_ECDSA) && !usable(p.CKM_ECDSA_SHA256)) refuse('EC P-256', 'the token does not offer CKM_ECDSA for it');
      algorithm = 'ecdsa-p256';
      keyBits = 256;
      publicKey = pub;
      sigLen = 64;
    } else {
      const what =
        keyType === CKK_EC_EDWARDS ? 'an EdDSA key' : keyType === CKK_EC_MONTGOMERY ? 'a Montgomery-curve key' : keyType === p.CKK_DSA ? 'a DSA key' : `key type 0x${(keyType ?? 0).toString(16)}`;
      return refuse(what, 'only ECDSA P-256 and RSA (2048 to 4096 bits) keys are supported');
    }
    const canSign = attr(lib, session, keyHandle, p.CKA_SIGN);
    if (canSign && canSign.length > 0 && canSign[0] === 0) refuse(algorithm === 'rsa-2048' ? `RSA-${keyBits}` : 'EC P-256', 'CKA_SIGN is false');
    const always = attr(lib, session, keyHandle, p.CKA_ALWAYS_AUTHENTICATE);
    if (always && always.length > 0 && always[0] !== 0) {
      refuse(algorithm === 'rsa-2048' ? `RSA-${keyBits}` : 'EC P-256', 'CKA_ALWAYS_AUTHENTICATE keys need a PIN entry per signature');
    }
  } catch (err) {
    broken = !(err instanceof SignetError) || err.retryable;
    throw classify(err, cfg.name, `key lookup on ${pool.describe}`);
  } finally {
    pool.release(session, broken);
  }

  const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const useRsaRaw = mechs.has(p.CKM_RSA_PKCS);
  const useRsaHash = mechs.has(p.CKM_SHA256_RSA_PKCS);
  const useEcdsa = mechs.has(p.CKM_ECDSA);
  const canPkcs1 = pkcs1Raw || pkcs1Hash;
  const canPss = pssRaw || pssHash;
  const paddings: readonly RsaPadding[] =
    algorithm === 'ecdsa-p256' ? BOTH_PADDINGS : [...(canPkcs1 ? ['pkcs1v15' as const] : []), ...(canPss ? ['pss' as const] : [])];
  /** CK_RSA_PKCS_PSS_PARAMS: SHA-256, MGF1-SHA-256, a 32-byte salt (notary.x509). */
  const pssParams: Pkcs11Types.RsaPSS = { type: p.CK_PARAMS_RSA_PSS, hashAlg: p.CKM_SHA256, mgf: p.CKG_MGF1_SHA256, saltLen: PSS_SALT_LENGTH };

  let inflight = 0;
  let drained: (() => void) | undefined;
  let closed = false;

  async function signOnce(digest: Buffer, payload: Buffer | undefined, pss = false): Promise<Buffer> {
    const withPayload = payload !== undefined && createHash('sha256').update(payload).digest().equals(digest);
    let mechanism: number;
    let parameter: Pkcs11Types.RsaPSS | undefined;
    let data: Buffer;
    if (algorithm === 'rsa-2048' && pss) {
      parameter = pssParams;
      if (pssRaw) {
        mechanism = p.CKM_RSA_PKCS_PSS;
        data = digest;
      } else if (pssHash && withPayload) {
        mechanism = p.CKM_SHA256_RSA_PKCS_PSS;
        data = payload!;
      } else {
        throw new SignetError(
          'KEY_SIGN_FAILED',
          `key "${cfg.name}": ${pssHash ? `${pool.describe} only offers CKM_SHA256_RSA_PKCS_PSS for it, which needs the payload` : `cannot sign RSASSA-PSS (${keyDesc} on ${pool.describe} allows neither CKM_RSA_PKCS_PSS nor CKM_SHA256_RSA_PKCS_PSS)`}`,
        );
      }
    } else if (algorithm === 'rsa-2048') {
      if (!canPkcs1) {
        throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": cannot sign PKCS#1 v1.5 (${keyDesc} on ${pool.describe} is restricted to RSASSA-PSS); cosign formats need a PKCS#1 v1.5 key`);
      }
      if (withPayload && useRsaHash) {
        mechanism = p.CKM_SHA256_RSA_PKCS;
        data = payload!;
      } else if (useRsaRaw) {
        mechanism = p.CKM_RSA_PKCS;
        data = Buffer.concat([SHA256_DIGEST_INFO, digest]);
      } else {
        throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": ${pool.describe} only offers CKM_SHA256_RSA_PKCS, which needs the payload`);
      }
    } else if (useEcdsa || !withPayload) {
      mechanism = p.CKM_ECDSA;
      data = digest;
    } else {
      mechanism = p.CKM_ECDSA_SHA256;
      data = payload!;
    }
    const session = await pool.acquire(cfg.name);
    let broken = false;
    let started = false;
    try {
      login(session);
      keyHandle ??= findPrivate(session);
      started = true;
      lib.C_SignInit(session, parameter ? { mechanism, parameter } : { mechanism }, keyHandle);
      const out = await lib.C_SignAsync(session, data, Buffer.alloc(sigLen));
      if (algorithm === 'ecdsa-p256') {
        if (out.length !== 64) throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": CKM_ECDSA returned ${out.length} bytes, expected 64`);
        return rawEcdsaToDer(out);
      }
      if (out.length !== sigLen) throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": RSA signature of ${out.length} bytes, expected ${sigLen}`);
      return out;
    } catch (err) {
      const code = ckr(err);
      // a failed C_SignInit/C_Sign may leave the operation active, and session or device errors
      // leave the session unusable: drop it. (Not for our own checks, e.g. a key that is gone.)
      broken = started || (code !== undefined && UNAVAILABLE.has(code));
      if (code === 'CKR_KEY_HANDLE_INVALID' || code === 'CKR_OBJECT_HANDLE_INVALID') keyHandle = undefined;
      if (code === 'CKR_USER_NOT_LOGGED_IN') {
        pool.loggedIn = false;
        throw new SignetError('KEY_UNAVAILABLE', `key "${cfg.name}": PKCS#11 session on ${pool.describe} lost its login; logging in again on the next attempt`, { cause: err });
      }
      throw classify(err, cfg.name, `C_SignInit/C_Sign on ${pool.describe}`);
    } finally {
      pool.release(session, broken);
    }
  }

  // Self-test: a signature over sha256(x) must verify with the public key we export (a PSS-only
  // key is tested with PSS).
  const probe = Buffer.from(`signet self-test for key ${cfg.name}`);
  const probePss = algorithm === 'rsa-2048' && !canPkcs1;
  const probeSig = await signOnce(createHash('sha256').update(probe).digest(), probe, probePss);
  const probeOk = probePss
    ? verify('sha256', probe, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH }, probeSig)
    : verify('sha256', probe, publicKey, probeSig);
  if (!probeOk) {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": self-test signature by ${keyDesc} on ${where} does not verify with its public key`);
  }

  return {
    name: cfg.name,
    algorithm,
    keyBits,
    async publicKeyPem() {
      return spkiPem;
    },
    async paddings() {
      return paddings;
    },
    async sign(digest: Buffer, payload?: Buffer, opts?: SignOptions) {
      assertSha256Digest(cfg.name, digest);
      if (closed) throw new SignetError('KEY_UNAVAILABLE', `key "${cfg.name}": the PKCS#11 key was closed`);
      inflight++;
      try {
        return await signOnce(digest, payload, opts?.rsaPadding === 'pss');
      } finally {
        if (--inflight === 0) drained?.();
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (inflight > 0) await new Promise<void>((resolve) => (drained = resolve));
      if (--pool.refs === 0) {
        pool.closeAll();
        mod.tokens.delete(slotNumber(pool.slot).toString());
      }
      releaseModule(mod);
    },
  };
}

export const pkcs11Provider = defineKeyProvider({
  id: 'pkcs11',
  schema: pkcs11KeySchema,
  create: (cfg: Pkcs11KeyConfig) => createPkcs11KeyProvider(cfg),
  parseRef: parsePkcs11Ref,
});
