/**
 * The registries signet may contact, by host and alias. Anything not here is never contacted.
 */
import type { RegistryConfig } from '../config/schema.js';
import { RegistryClient } from './client.js';

export interface KnownRegistry {
  config: RegistryConfig;
  client: RegistryClient;
}

export class RegistryDirectory {
  private readonly byHost = new Map<string, KnownRegistry>();
  readonly all: KnownRegistry[];

  constructor(registries: readonly RegistryConfig[], opts: { baseDir?: string } = {}) {
    this.all = registries.map((config) => ({ config, client: new RegistryClient(config, opts) }));
    for (const r of this.all) {
      this.byHost.set(r.config.host.toLowerCase(), r);
      for (const a of r.config.aliases) this.byHost.set(a.toLowerCase(), r);
    }
  }

  /** The configured registry for a host or alias named in a payload, or undefined. */
  resolve(host: string): KnownRegistry | undefined {
    return this.byHost.get(host.toLowerCase());
  }

  requestCount(): number {
    return this.all.reduce((n, r) => n + r.client.stats.requests, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((r) => r.client.close()));
  }
}
