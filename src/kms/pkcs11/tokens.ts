/**
 * Process-wide PKCS#11 state: one loaded module (C_Initialize once, C_Finalize with its last key)
 * per library path, and per token one pool of sessions shared by every key on it.
 */
import type * as Pkcs11Types from 'pkcs11js';
import { SignetError } from '../../errors.js';
import type { Pkcs11KeyConfig } from '../pkcs11.js';
import { ckr, pkcs11js, type Handle, type PKCS11 } from './binding.js';
import { classify } from './errors.js';

export interface ModuleEntry {
  path: string;
  lib: PKCS11;
  refs: number;
  /** We called C_Initialize (and so call C_Finalize). */
  initialized: boolean;
  tokens: Map<string, TokenPool>;
}

const modules = new Map<string, ModuleEntry>();

export function slotNumber(slot: Handle): bigint {
  return slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0));
}

/** A pool of sessions on one token, shared by every key on it. */
export class TokenPool {
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

export function acquireModule(modulePath: string, keyName: string): ModuleEntry {
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
    throw new SignetError('KEY_INVALID', `key "${keyName}": cannot load PKCS#11 module ${modulePath}: ${String((err as Error).message).split('\n')[0]}`, {
      cause: err,
    });
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

export function releaseModule(m: ModuleEntry): void {
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

export function findToken(m: ModuleEntry, cfg: Pkcs11KeyConfig): TokenPool {
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
    throw new SignetError('KEY_NOT_FOUND', `key "${cfg.name}": no token with ${wanted} in PKCS#11 module ${m.path} (tokens: ${seen.join(', ') || 'none'})`);
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
