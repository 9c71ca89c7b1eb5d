/**
 * Loads the YAML config: parse (keeping positions), expand ${VAR}, validate with zod, cross-check.
 * Every problem is collected and reported together with its YAML path and line.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isNode, isScalar, type Document } from 'yaml';
import type { z } from 'zod';
import { keyConfigSchema, type KeyConfig } from '../kms/providers.js';
import { SignetError } from '../errors.js';
import { coerceExpanded, expandEnv, type EnvProblem } from './env.js';
import {
  configSchema,
  integrationSchema,
  registrySchema,
  ruleSchema,
  type Config,
  type IntegrationConfig,
  type RegistryConfig,
  type RuleConfig,
} from './schema.js';
import { suggestField } from './suggest.js';
import { crossCheck, type ConfigProblem } from './validate.js';

export interface LocatedProblem extends ConfigProblem {
  /** 1-based line in the file, when known. */
  line?: number;
}

export class ConfigError extends SignetError {
  readonly problems: LocatedProblem[];
  readonly file: string;
  constructor(file: string, problems: LocatedProblem[]) {
    super('CONFIG_INVALID', `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${formatProblems(file, problems)}`);
    this.file = file;
    this.problems = problems;
  }
}

export interface LoadedConfig {
  config: Config;
  /** Folder that relative paths in the config resolve against. */
  baseDir: string;
  /** The file it came from, or "(embedded default)". */
  source: string;
  warnings: LocatedProblem[];
}

export function formatPath(p: readonly (string | number | symbol)[]): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out || '(top level)';
}

export function formatProblems(file: string, problems: readonly LocatedProblem[]): string {
  return problems.map((p) => `  ${file}${p.line ? `:${p.line}` : ''}  ${formatPath(p.path)}: ${p.message}`).join('\n');
}

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SignetError('CONFIG_NOT_FOUND', `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  return parseConfigText(text, file, env);
}

export function parseConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const a = analyzeConfigText(text, file, env);
  if (a.problems.length || !a.config) throw new ConfigError(file, a.problems);
  return { config: a.config, baseDir: a.baseDir, source: file, warnings: a.warnings };
}

/** One entry of a list section that passed its schema, with its index in the file. */
export interface ParsedEntry<T> {
  index: number;
  value: T;
}

/** Everything one read of a config tells: what parsed, every problem found, in file order. */
export interface ConfigAnalysis {
  /** The whole config, when it passed the schema (there may still be cross-reference problems). */
  config?: Config;
  /** The list entries that passed their schema (all of them when `config` is set). */
  parsed: {
    registries: ParsedEntry<RegistryConfig>[];
    integrations: ParsedEntry<IntegrationConfig>[];
    keys: ParsedEntry<KeyConfig>[];
    rules: ParsedEntry<RuleConfig>[];
  };
  problems: LocatedProblem[];
  warnings: LocatedProblem[];
  baseDir: string;
  /** The line of a path in the file (the key's own line for a field). */
  locate(p: ConfigProblem): LocatedProblem;
}

const entrySchemas = { registries: registrySchema, integrations: integrationSchema, keys: keyConfigSchema, rules: ruleSchema } as const;
type Section = keyof typeof entrySchemas;

/**
 * Reads a config as far as it can: YAML errors stop it (there is no tree to check); otherwise
 * environment problems, every schema problem, and the cross-section checks over the entries that
 * parsed are all reported, each with its path and line, sorted by line.
 */
export function analyzeConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): ConfigAnalysis {
  const baseDir = path.dirname(path.resolve(file));
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const locate = (p: ConfigProblem): LocatedProblem => ({ ...p, ...lineOf(doc, lineCounter, p.path) });
  const empty = { registries: [], integrations: [], keys: [], rules: [] };
  const problems: LocatedProblem[] = [];
  for (const e of doc.errors) {
    problems.push({ path: [], message: `YAML: ${e.message.split('\n')[0]}`, line: lineCounter.linePos(e.pos[0]).line });
  }
  if (problems.length) return { parsed: empty, problems, warnings: [], baseDir, locate };

  const raw = doc.toJS() ?? {};
  const envProblems: EnvProblem[] = [];
  const substituted: (string | number)[][] = [];
  const value = expandEnv(raw, env, envProblems, [], raw, substituted);
  problems.push(...envProblems.map(locate));
  // a value whose variable is unset already has its problem: do not report it twice
  const reported = new Set(envProblems.map((p) => formatPath(p.path)));

  // `${VAR}` in a number or boolean field: YAML read a string; take it as the number it spells
  const expanded = new Set(substituted.map((p) => formatPath(p)));
  let parsed = configSchema.safeParse(value);
  for (let round = 0; !parsed.success && round < 5; round++) {
    let changed = false;
    for (const issue of parsed.error.issues) {
      const at = issue.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
      const key = formatPath(at);
      // a nested schema that re-reports its issues as custom ones (registry credentials) keeps zod's message
      const expected = issue.code === 'invalid_type' ? issue.expected : /expected (number|boolean), received string/.exec(issue.message)?.[1];
      if ((expected !== 'number' && expected !== 'boolean') || !expanded.has(key) || reported.has(key)) continue;
      const current = getAt(value, at);
      if (typeof current !== 'string') continue;
      const c = coerceExpanded(current, expected as 'number' | 'boolean');
      if ('value' in c) {
        setAt(value, at, c.value);
        changed = true;
      } else {
        problems.push(locate({ path: at, message: c.problem }));
        reported.add(key);
      }
    }
    if (!changed) break;
    parsed = configSchema.safeParse(value);
  }

  if (parsed.success) {
    const config = parsed.data;
    const all = <T>(xs: T[]): ParsedEntry<T>[] => xs.map((v, index) => ({ index, value: v }));
    const { problems: cross, warnings } = crossCheck(config);
    problems.push(...cross.map(locate));
    return {
      config,
      parsed: { registries: all(config.registries), integrations: all(config.integrations), keys: all(config.keys), rules: all(config.rules) },
      problems: sortByLine(problems),
      warnings: sortByLine(warnings.map(locate)),
      baseDir,
      locate,
    };
  }

  for (const issue of parsed.error.issues) {
    const at = issue.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
    if (reported.has(formatPath(at))) continue;
    // (a nested schema that re-reports its issues, registry credentials, turns this one into a custom issue with zod's message)
    const unknown =
      issue.code === 'unrecognized_keys'
        ? issue.keys
        : /^Unrecognized keys?: /.test(issue.message)
          ? [...issue.message.matchAll(/"([^"]+)"/g)].map((m) => m[1]!)
          : [];
    if (unknown.length) {
      // one problem per unknown field, on the field's own line
      for (const k of unknown) {
        const near = suggestField(configSchema, at, k);
        problems.push({ path: [...at, k], message: `unknown field "${k}"${near ? ` (did you mean "${near}"?)` : ''}`, ...keyLineOf(doc, lineCounter, at, k) });
      }
      continue;
    }
    problems.push(locate({ path: at, message: issue.message }));
  }

  // the entries that parsed are still cross-checked (a rule naming a missing key, ...)
  const obj = (value ?? {}) as Record<string, unknown>;
  const entries = <S extends Section>(section: S) => {
    const list = Array.isArray(obj[section]) ? (obj[section] as unknown[]) : [];
    const ok: ParsedEntry<z.output<(typeof entrySchemas)[S]>>[] = [];
    const failed: Record<string, unknown>[] = [];
    list.forEach((v, index) => {
      const r = entrySchemas[section].safeParse(v);
      if (r.success) ok.push({ index, value: r.data as z.output<(typeof entrySchemas)[S]> });
      else if (v !== null && typeof v === 'object') failed.push(v as Record<string, unknown>);
    });
    return { ok, failed };
  };
  const registries = entries('registries');
  const integrations = entries('integrations');
  const keys = entries('keys');
  const rules = entries('rules');
  const strings = (xs: unknown[]): string[] => xs.filter((x): x is string => typeof x === 'string');
  const { problems: cross, warnings } = crossCheck(
    {
      registries: registries.ok.map((e) => e.value),
      integrations: integrations.ok.map((e) => e.value),
      keys: keys.ok.map((e) => e.value),
      rules: rules.ok.map((e) => e.value),
    },
    {
      index: {
        registries: registries.ok.map((e) => e.index),
        integrations: integrations.ok.map((e) => e.index),
        keys: keys.ok.map((e) => e.index),
        rules: rules.ok.map((e) => e.index),
      },
      unparsed: {
        keyNames: strings(keys.failed.map((k) => k.name)),
        hosts: strings(registries.failed.flatMap((r) => [r.host, ...(Array.isArray(r.aliases) ? r.aliases : [])])),
      },
    },
  );
  problems.push(...cross.map(locate));
  return {
    parsed: { registries: registries.ok, integrations: integrations.ok, keys: keys.ok, rules: rules.ok },
    problems: sortByLine(problems),
    warnings: sortByLine(warnings.map(locate)),
    baseDir,
    locate,
  };
}

/** File order; problems without a line (none so far) first. Stable: same line keeps check order. */
export function sortByLine<T extends { line?: number }>(ps: T[]): T[] {
  return ps
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? 0) - (b.p.line ?? 0) || a.i - b.i)
    .map((x) => x.p);
}

function getAt(root: unknown, p: readonly (string | number)[]): unknown {
  let v = root;
  for (const seg of p) v = v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[seg] : undefined;
  return v;
}

function setAt(root: unknown, p: readonly (string | number)[], value: unknown): void {
  const parent = getAt(root, p.slice(0, -1));
  if (parent !== null && typeof parent === 'object') (parent as Record<string | number, unknown>)[p[p.length - 1]!] = value;
}

/** The line of field `key` of the mapping at `parent` (the key itself, not its value). */
function keyLineOf(doc: Document, lc: LineCounter, parent: readonly (string | number)[], key: string): { line?: number } {
  const node = parent.length ? doc.getIn(parent, true) : doc.contents;
  if (isMap(node)) {
    for (const pair of node.items) {
      const k = pair.key;
      if (isScalar(k) && String(k.value) === key && k.range) return { line: lc.linePos(k.range[0]).line };
    }
  }
  return lineOf(doc, lc, parent);
}

/** The line of the deepest node that exists along `p` (a missing key points at its parent). */
function lineOf(doc: Document, lc: LineCounter, p: readonly (string | number)[]): { line?: number } {
  for (let n = p.length; n >= 0; n--) {
    const last = p[n - 1];
    // a field: its key's line (a block value starts on the line after its key)
    if (n > 0 && typeof last === 'string') {
      const parent = n > 1 ? doc.getIn(p.slice(0, n - 1), true) : doc.contents;
      if (isMap(parent)) {
        const pair = parent.items.find((it) => isScalar(it.key) && String(it.key.value) === last);
        if (pair && isScalar(pair.key) && pair.key.range) return { line: lc.linePos(pair.key.range[0]).line };
      }
      continue;
    }
    const node = n === 0 ? doc.contents : doc.getIn(p.slice(0, n), true);
    if (isNode(node) && node.range) return { line: lc.linePos(node.range[0]).line };
  }
  return {};
}
