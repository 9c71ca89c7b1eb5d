/**
 * The signing plan: "which rule, which identity, which keys, which formats, which manifests"
 * decided once, here, for every caller: the receiver (is this push queued at all?), the worker
 * pipeline (what to write), `signet verify` and `signet backfill` (what must be there), and the
 * status records. What the formats write and read, and what verifiers check, all follow from it.
 *
 * - `decideRule`: the first rule whose `match` covers host/repository, its tag filters
 *   (`untagged`, `tags.include/exclude`) and, for a push, its conditions (`require`,
 *   src/config/conditions.ts); signature and attachment tags are never signed.
 * - `planSigning`: for a decided rule and the pushed manifest, the docker-reference the legacy
 *   payload names (see ARCHITECTURE.md "Identity"; undefined = any reference of the repository,
 *   for `signet verify IMAGE@DIGEST` under `identity: tag`), the payload annotations expanded for
 *   this push, the keys (values carrying their certificates) and the formats, default
 *   `[legacy, bundle]`.
 */
import { conditionSkip, type PushFacts } from '../config/conditions.js';
import type { RuleMatcher } from '../config/rules.js';
import type { RuleConfig } from '../config/schema.js';
import { SignetError } from '../errors.js';
import type { SigningKey } from '../kms/signing-key.js';
import { isAttachmentTag } from '../registry/reference.js';
import type { ScanSummary } from '../formats/attestation/statement.js';
import { expandAnnotations } from './annotations.js';

/** The storage formats, by the name rules use (src/formats/index.ts maps each to its module; the config schema takes this list). */
export const FORMAT_NAMES = ['legacy', 'bundle', 'notation'] as const;
export type FormatName = (typeof FORMAT_NAMES)[number];

/**
 * What a rule writes when it names no `formats`: the legacy `.sig` (containers/image, cosign 2,
 * Kyverno, policy-controller) and the sigstore bundle referrer (cosign 3, which reads `.sig`
 * only when an image has no bundle at all). See docs/formats.md.
 */
export const DEFAULT_FORMATS: readonly FormatName[] = ['legacy', 'bundle'];

/** `condition`: the skip comes from the rule's `require` (a decision worth recording), not from its match or tag filters. */
export type RuleDecision = { rule: RuleConfig; index: number } | { skip: string; index?: number; condition?: true };

export interface DecideOptions {
  /** A look at a digest with no tag known (`signet verify IMAGE@DIGEST`): the tag filters cannot apply. */
  byDigest?: boolean;
  /**
   * The push being decided: the rule's conditions are checked against it (a pusher only when its
   * integration vouches for it). The receiver, the pipeline (queue worker and `signet sign`) and
   * backfill pass it (`{}` when no pusher is known: a rule with pusher conditions is then not
   * met); without it the conditions are not looked at (`signet verify` of what is there).
   */
  push?: PushFacts;
}

/** The rule for a push of host/repository[:tag], or why none applies (or why it is not signed). */
export function decideRule(rules: RuleMatcher, host: string, repository: string, tag: string | undefined, opts: DecideOptions = {}): RuleDecision {
  if (tag !== undefined && isAttachmentTag(tag)) return { skip: 'signature or attachment tag (written by a signer)' };
  const found = rules.find(host, repository);
  if (!found) return { skip: `no rule matches ${host}/${repository}` };
  if (!(tag === undefined && opts.byDigest)) {
    const why = rules.skipReason(found.rule, tag);
    if (why) return { skip: why, index: found.index };
  }
  if (opts.push) {
    const unmet = conditionSkip(found.rule.require, opts.push);
    if (unmet) return { skip: `rule ${found.index}: ${unmet}`, index: found.index, condition: true };
  }
  return found;
}

export interface SigningPlan {
  ruleIndex: number;
  rule: RuleConfig;
  /** The configured host (aliases resolved) and the repository within it. */
  host: string;
  repository: string;
  tag: string | undefined;
  /** The pushed manifest (an index or an image). */
  digest: string;
  /** The docker-reference of the legacy payload, or undefined: any reference of the repository (verify by digest). */
  identity: string | undefined;
  /** The payload / statement annotations, expanded for this push (undefined when the rule has none). */
  annotations: Record<string, string> | undefined;
  /** The rule's keys, in rule order. */
  keys: SigningKey[];
  formats: FormatName[];
  /** Who pushed, as the registry reported it (absent when its payload carries none): the attestation records it. */
  pusher?: string | undefined;
  /** When signet decided to sign (the attestation's timeVerified); absent: when the statement is built. */
  decidedAt?: Date | undefined;
  /** The scan that passed the rule's gate (require.scan, src/scan/gate.ts; the attestation records it). */
  scan?: ScanSummary | undefined;
}

export interface PlanInput {
  host: string;
  repository: string;
  tag?: string | undefined;
  digest: string;
  pusher?: string | undefined;
  /** When signet decided to sign (default: now, when the plan is made). */
  decidedAt?: Date | undefined;
  /** The scan summary that passed the rule's gate (src/formats/attestation/statement.ts ScanSummary). */
  scan?: ScanSummary | undefined;
  /** No tag known and any identity of the repository accepted (verify by digest). */
  byDigest?: boolean | undefined;
}

export function planSigning(decided: { rule: RuleConfig; index: number }, input: PlanInput, keys: ReadonlyMap<string, SigningKey>): SigningPlan {
  const { rule, index } = decided;
  const { host, repository, tag, digest } = input;
  const openIdentity = tag === undefined && input.byDigest && rule.identity !== 'repository';
  return {
    ruleIndex: index,
    rule,
    host,
    repository,
    tag,
    digest,
    identity: openIdentity ? undefined : identityFor(rule, host, repository, tag, digest),
    annotations: expandAnnotations(rule.annotations, { registry: host, repository, tag, digest, pusher: input.pusher }),
    keys: rule.keys.map((name) => {
      const k = keys.get(name);
      if (!k) throw new SignetError('KEY_INVALID', `rule ${index} names key "${name}" which is not loaded`);
      return k;
    }),
    formats: formatsOf(rule),
    ...(input.pusher !== undefined ? { pusher: input.pusher } : {}),
    decidedAt: input.decidedAt ?? new Date(),
    ...(input.scan ? { scan: input.scan } : {}),
  };
}

export function formatsOf(rule: Pick<RuleConfig, 'formats'>): FormatName[] {
  return rule.formats?.length ? [...rule.formats] : [...DEFAULT_FORMATS];
}

/** The payload's docker-reference (see ARCHITECTURE.md "Identity"). */
export function identityFor(rule: Pick<RuleConfig, 'identity'>, host: string, repository: string, tag: string | undefined, digest: string): string {
  if (rule.identity === 'repository') return `${host}/${repository}`;
  return tag ? `${host}/${repository}:${tag}` : `${host}/${repository}@${digest}`;
}

/** The witnesses a plan's rule asks for (the writer builds clients for them; readers require their evidence). */
export function planWitnesses(plan: Pick<SigningPlan, 'rule'>): { rekor?: NonNullable<RuleConfig['rekor']>; timestamp?: NonNullable<RuleConfig['timestamp']> } {
  const { rekor, timestamp } = plan.rule;
  return { ...(rekor ? { rekor } : {}), ...(timestamp ? { timestamp } : {}) };
}
