/**
 * The RETRYABLE table is the one place that decides which error codes the job queue retries:
 * it covers every code, gives the expected answers for the codes that matter, and the throw sites
 * of the upstream clients (transparency log, key services, registry credential exchanges) no
 * longer decide it themselves.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RETRYABLE, SignetError, type ErrorCode } from '../../src/errors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (p: string) => readFileSync(path.join(root, p), 'utf8');

/** The members of the ErrorCode union, read from the source (the type has no runtime form). */
function declaredCodes(): string[] {
  const src = read('src/errors.ts');
  const union = /export type ErrorCode =([\s\S]*?);/.exec(src)![1]!;
  return [...union.matchAll(/\|\s*'([A-Z_]+)'/g)].map((m) => m[1]!);
}

function tsFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? tsFiles(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : [],
  );
}

describe('RETRYABLE', () => {
  it('covers every error code, and nothing else', () => {
    const codes = declaredCodes();
    expect(codes.length).toBeGreaterThan(30);
    expect(Object.keys(RETRYABLE).sort()).toEqual([...codes].sort());
    for (const c of codes) expect(typeof RETRYABLE[c as ErrorCode]).toBe('boolean');
  });

  it('every code a SignetError is created with in src/ is in the table', () => {
    const used = new Set<string>();
    for (const f of tsFiles('src')) for (const m of read(f).matchAll(/new SignetError\(\s*'([A-Z_]+)'/g)) used.add(m[1]!);
    expect(used.size).toBeGreaterThan(20);
    for (const c of used) expect(Object.hasOwn(RETRYABLE, c), c).toBe(true);
  });

  it('retries what may succeed later, not what cannot', () => {
    for (const c of [
      'REGISTRY_UNAVAILABLE',
      'REGISTRY_THROTTLED',
      'KEY_THROTTLED',
      'KEY_UNAVAILABLE',
      'REKOR_UNAVAILABLE',
      'TAG_NOT_FOUND',
      'REDIS_UNAVAILABLE',
      'LOCK_TIMEOUT',
    ] as const) {
      expect([c, RETRYABLE[c]]).toEqual([c, true]);
      expect(new SignetError(c, 'x').retryable).toBe(true);
    }
    for (const c of [
      'REGISTRY_PROTOCOL',
      'REGISTRY_AUTH_FAILED',
      'KEY_DENIED',
      'KEY_NOT_FOUND',
      'KEY_SIGN_FAILED',
      'REKOR_REJECTED',
      'MANIFEST_NOT_FOUND',
      'CONFIG_INVALID',
      'INTERNAL',
    ] as const) {
      expect([c, RETRYABLE[c]]).toEqual([c, false]);
      expect(new SignetError(c, 'x').retryable).toBe(false);
    }
  });

  it('the upstream clients (Rekor, key services, credential exchanges) leave the decision to the table', () => {
    const files = [...tsFiles('src/transparency'), ...tsFiles('src/kms'), ...tsFiles('src/registry/credentials')];
    expect(files.length).toBeGreaterThan(15);
    const offenders = files.flatMap((f) =>
      read(f)
        .split('\n')
        .map((line, i) => ({ line, at: `${f}:${i + 1}` }))
        // an options object or helper parameter that sets `retryable` (reading err.retryable is fine)
        .filter(({ line }) => /(?<![.$\w])retryable\s*(?:[:,}=)]|\?:)/.test(line) && !/^\s*(?:\*|\/\/)/.test(line))
        .map(({ at, line }) => `${at}: ${line.trim()}`),
    );
    expect(offenders).toEqual([]);
  });
});
