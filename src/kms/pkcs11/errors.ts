/**
 * PKCS#11 return codes mapped to signet's error codes: a wrong or locked PIN, a key the token
 * will not use -> KEY_DENIED; device and session trouble -> KEY_UNAVAILABLE (retried); an
 * unsupported mechanism -> KEY_UNSUPPORTED; anything else -> KEY_SIGN_FAILED. The PIN never
 * appears in a message.
 */
import { SignetError, type ErrorCode } from '../../errors.js';
import { ckr } from './binding.js';

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
export const UNAVAILABLE = new Set([
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

export function classify(err: unknown, keyName: string, what: string): SignetError {
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
