/**
 * Rule globs -> verifier patterns, checked against re-implementations of each verifier's matcher
 * (Kyverno go-wildcard, policy-controller pkg/apis/glob, containers/image scopes) over every
 * repository of a small enumerated universe: a translation must match everything the rule does
 * (never let an unsigned image through), and an `exact` one nothing more.
 */
import picomatch from 'picomatch';
import { describe, expect, it } from 'vitest';
import {
  expandBraces,
  kyvernoTags,
  mayOverlap,
  PatternError,
  policyControllerTags,
  toKyverno,
  toPolicyController,
  toScopes,
} from '../../../src/policy/patterns.js';

/** go-wildcard v1: `*` any run (also "/"), `?` one character. */
function kyvernoMatch(pattern: string, image: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 's').test(image);
}
/** sigstore/policy-controller pkg/apis/glob/glob.go Compile. */
function policyControllerMatch(glob: string, name: string): boolean {
  const re = glob.replace(/\./g, '\\.').replace(/\*\*/g, '#').replace(/\*/g, '[^/]*').replace(/#/g, '.*');
  return new RegExp(`^${re}$`).test(name);
}
/** containers/image docker scopes: "", *.domain (no port), or a prefix on "/" boundaries. */
function scopeMatch(scope: string, repo: string): boolean {
  if (scope === '') return true;
  const host = repo.split('/')[0]!;
  if (scope.startsWith('*.')) return host.endsWith(scope.slice(1)) && !host.includes(':');
  return repo === scope || repo.startsWith(`${scope}/`);
}

const hosts = ['h.io', 'h.io:5000', 'sub.h.io', 'localhost:5000'];
const segs = ['a', 'b', 'ab', 'team-a', 'team-b', 'x.y'];
const repos: string[] = [];
for (const h of hosts) {
  for (const a of segs) {
    repos.push(`${h}/${a}`);
    for (const b of segs) {
      repos.push(`${h}/${a}/${b}`);
      for (const c of ['a', 'b']) repos.push(`${h}/${a}/${b}/${c}`);
    }
  }
}
const DIGEST = `sha256:${'ab'.repeat(32)}`;
const refs = (repo: string) => [`${repo}:v1`, `${repo}@${DIGEST}`];

const globs = [
  'h.io/a/**',
  'h.io/**',
  'h.io/a',
  'h.io/a/*',
  'h.io/*/b',
  'h.io/**/b',
  'h.io/a?',
  'h.io/{a,b}/**',
  'h.io/team-*/**',
  'h.io/a**',
  '*.h.io/**',
  'h.io:5000/a/**',
  'localhost:5000/{a,team-a}',
  '**',
  '*/a/**',
];

describe('glob translation', () => {
  for (const glob of globs) {
    it(glob, () => {
      const rule = picomatch(glob, { dot: true });
      const k = toKyverno(glob);
      const p = toPolicyController(glob);
      const s = toScopes(glob);
      for (const repo of repos) {
        const inRule = rule(repo);
        const kv = refs(repo).map((r) => k.patterns.some((x) => kyvernoMatch(x, r)));
        const pc = refs(repo).map((r) => p.patterns.some((x) => policyControllerMatch(x, r)));
        const sc = s.scopes.some((x) => scopeMatch(x.scope, repo));
        if (inRule) {
          expect(kv, `kyverno ${JSON.stringify(k.patterns)} must cover ${repo}`).toEqual([true, true]);
          expect(pc, `policy-controller ${JSON.stringify(p.patterns)} must cover ${repo}`).toEqual([true, true]);
          expect(sc, `scopes ${JSON.stringify(s.scopes)} must cover ${repo}`).toBe(true);
        } else {
          if (k.exact) expect(kv, `kyverno ${JSON.stringify(k.patterns)} must not match ${repo}`).toEqual([false, false]);
          if (p.exact) expect(pc, `policy-controller ${JSON.stringify(p.patterns)} must not match ${repo}`).toEqual([false, false]);
          if (s.scopes.every((x) => x.exact)) expect(sc, `scopes ${JSON.stringify(s.scopes)} must not match ${repo}`).toBe(false);
        }
      }
      // what is inexact says so
      if (!k.exact) expect(k.notes.length).toBeGreaterThan(0);
      if (!p.exact) expect(p.notes.length).toBeGreaterThan(0);
      if (s.scopes.some((x) => !x.exact)) expect(s.notes.length).toBeGreaterThan(0);
    });
  }

  it('renders the common shapes as expected', () => {
    expect(toKyverno('h.io/team-a/**')).toMatchObject({ exact: true, patterns: ['h.io/team-a:*', 'h.io/team-a@*', 'h.io/team-a/*'] });
    expect(toPolicyController('h.io/team-a/**')).toMatchObject({ exact: true, patterns: ['h.io/team-a:*', 'h.io/team-a@*', 'h.io/team-a/**'] });
    expect(toScopes('h.io/team-a/**').scopes).toEqual([{ scope: 'h.io/team-a', exact: true }]);
    expect(toScopes('h.io/team-*/app').scopes).toEqual([{ scope: 'h.io', exact: false }]);
    expect(toScopes('*.h.io/**').scopes).toEqual([{ scope: '*.h.io', exact: true }]);
    expect(toScopes('**').scopes).toEqual([{ scope: '', exact: true }]);
    expect(toScopes('h.io/{a,a/b}/**').scopes).toEqual([{ scope: 'h.io/a', exact: true }]);
    // Docker Hub is spelled docker.io by Kyverno and containers/image, index.docker.io by policy-controller
    expect(toKyverno('index.docker.io/org/**').patterns[0]).toBe('docker.io/org:*');
    expect(toPolicyController('docker.io/org/**').patterns[0]).toBe('index.docker.io/org:*');
    expect(toScopes('registry-1.docker.io/org/**').scopes[0]!.scope).toBe('docker.io/org');
    expect(toKyverno('h.io/a/*').exact).toBe(false);
    expect(toPolicyController('h.io/a/*')).toMatchObject({ exact: true, patterns: ['h.io/a/*'] });
    expect(toPolicyController('h.io/ap?').exact).toBe(false);
  });

  it('refuses glob syntax it cannot translate, with the reason', () => {
    for (const g of ['h.io/[ab]/**', 'h.io/!(a)', 'h.io/+(a)', 'h.io/a\\*', 'h.io/{1..3}', 'h.io/{a', 'h.io//a']) {
      expect(() => toKyverno(g), g).toThrow(PatternError);
    }
    expect(() => toKyverno('h.io/[ab]')).toThrow(/only \*, \*\*, \? and \{a,b\}/);
    expect(expandBraces('h/{a,{b,c}}/x')).toEqual(['h/a/x', 'h/b/x', 'h/c/x']);
  });
});

describe('mayOverlap', () => {
  it('never says "no" for two globs some repository matches both', () => {
    const m = new Map(globs.map((g) => [g, picomatch(g, { dot: true })]));
    for (const a of globs) {
      for (const b of globs) {
        const both = repos.some((r) => m.get(a)!(r) && m.get(b)!(r));
        if (both) expect(mayOverlap(a, b), `${a} vs ${b}`).toBe(true);
      }
    }
  });
  it('tells disjoint namespaces, hosts and repositories apart', () => {
    expect(mayOverlap('h.io/a/**', 'h.io/b/**')).toBe(false);
    expect(mayOverlap('*.corp.net/**', 'localhost:5000/tools/*')).toBe(false);
    expect(mayOverlap('h.io/app', 'h.io/app2')).toBe(false);
    expect(mayOverlap('h.io/team-a/special/**', 'h.io/team-a/**')).toBe(true);
    expect(mayOverlap('h.io/**/x', 'h.io/a/*')).toBe(true);
  });
});

describe('tag filters (rules[].tags) in verifier patterns', () => {
  const tags = ['v1', 'v1.2', 'v2-dev', 'latest', 'release-1', 'release-10', 'dev', 'x'];
  const filters = [{ include: ['v*'], exclude: ['*-dev'] }, { exclude: ['latest'] }, { include: ['{v,release-}?'] }, { include: ['release-?', 'v*'] }];
  for (const glob of ['h.io/team-a/**', 'h.io/a', 'h.io/a/*', 'h.io/{a,b}/**']) {
    for (const filter of filters) {
      it(`${glob} ${JSON.stringify(filter)}`, () => {
        const inRule = picomatch(glob, { dot: true });
        const include = filter.include ? picomatch(filter.include, { dot: true }) : () => true;
        const exclude = filter.exclude ? picomatch(filter.exclude, { dot: true }) : () => false;
        const base = toKyverno(glob);
        const k = kyvernoTags(base, filter);
        const p = policyControllerTags(toPolicyController(glob), filter);
        for (const repo of repos) {
          const kyvernoRequires = (ref: string) => k.patterns.some((x) => kyvernoMatch(x, ref)) && !k.skip.some((x) => kyvernoMatch(x, ref));
          const pcRequires = (ref: string) => p.patterns.some((x) => policyControllerMatch(x, ref));
          for (const tag of tags) {
            const signs = inRule(repo) && include(tag) && !exclude(tag);
            const ref = `${repo}:${tag}`;
            // what signet signs is always required (fail closed) ...
            if (signs) {
              expect(kyvernoRequires(ref), `kyverno must require ${ref}`).toBe(true);
              expect(pcRequires(ref), `policy-controller must require ${ref}`).toBe(true);
            } else if (base.exact) {
              // ... and Kyverno, whose wildcards spell these filters, requires nothing more
              expect(kyvernoRequires(ref), `kyverno must not require ${ref}: signet does not sign it`).toBe(false);
            }
            // policy-controller narrows by tags.include (it has no exclusion; its globs have no "?", widened to "*")
            if (inRule(repo) && !include(tag) && !filter.include?.some((g) => g.includes('?')))
              expect(pcRequires(ref), `policy-controller must not require ${ref}`).toBe(false);
          }
          // a reference by digest alone: its tag is unknown, so it stays required
          if (inRule(repo)) {
            expect(kyvernoRequires(`${repo}@${DIGEST}`)).toBe(true);
            expect(pcRequires(`${repo}@${DIGEST}`)).toBe(true);
          }
        }
        if (filter.exclude) expect(p.notes.join('\n')).toMatch(/tags\.exclude .* cannot be written/);
        if (filter.include?.some((g) => g.includes('?'))) expect(p.notes.join('\n')).toMatch(/no "\?", "\*" is used/);
      });
    }
  }

  it('no filter: the patterns as they were; a glob the verifiers cannot spell is left unfiltered with a note', () => {
    expect(kyvernoTags(toKyverno('h.io/a/**'), undefined)).toEqual({ patterns: toKyverno('h.io/a/**').patterns, skip: [], notes: [] });
    const odd = kyvernoTags(toKyverno('h.io/a/**'), { include: ['v[0-9]*'] });
    expect(odd.patterns).toEqual(toKyverno('h.io/a/**').patterns);
    expect(odd.notes[0]).toMatch(/not expressed, every tag is required/);
    expect(kyvernoTags(toKyverno('h.io/team-a/**'), { include: ['v*'], exclude: ['*-dev'] })).toMatchObject({
      patterns: ['h.io/team-a:v*', 'h.io/team-a/*:v*', 'h.io/team-a@*', 'h.io/team-a/*@*'],
      skip: ['h.io/team-a:*-dev', 'h.io/team-a/*:*-dev'],
    });
  });
});
