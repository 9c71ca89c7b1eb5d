/**
 * The sigstore bundle format: a DSSE in-toto statement (cosign's sign predicate) in a bundle
 * v0.3, stored as an OCI 1.1 referrer (what cosign 3 writes and reads first). See docs/formats.md.
 */
import type { SignatureFormat } from '../types.js';
import { readBundles } from './read.js';
import { writeBundles } from './write.js';

export const bundleFormat: SignatureFormat = { name: 'bundle', rsaPadding: 'pkcs1v15', read: readBundles, write: writeBundles };
