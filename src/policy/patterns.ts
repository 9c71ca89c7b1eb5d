/**
 * A rule's `match` glob (picomatch over "host/repository") translated into each verifier's own
 * image-pattern language. Every translation says whether it is exact; an inexact one always
 * covers MORE images than the rule (fail closed: an image signet does not sign there is then
 * refused, never let through), and carries a note that says why.
 *
 * picomatch semantics we reproduce (checked in test/unit/policy/patterns.test.ts):
 *   `**` as a whole path segment = zero or more segments (`a/**` also matches `a` itself);
 *   `**` inside a segment = `*`; `*` = any run of characters but `/`; `?` = one character but `/`;
 *   `{a,b}` = alternatives. Character classes, extglobs, negation and escapes are refused.
 *
 * The verifiers match against:
 *   Kyverno          `registry/path:tag` or `registry/path@digest` (ImageInfo.String), go-wildcard:
 *                    `*` = any characters INCLUDING `/`, `?` = one character.
 *   policy-controller `ref.Name()` (also with :tag or @digest), `*` = `[^/]*`, `**` = `.*`, no `?`,
 *                    only `[a-zA-Z0-9-_:/*.@]` (pkg/apis/glob/glob.go).
 *   containers/image and OpenShift: scopes, no globs: a host, a host/namespace prefix, a full
 *                    repository, or `*.domain` (all subdomains, no port); the longest scope wins.
 */

export type Part = { kind: 'lit'; text: string } | { kind: 'star' } | { kind: 'qmark' };
export type Segment = { kind: 'globstar' } | { kind: 'parts'; parts: Part[] };
/** One brace alternative of a glob, split at `/`. */
export type GlobAlternative = Segment[];

export class PatternError extends Error {}

const UNSUPPORTED = /[[\]()!+\\|^$]/;

/** `{a,b}` alternatives, expanded (nested braces allowed, ranges refused). */
export function expandBraces(glob: string): string[] {
  const open = glob.indexOf('{');
  if (open < 0) {
    if (glob.includes('}')) throw new PatternError(`unbalanced "}" in "${glob}"`);
    return [glob];
  }
  let depth = 0;
  let close = -1;
  const commas: number[] = [];
  for (let i = open; i < glob.length; i++) {
    const c = glob[i];
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) {
        close = i;
        break;
      }
    } else if (c === ',' && depth === 1) commas.push(i);
  }
  if (close < 0) throw new PatternError(`unbalanced "{" in "${glob}"`);
  const body = glob.slice(open + 1, close);
  if (commas.length === 0) {
    if (/^-?\w+\.\.-?\w+$/.test(body)) throw new PatternError(`brace ranges such as {${body}} are not supported in "${glob}"`);
    throw new PatternError(`a brace group needs a comma: {${body}} in "${glob}"`);
  }
  const cuts = [open, ...commas, close];
  const head = glob.slice(0, open);
  const tail = glob.slice(close + 1);
  const out: string[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const choice = glob.slice(cuts[i]! + 1, cuts[i + 1]);
    for (const e of expandBraces(`${head}${choice}${tail}`)) if (!out.includes(e)) out.push(e);
  }
  return out;
}

/** Parses one brace-free glob. */
export function parseAlternative(glob: string): GlobAlternative {
  if (UNSUPPORTED.test(glob)) {
    throw new PatternError(`"${glob}": only *, **, ? and {a,b} are supported in rule globs that are exported to verifiers`);
  }
  if (glob.startsWith('/') || glob.endsWith('/') || glob.includes('//')) throw new PatternError(`"${glob}": empty path segment`);
  return glob.split('/').map((seg): Segment => {
    if (seg === '**') return { kind: 'globstar' };
    const parts: Part[] = [];
    for (let i = 0; i < seg.length; i++) {
      const c = seg[i]!;
      if (c === '*') {
        while (seg[i + 1] === '*') i++; // `**` inside a segment is `*`
        parts.push({ kind: 'star' });
      } else if (c === '?') parts.push({ kind: 'qmark' });
      else {
        const last = parts[parts.length - 1];
        if (last?.kind === 'lit') last.text += c;
        else parts.push({ kind: 'lit', text: c });
      }
    }
    return { kind: 'parts', parts };
  });
}

export function parseGlob(glob: string): GlobAlternative[] {
  return expandBraces(glob).map(parseAlternative);
}

const isLiteral = (s: Segment): s is { kind: 'parts'; parts: [{ kind: 'lit'; text: string }] } =>
  s.kind === 'parts' && s.parts.length === 1 && s.parts[0]!.kind === 'lit';
const literalText = (s: Segment): string => (isLiteral(s) ? s.parts[0].text : '');

/** The characters every match of this glob starts with. */
export function literalPrefix(alt: GlobAlternative): string {
  let out = '';
  for (let i = 0; i < alt.length; i++) {
    const s = alt[i]!;
    if (s.kind === 'globstar') return out;
    for (const p of s.parts) {
      if (p.kind !== 'lit') return out;
      out += p.text;
    }
    if (i + 1 < alt.length) out += '/';
  }
  return out;
}

/** Literal text a segment's matches start with, and end with. */
function segmentEnds(s: Extract<Segment, { kind: 'parts' }>): { head: string; tail: string; literal: boolean } {
  const literal = s.parts.every((p) => p.kind === 'lit');
  let head = '';
  for (const p of s.parts) {
    if (p.kind !== 'lit') break;
    head += p.text;
  }
  let tail = '';
  for (let i = s.parts.length - 1; i >= 0; i--) {
    const p = s.parts[i]!;
    if (p.kind !== 'lit') break;
    tail = p.text + tail;
  }
  return { head, tail, literal };
}

function segmentsMayMeet(a: Extract<Segment, { kind: 'parts' }>, b: Extract<Segment, { kind: 'parts' }>): boolean {
  const x = segmentEnds(a);
  const y = segmentEnds(b);
  if (x.literal && y.literal) return x.head === y.head;
  const heads = x.head.startsWith(y.head) || y.head.startsWith(x.head);
  const tails = x.tail.endsWith(y.tail) || y.tail.endsWith(x.tail);
  return heads && tails;
}

function alternativesMayMeet(a: GlobAlternative, b: GlobAlternative): boolean {
  // Compare segment by segment from both ends until a globstar: segments that certainly differ
  // there mean no common string; past a globstar anything may line up.
  const fromStart = (x: GlobAlternative, y: GlobAlternative): 'differ' | 'globstar' | 'end' => {
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const p = x[i]!;
      const q = y[i]!;
      if (p.kind === 'globstar' || q.kind === 'globstar') return 'globstar';
      if (!segmentsMayMeet(p, q)) return 'differ';
    }
    return 'end';
  };
  const start = fromStart(a, b);
  if (start === 'differ') return false;
  if (start === 'end') {
    // the longer one can still match the same string if what is left can be empty
    const [short, long] = a.length <= b.length ? [a, b] : [b, a];
    return long.slice(short.length).every((s) => s.kind === 'globstar');
  }
  return fromStart([...a].reverse(), [...b].reverse()) !== 'differ';
}

/**
 * Whether some "host/repository" may match both globs (a sound over-approximation: false means
 * they certainly never overlap).
 */
export function mayOverlap(a: string, b: string): boolean {
  return parseGlob(a).some((x) => parseGlob(b).some((y) => alternativesMayMeet(x, y)));
}

export interface Rendered {
  patterns: string[];
  exact: boolean;
  notes: string[];
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

/**
 * Every way of dropping or keeping each globstar segment: `a/**` matches `a` itself, and
 * `a/**\/b` matches `a/b`; both verifiers below need those spelled out.
 */
function globstarVariants(alt: GlobAlternative): { segs: Segment[]; endsWithGlobstar: boolean }[] {
  let variants: Segment[][] = [[]];
  alt.forEach((s, i) => {
    const prev = alt[i - 1];
    // picomatch quirk: a final `/**` after a segment ending in `*` needs at least one segment
    // (`h/a*/**` does not match `h/ab`, `h/a?/**` matches `h/ab`).
    const mayBeEmpty = !(i === alt.length - 1 && prev?.kind === 'parts' && prev.parts[prev.parts.length - 1]?.kind === 'star');
    if (s.kind === 'globstar') variants = variants.flatMap((v) => (mayBeEmpty ? [v, [...v, s]] : [[...v, s]]));
    else variants = variants.map((v) => [...v, s]);
  });
  // "host/repository" has at least two segments: a variant left with the host alone names nothing
  return variants
    .filter((v) => v.length > 1 || (v.length === 1 && v[0]!.kind === 'globstar'))
    .map((segs) => ({ segs, endsWithGlobstar: segs[segs.length - 1]!.kind === 'globstar' }));
}

/** Host aliases each verifier spells its own way (Docker Hub). */
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
function hostFor(alt: GlobAlternative, canonical: string): GlobAlternative {
  const first = alt[0];
  if (first && isLiteral(first) && DOCKER_HUB.has(first.parts[0].text)) {
    return [{ kind: 'parts', parts: [{ kind: 'lit', text: canonical }] }, ...alt.slice(1)];
  }
  return alt;
}

/** Kyverno imageReferences / skipImageReferences (go-wildcard over `registry/path:tag|@digest`). */
export function toKyverno(glob: string): Rendered {
  const notes: string[] = [];
  let exact = true;
  const patterns: string[] = [];
  for (const raw of parseGlob(glob)) {
    const alt = hostFor(raw, 'docker.io');
    for (const { segs, endsWithGlobstar } of globstarVariants(alt)) {
      let body = '';
      segs.forEach((s, i) => {
        if (i) body += '/';
        if (s.kind === 'globstar') body += '*';
        else
          for (const p of s.parts) {
            if (p.kind === 'lit') body += p.text;
            else if (p.kind === 'star') {
              body += '*';
              exact = false;
            } else {
              body += '?';
              exact = false;
            }
          }
      });
      if (endsWithGlobstar) patterns.push(body);
      else patterns.push(`${body}:*`, `${body}@*`);
    }
  }
  if (!exact) notes.push(`Kyverno's * and ? also match "/", so "${glob}" is widened to deeper repositories too`);
  return { patterns: uniq(patterns), exact, notes };
}

/** policy-controller `images: - glob:` (pkg/apis/glob: `*` = [^/]*, `**` = .*). */
export function toPolicyController(glob: string): Rendered {
  const notes: string[] = [];
  let exact = true;
  const patterns: string[] = [];
  for (const raw of parseGlob(glob)) {
    const alt = hostFor(raw, 'index.docker.io');
    for (const { segs, endsWithGlobstar } of globstarVariants(alt)) {
      let body = '';
      let endsWithStar = false;
      segs.forEach((s, i) => {
        if (i) body += '/';
        endsWithStar = false;
        if (s.kind === 'globstar') body += '**';
        else
          s.parts.forEach((p, j) => {
            if (p.kind === 'lit') body += p.text;
            else {
              if (p.kind === 'qmark') exact = false;
              body += '*';
              endsWithStar = j === s.parts.length - 1;
            }
          });
      });
      if (!/^[a-zA-Z0-9\-_:/*.@]+$/.test(body)) throw new PatternError(`"${glob}": policy-controller globs allow only letters, digits and -_:/*.@`);
      // A final * or ** already swallows ":tag" and "@sha256:..." (no "/" in either).
      if (endsWithGlobstar || endsWithStar) patterns.push(body);
      else patterns.push(`${body}:*`, `${body}@*`);
    }
  }
  if (!exact) notes.push(`policy-controller globs have no "?", so "${glob}" uses "*" there (more names match)`);
  return { patterns: uniq(patterns), exact, notes };
}

export interface Scope {
  /** "" = every registry (containers' transport default); "*.example.com"; "host[/ns...]". */
  scope: string;
  exact: boolean;
}

/**
 * containers/image (policy.json, registries.d) and OpenShift scopes: literal prefixes on path
 * component boundaries. A glob is exact when it is a full literal repository or a literal prefix
 * followed by a final `/**`; anything else is widened to the longest literal prefix of whole
 * segments (or `*.domain` for a `*.domain` host, or every registry for a wildcard host).
 */
export function toScopes(glob: string): { scopes: Scope[]; notes: string[] } {
  const notes: string[] = [];
  const scopes: Scope[] = [];
  for (const raw of parseGlob(glob)) {
    const alt = hostFor(raw, 'docker.io');
    const literalSegs: string[] = [];
    let i = 0;
    while (i < alt.length && isLiteral(alt[i]!)) literalSegs.push(literalText(alt[i++]!));
    const rest = alt.slice(i);
    if (literalSegs.length === 0) {
      const host = alt[0]!;
      const tail = alt.slice(1);
      const wildDomain =
        host.kind === 'parts' &&
        host.parts.length === 2 &&
        host.parts[0]!.kind === 'star' &&
        host.parts[1]!.kind === 'lit' &&
        /^\.[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(host.parts[1].text);
      if (wildDomain) {
        const exact = tail.length === 1 && tail[0]!.kind === 'globstar';
        scopes.push({ scope: `*${(host.parts[1] as { text: string }).text}`, exact });
        if (!exact) notes.push(`"${glob}": scopes have no globs below a *.domain host; every repository there is covered`);
      } else {
        scopes.push({ scope: '', exact: alt.length === 1 && alt[0]!.kind === 'globstar' });
        if (!(alt.length === 1 && alt[0]!.kind === 'globstar')) notes.push(`"${glob}": the host is a wildcard, so the scope is every registry`);
      }
      continue;
    }
    const scope = literalSegs.join('/');
    // A scope also covers the repositories below it: exact only for `prefix/**`.
    const exact = rest.length === 1 && rest[0]!.kind === 'globstar';
    if (rest.length === 0) notes.push(`"${glob}": a scope also covers repositories below "${scope}"`);
    else if (!exact) notes.push(`"${glob}": scopes have no globs; widened to every repository under "${scope}"`);
    scopes.push({ scope, exact });
  }
  const seen = new Map<string, Scope>();
  for (const s of scopes) {
    const prev = seen.get(s.scope);
    seen.set(s.scope, prev ? { scope: s.scope, exact: prev.exact && s.exact } : s);
  }
  // A scope inside another scope of the same glob adds nothing.
  const list = [...seen.values()];
  const covered = (inner: string, outer: string) => outer === '' || inner.startsWith(`${outer}/`);
  return { scopes: list.filter((s) => !list.some((o) => o !== s && covered(s.scope, o.scope))), notes: uniq(notes) };
}

/** A rule's tag filter (rules[].tags): picomatch globs over the tag. */
export interface TagFilter {
  include?: string[];
  exclude?: string[];
}

/** Tag globs as plain `*`/`?` patterns (braces expanded); undefined when one uses more (classes, extglobs). */
function tagPatterns(globs: readonly string[]): string[] | undefined {
  const out: string[] = [];
  for (const g of globs) {
    let alts: string[];
    try {
      alts = expandBraces(g);
    } catch {
      return undefined;
    }
    for (const a of alts) {
      if (UNSUPPORTED.test(a) || a.includes('/')) return undefined;
      out.push(a.replace(/\*+/g, '*'));
    }
  }
  return uniq(out);
}

/** Splits rendered image patterns into (repository part, how it ends): `R:*` / `R@*` pairs, or one `R*` that already swallows the tag. */
function byRepository(patterns: readonly string[]): { tagged: string[]; digests: string[] } {
  const tagged: string[] = [];
  const digests: string[] = [];
  for (const p of patterns) {
    if (p.endsWith(':*')) tagged.push(p.slice(0, -2));
    else if (p.endsWith('@*')) digests.push(p);
    else {
      tagged.push(p); // ends with * or **: `R*:tag` still names every repository R* did
      digests.push(`${p}@*`);
    }
  }
  return { tagged, digests };
}

/**
 * Kyverno: the tag filter in imageReferences (`R:<include>`) and skipImageReferences
 * (`R:<exclude>`). References by digest (`R@*`) stay required: the verifier cannot know their
 * tag (fail closed). A glob Kyverno's wildcards cannot spell leaves that side unfiltered, with a note.
 */
export function kyvernoTags(rendered: Pick<Rendered, 'patterns'>, tags: TagFilter | undefined): { patterns: string[]; skip: string[]; notes: string[] } {
  if (!tags?.include && !tags?.exclude) return { patterns: [...rendered.patterns], skip: [], notes: [] };
  const notes: string[] = [];
  const { tagged, digests } = byRepository(rendered.patterns);
  let patterns = [...rendered.patterns];
  const include = tags.include && tagPatterns(tags.include);
  if (tags.include && !include) notes.push(`tags.include [${tags.include.join(', ')}] uses more than *, ? and {a,b}: not expressed, every tag is required`);
  if (include) patterns = uniq([...tagged.flatMap((r) => include.map((t) => `${r}:${t}`)), ...digests]);
  const exclude = tags.exclude && tagPatterns(tags.exclude);
  if (tags.exclude && !exclude)
    notes.push(`tags.exclude [${tags.exclude.join(', ')}] uses more than *, ? and {a,b}: not expressed, those tags are required too`);
  const skip = exclude ? uniq(tagged.flatMap((r) => exclude.map((t) => `${r}:${t}`))) : [];
  notes.push('images referenced by digest alone are still required to be signed (the tag they were pushed with is unknown to the verifier)');
  return { patterns, skip, notes };
}

/**
 * policy-controller: tags.include as `glob: R:<include>` (its globs have no `?`: widened to `*`);
 * tags.exclude cannot be written (no negative globs), so it is a note. Digest references stay required.
 */
export function policyControllerTags(rendered: Pick<Rendered, 'patterns'>, tags: TagFilter | undefined): { patterns: string[]; notes: string[] } {
  if (!tags?.include && !tags?.exclude) return { patterns: [...rendered.patterns], notes: [] };
  const notes: string[] = [];
  let patterns = [...rendered.patterns];
  if (tags.include) {
    const include = tagPatterns(tags.include);
    if (!include || include.some((t) => !/^[a-zA-Z0-9\-_.*?]+$/.test(t))) {
      notes.push(`tags.include [${tags.include.join(', ')}] cannot be written as a policy-controller glob: not expressed, every tag is required`);
    } else {
      if (include.some((t) => t.includes('?')))
        notes.push(`tags.include [${tags.include.join(', ')}]: policy-controller globs have no "?", "*" is used (more tags are required)`);
      const { tagged, digests } = byRepository(rendered.patterns);
      patterns = uniq([...tagged.flatMap((r) => include.map((t) => `${r}:${t.replace(/\?/g, '*')}`)), ...digests]);
      notes.push('images referenced by digest alone are still required to be signed (the tag they were pushed with is unknown to the verifier)');
    }
  }
  if (tags.exclude) {
    notes.push(
      `tags.exclude [${tags.exclude.join(', ')}] cannot be written (policy-controller globs have no exclusion): images with those tags are required to be signed too, and signet does not sign them, so pods using them are refused`,
    );
  }
  return { patterns, notes };
}
