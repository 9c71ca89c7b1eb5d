#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50
/**
 * signet's command line.
 *   signet start            receiver + worker in one process (npm start)
 *   signet serve            receiver only
 *   signet worker           worker only
 *   signet sign IMAGE_REF   sign one image now through the same pipeline (no webhook)
 *   signet config check [--offline]  validate the config, open keys, try registry credentials; every problem with its YAML path and line
 *   signet keys export [NAME]  print each key's public key (SPKI PEM)
 *   signet keys csr NAME --subject DN [--san TYPE:VALUE]... [--out FILE]  a PKCS#10 request signed by the key (src/kms/csr.ts)
 *   signet policy export --for VERIFIER  verifier policies from the rules and public keys (src/policy/)
 *   signet jobs failed | jobs retry ID|--all   dead letters
 *   signet backfill [--registry HOST] [--repo GLOB] [--dry-run]   queue images lacking a required signature (src/backfill/)
 *   signet verify IMAGE_REF [--json]   check an image's signatures against its rule and the keys (src/verify/)
 * Config: --config FILE, else $SIGNET_CONFIG, else ./signet.yaml; `start|serve|worker` fall back
 * to the embedded default when none of these exists.
 */
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { prepareDefaultConfig } from './config/defaults.js';
import { ConfigError, loadConfigFile, formatPath, formatProblems, type LoadedConfig } from './config/load.js';
import { describeError, isSignetError, SignetError } from './errors.js';
import { createSigningKeys } from './kms/providers.js';
import { createLogger, redactText } from './log.js';
import { parseReference } from './registry/reference.js';
import { createRuntime, startService } from './runtime.js';
import { QueueAdmin } from './queue/admin.js';
import { imageStatus } from './api/status.js';
import { compileRules } from './config/rules.js';
import { RegistryDirectory } from './registry/directory.js';
import { StatusStore } from './status/store.js';
import { checkRedis, createRedis } from './queue/connection.js';
import { asRedisUnavailable } from './queue/redis-errors.js';

const USAGE = `usage: signet [--config FILE] <command>

commands:
  start                 run the webhook receiver and the signing worker (one process)
  serve                 run the webhook receiver only
  worker                run the signing worker only; --http-port N (or worker.httpPort)
                        serves /healthz and /metrics
  sign IMAGE_REF        sign one image now (host/repo:tag or host/repo@sha256:...)
  config check          validate the config, open its keys and log in to its registries;
                        lists every problem with its YAML path and line (--offline: no
                        registry requests)
  keys export [NAME]    print the public key (SPKI PEM) of each configured key
  keys csr NAME --subject "CN=...,O=...,ST=...,C=..."
                        print a certificate signing request (PEM) for a code-signing
                        certificate, signed by the key through its backend;
                        --san email:ADDR|uri:URI|dns:NAME (repeatable), --out FILE
  policy export --for kyverno|policy-controller|openshift|containers|cosign-webhook|cosign|notation|all
                        verifier config from the rules and public keys (comma list ok);
                        --out DIR (one file per object), --format yaml|json, --namespace NS
  status IMAGE_REF      signing status per (digest, rule, key) of an image (--json for JSON)
  jobs failed           list failed sign jobs with their reasons (--json for JSON)
  jobs retry ID|--all   put failed jobs back in the queue
  backfill              queue every image that lacks a signature its rule requires;
                        --registry HOST, --repo GLOB, --dry-run (report only),
                        --concurrency N (default 8), --json
  verify IMAGE_REF      check an image's signatures against the configured keys and its rule;
                        exit 0 when every required key has a valid signature (--json for JSON)

options:
  -c, --config FILE     config file (default: $SIGNET_CONFIG, else ./signet.yaml)
  -h, --help            this help`;

type Out = (line: string) => void;

export async function main(
  argv: string[],
  out: Out = (l) => process.stdout.write(`${l}\n`),
  err: Out = (l) => process.stderr.write(`${l}\n`),
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        all: { type: 'boolean' },
        json: { type: 'boolean' },
        for: { type: 'string' },
        out: { type: 'string' },
        format: { type: 'string' },
        namespace: { type: 'string', multiple: true },
        registry: { type: 'string' },
        repo: { type: 'string' },
        'dry-run': { type: 'boolean' },
        concurrency: { type: 'string' },
        'http-port': { type: 'string' },
        subject: { type: 'string' },
        offline: { type: 'boolean' },
        san: { type: 'string', multiple: true },
      },
    });
  } catch (e) {
    err(`signet: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || !command) {
    out(USAGE);
    return command || parsed.values.help ? 0 : 2;
  }
  const explicit = parsed.values.config || process.env.SIGNET_CONFIG || undefined;
  const configPath = path.resolve(explicit ?? 'signet.yaml');

  try {
    switch (command) {
      case 'start':
      case 'serve':
      case 'worker':
        return await runService(command, configPath, Boolean(explicit), err, parsed.values['http-port']);
      case 'sign':
        if (rest.length !== 1) throw usage('sign takes one IMAGE_REF');
        return await signOne(rest[0]!, configPath, out);
      case 'config':
        if (rest[0] !== 'check' || rest.length !== 1) throw usage('did you mean "signet config check [--offline]"?');
        return await configCheck(configPath, Boolean(explicit), Boolean(parsed.values.offline), out, err);
      case 'keys':
        if (rest[0] === 'csr') {
          if (rest.length !== 2) throw usage('keys csr takes one key NAME: signet keys csr NAME --subject DN');
          if (!parsed.values.subject) throw usage('keys csr needs --subject "CN=...,O=...,ST=...,C=..."');
          return await keysCsr(
            configPath,
            Boolean(explicit),
            rest[1]!,
            { subject: parsed.values.subject, sans: parsed.values.san ?? [], out: parsed.values.out },
            out,
            err,
          );
        }
        if (rest[0] !== 'export' || rest.length > 2) throw usage('did you mean "signet keys export [NAME]" or "signet keys csr NAME --subject DN"?');
        return await keysExport(configPath, Boolean(explicit), rest[1], out);
      case 'status':
        if (rest.length !== 1) throw usage('status takes one IMAGE_REF');
        return await statusOf(rest[0]!, configPath, Boolean(explicit), Boolean(parsed.values.json), out);
      case 'policy': {
        if (rest[0] !== 'export' || rest.length !== 1) throw usage('did you mean "signet policy export --for VERIFIER"?');
        // commands' modules are loaded when run, so a long-running worker does not carry them
        const { policyExport, policyExportUsageProblem } = await import('./policy/cli.js');
        const problem = policyExportUsageProblem(parsed.values);
        if (problem) throw usage(problem);
        return await policyExport(await load(configPath, Boolean(explicit), true), parsed.values, out, err);
      }
      case 'backfill': {
        if (rest.length !== 0) throw usage('backfill takes no IMAGE_REF (use --registry HOST and --repo GLOB)');
        const { backfillCommand, backfillUsageProblem } = await import('./backfill/cli.js');
        const problem = backfillUsageProblem(parsed.values);
        if (problem) throw usage(problem);
        return await backfillCommand(await load(configPath, Boolean(explicit), true), parsed.values, out, err);
      }
      case 'verify': {
        if (rest.length !== 1) throw usage('verify takes one IMAGE_REF');
        const { verifyCommand } = await import('./verify/cli.js');
        return await verifyCommand(await load(configPath, Boolean(explicit), true), rest[0]!, { json: Boolean(parsed.values.json) }, out);
      }
      case 'jobs':
        return await jobs(rest, configPath, Boolean(explicit), { all: Boolean(parsed.values.all), json: Boolean(parsed.values.json) }, out);
      default:
        throw usage(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`signet: ${e.message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof ConfigError) {
      err(`signet: config ${e.file} has ${e.problems.length} problem(s):\n${formatProblems(e.file, e.problems)}`);
      return 1;
    }
    err(`signet: ${redactText(isSignetError(e) ? describeError(e) : ((e as Error).message ?? String(e)))}`);
    return 1;
  }
}

class UsageError extends Error {}
const usage = (m: string) => new UsageError(m);

async function load(configPath: string, explicit: boolean, allowDefault: boolean, notes?: Out): Promise<LoadedConfig> {
  if (existsSync(configPath) || explicit) return loadConfigFile(configPath);
  if (!allowDefault) throw usage(`no config file at ${configPath} (pass --config FILE or set SIGNET_CONFIG)`);
  const setup = await prepareDefaultConfig(process.cwd());
  for (const n of setup.notes) notes?.(`signet: ${n}`);
  return setup.loaded;
}

async function runService(command: 'start' | 'serve' | 'worker', configPath: string, explicit: boolean, err: Out, httpPort?: string): Promise<number> {
  if (httpPort !== undefined && (command !== 'worker' || !/^[0-9]{1,5}$/.test(httpPort) || Number(httpPort) > 65535)) {
    throw usage(command !== 'worker' ? '--http-port is for "signet worker" (start and serve listen on server.port)' : '--http-port takes a port number');
  }
  const loaded = await load(configPath, explicit, true, err);
  if (httpPort !== undefined) loaded.config.worker.httpPort = Number(httpPort);
  const logger = createLogger();
  logger.info({ config: loaded.source }, `signet ${command}`);
  const rt = await createRuntime(loaded, { logger });
  const service = await startService(rt, { receiver: command !== 'worker', worker: command !== 'serve' }, { configFile: loaded.source });
  // SIGHUP: re-read the config; a bad file keeps the old one (src/config/reload.ts logs why)
  const onHup = () => {
    logger.info({ signal: 'SIGHUP', config: loaded.source }, 'reloading the config');
    service.reload().catch((e) => logger.error({ err: describeError(e) }, 'config reload failed'));
  };
  process.on('SIGHUP', onHup);
  const code = await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      // One shutdown, whatever arrives (Ctrl-C to the process group and a SIGTERM, say).
      if (stopping) {
        logger.info({ signal }, 'already stopping');
        return;
      }
      stopping = true;
      process.off('SIGHUP', onHup);
      logger.info({ signal }, 'stopping: finishing in-flight jobs');
      // The worker gives in-flight jobs worker.shutdownTimeoutMs; whatever else hangs (a Redis
      // that is gone, an upstream that never answers) gets 10 s more, then the process exits 1.
      const graceMs = rt.config.worker.shutdownTimeoutMs + 10_000;
      const deadline = setTimeout(() => {
        logger.error({ graceMs }, 'shutdown did not finish in time; exiting');
        resolve(1);
      }, graceMs);
      deadline.unref();
      service.stop().then(
        () => {
          clearTimeout(deadline);
          resolve(0);
        },
        (e) => {
          clearTimeout(deadline);
          logger.error({ err: describeError(e) }, 'error while stopping');
          resolve(0);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  logger.flush?.();
  return code;
}

async function signOne(ref: string, configPath: string, out: Out): Promise<number> {
  const target = parseReference(ref);
  const loaded = await load(configPath, true, false);
  const rt = await createRuntime(loaded, { logger: createLogger({ level: process.env.SIGNET_LOG_LEVEL ?? 'warn', destination: process.stderr }) });
  try {
    const report = await rt.pipeline.sign(target);
    out(JSON.stringify(report, null, 2));
    return 0;
  } finally {
    await rt.close();
  }
}

async function configCheck(configPath: string, explicit: boolean, offline: boolean, out: Out, err: Out): Promise<number> {
  if (!existsSync(configPath) && !explicit) {
    err(`signet: no config file at ${configPath}; "signet start" would use the embedded default`);
    return 1;
  }
  // one run reports everything: schema, cross references, keys, timestamp chains, registry credentials
  const { checkConfigFile } = await import('./config/check.js');
  const report = await checkConfigFile(configPath, { offline });
  for (const w of report.warnings) err(`warning: ${configPath}${w.line ? `:${w.line}` : ''}  ${formatPath(w.path)}: ${w.message}`);
  if (report.problems.length) {
    err(`signet: config ${configPath} has ${report.problems.length} problem(s):\n${formatProblems(configPath, report.problems)}`);
    return 1;
  }
  const c = report.analysis.config!;
  out(
    `${configPath}: ok (${c.registries.length} registr${c.registries.length === 1 ? 'y' : 'ies'}, ${c.integrations.length} integration(s), ${c.keys.length} key(s), ${c.rules.length} rule(s))`,
  );
  out(offline ? 'registry credentials: not checked (--offline)' : `registry credentials: taken by ${report.registriesChecked.join(', ')}`);
  return 0;
}

async function keysCsr(
  configPath: string,
  explicit: boolean,
  name: string,
  opts: { subject: string; sans: string[]; out?: string | undefined },
  out: Out,
  err: Out,
): Promise<number> {
  const loaded = await load(configPath, explicit, true);
  const wanted = loaded.config.keys.filter((k) => k.name === name);
  if (wanted.length === 0) throw noSuchKey(name, loaded);
  const { createCsr } = await import('./kms/csr.js');
  const keys = await createSigningKeys(wanted, { baseDir: loaded.baseDir });
  try {
    const pem = await createCsr(keys.get(name)!, { subject: opts.subject, sans: opts.sans });
    if (opts.out) {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(opts.out, pem);
      err(`signet: wrote the certificate request for key "${name}" to ${opts.out}`);
    } else out(pem.trimEnd());
    return 0;
  } finally {
    await Promise.allSettled([...keys.values()].map((k) => k.close()));
  }
}

/** A key name the config does not have: the names it does have (not a usage error: the command was right). */
function noSuchKey(name: string, loaded: LoadedConfig): SignetError {
  const names = loaded.config.keys.map((k) => k.name);
  return new SignetError('KEY_NOT_FOUND', `no key named "${name}" in ${loaded.source}; configured keys: ${names.join(', ')}`);
}

async function keysExport(configPath: string, explicit: boolean, name: string | undefined, out: Out): Promise<number> {
  const loaded = await load(configPath, explicit, true);
  const wanted = name ? loaded.config.keys.filter((k) => k.name === name) : loaded.config.keys;
  if (name && wanted.length === 0) throw noSuchKey(name, loaded);
  const keys = await createSigningKeys(wanted, { baseDir: loaded.baseDir });
  for (const k of wanted) {
    if (!name) out(`# key ${k.name}`);
    out(keys.get(k.name)!.publicKeyPem.trimEnd());
  }
  await Promise.allSettled([...keys.values()].map((k) => k.close()));
  return 0;
}

async function statusOf(ref: string, configPath: string, explicit: boolean, json: boolean, out: Out): Promise<number> {
  const loaded = await load(configPath, explicit, true);
  const { config } = loaded;
  await checkRedis(config.redis, 5000, loaded.baseDir);
  const redis = createRedis(config.redis, 'lock', loaded.baseDir);
  const registries = new RegistryDirectory(config.registries, { baseDir: loaded.baseDir });
  try {
    // Redis first: a tag is resolved in the registry only when signet's records lead to no digest
    const st = await imageStatus(ref, {
      registries,
      rules: compileRules(config.rules),
      status: new StatusStore(redis, config.redis.prefix, Math.round(config.status.retentionDays * 86400)),
    }).catch((e: unknown) => {
      throw asRedisUnavailable(e, 'cannot read signing status');
    });
    if (json) {
      out(JSON.stringify(st, null, 2));
      return 0;
    }
    out(`${st.image.repository}${st.image.tag ? `:${st.image.tag}` : ''}${st.image.digest ? `@${st.image.digest}` : ''}`);
    out(st.rule && 'none' in st.rule ? `  rule: none (${st.rule.none})` : `  rule ${st.rule?.index}: keys ${st.rule?.keys.join(', ')}`);
    if (st.statuses.length === 0) out('  no signing recorded');
    for (const e of st.statuses) {
      const who = e.key
        ? `key ${e.key}${e.digest && e.digest !== st.image.digest ? ` (${e.digest.slice(0, 19)})` : ''}`
        : `push${e.tag && !st.image.tag ? ` :${e.tag}` : ''}`;
      const formats = e.formats?.length ? ` formats: ${e.formats.join(', ')}` : '';
      out(`  ${who}: ${e.state}${e.code ? ` ${e.code}` : ''}${e.reason ? ` (${e.reason})` : ''}${formats}  ${e.updatedAt}`);
    }
    if (st.resolution) out(`  registry: ${st.resolution.code}: ${redactText(st.resolution.error)} (the tag could not be resolved; shown: what Redis holds)`);
    return 0;
  } finally {
    await registries.close();
    redis.disconnect();
  }
}

async function jobs(rest: string[], configPath: string, explicit: boolean, flags: { all: boolean; json: boolean }, out: Out): Promise<number> {
  const [sub, id, ...extra] = rest;
  if (extra.length || (sub !== 'failed' && sub !== 'retry')) throw usage('jobs takes "failed" or "retry ID|--all"');
  if (sub === 'retry' && Boolean(id) === flags.all) throw usage('jobs retry takes one job ID or --all');
  const loaded = await load(configPath, explicit, true);
  await checkRedis(loaded.config.redis, 5000, loaded.baseDir);
  const connection = createRedis(loaded.config.redis, 'worker', loaded.baseDir);
  const admin = new QueueAdmin(connection, loaded.config.redis.prefix);
  try {
    if (sub === 'failed') {
      const failed = await admin.failed();
      if (flags.json) out(JSON.stringify(failed, null, 2));
      else if (failed.length === 0) out('no failed jobs');
      else for (const f of failed) out(`${f.id}  ${f.failedAt ?? ''}  attempts=${f.attempts}  ${f.ref}\n    ${f.reason}`);
      return 0;
    }
    if (flags.all) {
      out(`retrying ${await admin.retryAll()} failed job(s)`);
      return 0;
    }
    if (!(await admin.retry(id!))) {
      out(`no failed job with id ${id}`);
      return 1;
    }
    out(`job ${id} queued again`);
    return 0;
  } catch (e) {
    throw asRedisUnavailable(e, `jobs ${sub}`);
  } finally {
    await admin.close();
    connection.disconnect();
  }
}

const isMain = Boolean(process.argv[1]) && import.meta.url === new URL(`file://${realpathSync(path.resolve(process.argv[1]!))}`).href;
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`signet: ${describeError(e)}\n`);
      process.exit(1);
    },
  );
}
