/**
 * `signet policy export --for VERIFIER[,VERIFIER...]|all [--out DIR] [--format yaml|json]
 *  [--namespace NS ...] [--name PREFIX]`: the part of the command line that src/cli.ts hands over.
 */
import { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import type { LoadedConfig } from '../config/load.js';
import { createSigningKeys } from '../kms/providers.js';
import { PolicyExportError, policyInput, resolveVerifiers, runExporters, serializeStream, writeDocuments, type OutputFormat } from './index.js';

export interface PolicyExportFlags {
  for?: string | undefined;
  out?: string | undefined;
  format?: string | undefined;
  namespace?: string[] | undefined;
}

/** A usage problem in the flags (src/cli.ts prints it with the usage text), or undefined. */
export function policyExportUsageProblem(flags: PolicyExportFlags): string | undefined {
  try {
    resolveVerifiers(flags.for);
  } catch (e) {
    return (e as Error).message;
  }
  if (flags.format !== undefined && flags.format !== 'yaml' && flags.format !== 'json') return `--format must be yaml or json, not "${flags.format}"`;
  return undefined;
}

export async function policyExport(loaded: LoadedConfig, flags: PolicyExportFlags, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const verifiers = resolveVerifiers(flags.for);
  const format = (flags.format ?? 'yaml') as OutputFormat;
  const used = new Set(loaded.config.rules.flatMap((r) => r.keys));
  const keys = await createSigningKeys(
    loaded.config.keys.filter((k) => used.has(k.name)),
    { baseDir: loaded.baseDir },
  );
  try {
    const input = policyInput(loaded.config, keys, {
      namespaces: flags.namespace ?? [],
      timestamps: new TimestampAuthorities(loaded.config.rules, loaded.baseDir),
    });
    if (input.rules.length === 0) throw new PolicyExportError(`${loaded.source} has no rules: there is nothing for a verifier to check`);
    const results = runExporters(verifiers, input);
    for (const r of results.values()) for (const n of r.notes) err(`note: ${n}`);
    if (flags.out) {
      for (const f of await writeDocuments(flags.out, results, format)) out(f);
    } else {
      const docs = [...results.values()].flatMap((r) => r.documents);
      out(serializeStream(docs, format).trimEnd());
    }
    return 0;
  } finally {
    await Promise.all([...keys.values()].map((k) => k.close()));
  }
}
