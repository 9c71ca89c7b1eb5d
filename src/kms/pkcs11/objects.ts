/**
 * Reading token objects: find by template, one attribute at a time, and the public-key shapes
 * tokens hand out (CKA_EC_POINT, RSA modulus/exponent) turned into KeyObjects.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type * as Pkcs11Types from 'pkcs11js';
import type { Handle, PKCS11 } from './binding.js';

export const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const CURVES: Record<string, string> = {
  '06082a8648ce3d030107': 'P-256 (prime256v1)',
  '06052b81040022': 'P-384 (secp384r1)',
  '06052b81040023': 'P-521 (secp521r1)',
  '06052b8104000a': 'secp256k1',
  '06092b2403030208010107': 'brainpoolP256r1',
};

export function findObjects(lib: PKCS11, session: Handle, template: Pkcs11Types.Template, max = 4): Handle[] {
  lib.C_FindObjectsInit(session, template);
  try {
    return lib.C_FindObjects(session, max);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

/** One attribute, or undefined when the object does not have it (or it is sensitive). */
export function attr(lib: PKCS11, session: Handle, obj: Handle, type: number): Buffer | undefined {
  try {
    const [a] = lib.C_GetAttributeValue(session, obj, [{ type }]);
    return a?.value;
  } catch {
    return undefined;
  }
}

export const b64u = (b: Buffer) => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i).toString('base64url');
};

export function ecPointToSpki(point: Buffer): KeyObject | undefined {
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

export function describeCurve(params: Buffer | undefined): string {
  if (!params) return 'EC (unknown curve)';
  const hex = params.toString('hex');
  return `EC ${CURVES[hex] ?? `curve with parameters ${hex.slice(0, 40)}`}`;
}
