/**
 * signet benchmark on real parts (docker-registry 2.8, Redis, the compiled signet CLI in its own
 * processes, the AWS KMS stand-in speaking the real wire protocol, cosign), all on loopback.
 * Every figure below comes from the same run, on the same machine, side by side:
 *
 *   floor       the registry's own floor: a raw loop writing one legacy signature per image with
 *               no reads (POST+PUT payload, POST+PUT a per-signature config, PUT the .sig: 5
 *               writes) at the best concurrency; plus signet's request sequences replayed raw
 *               (legacy-only, with verifyWrites, and the default formats: what the registry
 *               allows signet's request pattern)
 *   throughput  N images pre-pushed (no registry notifications), then the bench POSTs one
 *               distribution event per image to `signet serve`; `signet worker` (another process)
 *               signs: webhook -> queue -> worker -> signature in the registry (`formats: [legacy]`)
 *   default     the same with the default formats (`[legacy, bundle]`: the .sig and a sigstore
 *               bundle referrer; distribution 2.8 has no referrers API, so the fallback index too)
 *   latency     live pushes (blobs mounted, manifest PUT) at half the peak rate, each webhook
 *               POSTed as soon as its push returns: push-to-signed p50/p99
 *   soak        steady pushes for --soak seconds (default 600): receiver and worker RSS at
 *               start/middle/end
 *   ack         `signet serve` alone, load from a child process (bench/ack-load.mjs): ack latency
 *               at 1,000 requests/s from an open-loop generator on raw sockets (and the same
 *               generator against a trivial node:http server: the harness floor), and the peak
 *               (events/s accepted) from wrk (else autocannon), with 1 and with 10 events per
 *               request, and with autocannon at 1 event per request for comparison
 *   kms         the throughput phase with an `awskms` key on the AWS KMS stand-in answering each
 *               Sign after 100 ms; Sign calls counted in the stand-in
 *   cost        `signet start`, one single-arch image at a time: key-backend calls and registry
 *               requests per new image for each format set, a repository's first image and the
 *               next ones, on distribution 2.8 and on an in-memory registry with the referrers
 *               API and single-POST uploads (test/helpers/fake-oci.ts), from /metrics and the probe
 *   e2e         what users see: pushes to a registry whose notifications go to `signet start`
 *   cosign      the baselines: a sequential `cosign sign --key` loop (cosign 2.5, the legacy
 *               .sig), and cosign 3.1 writing the default formats (a .sig and a bundle per image)
 *
 *   npm run bench                       # the full run (10-minute soak; 17-20 minutes)
 *   npm run bench -- --quick            # smaller sets, 60 s soak (about 5 minutes)
 *   npm run bench -- --phases floor,throughput --cpu-prof
 *
 * Options (flag, or env BENCH_<NAME> with dashes as underscores, e.g. BENCH_SOAK=120):
 *   --quick                  smaller defaults everywhere (explicit options still win)
 *   --phases LIST            comma list of the phases above (default: all)
 *   --images N               throughput images (600; quick 150); the default phase signs as many
 *   --images-per-repo K      images per repository in every pre-pushed set and live push (10)
 *   --post-concurrency P     webhook POSTs in flight in the throughput and kms phases (16)
 *   --warmup N               images signed by each fresh signet deployment before it is measured (50)
 *   --kms-images N           kms phase images (600, as many as throughput; quick 100)
 *   --kms-delay MS           stand-in delay before each Sign answer (100)
 *   --rate R                 latency and soak push rate, images/s (default: half the measured peak)
 *   --latency-seconds S      length of the latency phase (30; quick 10)
 *   --latency-push KIND      cheap (default): blobs mounted + manifest PUT, as a push whose layers
 *                            the registry has; full: test-kit pushImage (2 blob uploads + manifest,
 *                            new connection per request: the registry spends as much CPU on it as on
 *                            the signature, so on 2 cores half the signing peak saturates the box)
 *   --soak S                 soak length in seconds (600; quick 60)
 *   --soak-rate R            soak push rate (default: --rate)
 *   --ack-seconds S          length of each ack run (10; quick 5)
 *   --ack-rate R             the fixed rate for the ack latency (1000)
 *   --ack-connections C      wrk/autocannon connections at peak (64)
 *   --floor-writes N         signature writes per floor concurrency level (200; quick 100)
 *   --floor-levels LIST      floor concurrency levels (4,8,16,32,64)
 *   --e2e-images N           e2e phase images (200; quick 50)
 *   --concurrency C          e2e concurrent pushes (16)
 *   --cosign-images M        cosign loop images (40; quick 10)
 *   --worker-concurrency W   signet worker.concurrency (64)
 *   --registry-concurrency R signet registries[].maxConcurrency (default: signet's default)
 *   --notify-filter          e2e registry sends no blob or pull events
 *   --pin                    pin the registries to CPU 0 and everything else the bench starts (signet,
 *                            the stand-in, the load generators, the bench) to CPU 1: shows what signet
 *                            gets when it does not take CPU from the registry (Redis is shared, not pinned)
 *   --cpu-prof               profile signet serve + worker (throughput), serve (ack), worker (kms),
 *                            each summarised over its phase only; .cpuprofile files kept next to --out
 *   --no-build               use dist/ as it is (default: npx tsc -p tsconfig.build.json first)
 *   --grace S                seconds without a new signature before the rest count as lost (60)
 *   --timeout S              hard limit for the whole run (default 2400 + soak)
 *   --out FILE               JSON results (default bench/results/latest.json, quick: latest-quick.json)
 *   BENCH_NODE_FLAGS="..."   (env only) node flags for the signet processes instead of the shipped ones
 *                            (package.json's start script: --max-semi-space-size=4), for experiments
 *
 * Exit code: 0 when every image got exactly one signature, the cosign samples verified and the
 * stand-in saw one Sign per signature; 1 otherwise; 2 on a setup error or timeout. Missed
 * performance targets are reported in the table, not in the exit code.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { COSIGN3_BIN, cosignGenerateKeyPair } from '../test/helpers/cosign.js';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';
import { deletePrefix, formatCpu, loadAverage, log, machineInfo, pool, REDIS_URL, redisPid, ROOT, round, SetupError, sleep } from './lib/common.js';
import { Oci } from './lib/oci.js';
import { summarizeProfile, type ProfileSummary } from './lib/profile.js';
import type { ImageRef } from './lib/webhook.js';
import { KEY_PASSWORD, type Phase, type Options, parseOptions, repoFor } from './lib/options.js';
import { type Ctx, pin, build, startStandin, type Deployment, deploy, verifySample, keepProfile } from './lib/deploy.js';
import { floorRun, phaseFloor } from './phases/floor.js';
import { warmUp, signingRun } from './phases/signing.js';
import { phaseLatency } from './phases/latency.js';
import { phaseSoak } from './phases/soak.js';
import { phaseAck } from './phases/ack.js';
import { phaseCost } from './phases/cost.js';
import { phaseE2e } from './phases/e2e.js';
import { phaseCosign, phaseCosign3 } from './phases/cosign.js';
import { printTable, markdownTable, waitsText, correctness, buildRows } from './lib/report.js';
// A closed stdout (`| head`, the parent npm gone on Ctrl-C) must not kill the clean-up.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 2;
  }
  const deadline = Date.now() + opts.timeoutS * 1000;
  let aborted = false;
  const machine = machineInfo();
  const started = new Date().toISOString();
  log(`signet bench${opts.quick ? ' (quick)' : ''}: phases ${[...opts.phases].join(',')}`);
  log(
    `machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, registry ${machine.registry}, cosign ${machine.cosign}, redis ${machine.redis}, load average ${machine.loadavgAtStart}`,
  );
  const dir = mkdtempSync(path.join(tmpdir(), 'signet-bench-'));
  const ctx: Partial<Ctx> & { prefixes: string[]; deployments: Set<Deployment>; extraRegistries: Set<RunningRegistry>; problems: string[] } = {
    opts,
    dir,
    prefixes: [],
    deployments: new Set(),
    extraRegistries: new Set(),
    problems: [],
    stopped: () => aborted || Date.now() > deadline,
  };

  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      for (const d of [...ctx.deployments]) await d.stop().catch(() => undefined);
      await ctx.standin?.stop().catch(() => undefined);
      await ctx.oci?.close().catch(() => undefined);
      await ctx.r1?.stop().catch(() => undefined);
      for (const r of [...ctx.extraRegistries]) await r.stop().catch(() => undefined);
      let removed = 0;
      for (const p of ctx.prefixes) removed += await deletePrefix(p).catch(() => 0);
      log(
        `cleanup: signet processes, registries, the KMS stand-in and ${dir} removed; ${removed} Redis key(s) under ${ctx.prefixes.length} prefix(es) deleted`,
      );
      rmSync(dir, { recursive: true, force: true });
    })());
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals === 1) {
      aborted = true;
      log(`\n${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    } else if (signals >= 3) process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  const watchdog = setTimeout(
    () => {
      log(`\ntimeout: the run exceeded ${opts.timeoutS} s; cleaning up`);
      aborted = true;
      void cleanup().finally(() => process.exit(2));
    },
    opts.timeoutS * 1000 + 30_000,
  );
  watchdog.unref();

  const result: Record<string, any> = { date: started, machine, options: { ...opts, phases: [...opts.phases], out: path.relative(ROOT, opts.out) } };
  const has = (p: Phase): boolean => opts.phases.has(p);
  try {
    if (opts.noBuild) {
      if (!existsSync(path.join(ROOT, 'dist/src/cli.js'))) throw new SetupError('--no-build: dist/src/cli.js does not exist');
      log('build: skipped (--no-build), using dist/ as it is');
    } else await build();

    ctx.key = await cosignGenerateKeyPair(dir, KEY_PASSWORD);
    ctx.r1 = await startRegistry({}); // no notifications: the bench is the notifier
    if (opts.pin) {
      await pin(ctx as Ctx, process.pid, 1);
      await pin(ctx as Ctx, ctx.r1.pid, 0);
    }
    ctx.oci = new Oci(ctx.r1.url, 128);
    ctx.redisPid = await redisPid();
    if (has('kms') || has('cost')) {
      ctx.standin = await startStandin(dir);
      await pin(ctx as Ctx, ctx.standin.pid, 1);
    }
    const c = ctx as Ctx;
    const H = c.r1.host;
    log(`registry ${c.r1.url} (no notifications), redis ${REDIS_URL}${c.standin ? `, AWS KMS stand-in ${c.standin.info.url}` : ''}, temp ${dir}`);

    // pre-push every image the measured phases sign (blobs mounted from one base repository),
    // --images-per-repo to a repository (repoFor), in index order
    const sets: Record<string, ImageRef[]> = {};
    const per = opts.imagesPerRepo;
    const want: [string, number, boolean][] = [
      ['tp', opts.images, has('throughput')],
      ['warmtp', opts.warmup, has('throughput')],
      ['dflt', opts.images, has('default')],
      ['warmdflt', opts.warmup, has('default')],
      ['warmsteady', opts.warmup, (has('latency') || has('soak')) && (opts.cpuProf || !has('throughput'))],
      ['warmkms', opts.warmup, has('kms')],
      ['kms', opts.kmsImages, has('kms')],
      ['cosign', opts.cosignImages, has('cosign')],
      ['cosign3', opts.cosignImages, has('cosign')],
      ['seq', opts.floorWrites, has('floor')],
      ['seqverify', opts.floorWrites, has('floor')],
      ['seqdefault', opts.floorWrites, has('floor')],
    ];
    const todo = want
      .filter(([, n, on]) => on && n > 0)
      .flatMap(([name, n]) => Array.from({ length: n }, (_, i) => ({ name, i, repo: repoFor(name, i, per), tag: `v${i}` })));
    const t0 = Date.now();
    await pool(
      todo,
      16,
      async (t) => {
        const p = await c.oci.pushCheap(t.repo, t.tag, `${t.repo}-${t.i}-${randomBytes(4).toString('hex')}`);
        (sets[t.name] ??= [])[t.i] = { host: H, repo: t.repo, tag: t.tag, digest: p.digest, size: p.size };
      },
      () => c.stopped(),
    );
    for (const [k, v] of Object.entries(sets)) sets[k] = v.filter(Boolean);
    log(`pre-pushed ${todo.length} images (${per} per repository) in ${Date.now() - t0} ms`);

    // ---- floor -----------------------------------------------------------------------------
    if (has('floor') && !c.stopped()) result.floor = await phaseFloor(c, sets['seq'] ?? [], sets['seqverify'] ?? [], sets['seqdefault'] ?? []);

    // ---- throughput, latency, soak: one split deployment (serve + worker) ------------------
    let tpDep: Deployment | undefined;
    // throughput, kms, latency and soak sign the legacy .sig only (formats: [legacy]); the default phase the default formats
    const splitDeploy = (name: string, cpuProf = false, formats: string[] | null = ['legacy']) =>
      deploy(c, name, {
        mode: 'split',
        registries: [c.r1],
        keys: ['cosign'],
        rules: [{ match: `${H}/bench/**`, keys: ['cosign'], ...(formats ? { formats } : {}) }],
        cpuProf,
      });
    if (has('throughput') && !c.stopped()) {
      log(
        `throughput: ${opts.images} pre-pushed images, one distribution event per image POSTed to signet serve (${opts.postConcurrency} in flight), signet worker signs (concurrency ${opts.workerConcurrency}); load ${loadAverage()}`,
      );
      tpDep = await splitDeploy('tp', opts.cpuProf);
      await warmUp(c, tpDep, sets['warmtp']);
      await sleep(500);
      const tp: Record<string, any> = await signingRun(c, tpDep, sets['tp']!, 'throughput');
      tp.verify = await verifySample(H, sets['tp']!, c.key.pubPath, 2);
      result.throughput = tp;
      log(
        `  => ${tp.imagesPerSecond} images/s (steady ${tp.steadyImagesPerSecond}), ${tp.signed}/${tp.images} signed, RSS max receiver ${tp.rssMB.receiverMax} MB / worker ${tp.rssMB.workerMax} MB; CPU ${formatCpu(tp.cpu)}`,
      );
      log(`  worker's wait on the registry: ${waitsText(tp.registryWaits, opts.workerConcurrency)}`);
      if (opts.cpuProf) {
        await tpDep.stop();
        const profiles: Record<string, ProfileSummary & { file?: string }> = {};
        for (const p of tpDep.procs) {
          const f = p.profileFile();
          if (f) profiles[p.name] = { ...summarizeProfile(f, tp.profileWindow), file: keepProfile(c, f, p.name) };
        }
        result.cpuProfile = profiles;
        tpDep = undefined;
      }
      if (result.floor && !c.stopped()) {
        const after = await floorRun(c, result.floor.best.concurrency, opts.floorWrites, 'after');
        result.floor.after = after;
        log(`  floor again after the throughput phase: ${after.perSecond} writes/s at concurrency ${after.concurrency}`);
      }
    }
    // ---- default formats ---------------------------------------------------------------------
    if (has('default') && !c.stopped()) {
      log(`default: the throughput phase with the default formats ([legacy, bundle]), ${sets['dflt']!.length} images; load ${loadAverage()}`);
      const dep = await splitDeploy('dflt', opts.cpuProf, null); // null: signet's default formats
      try {
        await warmUp(c, dep, sets['warmdflt']);
        await sleep(500);
        const d: Record<string, any> = await signingRun(c, dep, sets['dflt']!, 'default');
        d.verify = [...(await verifySample(H, sets['dflt']!, c.key.pubPath, 2)), ...(await verifySample(H, sets['dflt']!, c.key.pubPath, 1, COSIGN3_BIN()))];
        result.default = d;
        log(
          `  => ${d.imagesPerSecond} images/s (steady ${d.steadyImagesPerSecond}), ${d.signed}/${d.images} signed; ${d.registryRequests.perSignature} registry requests per image; CPU ${formatCpu(d.cpu)}`,
        );
        if (d.registryWaits) log(`  worker's wait on the registry: ${waitsText(d.registryWaits, opts.workerConcurrency)}`);
      } finally {
        await dep.stop();
      }
      if (opts.cpuProf && result.default)
        for (const p of dep.procs) {
          const f = p.profileFile();
          if (f)
            (result.cpuProfile ??= {})[`default-${p.name}`] = {
              ...summarizeProfile(f, result.default.profileWindow),
              file: keepProfile(c, f, `default-${p.name}`),
            };
        }
    }
    // ---- kms ---------------------------------------------------------------------------------
    // right after throughput: both compare with the floor, before the latency and soak pushes
    // add thousands of repositories to the registry and slow it down
    if (has('kms') && !c.stopped()) {
      log(`kms: ${opts.kmsImages} pre-pushed images, awskms key on the stand-in answering each Sign after ${opts.kmsDelayMs} ms; load ${loadAverage()}`);
      await c.standin!.setDelay(opts.kmsDelayMs);
      const dep = await deploy(c, 'kms', {
        mode: 'split',
        registries: [c.r1],
        keys: ['kms'],
        rules: [{ match: `${H}/bench/**`, keys: ['kms'], formats: ['legacy'] }],
        cpuProf: opts.cpuProf,
      });
      try {
        await warmUp(c, dep, sets['warmkms']);
        await sleep(500);
        const startup = (await c.standin!.counts()).counts; // GetPublicKey at start-up, Sign of the warm-up
        const k: Record<string, any> = await signingRun(c, dep, sets['kms']!, 'kms');
        const after = await c.standin!.counts();
        const signCalls = (after.counts['Sign'] ?? 0) - (startup['Sign'] ?? 0);
        const written = k.signed - k.lost - k.alreadyPresent;
        k.standin = {
          delayMs: opts.kmsDelayMs,
          getPublicKeyAtStartup: startup['GetPublicKey'] ?? 0,
          signDuringWarmup: startup['Sign'] ?? 0,
          signCalls,
          signaturesWritten: written,
          signCallsPerSignature: round(signCalls / Math.max(1, written), 3),
          serverSignMs: after.signServerMs,
          otherCalls: Object.fromEntries(Object.entries(after.counts).filter(([op]) => op !== 'Sign' && op !== 'GetPublicKey')),
        };
        k.verify = await verifySample(H, sets['kms']!, c.standin!.pubPath, 2);
        result.kms = k;
        log(
          `  => ${k.imagesPerSecond} images/s (steady ${k.steadyImagesPerSecond}), ${signCalls} Sign calls for ${written} signatures; CPU ${formatCpu(k.cpu)}`,
        );
        log(`  worker's wait on the registry: ${waitsText(k.registryWaits, opts.workerConcurrency)}`);
      } finally {
        await dep.stop();
        await c.standin!.setDelay(0);
      }
      if (opts.cpuProf && result.kms) {
        const f = dep.worker!.profileFile();
        if (f) (result.cpuProfile ??= {})['kms-worker'] = { ...summarizeProfile(f, result.kms.profileWindow), file: keepProfile(c, f, dep.worker!.name) };
      }
    }

    const peak: number | undefined = result.throughput?.imagesPerSecond;
    const halfPeak = opts.rate ?? (peak ? round(peak / 2) : 15);
    if ((has('latency') || has('soak')) && !c.stopped()) {
      if (!tpDep) {
        tpDep = await splitDeploy('steady');
        await warmUp(c, tpDep, sets['warmsteady']);
      }
      if (has('latency') && !c.stopped()) {
        result.latency = await phaseLatency(c, tpDep, halfPeak);
        const l = result.latency;
        log(`  => push-to-signed p50 ${l.pushToSignedMs.p50} / p99 ${l.pushToSignedMs.p99} ms at ${l.achievedPushRate} pushes/s; ack p99 ${l.ackMs.p99} ms`);
      }
      if (has('soak') && opts.soakSeconds > 0 && !c.stopped()) {
        result.soak = await phaseSoak(c, tpDep, opts.soakRate ?? halfPeak);
        const s = result.soak.rssMB;
        log(
          `  => RSS receiver ${s.receiver.start}/${s.receiver.middle}/${s.receiver.end} MB, worker ${s.worker.start}/${s.worker.middle}/${s.worker.end} MB (start/middle/end)`,
        );
      }
    }
    await tpDep?.stop();

    // ---- ack ---------------------------------------------------------------------------------
    if (has('ack') && !c.stopped()) {
      result.ack = await phaseAck(c);
      if (result.ack.cpuProfile) (result.cpuProfile ??= {})['ack-serve (peak runs)'] = result.ack.cpuProfile;
    }

    // ---- cost ----------------------------------------------------------------------------------
    if (has('cost') && !c.stopped()) result.cost = await phaseCost(c);

    // ---- e2e -----------------------------------------------------------------------------------
    if (has('e2e') && !c.stopped()) {
      result.e2e = await phaseE2e(c);
      const e = result.e2e;
      log(
        `  => ${e.imagesPerSecond} images/s, push-to-signed p50 ${e.pushToSignedMs.p50} / p99 ${e.pushToSignedMs.p99} ms (push->queued p50 ${e.pushToQueuedMs.p50} ms)`,
      );
    }

    // ---- cosign --------------------------------------------------------------------------------
    if (has('cosign') && opts.cosignImages > 0 && !c.stopped()) {
      result.cosign = await phaseCosign(c, sets['cosign']!);
      log(`  => ${result.cosign.imagesPerSecond} images/s (p50 ${result.cosign.perImageMs.p50} ms per image)`);
      if (!c.stopped()) {
        result.cosign3 = await phaseCosign3(c, sets['cosign3']!, dir);
        log(`  => cosign 3.1, .sig + bundle: ${result.cosign3.imagesPerSecond} images/s (p50 ${result.cosign3.perImageMs.p50} ms per image)`);
      }
    }
    if (aborted) return 130;
    result.loadavgAtEnd = loadAverage();

    // ---- report --------------------------------------------------------------------------------
    const rows = buildRows(result, opts);
    result.table = rows;
    printTable(rows);
    if (result.cpuProfile) {
      for (const [name, p] of Object.entries(result.cpuProfile as Record<string, ProfileSummary & { file?: string }>)) {
        log(
          `cpu profile of ${name} (${round(p.totalMs / 1000, 1)} s${p.window ? ` (${p.window})` : ''}, idle ${p.idlePct}%, busy ${round(p.busyMs / 1000, 2)} s; shares of the busy time, natives charged to their JS caller):`,
        );
        for (const l of p.byPackage) log(`  ${l}`);
        log('  inclusive, by the deepest signet file on the stack (else the outermost package):');
        for (const l of p.byComponent) log(`    ${l}`);
        log('  top functions by self time:');
        for (const l of p.topFunctions.slice(0, 12)) log(`    ${l}`);
        if (p.file) log(`  profile: ${p.file}`);
      }
    }
    const failures = correctness(result);
    result.failures = [...failures, ...c.problems];
    result.markdown = markdownTable(rows);
    mkdirSync(path.dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
    log(`results: ${path.relative(ROOT, opts.out)}`);
    if (result.failures.length) {
      log(`FAILED:\n  ${result.failures.join('\n  ')}`);
      return 1;
    }
    return 0;
  } catch (e) {
    if (aborted) return 130;
    log(`bench error: ${(e as Error).stack ?? String(e)}`);
    for (const d of ctx.deployments)
      for (const p of d.procs) log(`--- signet ${p.name} stderr ---\n${p.stderr.text()}\n--- stdout (tail) ---\n${p.stdoutTail.text()}`);
    if (ctx.r1) log(`--- registry log ---\n${ctx.r1.logs()}`);
    return 2;
  } finally {
    await cleanup();
    clearTimeout(watchdog);
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  },
);
