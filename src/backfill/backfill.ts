/**
 * `signet backfill`: walk each configured registry's catalog and tags, and queue a sign job for
 * every image that lacks a signature its rule requires, in any format the rule writes. The
 * decision is the pipeline's own signing plan (src/signing/plan.ts), and "present" is what the
 * formats' readers find (src/formats/), so a queued job always has work to do and a second
 * backfill after the jobs ran finds nothing. An index counts as missing when it or any child
 * lacks a signature.
 *
 * Jobs are ordinary push events (integration `backfill`, tag and resolved digest), so the worker
 * re-reads the registry and refuses a tag that moved since (TAG_MOVED). Registry requests are
 * bounded by `concurrency`; an error with one repository or tag is reported and counted, and the
 * walk goes on. What is not found: manifests without a tag (the distribution API does not list
 * them).
 */
import picomatch from 'picomatch';
import type { RuleMatcher } from '../config/rules.js';
import { describeError, SignetError } from '../errors.js';
import { formatsFor } from '../formats/index.js';
import type { ReadContext } from '../formats/types.js';
import type { SigningKey } from '../kms/signing-key.js';
import type { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import { redactText } from '../log.js';
import type { SignJobData } from '../queue/sign-queue.js';
import { LIST_LIMITS, type ListLimits } from '../registry/client.js';
import type { KnownRegistry, RegistryDirectory } from '../registry/directory.js';
import { isAttachmentTag, isValidRepository } from '../registry/reference.js';
import { decideRule, planSigning, type FormatName, type SigningPlan } from '../signing/plan.js';
import { Semaphore } from '../util/semaphore.js';
import { imageShape, type ImageShape, type SignedManifest } from '../verify/image.js';

type SignableShape = Extract<ImageShape, { kind: 'signable' }>;

export interface BackfillOptions {
  /** Only this registry (host or alias); default every configured one. */
  registry?: string | undefined;
  /** Glob over the repository name (or host/repository); a plain name skips the catalog. */
  repo?: string | undefined;
  /** Report only, enqueue nothing. */
  dryRun?: boolean | undefined;
  /** Tags (and repository listings) worked on at once. Default 8. */
  concurrency?: number | undefined;
  /** Page size for catalog and tag lists (`?n=`). Default 1000. */
  pageSize?: number | undefined;
  /**
   * Bounds on each catalog or tag listing (default LIST_LIMITS: 1,000 pages, 100,000 names). A
   * listing that hits one is truncated: what was read is walked, and the truncation is reported
   * as an error (exit 1), so a registry serving an endless `Link: next` chain cannot stall backfill.
   */
  listLimits?: { maxPages: number; maxNames: number } | undefined;
  /** A progress line every this many tags ... */
  progressEvery?: number | undefined;
  /** ... or when this long has passed since the last one. Default 1000 ms. */
  progressIntervalMs?: number | undefined;
}

export interface BackfillDeps {
  registries: RegistryDirectory;
  rules: RuleMatcher;
  keys: ReadonlyMap<string, SigningKey>;
  /** The rules' timestamp authorities (timestamps are verified against them). */
  timestamps?: TimestampAuthorities | undefined;
  /** Queues one sign job (SignQueue.enqueue); needed unless dryRun. Returns the job id. */
  enqueue?: (data: SignJobData) => Promise<string>;
  /** Progress lines (stderr). */
  progress?: (line: string) => void;
  /** Each image found missing something, as soon as it is known (and queued). */
  onMissing?: (m: MissingImage) => void;
  /** Each error, as soon as it happens. */
  onError?: (e: BackfillError) => void;
}

export interface MissingImage {
  host: string;
  repository: string;
  /** The tag the job is for; `tags` lists every tag sharing this (digest, identity). */
  tag: string;
  tags: string[];
  digest: string;
  rule: number;
  identity: string;
  /** Per manifest (the image or index, then children) the required keys without a signature, and in which formats. */
  missing: (SignedManifest & { keys: string[]; signatures: { key: string; format: FormatName }[] })[];
  /** Set when queued (not in a dry run). */
  jobId?: string;
}

export interface BackfillError {
  host: string;
  repository?: string;
  tag?: string;
  error: string;
}

export interface BackfillReport {
  dryRun: boolean;
  registries: string[];
  /** Repositories listed (after --repo), and how many of them no rule matches. */
  repositories: number;
  repositoriesWithoutRule: number;
  /** Tags found in repositories a rule matches (signature tags left out), and how many were looked at. */
  tags: number;
  checked: number;
  /** Tags whose image has every required signature. */
  complete: number;
  /** Tags the rule does not ask to sign (tag filters, non-image manifests), by reason. */
  notRequired: Record<string, number>;
  toSign: MissingImage[];
  errors: BackfillError[];
  durationMs: number;
}

export async function backfill(opts: BackfillOptions, deps: BackfillDeps): Promise<BackfillReport> {
  const started = Date.now();
  const dryRun = Boolean(opts.dryRun);
  if (!dryRun && !deps.enqueue) throw new SignetError('INTERNAL', 'backfill needs a queue unless --dry-run');
  const sem = new Semaphore(Math.max(1, opts.concurrency ?? 8));
  const pageSize = opts.pageSize ?? 1000;
  const limitsFor = (at: Omit<BackfillError, 'error'>): ListLimits => ({
    ...(opts.listLimits ?? LIST_LIMITS),
    onTruncated: (why) => fail(at, new SignetError('REGISTRY_PROTOCOL', why)),
  });

  let targets: KnownRegistry[] = deps.registries.all;
  if (opts.registry) {
    const r = deps.registries.resolve(opts.registry);
    if (!r) throw new SignetError('REGISTRY_NOT_CONFIGURED', `registry ${opts.registry} is not in registries`);
    targets = [r];
  }
  // `--repo host/name`: that registry only (a configured host or alias as the first segment)
  let repo = opts.repo;
  const slash = repo?.indexOf('/') ?? -1;
  const named = repo && slash > 0 ? deps.registries.resolve(repo.slice(0, slash)) : undefined;
  if (repo && named) {
    if (opts.registry && !targets.includes(named)) {
      throw new SignetError('REGISTRY_NOT_CONFIGURED', `--repo ${repo} names registry ${repo.slice(0, slash)}, not --registry ${opts.registry}`);
    }
    targets = [named];
    repo = repo.slice(slash + 1);
  }
  const repoGlob = repo ? picomatch(repo, { dot: true }) : undefined;
  const literalRepo = repo && !picomatch.scan(repo).isGlob && isValidRepository(repo) ? repo : undefined;

  const report: BackfillReport = {
    dryRun,
    registries: targets.map((t) => t.config.host),
    repositories: 0,
    repositoriesWithoutRule: 0,
    tags: 0,
    checked: 0,
    complete: 0,
    notRequired: {},
    toSign: [],
    errors: [],
    durationMs: 0,
  };

  const every = Math.max(1, opts.progressEvery ?? 100);
  const interval = opts.progressIntervalMs ?? 1000;
  let lastChecked = 0;
  let lastAt = Date.now();
  const progressLine = () =>
    `backfill: ${report.checked}/${report.tags} tags, ${report.toSign.length} to sign${dryRun ? '' : ' (queued)'}, ${report.errors.length} error${report.errors.length === 1 ? '' : 's'}`;
  const tick = () => {
    report.checked++;
    if (report.checked - lastChecked >= every || Date.now() - lastAt >= interval) {
      lastChecked = report.checked;
      lastAt = Date.now();
      deps.progress?.(progressLine());
    }
  };
  const fail = (e: Omit<BackfillError, 'error'>, err: unknown) => {
    const be: BackfillError = { ...e, error: redactText(describeError(err)) };
    report.errors.push(be);
    deps.onError?.(be);
  };
  const skip = (reason: string) => {
    report.notRequired[reason] = (report.notRequired[reason] ?? 0) + 1;
  };

  const walkRegistry = async (known: KnownRegistry) => {
    const host = known.config.host;
    let repos: string[];
    let listed: string[] | undefined;
    try {
      if (literalRepo) {
        // one repository by name: it counts in a registry only where it exists (has tags)
        listed = await sem.run(() => known.client.listTags(literalRepo, pageSize, limitsFor({ host, repository: literalRepo })));
        repos = listed.length ? [literalRepo] : [];
      } else repos = await sem.run(() => known.client.listRepositories(pageSize, limitsFor({ host })));
    } catch (err) {
      fail(literalRepo ? { host, repository: literalRepo } : { host }, err);
      return;
    }
    repos = repos.filter((r) => !repoGlob || repoGlob(r) || repoGlob(`${host}/${r}`));
    report.repositories += repos.length;
    const withRule = repos.filter((r) => deps.rules.find(host, r));
    report.repositoriesWithoutRule += repos.length - withRule.length;
    await Promise.all(withRule.map((repository) => walkRepository(known, repository, listed)));
  };

  const walkRepository = async (known: KnownRegistry, repository: string, listed?: string[]) => {
    const host = known.config.host;
    const client = known.client;
    let tags: string[];
    try {
      tags = listed ?? (await sem.run(() => client.listTags(repository, pageSize, limitsFor({ host, repository }))));
    } catch (err) {
      fail({ host, repository }, err);
      return;
    }
    tags = tags.filter((t) => !isAttachmentTag(t)).sort();
    report.tags += tags.length;
    const rule = deps.rules.find(host, repository)!.rule;

    // per repository: one read context (each payload blob read once)
    const ctx: ReadContext = { client, repository, keys: [...deps.keys.values()], timestamps: deps.timestamps };

    // 1. what each tag serves and what its rule asks for
    const groups = new Map<string, { shape: SignableShape; req: SigningPlan; tags: string[] }>();
    await Promise.all(
      tags.map((tag) =>
        sem
          .run(async () => {
            const notNow = deps.rules.skipReason(rule, tag);
            if (notNow) return skip(notNow);
            const m = await client.getManifest(repository, tag);
            if (!m) return skip('tag removed while backfilling');
            const shape = imageShape(m);
            if (shape.kind === 'skip') return skip(shape.reason);
            // no pusher is known to backfill: a rule with pusher conditions is not met (reported, not queued)
            const decision = decideRule(deps.rules, host, repository, tag, { push: {} });
            if ('skip' in decision) return skip(decision.skip);
            const req = planSigning(decision, { host, repository, tag, digest: m.digest }, deps.keys);
            // several tags of one digest under `identity: repository` need one signature per key
            const id = JSON.stringify([m.digest, req.identity, req.annotations ?? null]);
            const g = groups.get(id);
            if (g) g.tags.push(tag);
            else groups.set(id, { shape, req, tags: [tag] });
            return 'grouped' as const;
          })
          .then(
            (grouped) => {
              if (grouped !== 'grouped') tick();
            },
            (err) => {
              fail({ host, repository, tag }, err);
              tick();
            },
          ),
      ),
    );

    // 2. per image: which required signatures are missing; queue a job for those that lack any
    await Promise.all(
      [...groups.values()].map(({ shape, req, tags: group }) => {
        group.sort();
        const tag = group[0]!;
        return sem
          .run(async () => {
            const missing = await missingSignatures(ctx, req, shape.manifests);
            if (missing.length === 0) {
              report.complete += group.length;
              for (let i = 0; i < group.length; i++) tick();
              return;
            }
            const found: MissingImage = { host, repository, tag, tags: group, digest: shape.digest, rule: req.ruleIndex, identity: req.identity!, missing };
            if (!dryRun) {
              found.jobId = await deps.enqueue!({
                event: { integration: 'backfill', host, repository, tag, digest: shape.digest, receivedAt: new Date().toISOString() },
                registry: host,
                requestId: `backfill-${started.toString(36)}`,
              });
            }
            // counted with its tags, so that progress never shows more to sign than tags checked
            report.toSign.push(found);
            for (let i = 0; i < group.length; i++) tick();
            deps.onMissing?.(found);
          })
          .catch((err) => {
            fail({ host, repository, tag }, err);
            for (let i = 0; i < group.length; i++) tick();
          });
      }),
    );
  };

  await Promise.all(targets.map(walkRegistry));
  report.durationMs = Date.now() - started;
  report.toSign.sort((a, b) => `${a.host}/${a.repository}:${a.tag}`.localeCompare(`${b.host}/${b.repository}:${b.tag}`));
  if (report.checked !== lastChecked) deps.progress?.(progressLine());
  return report;
}

/** Per manifest, the plan's (key, format) pairs without a signature meeting the plan. */
async function missingSignatures(ctx: ReadContext, plan: SigningPlan, manifests: readonly SignedManifest[]): Promise<MissingImage['missing']> {
  const formats = formatsFor(plan.formats);
  const out = await Promise.all(
    manifests.map(async (sm) => {
      const subject = { digest: sm.digest, mediaType: '', size: 0 };
      const readings = await Promise.all(formats.map((f) => f.read(ctx, plan, subject)));
      const signatures = readings.flatMap((r) => r.missing.map((k) => ({ key: k.key, format: r.format })));
      return { ...sm, keys: [...new Set(signatures.map((x) => x.key))], signatures };
    }),
  );
  return out.filter((x) => x.signatures.length > 0);
}

/** One line per image to sign, for a terminal. */
export function formatMissing(m: MissingImage, dryRun: boolean): string {
  const what = m.missing
    .map((x) => `${x.role}${x.platform ? ` ${x.platform}` : ''} ${x.digest.slice(0, 19)}: ${x.signatures.map((k) => `${k.key} (${k.format})`).join(', ')}`)
    .join('; ');
  const also = m.tags.length > 1 ? ` (also ${m.tags.slice(1).join(', ')})` : '';
  return `${dryRun ? 'would sign' : 'queued'} ${m.host}/${m.repository}:${m.tag}@${m.digest}${also}  missing ${what}${m.jobId ? `  job ${m.jobId}` : ''}`;
}

/** The final summary line. */
export function formatSummary(r: BackfillReport): string {
  const notRequired = Object.values(r.notRequired).reduce((a, b) => a + b, 0);
  return (
    `backfill: ${r.dryRun ? 'dry run ' : ''}done in ${(r.durationMs / 1000).toFixed(1)} s: ` +
    `${r.repositories} repositor${r.repositories === 1 ? 'y' : 'ies'} (${r.repositoriesWithoutRule} without a rule), ` +
    `${r.checked} tag${r.checked === 1 ? '' : 's'}: ${r.complete} signed, ${r.toSign.length} to sign${r.dryRun ? ' (nothing queued)' : ' (queued)'}, ` +
    `${notRequired} not required, ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}`
  );
}
