/**
 * What the verifier exporters read (rules with their keys' public PEMs already resolved) and
 * what they produce (named documents plus notes for the operator). Exporters are pure: no I/O.
 */
import { createPublicKey } from 'node:crypto';

export interface PolicyKey {
  name: string;
  /** SPKI PEM ("-----BEGIN PUBLIC KEY-----"), as KeyProvider.publicKeyPem() returns it. */
  pem: string;
  /** Bring-your-own-PKI: the key's leaf certificate PEM (keys[].certificate); its Rekor entries name it. */
  certificate?: string;
  /** Bring-your-own-PKI: the key's certificate issuers as PEM blocks, parent first, root last (keys[].chain). */
  chain?: string[];
  /** Bring-your-own-PKI: the first email or URI subject alternative name of the key's certificate (cosign --certificate-identity). */
  identity?: string;
}

export interface PolicyRekor {
  /** Rekor URL the verifier should use (default: the public instance). */
  url?: string;
  /** PEM of the Rekor public key, for verifiers that pin it (containers/image, OpenShift). */
  publicKeyPem?: string;
  /** false: signet may write a signature without an entry when Rekor is down (rule.rekor.required). */
  required?: boolean;
}

export interface PolicyRule {
  /** Position in config `rules` (for names and messages). */
  index: number;
  match: string;
  keys: PolicyKey[];
  /** The payload's docker-reference: `tag` -> matchRepoDigestOrExact, `repository` -> matchRepository. */
  identity: 'tag' | 'repository';
  /** Absent: signet writes no Rekor entries for this rule, so verifiers must not require one. */
  rekor?: PolicyRekor;
  /** Storage formats signet writes (rule.formats); absent = legacy `.sig` only. */
  formats?: ('legacy' | 'bundle')[];
}

export interface PolicyInput {
  rules: PolicyRule[];
  /** Object name prefix (Kubernetes names), default "signet". */
  name?: string;
  /** Namespaces for namespaced objects (OpenShift ImagePolicy, cosign-webhook CosignKey). */
  namespaces?: string[];
}

export interface PolicyDocument {
  /** Relative path under --out (no extension for Kubernetes objects: the writer adds .yaml|.json). */
  file: string;
  /** A Kubernetes object (apiVersion/kind) or a host config file's content. */
  content: Record<string, unknown>;
  /** Serialization forced by the target (policy.json is JSON, registries.d is YAML). */
  format?: 'json' | 'yaml';
  /** Comment lines put above the document when it is written as YAML. */
  comments?: string[];
  /** A plain text file (README, PEM): written as is; `content` is then ignored. */
  text?: string;
}

export interface ExportResult {
  documents: PolicyDocument[];
  /** Approximations and caveats the operator should read (printed on stderr). */
  notes: string[];
}

export interface VerifierExporter {
  id: string;
  /** One line for --help and errors. */
  title: string;
  export(input: PolicyInput): ExportResult;
}

export class PolicyExportError extends Error {}

/** Kubernetes object names: DNS-1123 subdomain, at most `max` characters. */
export function k8sName(...parts: (string | number)[]): string {
  const raw = parts
    .map(String)
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  return raw.slice(0, 63).replace(/-+$/, '') || 'signet';
}

/** base64 of the PEM text, as containers/image `keyData` and OpenShift `keyData` (format: byte) want it. */
export function pemBase64(pem: string): string {
  return Buffer.from(normalizePem(pem), 'utf8').toString('base64');
}

/** The PEM re-encoded as SPKI with one trailing newline; throws on anything else. */
export function normalizePem(pem: string): string {
  let spki: string;
  try {
    spki = createPublicKey(pem).export({ type: 'spki', format: 'pem' }).toString();
  } catch (e) {
    throw new PolicyExportError(`not a public key PEM: ${(e as Error).message}`);
  }
  return spki.endsWith('\n') ? spki : `${spki}\n`;
}

/** `a` and `b` name the same keys. */
export function sameKeys(a: readonly PolicyKey[], b: readonly PolicyKey[]): boolean {
  const x = new Set(a.map((k) => normalizePem(k.pem)));
  const y = new Set(b.map((k) => normalizePem(k.pem)));
  return x.size === y.size && [...x].every((k) => y.has(k));
}

/** Every key of `a` is also one of `b`'s. */
export function keysSubset(a: readonly PolicyKey[], b: readonly PolicyKey[]): boolean {
  const y = new Set(b.map((k) => normalizePem(k.pem)));
  return a.every((k) => y.has(normalizePem(k.pem)));
}

export const ruleLabel = (r: PolicyRule): string => `rules[${r.index}] (${r.match})`;

/** The rule's images carry legacy `.sig` signatures (what every key-based verifier but Kyverno's SigstoreBundle reads). */
export const writesLegacy = (r: PolicyRule): boolean => !r.formats || r.formats.includes('legacy');

/** For verifiers that read only the legacy `.sig` format. */
export function requireLegacy(r: PolicyRule, verifier: string, why: string): void {
  if (!writesLegacy(r)) {
    throw new PolicyExportError(`${verifier}: ${ruleLabel(r)} writes only sigstore bundles, which ${why}; add legacy to the rule's formats`);
  }
}

/**
 * Can containers/image (policy.json, OpenShift) check this key's `.sig` Rekor entries? Not for a
 * key with a certificate: its entries name the certificate (what cosign >= 3.0.3 requires:
 * transparency/entries.ts), and under `keyData` + a Rekor key containers/image compares the entry
 * with the key (signature/policy_eval_sigstore.go: VerifyRekorSET with the re-marshalled key),
 * refusing every such signature; its `pki` trust (5.35+) takes no Rekor key at all.
 */
export function containersChecksLog(r: PolicyRule, key: PolicyKey): boolean {
  return Boolean(r.rekor?.publicKeyPem) && !key.certificate;
}

/** The note for keys of `r` whose log containers/image cannot check (containersChecksLog). */
export function containersLogNote(r: PolicyRule, verifier: string, withLog: string, where: string): string[] {
  return r.keys
    .filter((k) => r.rekor?.publicKeyPem && !containersChecksLog(r, k))
    .map(
      (k) =>
        `${verifier}: ${ruleLabel(r)}: key ${k.name} has a certificate, so its Rekor entries name the certificate (as cosign >= 3.0.3 requires) and containers/image's ${withLog} would refuse them: ${where} checks the key without the log (the pki trust of containers/image 5.35+ cannot check the log either)`,
    );
}

/** Notes every log-checking verifier shares. */
export function rekorNotes(r: PolicyRule, verifier: string): string[] {
  if (!r.rekor) return [];
  const notes: string[] = [];
  if (r.rekor.required === false) {
    notes.push(`${verifier}: ${ruleLabel(r)} has rekor.required false: a signature written while Rekor was down has no entry, and this policy refuses it until signet logs it`);
  }
  return notes;
}
