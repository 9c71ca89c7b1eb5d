/**
 * The timestamp authorities a configuration names, loaded once per process: each rule's
 * `timestamp.certificateChain` read and checked (startup fails on a bad chain, naming the rule),
 * a client per distinct (url, timeout, chain) for the writers, and a verifier per rule for the
 * readers (a timestamp counts when it verifies against the rule's TSA chain).
 */
import type { RuleConfig } from '../config/schema.js';
import { SignetError } from '../errors.js';
import type { TimestampRuleConfig } from './timestamp-config.js';
import { loadTimestampChain } from './timestamp-config.js';
import { TimestampClient, verifyTimestamp, type TimestampChain } from './timestamp.js';

export class TimestampAuthorities {
  private readonly chains = new Map<string, TimestampChain>();
  private readonly clients = new Map<string, TimestampClient>();

  /** Load every rule's chain now: CONFIG_INVALID (all problems together) when one cannot be used. */
  constructor(
    rules: readonly Pick<RuleConfig, 'timestamp'>[],
    private readonly baseDir: string,
  ) {
    const problems: string[] = [];
    for (const [i, r] of rules.entries()) {
      if (!r.timestamp) continue;
      try {
        this.chainOf(r.timestamp);
      } catch (err) {
        problems.push(`rules[${i}].timestamp: ${(err as Error).message}`);
      }
    }
    if (problems.length) throw new SignetError('CONFIG_INVALID', problems.join('; '));
  }

  chainOf(cfg: Pick<TimestampRuleConfig, 'certificateChain'>): TimestampChain {
    let c = this.chains.get(cfg.certificateChain);
    if (!c) this.chains.set(cfg.certificateChain, (c = loadTimestampChain(cfg.certificateChain, this.baseDir)));
    return c;
  }

  /** The client for a rule's `timestamp:` (shared by rules with the same setting). */
  clientFor(cfg: TimestampRuleConfig): TimestampClient {
    const id = JSON.stringify([cfg.url, cfg.timeoutMs, cfg.certificateChain]);
    let c = this.clients.get(id);
    if (!c) this.clients.set(id, (c = new TimestampClient({ url: cfg.url, timeoutMs: cfg.timeoutMs, chain: this.chainOf(cfg) })));
    return c;
  }

  /** Verifies a timestamp over `signature` against the rule's TSA chain; throws when it does not verify. */
  verifierFor(cfg: TimestampRuleConfig): (signature: Buffer, signedTimestamp: Buffer) => Date {
    const chain = this.chainOf(cfg);
    return (signature, signedTimestamp) => verifyTimestamp(signedTimestamp, signature, chain).genTime;
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(all.map((c) => c.close()));
  }
}
