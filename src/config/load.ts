/**
 * Loads the YAML config: parse (keeping positions), expand ${VAR}, validate with zod, cross-check.
 * Every problem is collected and reported together with its YAML path and line.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { SignetError } from '../errors.js';
import { expandEnv, type EnvProblem } from './env.js';
import { configSchema, type Config } from './schema.js';
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
  return problems
    .map((p) => `  ${file}${p.line ? `:${p.line}` : ''}  ${formatPath(p.path)}: ${p.message}`)
    .join('\n');
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
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: LocatedProblem[] = [];
  for (const e of doc.errors) {
    problems.push({ path: [], message: `YAML: ${e.message.split('\n')[0]}`, line: lineCounter.linePos(e.pos[0]).line });
  }
  if (problems.length) throw new ConfigError(file, problems);

  const raw = doc.toJS() ?? {};
  const envProblems: EnvProblem[] = [];
  const expanded = expandEnv(raw, env, envProblems);
  const locate = (p: ConfigProblem): LocatedProblem => ({ ...p, ...lineOf(doc, lineCounter, p.path) });
  problems.push(...envProblems.map(locate));

  const parsed = configSchema.safeParse(expanded);
  if (!parsed.success) {
    // A value whose variable is unset already has its problem: do not report it twice.
    const envPaths = new Set(envProblems.map((p) => formatPath(p.path)));
    for (const issue of parsed.error.issues) {
      if (envPaths.has(formatPath(issue.path))) continue;
      problems.push(locate({ path: issue.path.map((s) => (typeof s === 'symbol' ? String(s) : s)), message: issue.message }));
    }
    throw new ConfigError(file, problems);
  }
  const { problems: cross, warnings } = crossCheck(parsed.data);
  problems.push(...cross.map(locate));
  if (problems.length) throw new ConfigError(file, problems);
  return { config: parsed.data, baseDir: path.dirname(path.resolve(file)), source: file, warnings: warnings.map(locate) };
}

/** The line of the deepest node that exists along `p` (a missing key points at its parent). */
function lineOf(doc: Document, lc: LineCounter, p: readonly (string | number)[]): { line?: number } {
  for (let n = p.length; n >= 0; n--) {
    const node = doc.getIn(p.slice(0, n), true);
    if (isNode(node) && node.range) return { line: lc.linePos(node.range[0]).line };
  }
  return {};
}
