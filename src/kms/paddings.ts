/**
 * Startup check that every key a rule signs with can pad its RSA signatures the way the rule's
 * formats need (cosign formats: PKCS#1 v1.5; Notation `notary.x509`: RSASSA-PSS). The runtime
 * calls it once per rule with the rule's keys and the paddings its formats need; a key that
 * cannot is refused with KEY_INVALID naming the key, instead of failing on every image later.
 */
import { SignetError } from '../errors.js';
import type { KeyProvider, RsaPadding } from './types.js';

const LABEL: Record<RsaPadding, string> = { pkcs1v15: 'RSA PKCS#1 v1.5', pss: 'RSASSA-PSS (SHA-256, 32-byte salt)' };

/** What a key can sign: its provider's answer, or PKCS#1 v1.5 alone for a provider that does not say. */
export async function keyPaddings(key: Pick<KeyProvider, 'paddings'>): Promise<readonly RsaPadding[]> {
  return key.paddings ? key.paddings() : ['pkcs1v15'];
}

/**
 * Throw KEY_INVALID for the first key (in order) that cannot sign with every padding in `needed`.
 * `keys` are KeyProviders or anything holding one as `backend` (a SigningKey).
 */
export async function checkPaddings(
  keys: Iterable<Pick<KeyProvider, 'name' | 'paddings'> | { readonly name: string; readonly backend: Pick<KeyProvider, 'paddings'> }>,
  needed: RsaPadding | readonly RsaPadding[],
): Promise<void> {
  const want: readonly RsaPadding[] = typeof needed === 'string' ? [needed] : needed;
  for (const key of keys) {
    const provider = 'backend' in key ? key.backend : key;
    const has = await keyPaddings(provider);
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
