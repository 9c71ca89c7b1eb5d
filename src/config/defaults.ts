/**
 * The embedded default config, used by `signet start` when there is no config file: a local
 * registry at 127.0.0.1:5000 (plain http), a distribution webhook at /hooks/local, a P-256 key
 * generated on first start under ./keys, and one rule signing every repository of that registry.
 */
import { randomBytes } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SignetError } from '../errors.js';
import { generateP256KeyFile } from '../kms/file.js';
import { parseConfigText, type LoadedConfig } from './load.js';

export const DEFAULT_CONFIG_YAML = `# signet's embedded default (write your own signet.yaml to change it)
server: { port: "\${SIGNET_PORT:-8080}", host: "\${SIGNET_HOST:-127.0.0.1}" }
redis: { url: "\${SIGNET_REDIS_URL:-redis://127.0.0.1:6379}", prefix: signet }
registries:
  - host: 127.0.0.1:5000
    insecure: true
    aliases: [localhost:5000]
integrations:
  - name: local
    kind: distribution
    secret: "\${SIGNET_HOOK_SECRET}"
keys:
  - name: default
    provider: file
    path: ./keys/signet.key
rules:
  - match: "127.0.0.1:5000/**"
    keys: [default]
`;

export interface DefaultSetup {
  loaded: LoadedConfig;
  /** Lines for the operator: where the public key is, where the webhook secret is. */
  notes: string[];
}

export async function prepareDefaultConfig(cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<DefaultSetup> {
  const keysDir = path.join(cwd, 'keys');
  const keyPath = path.join(keysDir, 'signet.key');
  const notes: string[] = [];
  if (!existsSync(keyPath)) {
    await writableDir(keysDir, cwd);
    const { publicPath } = await generateP256KeyFile(keyPath);
    // cosign 2.x and 3.x both refuse a signature without a transparency-log entry unless told
    notes.push(
      `generated a P-256 signing key; verify with: cosign verify --key ${path.relative(cwd, publicPath)} --insecure-ignore-tlog=true 127.0.0.1:5000/REPOSITORY:TAG`,
    );
  } else {
    notes.push(`signing key ${path.relative(cwd, keyPath)} (public key ${path.relative(cwd, keyPath.replace(/\.key$/, '.pub'))})`);
  }
  let secret = env.SIGNET_HOOK_SECRET;
  if (!secret) {
    const secretPath = path.join(keysDir, 'webhook-secret');
    if (existsSync(secretPath)) {
      secret = (await readFile(secretPath, 'utf8')).trim();
    } else {
      await writableDir(keysDir, cwd);
      secret = randomBytes(24).toString('base64url');
      await writeFile(secretPath, `${secret}\n`, { mode: 0o600 });
    }
    notes.push(`webhook secret in ${path.relative(cwd, secretPath)}: the registry sends "Authorization: Bearer <secret>" to /hooks/local`);
  }
  const loaded = parseConfigText(DEFAULT_CONFIG_YAML, '(embedded default)', { ...env, SIGNET_HOOK_SECRET: secret });
  return { loaded: { ...loaded, baseDir: cwd }, notes };
}

/**
 * Creates `dir` (0700) if needed and checks this user may write there; else KEY_DIR_NOT_WRITABLE
 * with what to do (in a container signet runs as uid 1000, and a mounted checkout is the host's).
 */
async function writableDir(dir: string, cwd: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await access(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    const rel = path.relative(cwd, dir) || '.';
    const uid = process.getuid?.();
    throw new SignetError(
      'KEY_DIR_NOT_WRITABLE',
      `cannot create or write ${dir} (${code})${uid === undefined ? '' : ` as uid ${uid}`}: signet keeps its generated key and webhook secret there. ` +
        `Make it writable for this user (mkdir -p ${rel} && chown ${uid ?? '$(id -u)'} ${rel}), run signet from a directory it may write, ` +
        'or in a container mount a volume there (docker-compose.yml mounts one at /app/keys)',
      { cause: err },
    );
  }
}
