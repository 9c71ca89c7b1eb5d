/**
 * `signet policy export`: the one explicit map of verifier exporters, how config + key providers
 * become their input, and how their documents are written (one file per object under --out, or
 * one stream on stdout).
 */
import { formatsOf, type FormatName } from '../signing/plan.js';
import type { TimestampAuthorities } from '../transparency/timestamp-trust.js';
import { X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../config/schema.js';
import type { SigningKey } from '../kms/signing-key.js';
import { PolicyExportError, type ExportResult, type PolicyDocument, type PolicyInput, type PolicyRule, type VerifierExporter } from './model.js';
import { PatternError } from './patterns.js';
import { containersExporter } from './verifiers/containers.js';
import { cosignExporter } from './verifiers/cosign.js';
import { cosignWebhookExporter } from './verifiers/cosign-webhook.js';
import { kyvernoExporter } from './verifiers/kyverno.js';
import { notationExporter } from './verifiers/notation.js';
import { openshiftExporter } from './verifiers/openshift.js';
import { policyControllerExporter } from './verifiers/policy-controller.js';

export { PolicyExportError } from './model.js';
export type { ExportResult, PolicyDocument, PolicyInput, PolicyKey, PolicyRule, VerifierExporter } from './model.js';

export const verifierExporters: readonly VerifierExporter[] = [
  kyvernoExporter,
  policyControllerExporter,
  openshiftExporter,
  containersExporter,
  cosignWebhookExporter,
  cosignExporter,
  notationExporter,
];
const byId = new Map(verifierExporters.map((v) => [v.id, v]));

export const verifierIds = (): string[] => verifierExporters.map((v) => v.id);

/** `--for` value(s): comma-separated ids, or `all`. Throws PolicyExportError naming the valid ones. */
export function resolveVerifiers(spec: string | undefined): VerifierExporter[] {
  const valid = `${verifierIds().join(', ')} (or all, or a comma-separated list)`;
  if (!spec) throw new PolicyExportError(`--for is required: one of ${valid}`);
  const ids = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length === 1 && ids[0] === 'all') return [...verifierExporters];
  const unknown = ids.filter((id) => !byId.has(id));
  if (unknown.length || ids.length === 0) throw new PolicyExportError(`unknown verifier "${unknown.join(', ') || spec}" for --for: use ${valid}`);
  return [...new Set(ids)].map((id) => byId.get(id)!);
}

/**
 * The rule's Rekor and format options (rule.rekor, rule.formats), read by shape so this module
 * depends only on their meaning: `rekor: { url, publicKey?, required? }`, `formats: [legacy|bundle|notation]`.
 */
function signingOptions(rule: object): Pick<PolicyRule, 'rekor' | 'formats'> {
  const r = rule as Record<string, unknown>;
  // what the rule writes, defaults applied as the signing plan applies them
  const out: Pick<PolicyRule, 'rekor' | 'formats'> = { formats: formatsOf(rule as { formats?: FormatName[] }) };
  const rekor = r['rekor'] as Record<string, unknown> | undefined;
  if (rekor && typeof rekor === 'object' && typeof rekor['url'] === 'string') {
    out.rekor = {
      url: rekor['url'],
      ...(typeof rekor['publicKey'] === 'string' ? { publicKeyPem: rekor['publicKey'] } : {}),
      ...(typeof rekor['required'] === 'boolean' ? { required: rekor['required'] } : {}),
    };
  }
  return out;
}

/** The first email or URI subject alternative name of a PEM certificate (what cosign --certificate-identity matches). */
function certificateIdentity(pem: string): string | undefined {
  const san = new X509Certificate(pem).subjectAltName ?? '';
  return /(?:^|, )(?:email|URI):([^,]+)/.exec(san)?.[1];
}

/** Rules as the exporters see them: key names resolved to their public keys. */
export function policyInput(
  config: Pick<Config, 'rules'>,
  signingKeys: ReadonlyMap<string, Pick<SigningKey, 'publicKeyPem' | 'certificate'>>,
  opts: { name?: string; namespaces?: string[]; timestamps?: Pick<TimestampAuthorities, 'chainOf'> } = {},
): PolicyInput {
  const rules: PolicyRule[] = [];
  for (const [index, rule] of config.rules.entries()) {
    const keys = [];
    for (const name of rule.keys) {
      const k = signingKeys.get(name);
      if (!k) throw new PolicyExportError(`rules[${index}] names key "${name}", which is not configured`);
      const cert = k.certificate;
      const chain = cert?.chain?.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g);
      const identity = cert && certificateIdentity(cert.certificate);
      keys.push({
        name,
        pem: k.publicKeyPem,
        ...(cert ? { certificate: cert.certificate } : {}),
        ...(chain?.length ? { chain } : {}),
        ...(identity ? { identity } : {}),
      });
    }
    const ts = rule.timestamp && opts.timestamps ? { timestamp: { url: rule.timestamp.url, chainPem: opts.timestamps.chainOf(rule.timestamp).pem } } : {};
    const tags =
      rule.tags?.include || rule.tags?.exclude
        ? { tags: { ...(rule.tags.include ? { include: rule.tags.include } : {}), ...(rule.tags.exclude ? { exclude: rule.tags.exclude } : {}) } }
        : {};
    rules.push({ index, match: rule.match, keys, identity: rule.identity, ...signingOptions(rule), ...ts, ...tags, ...(rule.attest ? { attest: true } : {}) });
  }
  for (const ns of opts.namespaces ?? []) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) throw new PolicyExportError(`--namespace "${ns}" is not a valid Kubernetes namespace name`);
  }
  return { rules, ...(opts.name ? { name: opts.name } : {}), ...(opts.namespaces?.length ? { namespaces: opts.namespaces } : {}) };
}

export function runExporters(verifiers: readonly VerifierExporter[], input: PolicyInput): Map<string, ExportResult> {
  const out = new Map<string, ExportResult>();
  for (const v of verifiers) {
    try {
      out.set(v.id, v.export(input));
    } catch (e) {
      if (e instanceof PatternError) throw new PolicyExportError(`${v.id}: ${e.message}`);
      throw e;
    }
  }
  return out;
}

export type OutputFormat = 'yaml' | 'json';

function isK8sObject(d: PolicyDocument): boolean {
  return typeof d.content['apiVersion'] === 'string' && typeof d.content['kind'] === 'string';
}

/** File name of a document under --out. */
export function fileName(d: PolicyDocument, format: OutputFormat): string {
  return d.text === undefined && isK8sObject(d) ? `${d.file}.${format}` : d.file;
}

/** The bytes of one document. */
export function serialize(d: PolicyDocument, format: OutputFormat): string {
  if (d.text !== undefined) return d.text;
  const as = d.format ?? format;
  if (as === 'json') return `${JSON.stringify(d.content, null, 2)}\n`;
  const comments = (d.comments ?? []).map((c) => `# ${c}`.trimEnd()).join('\n');
  return `${comments ? `${comments}\n` : ''}${stringify(d.content, { lineWidth: 0 })}`;
}

/**
 * One stream for stdout. YAML: documents separated by `---`, each preceded by `# file: NAME`
 * (JSON documents are valid YAML). JSON: one document as is; Kubernetes objects of several
 * documents as a `v1 List` (kubectl apply -f - takes it); anything else as an array.
 */
export function serializeStream(docs: readonly PolicyDocument[], format: OutputFormat): string {
  if (format === 'json') {
    if (docs.length === 1 && docs[0]!.text === undefined) return serialize(docs[0]!, 'json');
    if (docs.every(isK8sObject)) return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs.map((d) => d.content) }, null, 2)}\n`;
    return `${JSON.stringify(
      docs.map((d) => (d.text === undefined ? d.content : { file: d.file, text: d.text })),
      null,
      2,
    )}\n`;
  }
  // a text file (README, PEM) goes into the YAML stream as one string (a literal block)
  return docs.map((d) => `---\n# file: ${fileName(d, 'yaml')}\n${d.text === undefined ? serialize(d, 'yaml') : stringify(d.text, { lineWidth: 0 })}`).join('');
}

/** Writes every document under `dir` (per verifier subfolder when several are exported). Returns the paths. */
export async function writeDocuments(dir: string, results: ReadonlyMap<string, ExportResult>, format: OutputFormat): Promise<string[]> {
  const written: string[] = [];
  const nested = results.size > 1;
  for (const [id, r] of results) {
    for (const d of r.documents) {
      const file = path.join(dir, nested ? id : '', fileName(d, format));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, serialize(d, format));
      written.push(file);
    }
  }
  return written;
}
