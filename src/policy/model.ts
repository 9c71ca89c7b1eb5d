/**
 * What the verifier exporters read (rules with their keys' public PEMs already resolved) and
 * what they produce (named documents plus notes for the operator). Exporters are pure: no I/O.
 */
import type { FormatName } from '../signing/plan.js';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';

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
  /** Storage formats signet writes (rule.formats; policyInput fills in the default, legacy and bundle); absent = legacy `.sig` only. */
  formats?: FormatName[];
  /** The RFC 3161 timestamp authority the rule stamps signatures with: its URL and chain (PEM, leaf first, root last). */
  timestamp?: PolicyTimestamp;
  /** rule.tags: signet signs only pushes whose tag matches include (when given) and not exclude (picomatch globs over the tag). */
  tags?: { include?: string[]; exclude?: string[] };
  /** rule.attest: each signed image also carries a SLSA verification summary (https://slsa.dev/verification_summary/v1) by each key, as a sigstore bundle referrer. */
  attest?: boolean;
}

export interface PolicyTimestamp {
  url: string;
  chainPem: string;
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

/** The rule's tag filter in words, e.g. `tags.include [v*], tags.exclude [*-dev]`. */
export const tagFilterLabel = (r: PolicyRule): string =>
  [r.tags?.include ? `tags.include [${r.tags.include.join(', ')}]` : '', r.tags?.exclude ? `tags.exclude [${r.tags.exclude.join(', ')}]` : '']
    .filter(Boolean)
    .join(', ');

/**
 * The note for a verifier that matches repositories, not tags: it requires a signature on every
 * tag of the rule's repositories, and signet signs only the tags the filter lets through.
 */
export function tagFilterNote(r: PolicyRule, verifier: string): string | undefined {
  if (!r.tags?.include && !r.tags?.exclude) return undefined;
  return `${verifier}: ${ruleLabel(r)} signs only some tags (${tagFilterLabel(r)}), but ${verifier} matches repositories, not tags: it requires a signature on every tag there, so images with the other tags are refused`;
}

/** The rule writes a format cosign reads (the legacy `.sig` or a sigstore bundle), not only Notary Project signatures. */
export const writesSigstore = (r: PolicyRule): boolean => !r.formats || r.formats.includes('legacy') || r.formats.includes('bundle');

/** The rule's images carry legacy `.sig` signatures (what every key-based verifier but Kyverno's SigstoreBundle reads). */
export const writesLegacy = (r: PolicyRule): boolean => !r.formats || r.formats.includes('legacy');

/** For verifiers that read only the legacy `.sig` format. */
export function requireLegacy(r: PolicyRule, verifier: string, why: string): void {
  if (!writesLegacy(r)) {
    throw new PolicyExportError(
      `${verifier}: ${ruleLabel(r)} writes no legacy .sig (formats: ${(r.formats ?? []).join(', ')}), and ${verifier} reads only that (bundles ${why}); add legacy to the rule's formats`,
    );
  }
}

/**
 * Can containers/image (policy.json, OpenShift) check this key's `.sig` Rekor entries? Not for a
 * key with a certificate: its entries name the certificate (what cosign >= 3.0.3 requires:
 * transparency/entries.ts), and under `keyData` + a Rekor key containers/image compares the entry
 * with the key (signature/policy_eval_sigstore.go: VerifyRekorSET with the re-marshalled key),
 * refusing every such signature; its `pki` trust (5.34.1+) takes no Rekor key at all.
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
        `${verifier}: ${ruleLabel(r)}: key ${k.name} has a certificate, so its Rekor entries name the certificate (as cosign >= 3.0.3 requires) and containers/image's ${withLog} would refuse them: ${where} checks the key without the log (the pki trust of containers/image 5.34.1+ cannot check the log either)`,
    );
}

/** Notes every log-checking verifier shares. */
export function rekorNotes(r: PolicyRule, verifier: string): string[] {
  if (!r.rekor) return [];
  const notes: string[] = [];
  if (r.rekor.required === false) {
    notes.push(
      `${verifier}: ${ruleLabel(r)} has rekor.required false: a signature written while Rekor was down has no entry, and this policy refuses it until signet logs it`,
    );
  }
  return notes;
}

// ---- Rekor logs and CA chains: the trust material several exporters write ----

export const PUBLIC_REKOR_URL = 'https://rekor.sigstore.dev';

/** The rule's Rekor URL (the public instance when none is given). */
export const rekorUrl = (r: PolicyRule): string | undefined => r.rekor && (r.rekor.url ?? PUBLIC_REKOR_URL);

/** `url` is the public Rekor, whose key every verifier already has (Sigstore's TUF root). */
export const isPublicRekor = (url: string): boolean => /^https:\/\/rekor\.sigstore\.dev\/?$/.test(url);

export interface RekorLog {
  url: string;
  /** normalizePem'd SPKI PEM */
  publicKeyPem: string;
}

/** The distinct Rekor logs (by public key) the rules configure a key for, in rule order. */
export function knownRekorLogs(rules: readonly PolicyRule[]): RekorLog[] {
  const logs: RekorLog[] = [];
  for (const r of rules) {
    const pem = r.rekor?.publicKeyPem && normalizePem(r.rekor.publicKeyPem);
    if (pem && !logs.some((l) => l.publicKeyPem === pem)) logs.push({ url: rekorUrl(r)!, publicKeyPem: pem });
  }
  return logs;
}

/** The log a rule writes to, when its key is configured. */
export function ruleLog<L extends RekorLog>(r: PolicyRule, logs: readonly L[]): L | undefined {
  const pem = r.rekor?.publicKeyPem && normalizePem(r.rekor.publicKeyPem);
  return pem ? logs.find((l) => l.publicKeyPem === pem) : undefined;
}

/** The DER SPKI of a Rekor key and its sigstore key details; only ECDSA logs (what signet and policy-controller accept). */
export function rekorKey(log: RekorLog): { der: Buffer; keyDetails: string } {
  let key;
  try {
    key = createPublicKey(log.publicKeyPem);
  } catch (e) {
    throw new PolicyExportError(`Rekor ${log.url}: not a public key PEM: ${(e as Error).message}`);
  }
  const d = key.asymmetricKeyDetails;
  const curve =
    key.asymmetricKeyType === 'ec' ? { prime256v1: 'P256_SHA_256', secp384r1: 'P384_SHA_384', secp521r1: 'P521_SHA_512' }[d?.namedCurve ?? ''] : undefined;
  if (!curve)
    throw new PolicyExportError(`a Rekor public key must be ECDSA P-256, P-384 or P-521 (got ${key.asymmetricKeyType} ${d?.namedCurve ?? ''})`.trimEnd());
  return { der: key.export({ type: 'spki', format: 'der' }), keyDetails: `PKIX_ECDSA_${curve}` };
}

/** The log ID verifiers derive from a Rekor key (cosign GetTransparencyLogID): sha256 of its DER SPKI. */
export const rekorLogId = (log: RekorLog): Buffer => createHash('sha256').update(rekorKey(log).der).digest();

/** The distinct certificate chains (issuers, parent first, root last) of the rules' keys. */
export function keyChains(rules: readonly PolicyRule[]): string[][] {
  const chains = new Map<string, string[]>();
  for (const k of rules.flatMap((r) => r.keys)) if (k.chain?.length && !chains.has(k.chain.join(''))) chains.set(k.chain.join(''), k.chain);
  return [...chains.values()];
}

/** The root (last) certificate of a chain, with its subject's O and CN. */
export function chainRoot(chain: readonly string[]): { root: X509Certificate; organization?: string; commonName?: string } {
  const root = new X509Certificate(chain[chain.length - 1]!);
  const field = (name: string) =>
    root.subject
      .split('\n')
      .find((l) => l.startsWith(`${name}=`))
      ?.slice(name.length + 1);
  return { root, ...(field('O') ? { organization: field('O')! } : {}), ...(field('CN') ? { commonName: field('CN')! } : {}) };
}

/** The distinct timestamp authorities the rules use (by chain), in rule order. */
export function knownTimestampAuthorities(rules: readonly PolicyRule[]): PolicyTimestamp[] {
  const seen = new Map<string, PolicyTimestamp>();
  for (const r of rules) if (r.timestamp && !seen.has(r.timestamp.chainPem)) seen.set(r.timestamp.chainPem, r.timestamp);
  return [...seen.values()];
}
