/**
 * The other deploy/ artefacts, read as data: the Dockerfile is multi-stage, on Node 24 LTS (what
 * package.json's engines and .ci/run say), and ends as a non-root user; docker-compose.yml runs
 * Redis, a registry whose notifications go to signet's webhook with a secret the operator sets
 * (no default), and signet built from that Dockerfile with its keys in a volume it may write.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

describe('deploy/Dockerfile and docker-compose.yml', () => {
  it('Dockerfile: multi-stage, Node 24 LTS (= engines, = .ci/run), runs as a non-root user', () => {
    const lines = read('deploy/Dockerfile')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const froms = lines.filter((l) => /^FROM\s/i.test(l));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) {
      const major = Number(/node:(\d+)/.exec(f)?.[1]);
      expect(major % 2, `${f}: Node LTS lines are even`).toBe(0);
      expect(major, f).toBe(24);
    }
    expect((JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node).toBe('>=24');
    // and the suite itself runs on it (.ci/run puts Node 24 first on PATH; tests spawn process.execPath)
    expect(Number(process.versions.node.split('.')[0]), `tests run on Node ${process.versions.node}`).toBeGreaterThanOrEqual(24);
    expect(read('.ci/run')).toMatch(/NODE_VERSION="\$\{SIGNET_CI_NODE_VERSION:-24\.\d+\.\d+\}"/);
    // the embedded default listens on every interface of the container; /app/keys belongs to the user that writes it
    expect(lines).toContain('ENV NODE_ENV=production SIGNET_CONFIG=/etc/signet/signet.yaml SIGNET_HOST=0.0.0.0');
    expect(read('deploy/Dockerfile')).toMatch(/mkdir -p \/app\/keys && chown node:node \/app\/keys/);
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
    expect(flags).toEqual(['--max-semi-space-size=4', '--heap-growing-percent=50']);
    const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts['start']!;
    expect(start).toBe(`node ${flags.join(' ')} dist/src/cli.js start`);
    expect(read('src/cli.ts').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags.join(' ')}`);
  });

  it('docker-compose.yml: Redis, a registry notifying signet with the secret the operator sets, signet with its keys in a volume', () => {
    const compose = parse(read('docker-compose.yml'));
    expect(Object.keys(compose.services).sort()).toEqual(expect.arrayContaining(['redis', 'registry', 'signet']));
    const { signet, registry } = compose.services;
    expect(signet.build.dockerfile).toBe('deploy/Dockerfile');
    // no default secret: compose stops unless SIGNET_HOOK_SECRET is set
    for (const s of [signet, registry]) expect(s.environment.SIGNET_HOOK_SECRET).toMatch(/^\$\{SIGNET_HOOK_SECRET:\?[^}]+\}$/);
    // uid 1000 cannot write a mounted checkout: the keys live in a named volume at the image's /app/keys
    expect(signet.volumes).toEqual(['signet-keys:/app/keys']);
    expect(Object.keys(compose.volumes)).toEqual(['signet-keys']);
    expect(signet.environment.SIGNET_CONFIG).toBe('');

    const mount = (registry.volumes as string[]).find((v) => v.includes('registry-config.yml'))!;
    const [source, target] = mount.split(':') as [string, string];
    const template = read(source);
    expect(template).not.toMatch(/change-me/);
    // the registry's start command, as compose passes it ($$ is a literal $), renders the template with the secret
    const script = (registry.command as string[]).join(' ').replaceAll('$$', '$');
    expect(registry.entrypoint).toEqual(['/bin/sh', '-c']);
    const secret = 'b7c1f0e2d3a4958677a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2';
    const rendered = execFileSync(
      '/bin/sh',
      ['-c', `${script.replace(/ && exec .*$/, '').replace(/> \S+$/, '')}`.replaceAll(target, path.join(ROOT, source))],
      {
        env: { PATH: process.env.PATH, SIGNET_HOOK_SECRET: secret },
        encoding: 'utf8',
      },
    );
    const endpoint = parse(rendered).notifications.endpoints[0];
    expect(endpoint.url).toMatch(/^http:\/\/127\.0\.0\.1:8080\/hooks\/[a-z0-9-]+$/);
    expect(endpoint.headers.Authorization).toEqual([`Bearer ${secret}`]);
    // left unrendered, the file holds no secret signet would accept
    expect(parse(template).notifications.endpoints[0].headers.Authorization).toEqual(['Bearer ${SIGNET_HOOK_SECRET}']);
  });
});
