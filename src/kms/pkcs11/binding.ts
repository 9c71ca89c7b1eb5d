/**
 * The pkcs11js addon, loaded on first use, and the few PKCS#11 helpers every part of the
 * provider needs (CKR_ codes out of the addon's messages, CK_ULONG attributes, flag constants
 * pkcs11js does not export).
 */
import { createRequire } from 'node:module';
import type * as Pkcs11Types from 'pkcs11js';
import { SignetError } from '../../errors.js';

export type Pkcs11Binding = typeof Pkcs11Types;
export type PKCS11 = Pkcs11Types.PKCS11;
export type Handle = Buffer;

export const CKK_EC_EDWARDS = 0x40;
export const CKK_EC_MONTGOMERY = 0x41;
export const CKF_LOGIN_REQUIRED = 0x4;
export const CKF_USER_PIN_FINAL_TRY = 0x20000;
export const CKF_USER_PIN_LOCKED = 0x40000;

let binding: Pkcs11Binding | undefined;
export function pkcs11js(): Pkcs11Binding {
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

export const ckr = (err: unknown): string | undefined => {
  const m = /\b(CKR_[A-Z0-9_]+)\b/.exec(String((err as Error)?.message ?? ''));
  return m?.[1];
};

export function ulong(b: Buffer | undefined): number | undefined {
  if (!b || b.length === 0) return undefined;
  if (b.length >= 8) return Number(b.readBigUInt64LE(0));
  if (b.length >= 4) return b.readUInt32LE(0);
  return b[0];
}
