/**
 * A V8 .cpuprofile summarised: self time by package (node_modules/<pkg>) or signet file, with the
 * self time of natives and node internals charged to their nearest JS caller in a package, and the
 * top functions by self time.
 */
import { readFileSync } from 'node:fs';
import { ROOT, round } from './common.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

export interface ProfileSummary {
  /** the part of the profile summarised (the measured phase, when a window was given), ms */
  totalMs: number;
  /** the window, when one was given and it overlaps the profile */
  window?: string;
  idlePct: number;
  /** busy (non-idle) CPU time in ms */
  busyMs: number;
  byPackage: string[];
  topFunctions: string[];
  /** busy share per package, for the JSON */
  byPackagePct: Record<string, number>;
  /**
   * Inclusive busy time by signet component: each sample goes to the deepest signet source file
   * on its stack (what signet code asked for the work: client.js = registry HTTP, store.js = the
   * status store's Redis calls, lock.js = the digest lock), else to the outermost package (e.g.
   * bullmq's own job loop, ioredis/undici socket reads), else to node internals.
   */
  byComponent: string[];
}

/** Monotonic clock in µs: V8 profile timestamps and process.hrtime both read CLOCK_MONOTONIC on Linux. */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * `window` (monotonicUs() values taken by the bench) restricts the summary to the samples taken
 * in it, so start-up (module loading, config parsing) and idle time after the phase are left out.
 */
export function summarizeProfile(file: string, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas?: number[]; startTime: number; endTime: number };
  let samples = prof.samples;
  let totalMs = (prof.endTime - prof.startTime) / 1000;
  let windowNote: string | undefined;
  if (window && prof.timeDeltas && window.fromUs < prof.endTime && window.toUs > prof.startTime) {
    const kept: number[] = [];
    let t = prof.startTime;
    for (let i = 0; i < prof.samples.length; i++) {
      t += prof.timeDeltas[i] ?? 0;
      if (t >= window.fromUs && t <= window.toUs) kept.push(prof.samples[i]!);
    }
    samples = kept;
    const from = Math.max(window.fromUs, prof.startTime);
    const to = Math.min(window.toUs, prof.endTime);
    totalMs = (to - from) / 1000;
    windowNote = `${round((from - prof.startTime) / 1e6, 1)} s to ${round((to - prof.startTime) / 1e6, 1)} s after the process started`;
  }
  const hits = new Map<number, number>();
  for (const s of samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const totalSamples = samples.length || 1;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const rel = (url: string): string => url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
  const ownerOf = (n: ProfileNode): string | undefined => {
    const url = rel(n.callFrame.url);
    if (!url || url.startsWith('node:')) return undefined;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    return pkg ? `node_modules/${pkg}` : url;
  };
  const owner = new Map<number, string>();
  const attribute = (id: number): string => {
    const known = owner.get(id);
    if (known) return known;
    const n = byId.get(id)!;
    const fn = n.callFrame.functionName;
    let o = ['(idle)', '(garbage collector)', '(program)', '(root)'].includes(fn) ? fn : ownerOf(n);
    if (!o) {
      const p = parent.get(id);
      o = p !== undefined && byId.get(p)!.callFrame.functionName !== '(root)' ? attribute(p) : 'node internals (no JS caller)';
    }
    owner.set(id, o);
    return o;
  };
  const isSignet = (url: string): boolean => /^(dist\/)?(src|workers|bench)\//.test(url) && !url.includes('node_modules');
  const component = new Map<number, string>();
  const componentOf = (id: number): string => {
    const known = component.get(id);
    if (known) return known;
    const fn0 = byId.get(id)!.callFrame.functionName;
    let c: string | undefined = ['(idle)', '(garbage collector)', '(program)'].includes(fn0) ? fn0 : undefined;
    if (!c) {
      let outerPkg: string | undefined;
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const url = rel(byId.get(cur)!.callFrame.url);
        if (!c && isSignet(url)) c = url.replace(/^dist\//, '');
        const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
        if (pkg) outerPkg = `node_modules/${pkg}`;
      }
      c ??= outerPkg ?? 'node internals (no JS caller)';
    }
    component.set(id, c);
    return c;
  };
  const byComp = new Map<string, number>();
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  let idle = 0;
  for (const n of prof.nodes) {
    const h = hits.get(n.id) ?? 0;
    if (!h) continue;
    const fn = n.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') idle += h;
    const url = rel(n.callFrame.url);
    const fnKey = `${fn} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
    byFn.set(fnKey, (byFn.get(fnKey) ?? 0) + h);
    const o = attribute(n.id);
    byPkg.set(o, (byPkg.get(o) ?? 0) + h);
    const c = componentOf(n.id);
    byComp.set(c, (byComp.get(c) ?? 0) + h);
  }
  const busy = totalSamples - idle;
  // percentages of the busy (non-idle) time: what a process spends its CPU on
  const pct = (h: number): string => `${((100 * h) / (busy || 1)).toFixed(1).padStart(5)}%`;
  const top = (m: Map<string, number>, k: number): string[] =>
    [...m.entries()]
      .filter(([name]) => name !== '(idle)' && !name.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, h]) => `${pct(h)}  ${name}`);
  return {
    totalMs,
    ...(windowNote ? { window: windowNote } : {}),
    idlePct: round((100 * idle) / totalSamples),
    busyMs: round((totalMs * busy) / totalSamples),
    byPackage: top(byPkg, 16),
    topFunctions: top(byFn, 20),
    byComponent: top(byComp, 16),
    byPackagePct: Object.fromEntries(
      [...byPkg.entries()]
        .filter(([k]) => k !== '(idle)')
        .sort((a, b) => b[1] - a[1])
        .map(([k, h]) => [k, round((100 * h) / (busy || 1))]),
    ),
  };
}
