/**
 * The legacy cosign format: simple-signing payloads signed into the `sha256-<hex>.sig` manifest
 * (what containers/image, cosign 2, Kyverno and policy-controller read). See docs/formats.md.
 */
import type { SignatureFormat } from '../types.js';
import { readLegacy } from './read.js';
import { writeLegacy } from './write.js';

export const legacyFormat: SignatureFormat = { name: 'legacy', rsaPadding: 'pkcs1v15', read: readLegacy, write: writeLegacy };
