/**
 * Whether each registry takes signet's credentials, before the first push finds out: an
 * authenticated `GET /v2/` (Basic, or a token exchange) and, for each repository a rule names
 * literally (`host/team/app`, no glob), a pull,push token and `GET /v2/<repo>/tags/list`
 * (RegistryClient.checkAccess). Used by `signet config check` (once) and by GET /readyz
 * (RegistryAccessCheck: cached, re-checked every 60 s, so probes do not hammer token services).
 * Push permission itself is only proved by a push: a token service may grant less than asked.
 */
import type { RuleConfig, RegistryConfig } from '../config/schema.js';
import { SignetError } from '../errors.js';
import { redactText } from '../log.js';
import type { KnownRegistry } from '../registry/directory.js';

/** At most this many literal repositories are checked per registry. */
const MAX_REPOSITORIES = 3;

/** Repositories rules name without a glob on this registry (host or alias), in rule order. */
export function literalRepositories(registry: Pick<RegistryConfig, 'host' | 'aliases'>, rules: readonly Pick<RuleConfig, 'match'>[]): string[] {
  const names = new Set([registry.host, ...registry.aliases].map((h) => h.toLowerCase()));
  const out: string[] = [];
  for (const r of rules) {
    const slash = r.match.indexOf('/');
    if (slash < 0) continue;
    const host = r.match.slice(0, slash).toLowerCase();
    const repo = r.match.slice(slash + 1);
    if (!names.has(host) || !repo || /[*?[\]{}!()+@]/.test(repo) || out.includes(repo)) continue;
    out.push(repo);
    if (out.length === MAX_REPOSITORIES) break;
  }
  return out;
}

/** Checks one registry; resolves when it takes the credentials, else rejects with a SignetError. */
export async function checkRegistryAccess(registry: KnownRegistry, rules: readonly Pick<RuleConfig, 'match'>[]): Promise<void> {
  await registry.client.checkAccess();
  for (const repo of literalRepositories(registry.config, rules)) await registry.client.checkAccess(repo);
}

/** One line without secrets: `REGISTRY_AUTH_FAILED: registry h refused ...`. */
export function describeAccessFailure(err: unknown): string {
  const text = err instanceof SignetError ? `${err.code}: ${err.message}` : `${(err as Error)?.message ?? String(err)}`;
  return redactText(text).slice(0, 300);
}

interface Entry {
  at: number;
  error: unknown;
  inflight?: Promise<void>;
}

/**
 * The readiness side: each registry's last result, re-checked when older than `intervalMs`
 * (default 60 s). A probe gets the last result at once and starts a re-check in the background;
 * only the very first probe waits for a check. A registry that is down (no answer) is the
 * plain readiness ping's business: here it counts as failed only for refused credentials or access.
 */
export class RegistryAccessCheck {
  private readonly results = new Map<string, Entry>();
  private readonly intervalMs: number;

  constructor(
    private readonly source: () => { registries: readonly KnownRegistry[]; rules: readonly Pick<RuleConfig, 'match'>[] },
    opts: { intervalMs?: number; now?: () => number } = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  private readonly now: () => number;

  /** Forget every result (after a config reload: new credentials are checked at the next probe). */
  reset(): void {
    this.results.clear();
  }

  /** Throws the registry's last access failure (REGISTRY_AUTH_FAILED, REGISTRY_DENIED); resolves when access worked. */
  async verify(host: string): Promise<void> {
    const { registries, rules } = this.source();
    const registry = registries.find((r) => r.config.host === host);
    if (!registry) return;
    let e = this.results.get(host);
    const stale = !e || this.now() - e.at >= this.intervalMs;
    if (stale && !e?.inflight) {
      const entry: Entry = e ?? { at: 0, error: undefined };
      entry.inflight = checkRegistryAccess(registry, rules)
        .then(
          () => {
            entry.error = undefined;
          },
          (err: unknown) => {
            entry.error = err;
          },
        )
        .finally(() => {
          entry.at = this.now();
          entry.inflight = undefined;
        });
      if (!e) this.results.set(host, (e = entry));
    }
    if (e!.at === 0 && e!.inflight) await e!.inflight; // never checked yet: wait for the first result
    const err = e!.error as { code?: string } | undefined;
    // unreachable is reported by the readiness ping; only a refusal is an access failure here
    if (err && !(err instanceof SignetError && (err.code === 'REGISTRY_UNAVAILABLE' || err.code === 'REGISTRY_THROTTLED'))) throw err;
  }
}
