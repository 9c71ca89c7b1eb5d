/**
 * Credentials from a Docker `config.json` (what `docker login`, `podman login --authfile`,
 * `crane auth login` and Kubernetes `.dockerconfigjson` secrets write).
 *
 * - File: `dockerConfig: <path>` (a file, or a folder holding config.json), or
 *   `dockerConfig: {}` for Docker's default: `$DOCKER_CONFIG/config.json`, else
 *   `~/.docker/config.json`. Relative paths resolve against the config file's folder.
 * - Entry: `auths[<key>]` whose key names the registry host, compared the way docker/cli's
 *   `ConvertToHostname` does (scheme and path dropped: `https://host:5000/v2/` is `host:5000`);
 *   Docker Hub's `https://index.docker.io/v1/` also matches docker.io and registry-1.docker.io.
 * - Fields, first present wins: `registrytoken` (sent as a bearer token), `identitytoken` (an
 *   OAuth2 refresh token for the registry's token service, as Docker uses it), `auth`
 *   (base64 `user:password`), `username` + `password`.
 * - `credHelpers` / `credsStore` run external programs; signet does not, and says so.
 * - The file is re-read when it changes (mounted Kubernetes secrets are updated in place).
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { SignetError } from '../../errors.js';
import type { CredentialContext, CredentialSource, RegistryCredentials } from './source.js';

export const dockerConfigCredentialsSchema = z
  .object({
    dockerConfig: z.union([z.string().min(1), z.object({ path: z.string().min(1).optional() }).strict()]),
  })
  .strict();
export type DockerConfigCredentialsConfig = z.infer<typeof dockerConfigCredentialsSchema>;

const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** docker/cli credentials.ConvertToHostname, lower-cased; Docker Hub's names folded into one. */
export function dockerConfigKeyHost(key: string): string {
  let s = key.trim();
  if (/^https?:\/\//i.test(s)) s = s.replace(/^https?:\/\//i, '');
  const host = (s.split('/')[0] ?? '').toLowerCase();
  return DOCKER_HUB.has(host) ? 'docker.io' : host;
}

function authFailed(message: string): SignetError {
  return new SignetError('REGISTRY_AUTH_FAILED', message);
}

interface DockerAuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
  registrytoken?: unknown;
}

const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/**
 * The credentials a Docker config.json holds for `host`. `file` only names the file in errors.
 * Throws REGISTRY_AUTH_FAILED (never with a secret in the message) when there are none.
 */
export function credentialsFromDockerConfig(config: unknown, host: string, file: string): RegistryCredentials {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw authFailed(`Docker config ${file} is not a JSON object`);
  }
  const c = config as { auths?: unknown; credHelpers?: unknown; credsStore?: unknown };
  const want = dockerConfigKeyHost(host);
  const helpers = c.credHelpers && typeof c.credHelpers === 'object' ? (c.credHelpers as Record<string, unknown>) : {};
  const helperKey = Object.keys(helpers).find((k) => dockerConfigKeyHost(k) === want);
  if (helperKey !== undefined) {
    throw authFailed(
      `Docker config ${file} sends ${host} to credential helper "docker-credential-${String(helpers[helperKey])}"; signet does not run credential helpers: ` +
        'put the credentials under "auths" (e.g. a Kubernetes .dockerconfigjson secret) or use credentials: {ecr|acr|gar: ...}',
    );
  }
  const auths = c.auths && typeof c.auths === 'object' && !Array.isArray(c.auths) ? (c.auths as Record<string, unknown>) : {};
  const keys = Object.keys(auths);
  const key = keys.find((k) => k === host) ?? keys.find((k) => dockerConfigKeyHost(k) === want);
  const entry = key !== undefined ? (auths[key] as DockerAuthEntry | null) : undefined;
  const usable = entry && typeof entry === 'object' && [entry.auth, entry.username, entry.identitytoken, entry.registrytoken].some(nonEmpty);
  if (!entry || !usable) {
    const store = nonEmpty(c.credsStore) ? `; its credentials are kept by credsStore "${c.credsStore}", which signet does not run` : '';
    throw authFailed(`Docker config ${file} has no credentials for ${host} under "auths"${store}`);
  }
  if (nonEmpty(entry.registrytoken)) return { token: entry.registrytoken };
  if (nonEmpty(entry.identitytoken)) {
    return { identityToken: entry.identitytoken, ...(nonEmpty(entry.username) ? { username: entry.username } : {}) };
  }
  if (nonEmpty(entry.auth)) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (!/^[A-Za-z0-9+/=\s]+$/.test(entry.auth) || i <= 0) {
      throw authFailed(`Docker config ${file}: auths["${key}"].auth is not base64 of "username:password"`);
    }
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1).replace(/\0+$/, '') };
  }
  if (nonEmpty(entry.username) && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
  throw authFailed(`Docker config ${file}: auths["${key}"] has a username but no password`);
}

/** Where the Docker config file is: the configured path (file or folder), else Docker's default. */
export function dockerConfigPath(cfg: DockerConfigCredentialsConfig, baseDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const given = typeof cfg.dockerConfig === 'string' ? cfg.dockerConfig : cfg.dockerConfig.path;
  if (given !== undefined) {
    const p = path.resolve(baseDir, given);
    try {
      if (statSync(p).isDirectory()) return path.join(p, 'config.json');
    } catch {
      /* reported when read */
    }
    return p;
  }
  return env['DOCKER_CONFIG'] ? path.join(env['DOCKER_CONFIG'], 'config.json') : path.join(homedir(), '.docker', 'config.json');
}

export function createDockerConfigSource(cfg: DockerConfigCredentialsConfig, ctx: CredentialContext, deps: { env?: NodeJS.ProcessEnv } = {}): CredentialSource {
  const file = dockerConfigPath(cfg, ctx.baseDir, deps.env);
  let cached: { stamp: string; creds: RegistryCredentials } | undefined;
  const stampOf = (): string => {
    try {
      const s = statSync(file);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch (err) {
      return `missing:${(err as NodeJS.ErrnoException).code ?? ''}`;
    }
  };
  return {
    describe: () => `Docker config ${file}`,
    async get() {
      const stamp = stampOf();
      if (cached && cached.stamp === stamp) return { ...cached.creds };
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw authFailed(`cannot read Docker config ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw authFailed(`Docker config ${file} is not valid JSON`);
      }
      const creds = credentialsFromDockerConfig(json, ctx.host, file);
      cached = { stamp, creds };
      return { ...creds };
    },
    invalidate() {
      const changed = cached !== undefined && cached.stamp !== stampOf();
      cached = undefined;
      return changed;
    },
  };
}
