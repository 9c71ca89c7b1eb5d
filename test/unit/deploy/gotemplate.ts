/**
 * A test-only renderer for the subset of Go text/template + Helm/sprig that deploy/helm/signet
 * uses (there is no `helm` in Debian). Anything outside the subset throws, so a template that
 * grows past it fails the test instead of rendering wrongly.
 *
 * Supported: {{ }} with {{- -}} trimming, {{/* comments *\/}}; if / else if / else, with / else,
 * range (with `$k, $v :=` or `$v :=`), define, end; pipelines with `|`, parentheses, $ and
 * $variables, .Field chains, string/number/bool literals. Functions: include, toYaml, nindent,
 * indent, quote, default, printf (%s %d %v), print, trunc, trimSuffix, replace, contains,
 * sha256sum, toString, eq, ne, not, and, or, dig, required, empty.
 * Helm's semantics kept: missing values render as "", toYaml sorts keys and drops the final newline.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';

type Node =
  | { t: 'text'; s: string }
  | { t: 'action'; p: Pipeline }
  | { t: 'if'; branches: { cond: Pipeline; body: Node[] }[]; else: Node[] }
  | { t: 'with'; p: Pipeline; body: Node[]; else: Node[] }
  | { t: 'range'; p: Pipeline; k?: string; v?: string; body: Node[]; else: Node[] };

type Arg = { a: 'field'; base: '.' | '$' | string; path: string[] } | { a: 'lit'; v: unknown } | { a: 'ident'; name: string } | { a: 'sub'; p: Pipeline };
type Command = Arg[];
interface Pipeline {
  decl?: string[];
  cmds: Command[];
}

interface Scope {
  dot: unknown;
  vars: Map<string, unknown>;
}

export class TemplateError extends Error {}

// ---- lexing ----

type Tok = { kind: 'text'; s: string } | { kind: 'act'; s: string };

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    if (open < 0) {
      toks.push({ kind: 'text', s: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let body = src.slice(open + 2);
    const close = body.indexOf('}}');
    if (close < 0) throw new TemplateError('unclosed {{');
    body = body.slice(0, close);
    if (body.startsWith('-') && /\s/.test(body[1] ?? '')) {
      text = text.replace(/\s+$/, '');
      body = body.slice(1);
    }
    let trimRight = false;
    if (body.endsWith('-') && /\s/.test(body[body.length - 2] ?? '')) {
      trimRight = true;
      body = body.slice(0, -1);
    }
    toks.push({ kind: 'text', s: text });
    toks.push({ kind: 'act', s: body.trim() });
    i = open + 2 + close + 2;
    if (trimRight) while (i < src.length && /\s/.test(src[i]!)) i++;
  }
  return toks.filter((t) => !(t.kind === 'act' && t.s.startsWith('/*')));
}

// ---- parsing ----

function splitWords(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      out.push(s.slice(i, j + 1));
      i = j + 1;
    } else if (c === '(' || c === ')' || c === '|' || c === ',') {
      out.push(c);
      i++;
    } else if (c === ':' && s[i + 1] === '=') {
      out.push(':=');
      i += 2;
    } else {
      let j = i;
      while (j < s.length && !/[\s()|,"]/.test(s[j]!) && !(s[j] === ':' && s[j + 1] === '=')) j++;
      out.push(s.slice(i, j));
      i = j;
    }
  }
  return out;
}

function parsePipeline(src: string): Pipeline {
  const words = splitWords(src);
  let decl: string[] | undefined;
  const assign = words.indexOf(':=');
  if (assign >= 0) {
    decl = words.slice(0, assign).filter((w) => w !== ',');
    words.splice(0, assign + 1);
  }
  let pos = 0;
  const pipeline = (): Pipeline => {
    const cmds: Command[] = [[]];
    while (pos < words.length && words[pos] !== ')') {
      const w = words[pos++]!;
      if (w === '|') cmds.push([]);
      else if (w === '(') {
        cmds[cmds.length - 1]!.push({ a: 'sub', p: pipeline() });
        if (words[pos++] !== ')') throw new TemplateError(`missing ) in "${src}"`);
      } else cmds[cmds.length - 1]!.push(arg(w));
    }
    if (cmds.some((c) => c.length === 0)) throw new TemplateError(`empty command in "${src}"`);
    return { cmds };
  };
  const p = pipeline();
  if (pos !== words.length) throw new TemplateError(`unexpected ) in "${src}"`);
  return decl ? { ...p, decl } : p;
}

function arg(w: string): Arg {
  if (w.startsWith('"')) return { a: 'lit', v: JSON.parse(w) };
  if (/^-?[0-9]+(\.[0-9]+)?$/.test(w)) return { a: 'lit', v: Number(w) };
  if (w === 'true' || w === 'false') return { a: 'lit', v: w === 'true' };
  if (w === 'nil') return { a: 'lit', v: undefined };
  if (w === '.') return { a: 'field', base: '.', path: [] };
  if (w.startsWith('.')) return { a: 'field', base: '.', path: w.slice(1).split('.') };
  if (w.startsWith('$')) {
    const [base, ...path] = w.split('.');
    return { a: 'field', base: base === '$' ? '$' : base!, path };
  }
  if (/^[A-Za-z][A-Za-z0-9]*$/.test(w)) return { a: 'ident', name: w };
  throw new TemplateError(`cannot parse "${w}"`);
}

function parse(toks: Tok[], defines: Map<string, Node[]>): Node[] {
  let i = 0;
  const block = (stops: string[]): { nodes: Node[]; stop: string } => {
    const nodes: Node[] = [];
    while (i < toks.length) {
      const t = toks[i++]!;
      if (t.kind === 'text') {
        if (t.s) nodes.push({ t: 'text', s: t.s });
        continue;
      }
      const [kw] = t.s.split(/\s+/, 1);
      const rest = t.s.slice(kw!.length).trim();
      if (stops.includes(kw!) || (kw === 'else' && stops.includes('else'))) {
        i--;
        return { nodes, stop: kw! };
      }
      if (kw === 'if') {
        const branches = [{ cond: parsePipeline(rest), body: [] as Node[] }];
        let elseBody: Node[] = [];
        for (;;) {
          const b = block(['else', 'end']);
          branches[branches.length - 1]!.body = b.nodes;
          const stopTok = toks[i++]!.s;
          if (stopTok === 'end') break;
          const m = /^else\s+if\s+(.*)$/.exec(stopTok);
          if (m) {
            branches.push({ cond: parsePipeline(m[1]!), body: [] });
            continue;
          }
          const e = block(['end']);
          elseBody = e.nodes;
          i++;
          break;
        }
        nodes.push({ t: 'if', branches, else: elseBody });
      } else if (kw === 'with' || kw === 'range') {
        const p = parsePipeline(rest);
        const b = block(['else', 'end']);
        let elseBody: Node[] = [];
        if (toks[i++]!.s === 'else') {
          elseBody = block(['end']).nodes;
          i++;
        }
        if (kw === 'with') nodes.push({ t: 'with', p, body: b.nodes, else: elseBody });
        else {
          const decl = p.decl ?? [];
          nodes.push({
            t: 'range',
            p: { cmds: p.cmds },
            ...(decl.length === 2 ? { k: decl[0], v: decl[1] } : decl.length === 1 ? { v: decl[0] } : {}),
            body: b.nodes,
            else: elseBody,
          });
        }
      } else if (kw === 'define') {
        const name = JSON.parse(rest);
        const b = block(['end']);
        i++;
        defines.set(name, b.nodes);
      } else if (kw === 'end' || kw === 'else') {
        throw new TemplateError(`unexpected {{${t.s}}}`);
      } else if (['template', 'block', 'break', 'continue'].includes(kw!)) {
        throw new TemplateError(`{{${kw}}} is outside the supported subset`);
      } else nodes.push({ t: 'action', p: parsePipeline(t.s) });
    }
    if (stops.length) throw new TemplateError(`missing {{end}}`);
    return { nodes, stop: '' };
  };
  return block([]).nodes;
}

// ---- evaluation ----

const truthy = (v: unknown): boolean =>
  !(
    v === undefined ||
    v === null ||
    v === false ||
    v === 0 ||
    v === '' ||
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)
  );

function toYaml(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  return stringify(v, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
}

function str(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export class Renderer {
  private defines = new Map<string, Node[]>();
  private root: unknown;
  constructor(files: Record<string, string>, values: { Values: unknown; Release: Record<string, unknown>; Chart: Record<string, unknown> }) {
    this.root = values;
    // definitions first (helpers), as Helm does
    for (const [name, src] of Object.entries(files)) this.templates.set(name, parse(lex(src), this.defines));
  }
  private templates = new Map<string, Node[]>();

  render(name: string): string {
    const nodes = this.templates.get(name);
    if (!nodes) throw new TemplateError(`no template ${name}`);
    return this.exec(nodes, { dot: this.root, vars: new Map([['$', this.root]]) });
  }

  private exec(nodes: Node[], scope: Scope): string {
    let out = '';
    for (const n of nodes) {
      if (n.t === 'text') out += n.s;
      else if (n.t === 'action') {
        const v = this.pipe(n.p, scope);
        if (!n.p.decl) out += str(v);
      } else if (n.t === 'if') {
        const b = n.branches.find((br) => truthy(this.pipe(br.cond, scope)));
        out += this.exec(b ? b.body : n.else, scope);
      } else if (n.t === 'with') {
        const v = this.pipe(n.p, scope);
        out += truthy(v) ? this.exec(n.body, { ...scope, dot: v }) : this.exec(n.else, scope);
      } else {
        const v = this.pipe(n.p, scope);
        const entries: [unknown, unknown][] = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v && typeof v === 'object'
            ? Object.keys(v)
                .sort()
                .map((k) => [k, (v as Record<string, unknown>)[k]])
            : [];
        if (entries.length === 0) out += this.exec(n.else, scope);
        for (const [k, x] of entries) {
          const vars = new Map(scope.vars);
          if (n.k) vars.set(n.k, k);
          if (n.v) vars.set(n.v, x);
          out += this.exec(n.body, { dot: x, vars });
        }
      }
    }
    return out;
  }

  private pipe(p: Pipeline, scope: Scope): unknown {
    let v: unknown;
    let first = true;
    for (const cmd of p.cmds) {
      v = this.command(cmd, scope, first ? [] : [v]);
      first = false;
    }
    if (p.decl) scope.vars.set(p.decl[0]!, v);
    return v;
  }

  private value(a: Arg, scope: Scope): unknown {
    if (a.a === 'lit') return a.v;
    if (a.a === 'sub') return this.pipe(a.p, scope);
    if (a.a === 'ident') return this.call(a.name, [], scope);
    let v: unknown = a.base === '.' ? scope.dot : scope.vars.get(a.base);
    if (a.base !== '.' && !scope.vars.has(a.base)) throw new TemplateError(`undefined variable ${a.base}`);
    for (const k of a.path) {
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'object') throw new TemplateError(`can't evaluate field ${k} in ${typeof v}`);
      v = (v as Record<string, unknown>)[k];
    }
    return v;
  }

  private command(cmd: Command, scope: Scope, piped: unknown[]): unknown {
    const [head, ...rest] = cmd;
    if (head!.a === 'ident') return this.call(head!.name, [...rest.map((r) => this.value(r, scope)), ...piped], scope);
    if (rest.length || piped.length) throw new TemplateError('a value cannot take arguments');
    return this.value(head!, scope);
  }

  private call(name: string, args: unknown[], scope: Scope): unknown {
    const need = (n: number) => {
      if (args.length !== n) throw new TemplateError(`${name} takes ${n} argument(s), got ${args.length}`);
    };
    switch (name) {
      case 'include': {
        need(2);
        const body = this.defines.get(String(args[0]));
        if (!body) throw new TemplateError(`no define "${args[0]}"`);
        return this.exec(body, { dot: args[1], vars: new Map([['$', args[1]]]) });
      }
      case 'toYaml':
        need(1);
        return toYaml(args[0]);
      case 'nindent':
      case 'indent': {
        need(2);
        const pad = ' '.repeat(Number(args[0]));
        const s = str(args[1])
          .split('\n')
          .map((l) => pad + l)
          .join('\n');
        return name === 'nindent' ? `\n${s}` : s;
      }
      case 'quote':
        return args.map((a) => JSON.stringify(str(a))).join(' ');
      case 'default':
        need(2);
        return truthy(args[1]) ? args[1] : args[0];
      case 'printf': {
        let i = 1;
        return String(args[0]).replace(/%[sdv]/g, () => str(args[i++]));
      }
      case 'print':
        return args.map(str).join('');
      case 'trunc':
        need(2);
        return str(args[1]).slice(0, Number(args[0]));
      case 'trimSuffix': {
        need(2);
        const s = str(args[1]);
        const suf = str(args[0]);
        return suf && s.endsWith(suf) ? s.slice(0, -suf.length) : s;
      }
      case 'replace':
        need(3);
        return str(args[2]).split(str(args[0])).join(str(args[1]));
      case 'contains':
        need(2);
        return str(args[1]).includes(str(args[0]));
      case 'sha256sum':
        need(1);
        return createHash('sha256').update(str(args[0])).digest('hex');
      case 'toString':
        need(1);
        return str(args[0]);
      case 'eq':
        need(2);
        return args[0] === args[1];
      case 'ne':
        need(2);
        return args[0] !== args[1];
      case 'not':
        need(1);
        return !truthy(args[0]);
      case 'and':
        return args.every(truthy) ? args[args.length - 1] : args.find((a) => !truthy(a));
      case 'or':
        return args.find(truthy) ?? args[args.length - 1];
      case 'empty':
        need(1);
        return !truthy(args[0]);
      case 'required':
        need(2);
        if (!truthy(args[1])) throw new TemplateError(String(args[0]));
        return args[1];
      case 'dig': {
        // dig "a" "b" default dict
        const dict = args[args.length - 1];
        const dflt = args[args.length - 2];
        let v: unknown = dict;
        for (const k of args.slice(0, -2)) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[String(k)] : undefined;
        return v === undefined ? dflt : v;
      }
      default:
        void scope;
        throw new TemplateError(`function "${name}" is outside the supported subset`);
    }
  }
}
