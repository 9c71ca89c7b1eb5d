/**
 * The other deploy/ artefacts, read as data: the Dockerfile is multi-stage, on a Node LTS image,
 * and ends as a non-root user; docker-compose.yml runs Redis, a registry whose notifications go to
 * signet's webhook, and signet built from that Dockerfile.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

describe('deploy/Dockerfile and docker-compose.yml', () => {
  it('Dockerfile: multi-stage, Node LTS, runs as a non-root user', () => {
    const lines = read('deploy/Dockerfile').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const froms = lines.filter((l) => /^FROM\s/i.test(l));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) {
      const major = Number(/node:(\d+)/.exec(f)?.[1]);
      expect(major % 2, `${f}: Node LTS lines are even`).toBe(0);
    }
    const lastFrom = lines.lastIndexOf(froms[froms.length - 1]!);
    const users = lines.slice(lastFrom).filter((l) => /^USER\s/i.test(l));
    expect(users.length, 'the final stage sets USER').toBeGreaterThan(0);
    expect(users[users.length - 1]).not.toMatch(/^USER\s+(root|0)(:|$)/i);
    expect(lines.slice(lastFrom).some((l) => /COPY --from=/.test(l))).toBe(true);
  });

  it('node runs signet with the same flags everywhere: Dockerfile ENTRYPOINT, npm start, the CLI shebang (and so the benchmark)', () => {
    const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(read('deploy/Dockerfile'))![1]!;
    const argv = JSON.parse(entry) as string[];
    expect(argv[0]).toBe('node');
    const flags = argv.slice(1, argv.indexOf('dist/src/cli.js'));
    expect(flags).toContain('--max-semi-space-size=4');
    const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts['start']!;
    expect(start).toBe(`node ${flags.join(' ')} dist/src/cli.js start`);
    expect(read('src/cli.ts').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags.join(' ')}`);
  });

  it('docker-compose.yml: Redis, a registry notifying signet, signet', () => {
    const compose = parse(read('docker-compose.yml'));
    expect(Object.keys(compose.services).sort()).toEqual(expect.arrayContaining(['redis', 'registry', 'signet']));
    expect(compose.services.signet.build.dockerfile).toBe('deploy/Dockerfile');
    const mount = (compose.services.registry.volumes as string[]).find((v) => v.includes('config.yml'))!;
    const registryConfig = parse(read(mount.split(':')[0]!));
    const endpoint = registryConfig.notifications.endpoints[0];
    expect(endpoint.url).toMatch(/^http:\/\/127\.0\.0\.1:8080\/hooks\/[a-z0-9-]+$/);
    expect(endpoint.headers.Authorization[0]).toMatch(/^Bearer /);
  });
});
