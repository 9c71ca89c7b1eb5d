import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * Process bookkeeping for the test kit: every child a helper starts is tracked, and a
 * process 'exit' hook SIGKILLs whatever is still alive. NOTE: vitest workers are torn down
 * without running 'exit' hooks, so this only helps plain node/tsx scripts (e.g. the
 * benchmark); registries additionally run under a stdin-EOF watchdog (registry.ts).
 */
const live = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

export function spawnTracked(bin: string, args: string[], opts: SpawnOptions): ChildProcess {
  hookExit();
  const child = spawn(bin, args, opts);
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && live.has(child);
}

/** Resolves when the child has exited (immediately if it already has). */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(t);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`. Never throws. */
export async function killChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill('SIGTERM');
  } catch {
    return;
  }
  if (await waitExit(child, graceMs)) return;
  try {
    child.kill('SIGKILL');
  } catch {
    return;
  }
  await waitExit(child, 2000);
}

/** Keeps the last `max` lines written to the given streams. */
export class LineRing {
  private lines: string[] = [];
  private partial = new Map<NodeJS.ReadableStream, string>();
  constructor(private readonly max = 200) {}

  attach(stream: NodeJS.ReadableStream | null | undefined): void {
    if (!stream) return;
    stream.setEncoding?.('utf8');
    stream.on('data', (chunk: string | Buffer) => {
      const text = (this.partial.get(stream) ?? '') + chunk.toString();
      const parts = text.split('\n');
      this.partial.set(stream, parts.pop() ?? '');
      for (const l of parts) this.push(l);
    });
    stream.on('end', () => {
      const rest = this.partial.get(stream);
      if (rest) this.push(rest);
      this.partial.delete(stream);
    });
  }

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  text(): string {
    const tails = [...this.partial.values()].filter((s) => s.length > 0);
    return [...this.lines, ...tails].join('\n');
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

/** Run a command to completion with a hard timeout (SIGKILL), capturing its output. */
export function runProcess(
  bin: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawnTracked(bin, args, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (e) {
      reject(e);
      return;
    }
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => (stdout += d));
    child.stderr?.on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, durationMs: Date.now() - started, timedOut });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
