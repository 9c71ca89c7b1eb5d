/** `signet verify IMAGE_REF [--json]`: exit 0 when every required signature is there, 1 otherwise. */
import { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import type { LoadedConfig } from '../config/load.js';
import { compileRules } from '../config/rules.js';
import { createSigningKeys } from '../kms/providers.js';
import { RegistryDirectory } from '../registry/directory.js';
import { formatVerifyReport, verifyImage } from './verify.js';

export async function verifyCommand(loaded: LoadedConfig, ref: string, flags: { json?: boolean }, out: (line: string) => void): Promise<number> {
  const { config, baseDir } = loaded;
  const keys = await createSigningKeys(config.keys, { baseDir });
  const registries = new RegistryDirectory(config.registries, { baseDir });
  try {
    const report = await verifyImage(ref, { registries, rules: compileRules(config.rules), keys, timestamps: new TimestampAuthorities(config.rules, baseDir) });
    if (flags.json) out(JSON.stringify(report, null, 2));
    else for (const l of formatVerifyReport(report)) out(l);
    return report.ok ? 0 : 1;
  } finally {
    await registries.close();
    await Promise.allSettled([...keys.values()].map((k) => k.close()));
  }
}
