/**
 * The signature formats signet reads and writes, by the name rules use in `formats:`. A new
 * format is a module in this folder and one entry here; the config schema takes its names from
 * this map.
 */
import type { FormatName } from '../signing/plan.js';
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

export type { SignatureFormat } from './types.js';
