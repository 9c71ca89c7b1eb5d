/**
 * package.json as data: every runtime dependency is imported by signet's code (none is declared
 * and unused, as @alicloud/openapi-client was), and bullmq is pinned exactly, because the
 * receiver calls BullMQ's internal `addJob` script (src/queue/sign-queue.ts), which a minor
 * release may change.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  engines: { node: string };
};

function tsFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? tsFiles(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : [],
  );
}

describe('package.json', () => {
  it('every dependency is imported by src/ or workers/', () => {
    const code = [...tsFiles('src'), ...tsFiles('workers')].map((f) => readFileSync(path.join(ROOT, f), 'utf8')).join('\n');
    const unused = Object.keys(pkg.dependencies).filter((name) => {
      const quoted = name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      return !new RegExp(`(?:from|import\\(|require\\()\\s*['"]${quoted}(?:/[^'"]*)?['"]`).test(code);
    });
    expect(unused).toEqual([]);
  });

  it('bullmq is pinned to one version, the one installed', () => {
    expect(pkg.dependencies['bullmq']).toMatch(/^\d+\.\d+\.\d+$/);
    const installed = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/bullmq/package.json'), 'utf8')) as { version: string };
    expect(installed.version).toBe(pkg.dependencies['bullmq']);
  });
});
