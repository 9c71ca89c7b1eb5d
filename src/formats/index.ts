/**
 * The signature formats signet reads and writes, by the name rules use in `formats:`. A new
 * format is a module in this folder and one entry here; the config schema takes its names from
 * this map.
 */
import type { RuleConfig } from '../config/schema.js';
import { checkPaddings } from '../kms/paddings.js';
import type { SigningKey } from '../kms/signing-key.js';
import { formatsOf, type FormatName } from '../signing/plan.js';
import { bundleFormat } from './bundle/index.js';
import { legacyFormat } from './legacy/index.js';
import { notationFormat } from './notation/index.js';
import type { SignatureFormat } from './types.js';

export const FORMATS: { readonly [N in FormatName]: SignatureFormat } = {
  legacy: legacyFormat,
  bundle: bundleFormat,
  notation: notationFormat,
};

/** The formats of a plan, in write order: legacy first, so a verifier that finds a bundle and stops there sees a complete .sig. */
export function formatsFor(names: readonly FormatName[]): SignatureFormat[] {
  return (Object.keys(FORMATS) as FormatName[]).filter((n) => names.includes(n)).map((n) => FORMATS[n]);
}

/**
 * Refuse (KEY_INVALID, naming the key) a rule whose keys cannot sign what its formats need: an
 * RSA key whose backend signs only PSS under a cosign format, or only PKCS#1 v1.5 under Notation.
 * Called at startup and by `signet config check`, so this shows before the first push.
 */
export async function checkRuleKeys(rules: readonly Pick<RuleConfig, 'keys' | 'formats'>[], keys: ReadonlyMap<string, SigningKey>): Promise<void> {
  for (const rule of rules) {
    const needed = [...new Set(formatsFor(formatsOf(rule)).map((f) => f.rsaPadding))];
    await checkPaddings(
      rule.keys.flatMap((n) => keys.get(n) ?? []),
      needed,
    );
  }
}

export type { SignatureFormat } from './types.js';
