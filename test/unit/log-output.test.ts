/**
 * The default log destination (stdout, written in chunks): a line reaches stdout while the process
 * runs on, and none is lost when the process exits or crashes right after logging it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const loader = import.meta.resolve('tsx');
const LOG = path.join(ROOT, 'src/log.ts');

/** Runs `code` (ESM, with `log` a createLogger()) in a node process; resolves with its stdout once it printed `until` or exited. */
function run(code: string, until?: string): Promise<{ stdout: string; code: number | null; exited: boolean }> {
  const script = `import { createLogger } from ${JSON.stringify(LOG)}; const log = createLogger({ level: 'info' }); ${code}`;
  const child = spawn(process.execPath, ['--import', loader, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  let stdout = '';
  return new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      if (until && stdout.includes(until)) {
        child.kill('SIGKILL');
        resolve({ stdout, code: null, exited: false });
      }
    });
    child.on('exit', (c) => resolve({ stdout, code: c, exited: true }));
  });
}

describe('log output on stdout', () => {
  it('a line is written while the process keeps running', async () => {
    const r = await run(`log.info('first line'); setTimeout(() => undefined, 30_000);`, 'first line');
    expect(r.exited).toBe(false);
  });

  it('lines logged just before process.exit() are written', async () => {
    const r = await run(`for (let i = 0; i < 3; i++) log.info({ i }, 'line before exit'); process.exit(0);`);
    expect(r.stdout.match(/line before exit/g)).toHaveLength(3);
  });

  it('a line logged just before an uncaught exception is written', async () => {
    const r = await run(`log.info('line before crash'); throw new Error('boom');`);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('line before crash');
  });
});
