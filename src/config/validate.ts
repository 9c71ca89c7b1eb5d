/** Checks across sections that zod's per-field schema cannot express. */
import picomatch from 'picomatch';
import { kindReportsPusher, kindReportsScans } from './conditions.js';
import type { Config, IntegrationConfig } from './schema.js';
import { adapterFor } from '../webhooks/adapters/index.js';

export interface ConfigProblem {
  /** Path in the YAML, as an array (rendered as keys[1].path). */
  path: (string | number)[];
  message: string;
}

type Section = 'registries' | 'integrations' | 'keys' | 'rules';

/** What crossCheck is run on: the whole config, or (after schema errors) the entries that parsed. */
export type CheckedSections = Pick<Config, Section>;

export interface CrossCheckOptions {
  /**
   * Each entry's index in the file, per section, when `config` holds only the entries that
   * parsed (an entry with a schema error is left out): paths and messages are given in file
   * indexes. Default: the identity.
   */
  index?: Partial<Record<Section, readonly number[]>>;
  /** Key names and registry hosts of entries that did not parse: not reported as missing. */
  unparsed?: { keyNames?: readonly string[]; hosts?: readonly string[] };
}

export function crossCheck(config: CheckedSections, opts: CrossCheckOptions = {}): { problems: ConfigProblem[]; warnings: ConfigProblem[] } {
  const { problems, warnings } = crossCheckSections(config, opts);
  const at = (p: ConfigProblem): ConfigProblem => {
    const [section, i] = p.path;
    const map = opts.index?.[section as Section];
    return map && typeof i === 'number' ? { ...p, path: [section!, map[i] ?? i, ...p.path.slice(2)] } : p;
  };
  return { problems: problems.map(at), warnings: warnings.map(at) };
}

function crossCheckSections(config: CheckedSections, opts: CrossCheckOptions): { problems: ConfigProblem[]; warnings: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const ruleNo = (i: number): number => opts.index?.rules?.[i] ?? i;

  duplicates(
    config.registries.map((r) => r.host),
    (i, v) => problems.push({ path: ['registries', i, 'host'], message: `registry ${v} is listed twice` }),
  );
  const allHosts = new Map<string, number>();
  config.registries.forEach((r, i) => {
    for (const [j, alias] of r.aliases.entries()) {
      if (allHosts.has(alias) || config.registries.some((o) => o.host === alias)) {
        problems.push({ path: ['registries', i, 'aliases', j], message: `alias ${alias} names another registry` });
      }
      allHosts.set(alias, i);
    }
  });
  duplicates(
    config.integrations.map((x) => x.name),
    (i, v) => problems.push({ path: ['integrations', i, 'name'], message: `integration name "${v}" is used twice` }),
  );
  duplicates(
    config.keys.map((k) => k.name),
    (i, v) => problems.push({ path: ['keys', i, 'name'], message: `key name "${v}" is used twice` }),
  );

  config.integrations.forEach((integ, i) => {
    if (!integ.secret && !integ.insecure && !adapterFor(integ.kind)?.hasCredentials?.(integ)) {
      problems.push({
        path: ['integrations', i, 'secret'],
        message: 'a secret is required (or set insecure: true to accept unauthenticated calls)',
      });
    }
    if (integ.insecure) {
      warnings.push({ path: ['integrations', i, 'insecure'], message: `integration "${integ.name}" accepts unauthenticated webhooks` });
    }
  });

  const keyNames = new Set([...config.keys.map((k) => k.name), ...(opts.unparsed?.keyNames ?? [])]);
  const hosts = new Set([...config.registries.flatMap((r) => [r.host, ...r.aliases]), ...(opts.unparsed?.hosts ?? [])]);
  config.rules.forEach((rule, i) => {
    rule.keys.forEach((k, j) => {
      if (!keyNames.has(k)) problems.push({ path: ['rules', i, 'keys', j], message: `no key named "${k}" in keys` });
    });
    duplicates(rule.keys, (j, v) => problems.push({ path: ['rules', i, 'keys', j], message: `key "${v}" listed twice` }));
    // Notation verifies X.509 chains only: every key of a rule writing it needs a certificate
    if (rule.formats?.includes('notation')) {
      rule.keys.forEach((k, j) => {
        const key = config.keys.find((x) => x.name === k);
        if (key && !key.certificate) {
          problems.push({ path: ['rules', i, 'keys', j], message: `key "${k}" has no certificate: the notation format needs keys[].certificate (and chain)` });
        }
      });
    }
    try {
      const re = picomatch.makeRe(rule.match);
      const ruleHost = rule.match.split('/')[0] ?? '';
      const glob = /[*?[{]/.test(ruleHost);
      if (!glob && !hosts.has(ruleHost)) {
        problems.push({
          path: ['rules', i, 'match'],
          message: `"${ruleHost}" is not a configured registry host (the glob is "host/repository")`,
        });
      }
      void re;
    } catch (err) {
      problems.push({ path: ['rules', i, 'match'], message: `invalid glob: ${(err as Error).message}` });
    }
  });
  pusherReach(config, problems, warnings, ruleNo);
  scanReach(config, problems, warnings, ruleNo);
  if (config.rules.length === 0 && !opts.index?.rules) {
    warnings.push({ path: ['rules'], message: 'no rules: nothing will be signed' });
  }
  return { problems, warnings };
}

/**
 * A rule with `require.pushers` that an integration whose payload names no pusher can deliver
 * pushes for: those pushes could never be signed. Integrations are not bound to registries in
 * the config, so "can deliver" is decided from what the kind's adapter can name as the host:
 * ECR only <account>.dkr.ecr.<region>.amazonaws.com[.cn]; Alibaba ACR its `registryHost`; JFrog
 * its `registryHost` (and the subdomain and port forms of it) when set; Quay, ACR, GAR and a
 * JFrog without `registryHost` whatever host the payload writes, so every registry. A rule
 * "covers" the configured registries (host or alias) its match's host part matches.
 */
function pusherReach(config: CheckedSections, problems: ConfigProblem[], warnings: ConfigProblem[], ruleNo: (i: number) => number): void {
  const silent = config.integrations.map((integ, i) => ({ integ, i })).filter(({ integ }) => !kindReportsPusher(integ.kind));
  const open = config.integrations.filter((integ) => integ.insecure && kindReportsPusher(integ.kind));
  config.rules.forEach((rule, i) => {
    if (!rule.require?.pushers) return;
    // an unauthenticated integration vouches for nobody (src/config/rules.ts pusherPolicy)
    for (const integ of open) {
      warnings.push({
        path: ['rules', i, 'require', 'pushers'],
        message:
          rule.pusherFrom === 'any'
            ? `rule ${ruleNo(i)} has require.pushers and pusherFrom: any: integration "${integ.name}" accepts unauthenticated webhooks, so anyone who reaches it can name an allowed pusher`
            : `integration "${integ.name}" accepts unauthenticated webhooks: its pushes never meet rule ${ruleNo(i)}'s require.pushers`,
      });
    }
    if (silent.length === 0) return;
    const hostGlob = rule.match.split('/')[0] ?? '';
    let covers: (h: string) => boolean;
    try {
      covers = picomatch(hostGlob, { dot: true });
    } catch {
      return; // reported as an invalid glob above
    }
    const hosts = config.registries.flatMap((r) => [r.host, ...r.aliases]).filter((h) => covers(h));
    for (const { integ } of silent) {
      const reach = hostsOf(integ);
      const hit = hosts.find((h) => reach(h));
      if (hit === undefined) continue;
      problems.push({
        path: ['rules', i, 'require', 'pushers'],
        message: `rule ${ruleNo(i)} has require.pushers but is reached through integration "${integ.name}" (kind ${integ.kind}) whose payload carries no pusher: its pushes to ${hit} could never be signed (see docs/conditions.md)`,
      });
    }
  });
}

/**
 * A rule with `require.scan` that an integration of a kind without scan events can deliver
 * pushes for (src/config/conditions.ts SCAN_REPORTERS: Harbor only) would wait for a scan that
 * never comes and end every such push as failed(SCAN_TIMEOUT): a config error, found as for
 * pushers (which registries the integration can name, which the rule covers).
 */
function scanReach(config: CheckedSections, problems: ConfigProblem[], warnings: ConfigProblem[], ruleNo: (i: number) => number): void {
  const silent = config.integrations.filter((integ) => !kindReportsScans(integ.kind));
  const open = config.integrations.filter((integ) => integ.insecure && kindReportsScans(integ.kind));
  config.rules.forEach((rule, i) => {
    if (!rule.require?.scan) return;
    // an unauthenticated sender could post a clean scan: its scan events only make signet ask the API
    for (const integ of open) {
      warnings.push({
        path: ['rules', i, 'require', 'scan'],
        message: `integration "${integ.name}" accepts unauthenticated webhooks: its scan results are not taken for rule ${ruleNo(i)}, signet asks the registry's scan API instead`,
      });
    }
    let covers: (h: string) => boolean;
    try {
      covers = picomatch(rule.match.split('/')[0] ?? '', { dot: true });
    } catch {
      return; // reported as an invalid glob above
    }
    const hosts = config.registries.flatMap((r) => [r.host, ...r.aliases]).filter((h) => covers(h));
    for (const integ of silent) {
      const hit = hosts.find((h) => hostsOf(integ)(h));
      if (hit === undefined) continue;
      const why =
        integ.kind === 'quay'
          ? 'Quay notifies vulnerability_found only when something is found, never a clean scan'
          : 'it sends no scan results and has no scan API signet reads';
      problems.push({
        path: ['rules', i, 'require', 'scan'],
        message: `rule ${ruleNo(i)} has require.scan but is reached through integration "${integ.name}" (kind ${integ.kind}): ${why}, so its pushes to ${hit} could never pass the gate (see docs/conditions.md)`,
      });
    }
  });
}

const ECR_HOST = /^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$/;

/** The registry hosts an integration's events can name. */
function hostsOf(integ: IntegrationConfig): (host: string) => boolean {
  const cfg = integ as IntegrationConfig & { registryHost?: string; access?: string };
  switch (integ.kind) {
    case 'ecr':
      return (h) => ECR_HOST.test(h);
    case 'alibaba-acr': {
      const rh = cfg.registryHost;
      if (!rh) return () => true;
      const re = new RegExp(`^${rh.split('{region}').map(escapeRe).join('[a-z0-9-]+')}$`, 'i');
      return (h) => re.test(h);
    }
    case 'jfrog': {
      const rh = cfg.registryHost?.toLowerCase();
      if (!rh) return () => true;
      const bare = rh.replace(/:[0-9]+$/, '');
      return (h) => {
        const l = h.toLowerCase();
        return l === rh || l.endsWith(`.${rh}`) || l.replace(/:[0-9]+$/, '') === bare;
      };
    }
    default:
      return () => true;
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function duplicates(values: readonly string[], report: (index: number, value: string) => void): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) report(i, v);
    seen.add(v);
  });
}
