/**
 * Metrics hooks the runtime installs on the pieces it builds: registry requests and errors by
 * status (the registry client's onResponse hook). Key-backend latency is observed by each
 * SigningKey (its `observe` option, src/kms/signing-key.ts).
 */
import type { Metrics } from '../metrics.js';
import type { RegistryDirectory } from '../registry/directory.js';

/**
 * Counts every registry request into `signet_registry_requests_total{registry,method,kind,status}`
 * and answers >= 400 and network errors into `signet_registry_errors_total{registry,method,status}`.
 */
export function instrumentRegistries(registries: RegistryDirectory, metrics: Metrics): void {
  for (const r of registries.all) {
    const registry = r.config.host;
    r.client.onResponse = (method, status, kind) => {
      metrics.registryRequests.inc({ registry, method, kind, status: String(status) });
      if (status === 'network' || status >= 400) metrics.registryErrors.inc({ registry, method, status: String(status) });
    };
  }
}
