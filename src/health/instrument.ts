/**
 * Metrics hooks the runtime installs on the pieces it builds: key-backend latency (each
 * KeyProvider's sign is timed in place, so the signing code and the providers stay unaware of it)
 * and registry requests and errors by status (the registry client's onResponse hook).
 */
import type { KeyProvider } from '../kms/types.js';
import type { Metrics } from '../metrics.js';
import type { RegistryDirectory } from '../registry/directory.js';

const TIMED = Symbol('signet.timed');

/**
 * Times every `sign` call of each key into `signet_key_sign_seconds{key,outcome}`. The provider
 * object itself is kept (its identity, fields and other methods are untouched): only its `sign`
 * property is replaced by a timing wrapper around the original. Idempotent.
 */
export function instrumentKeys(keys: ReadonlyMap<string, KeyProvider>, metrics: Metrics): void {
  for (const [name, key] of keys) {
    const k = key as KeyProvider & { [TIMED]?: true };
    if (k[TIMED]) continue;
    const sign = k.sign.bind(k);
    k.sign = async (digest: Buffer, payload?: Buffer): Promise<Buffer> => {
      const end = metrics.keySignSeconds.startTimer({ key: name });
      try {
        const sig = await sign(digest, payload);
        end({ outcome: 'ok' });
        return sig;
      } catch (err) {
        end({ outcome: 'error' });
        throw err;
      }
    };
    k[TIMED] = true;
  }
}

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
