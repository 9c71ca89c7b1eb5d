/**
 * How tests run the `signet` command: one node process with tsx's loader (not the `tsx` wrapper,
 * which runs node as a child of its own: a SIGKILL sent to the wrapper would orphan the real
 * process instead of killing it).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const loader = import.meta.resolve('tsx');

export function signetArgv(args: string[]): { bin: string; args: string[] } {
  return { bin: process.execPath, args: ['--import', loader, path.join(ROOT, 'src/cli.ts'), ...args] };
}
