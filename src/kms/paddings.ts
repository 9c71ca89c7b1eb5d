/**
 * Startup check that every key a rule signs with can pad its RSA signatures the way the rule's
 * formats need (cosign formats: PKCS#1 v1.5; Notation `notary.x509`: RSASSA-PSS). The runtime
 * calls it once per rule with the rule's keys and the paddings its formats need; a key that
 * cannot is refused with KEY_INVALID naming the key, instead of failing on every image later.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { SignetError } from '../errors.js';
import { BOTH_PADDINGS, type KeyProvider, type RsaPadding } from './types.js';

const LABEL: Record<RsaPadding, string> = { pkcs1v15: 'RSA PKCS#1 v1.5', pss: 'RSASSA-PSS (SHA-256, 32-byte salt)' };

type Backend = Pick<KeyProvider, 'paddings' | 'publicKeyPem'>;
/** A KeyProvider, or anything holding one as `backend` (a SigningKey, whose `publicKey` is known). */
export type PaddedKey = (Backend & { readonly name: string }) | { readonly name: string; readonly backend: Backend; readonly publicKey?: KeyObject };

/**
 * What a key can sign: its provider's `paddings()`; for a provider without it, both for an ECDSA
 * key (the padding does not apply) and PKCS#1 v1.5 alone for an RSA key.
 */
export async function keyPaddings(key: PaddedKey): Promise<readonly RsaPadding[]> {
  const backend = 'backend' in key ? key.backend : key;
  if (backend.paddings) return backend.paddings();
  const pub = ('backend' in key ? key.publicKey : undefined) ?? createPublicKey(await backend.publicKeyPem());
  return pub.asymmetricKeyType === 'ec' ? BOTH_PADDINGS : ['pkcs1v15'];
}

/** Throw KEY_INVALID for the first key (in order) that cannot sign with every padding in `needed`. */
export async function checkPaddings(keys: Iterable<PaddedKey>, needed: RsaPadding | readonly RsaPadding[]): Promise<void> {
  const want: readonly RsaPadding[] = typeof needed === 'string' ? [needed] : needed;
  for (const key of keys) {
    const has = await keyPaddings(key);
    const missing = want.filter((p) => !has.includes(p));
    if (missing.length > 0) {
      throw new SignetError(
        'KEY_INVALID',
        `key "${key.name}" cannot sign ${missing.map((p) => LABEL[p]).join(' or ')} (it signs ${has.map((p) => LABEL[p]).join(', ') || 'nothing'}); ` +
          `${missing.includes('pss') ? 'Notation signatures need RSASSA-PSS' : 'cosign signatures need PKCS#1 v1.5'}: use another key for this rule`,
      );
    }
  }
}
