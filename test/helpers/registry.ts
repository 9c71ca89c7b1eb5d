import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, randomBytes, randomUUID, sign as cryptoSign, timingSafeEqual, X509Certificate } from 'node:crypto';
import { stringify as toYaml } from 'yaml';
import { freePort } from './ports.js';
import { httpRequest } from './http.js';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { LineRing, runProcess, spawnTracked, waitExit } from './proc.js';

/**
 * A real CNCF distribution 2.8 registry (`docker-registry`, Debian bookworm) per test, on a
 * free loopback port, with its own config, storage and (optionally) TLS, htpasswd or token auth
 * and push notifications.
 *
 * Facts (checked against distribution v2.8.2 source and the installed binary):
 * - htpasswd auth does NOT require TLS in 2.8 (the doc comment says it MUST be used under TLS,
 *   nothing enforces it); plain http + Basic works. Only bcrypt entries are accepted
 *   (`registry/auth/htpasswd/htpasswd.go`); we hash with libcrypt's bcrypt through perl.
 * - token auth (`registry/auth/token/token.go`): the JWT header must carry `x5c` (leaf cert
 *   chaining to `rootcertbundle`), or `jwk`, or `kid` = libtrust fingerprint; `iss` must equal
 *   `auth.token.issuer`, `aud` must equal `auth.token.service` and must be a JSON *string*
 *   (ClaimSet.Audience is a string: an array makes the token "malformed"), `exp`/`nbf` are
 *   checked with 60 s leeway, and `access: [{type,name,actions}]` must cover every requested
 *   action. Signature algs via libtrust: ES256/384/512 (JWS raw r||s) and RS256/384/512.
 */

export type RegistryAuth =
  | { kind: 'htpasswd'; username: string; password: string; realm?: string }
  | {
      kind: 'token';
      username: string;
      password: string;
      /** `auth.token.service` / JWT `aud`. Default `signet-test-registry`. */
      service?: string;
      /** `auth.token.issuer` / JWT `iss`. Default `signet-test-token-issuer`. */
      issuer?: string;
      /** JWT signing algorithm. Default ES256. */
      alg?: 'ES256' | 'RS256';
      /** Token lifetime in seconds (JWT exp - iat). Default 300. */
      ttlSeconds?: number;
    };

export interface RegistryOptions {
  /** distribution notification endpoint, e.g. http://127.0.0.1:PORT/hooks/NAME */
  notifyUrl?: string;
  /** static headers on every notification, e.g. { Authorization: ['Bearer s3cret'] } */
  notifyHeaders?: Record<string, string[]>;
  /** endpoint name in the config; default `signet` */
  notifyName?: string;
  /** `ignoredmediatypes` on the endpoint, e.g. ['application/octet-stream'] drops blob events. Default: none. */
  notifyIgnoredMediaTypes?: string[];
  /** `ignore.actions` on the endpoint, e.g. ['pull']. Default: none. */
  notifyIgnoredActions?: string[];
  /** endpoint timeout/threshold/backoff; defaults 2s / 5 / 1s */
  notifyTimeout?: string;
  notifyThreshold?: number;
  notifyBackoff?: string;
  /** `notifications.events.includereferences` */
  notifyIncludeReferences?: boolean;
  auth?: RegistryAuth;
  /** Serve HTTPS with a self-signed certificate for 127.0.0.1/localhost (exposed as caFile). */
  tls?: boolean;
  /** Keep the registry's HTTP access log (stdout) in logs(). Default false. */
  accessLog?: boolean;
  /** registry log level, default `warn` */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** how long to wait for GET /v2/ to answer; default 15 s */
  readyTimeoutMs?: number;
}

export interface TokenServerInfo {
  /** realm URL, http://127.0.0.1:PORT/token */
  realm: string;
  service: string;
  issuer: string;
  /** PEM of the self-signed certificate in `rootcertbundle` */
  certFile: string;
  /** number of token requests answered with 200 / refused with 401 */
  issued(): number;
  refused(): number;
}

export interface RunningRegistry {
  /** 127.0.0.1:PORT */
  host: string;
  /** http(s)://127.0.0.1:PORT */
  url: string;
  /** PEM of the self-signed server certificate when tls is on (use as CA) */
  caFile?: string;
  /** the credentials the registry accepts (auth registries only). images.ts does NOT use them implicitly. */
  credentials?: { username: string; password: string };
  tokenServer?: TokenServerInfo;
  /** the temp dir holding config, storage, certs; removed by stop() */
  dataDir: string;
  configFile: string;
  pid: number | undefined;
  stop(): Promise<void>;
  /** last ~200 lines of the registry's stderr (and stdout) */
  logs(): string;
}

const REGISTRY_BIN = (): string => process.env.DOCKER_REGISTRY_BIN ?? 'docker-registry';

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await runProcess('openssl', args, { cwd, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
}

/** Self-signed P-256 (or RSA) certificate + key, written as PEM files in `dir`. */
export async function selfSignedCert(
  dir: string,
  name: string,
  opts: { cn: string; san?: string; rsa?: boolean },
): Promise<{ certFile: string; keyFile: string }> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const keyArgs = opts.rsa ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  await openssl(
    [
      'req',
      '-x509',
      ...keyArgs,
      '-nodes',
      '-sha256',
      '-days',
      '2',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-subj',
      `/CN=${opts.cn}`,
      ...(opts.san ? ['-addext', `subjectAltName=${opts.san}`] : []),
    ],
    dir,
  );
  return { certFile, keyFile };
}

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * bcrypt hash (`$2b$`, cost 5: fast, fine for tests) through libcrypt's crypt(3) via perl
 * (perl-base is Essential on Debian, libcrypt1 4.4 has bcrypt). distribution only accepts bcrypt.
 */
export async function bcryptHash(password: string): Promise<string> {
  const rnd = randomBytes(22);
  let salt = '';
  for (let i = 0; i < 21; i++) salt += BCRYPT_ALPHABET[rnd[i]! % 64];
  salt += '.Oeu'[rnd[21]! % 4]; // last char carries 2 significant bits only
  const setting = `$2b$05$${salt}`;
  const r = await runProcess('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, setting], { timeoutMs: 15_000 });
  if (r.code !== 0 || !r.stdout.startsWith('$2b$05$') || r.stdout.length !== 60) {
    throw new Error(`bcrypt via perl crypt() failed (code ${r.code}): ${r.stdout} ${r.stderr}`);
  }
  return r.stdout;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

interface TokenServerHandle {
  info: TokenServerInfo;
  close(): Promise<void>;
}

/**
 * A tiny Docker token server (https://distribution.github.io/distribution/spec/auth/token/):
 * GET /token?service=S&scope=repository:NAME:pull,push[&scope=...] with Basic credentials.
 * Right credentials -> 200 {token, access_token, expires_in, issued_at}, granting every
 * requested action; wrong or missing credentials -> 401.
 */
async function startTokenServer(dir: string, a: Extract<RegistryAuth, { kind: 'token' }>): Promise<TokenServerHandle> {
  const alg = a.alg ?? 'ES256';
  const service = a.service ?? 'signet-test-registry';
  const issuer = a.issuer ?? 'signet-test-token-issuer';
  const ttl = a.ttlSeconds ?? 300;
  const { certFile, keyFile } = await selfSignedCert(dir, 'token-signer', { cn: issuer, rsa: alg === 'RS256' });
  const certPem = await readFile(certFile, 'utf8');
  const key = createPrivateKey(await readFile(keyFile));
  const x5c = [new X509Certificate(certPem).raw.toString('base64')];
  let issued = 0;
  let refused = 0;

  const expected = Buffer.from(`${a.username}:${a.password}`);
  const checkBasic = (req: IncomingMessage): string | undefined => {
    const h = req.headers.authorization ?? '';
    const m = /^Basic\s+(.+)$/i.exec(h);
    if (!m) return undefined;
    const got = Buffer.from(m[1]!, 'base64');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) return undefined;
    return a.username;
  };

  const mint = (sub: string, scopes: string[]): string => {
    const access: { type: string; name: string; actions: string[] }[] = [];
    for (const s of scopes) {
      // type:name:actions; the name may itself contain ':' (never for repositories, but be exact)
      const first = s.indexOf(':');
      const last = s.lastIndexOf(':');
      if (first < 0 || last <= first) continue;
      const type = s.slice(0, first);
      const name = s.slice(first + 1, last);
      const actions = s
        .slice(last + 1)
        .split(',')
        .filter(Boolean);
      const prev = access.find((x) => x.type === type && x.name === name);
      if (prev) prev.actions = [...new Set([...prev.actions, ...actions])];
      else access.push({ type, name, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg, x5c };
    const claims = { iss: issuer, sub, aud: service, exp: now + ttl, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig =
      alg === 'ES256'
        ? cryptoSign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' })
        : cryptoSign('sha256', Buffer.from(signingInput), key);
    return `${signingInput}.${b64url(sig)}`;
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (u.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      res.writeHead(404).end();
      return;
    }
    // POST (OAuth2 password grant) is not implemented: 404 makes clients fall back to GET.
    if (req.method === 'POST') {
      res.writeHead(404).end();
      return;
    }
    const user = checkBasic(req);
    if (!user || (u.searchParams.get('service') ?? service) !== service) {
      refused++;
      res.writeHead(401, {
        'Content-Type': 'application/json',
        'WWW-Authenticate': 'Basic realm="signet-test-token"',
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
      return;
    }
    const scopes = u.searchParams
      .getAll('scope')
      .flatMap((s) => s.split(' '))
      .filter(Boolean);
    const token = mint(user, scopes);
    issued++;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: ttl, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('token server: no address');
  return {
    info: {
      realm: `http://127.0.0.1:${addr.port}/token`,
      service,
      issuer,
      certFile,
      issued: () => issued,
      refused: () => refused,
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function buildConfig(
  opts: RegistryOptions,
  dir: string,
  port: number,
  extras: { tls?: { certFile: string; keyFile: string }; htpasswdFile?: string; token?: TokenServerInfo },
): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    version: 0.1,
    log: { level: opts.logLevel ?? 'warn', accesslog: { disabled: !opts.accessLog }, fields: { service: 'registry' } },
    storage: {
      filesystem: { rootdirectory: join(dir, 'data') },
      delete: { enabled: true },
      cache: { blobdescriptor: 'inmemory' },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${port}`,
      secret: randomBytes(16).toString('hex'),
      headers: { 'X-Content-Type-Options': ['nosniff'] },
      ...(extras.tls ? { tls: { certificate: extras.tls.certFile, key: extras.tls.keyFile } } : {}),
    },
  };
  if (extras.htpasswdFile && opts.auth?.kind === 'htpasswd') {
    cfg.auth = { htpasswd: { realm: opts.auth.realm ?? 'signet-test', path: extras.htpasswdFile } };
  } else if (extras.token) {
    cfg.auth = {
      token: {
        realm: extras.token.realm,
        service: extras.token.service,
        issuer: extras.token.issuer,
        rootcertbundle: extras.token.certFile,
      },
    };
  }
  if (opts.notifyUrl) {
    const endpoint: Record<string, unknown> = {
      name: opts.notifyName ?? 'signet',
      url: opts.notifyUrl,
      headers: opts.notifyHeaders ?? {},
      timeout: opts.notifyTimeout ?? '2s',
      threshold: opts.notifyThreshold ?? 5,
      backoff: opts.notifyBackoff ?? '1s',
    };
    if (opts.notifyIgnoredMediaTypes?.length) endpoint.ignoredmediatypes = opts.notifyIgnoredMediaTypes;
    if (opts.notifyIgnoredActions?.length) endpoint.ignore = { actions: opts.notifyIgnoredActions };
    cfg.notifications = {
      ...(opts.notifyIncludeReferences ? { events: { includereferences: true } } : {}),
      endpoints: [endpoint],
    };
  }
  return cfg;
}

/** Env for the registry: drop REGISTRY_* overrides and proxies inherited from the test runner. */
function registryEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('REGISTRY_') || /^(https?|no|all)_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  return env;
}

/**
 * The registry runs under a tiny sh watchdog whose stdin is a pipe from this process: when this
 * process dies in any way (vitest kills its workers without running 'exit' hooks, a crash,
 * SIGKILL), the pipe reaches EOF and the watchdog SIGTERMs the registry and removes its temp
 * dir. The watchdog also forwards SIGTERM (the normal stop path) and reports the registry's
 * pid on stdout.
 */
const WATCHDOG = [
  'exec 3<&0',
  '"$0" serve "$1" </dev/null &',
  'pid=$!',
  'echo "__signet_registry_pid=$pid"',
  "trap 'kill -TERM $pid 2>/dev/null' TERM INT HUP",
  // orphan path: EOF on stdin -> stop the registry and remove its temp dir ($2)
  '( while read -r _; do :; done <&3; kill -TERM $pid 2>/dev/null; while kill -0 $pid 2>/dev/null; do sleep 0.1; done; rm -rf "$2" ) &',
  'w=$!',
  'exec 3<&-',
  'rc=0',
  'while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done',
  'kill $w 2>/dev/null',
  'exit $rc',
].join('\n');

interface RegistryProcess {
  child: ChildProcess;
  ring: LineRing;
  /** pid of docker-registry itself (the child is the watchdog sh) */
  registryPid(): number | undefined;
  kill(): Promise<void>;
}

/** true while `pid` is still our docker-registry (guards against pid reuse). */
function isOurRegistry(pid: number, configFile?: string): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('serve') && (configFile === undefined || cmd.includes(configFile));
  } catch {
    return false;
  }
}

function spawnRegistry(configFile: string, cwd: string): RegistryProcess {
  const ring = new LineRing(200);
  const child = spawnTracked('sh', ['-c', WATCHDOG, REGISTRY_BIN(), configFile, cwd], {
    cwd,
    env: registryEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let regPid: number | undefined;
  child.stdout?.on('data', (d: Buffer | string) => {
    const m = /__signet_registry_pid=(\d+)/.exec(d.toString());
    if (m) regPid = Number(m[1]);
  });
  ring.attach(child.stderr);
  ring.attach(child.stdout);
  child.stdin?.on('error', () => undefined);
  let killing: Promise<void> | undefined;
  const kill = (): Promise<void> =>
    (killing ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM'); // the trap forwards it; sh exits only after the registry has
        if (await waitExit(child, 3000)) return;
        child.kill('SIGKILL');
        await waitExit(child, 2000);
      }
      // sh is gone but maybe not the registry: EOF makes the orphaned watcher TERM it
      child.stdin?.end();
      if (regPid === undefined) return;
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && isOurRegistry(regPid, configFile)) await new Promise((r) => setTimeout(r, 50));
      if (isOurRegistry(regPid, configFile)) {
        try {
          process.kill(regPid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    })());
  return { child, ring, registryPid: () => regPid, kill };
}

async function waitReady(url: string, caFile: string | undefined, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`registry exited early (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    try {
      const r = await httpRequest(`${url}/v2/`, { caFile, timeoutMs: 2000 });
      if (r.status === 200 || r.status === 401) return;
      lastErr = `GET /v2/ -> ${r.status}`;
    } catch (e) {
      lastErr = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`registry not ready after ${timeoutMs} ms: ${lastErr}`);
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-registry-'));
  let token: TokenServerHandle | undefined;
  try {
    let tls: { certFile: string; keyFile: string } | undefined;
    if (opts.tls) {
      tls = await selfSignedCert(dir, 'server', { cn: '127.0.0.1', san: 'IP:127.0.0.1,DNS:localhost' });
    }
    let htpasswdFile: string | undefined;
    if (opts.auth?.kind === 'htpasswd') {
      htpasswdFile = join(dir, 'htpasswd');
      await writeFile(htpasswdFile, `${opts.auth.username}:${await bcryptHash(opts.auth.password)}\n`, { mode: 0o600 });
    } else if (opts.auth?.kind === 'token') {
      token = await startTokenServer(dir, opts.auth);
    }

    const scheme = tls ? 'https' : 'http';
    const configFile = join(dir, 'config.yml');
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 4; attempt++) {
      const port = await freePort();
      await writeFile(configFile, toYaml(buildConfig(opts, dir, port, { tls, htpasswdFile, token: token?.info })));
      const proc = spawnRegistry(configFile, dir);
      const { child, ring } = proc;
      const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
      spawnError.catch(() => undefined);
      const url = `${scheme}://127.0.0.1:${port}`;
      try {
        await Promise.race([waitReady(url, tls?.certFile, child, opts.readyTimeoutMs ?? 15_000), spawnError]);
      } catch (e) {
        await proc.kill();
        const logs = ring.text();
        lastError = new Error(`startRegistry: ${(e as Error).message}\n--- registry log ---\n${logs}`);
        if (/address already in use/i.test(logs)) continue; // lost the port race: try another port
        throw lastError;
      }
      let stopped: Promise<void> | undefined;
      const tokenHandle = token;
      return {
        host: `127.0.0.1:${port}`,
        url,
        caFile: tls?.certFile,
        credentials: opts.auth ? { username: opts.auth.username, password: opts.auth.password } : undefined,
        tokenServer: tokenHandle?.info,
        dataDir: dir,
        configFile,
        get pid() {
          return proc.registryPid() ?? child.pid;
        },
        logs: () => ring.text(),
        stop: () => {
          stopped ??= (async () => {
            await proc.kill();
            await tokenHandle?.close();
            await rm(dir, { recursive: true, force: true, maxRetries: 3 });
          })();
          return stopped;
        },
      };
    }
    throw lastError ?? new Error('startRegistry: could not bind a port');
  } catch (e) {
    await token?.close();
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    throw e;
  }
}
