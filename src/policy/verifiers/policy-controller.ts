/**
 * sigstore policy-controller ClusterImagePolicy (policy.sigstore.dev/v1beta1), ONE PER KEY of
 * each rule: within a policy any authority suffices, but every policy whose images match must
 * pass, so a two-key rule becomes two policies over the same globs (both signatures required).
 * Without Rekor there is no `ctlog` block, and policy-controller then does not check the tlog.
 * signatureFormat stays the default `legacy` (key authorities cannot use `bundle`).
 *
 * A private Rekor (not rekor.sigstore.dev): policy-controller takes the log's key only from a
 * TrustRoot (policy.sigstore.dev/v1alpha1) named by `ctlog.trustRootRef`; with `ctlog.url` alone
 * it checks the entries against its TUF root's (public) Rekor keys and refuses them. One TrustRoot
 * per distinct log key, `spec.sigstoreKeys.tLogs[]` = {baseURL, hashAlgorithm sha-256, publicKey:
 * base64 of the PEM} (Go []byte of PEM; the log ID is not a field: the reconciler derives it, hex
 * sha256 of the DER SPKI, and only ECDSA keys pass it). Its admission (trustroot_validation.go)
 * refuses sigstoreKeys without a certificate or timestamp authority, so the TrustRoot also lists
 * the CA chains of the keys that sign into that log (bring-your-own PKI; key authorities do not
 * read them); with no chain there is no TrustRoot that policy-controller accepts, and a note says
 * what to add.
 *
 * A rule with `timestamp:` (an RFC 3161 TSA): the authority gets `rfc3161timestamp.trustRootRef`
 * naming a TrustRoot whose `timestampAuthorities` hold the TSA's chain: the rule's log TrustRoot
 * (which then is admissible by its TSA alone) or, without a private log, one TrustRoot per TSA.
 * Schemas: test/fixtures/policy-schemas/policy.sigstore.dev_clusterimagepolicies.yaml and
 * policy.sigstore.dev_trustroots.yaml.
 */
import {
  chainRoot,
  isPublicRekor,
  k8sName,
  keyChains,
  keysSubset,
  knownRekorLogs,
  knownTimestampAuthorities,
  normalizePem,
  rekorKey,
  rekorLogId,
  rekorNotes,
  rekorUrl,
  requireLegacy,
  ruleLabel,
  ruleLog,
  type ExportResult,
  type PolicyDocument,
  type PolicyInput,
  type PolicyRule,
  type PolicyTimestamp,
  type RekorLog,
  type VerifierExporter,
} from '../model.js';
import { mayOverlap, policyControllerTags, toPolicyController } from '../patterns.js';

/** A TrustRoot certificateAuthority for a key's chain; none when admission would refuse it (its root has no O or CN). */
function certificateAuthority(chain: readonly string[]): Record<string, unknown> | undefined {
  const { organization, commonName } = chainRoot(chain);
  if (!organization || !commonName) return undefined;
  const pem = chain.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('');
  // `uri` is required and only informative (where the CA can be reached): signet knows none.
  return {
    subject: { organization, commonName },
    uri: `urn:signet:ca:${encodeURIComponent(commonName)}`,
    certChain: Buffer.from(pem, 'utf8').toString('base64'),
  };
}

/** A TrustRoot timestampAuthority for a rule's TSA (same shape as a certificate authority; `uri` the TSA's URL). */
function timestampAuthority(t: PolicyTimestamp): Record<string, unknown> | undefined {
  const chain = t.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
  const { organization, commonName } = chainRoot(chain);
  if (!organization || !commonName) return undefined;
  return {
    subject: { organization, commonName },
    uri: t.url,
    certChain: Buffer.from(chain.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join(''), 'utf8').toString('base64'),
  };
}

/** The distinct TSAs of these rules, as TrustRoot entries. */
function timestampAuthorities(rules: readonly PolicyRule[]): Record<string, unknown>[] {
  return knownTimestampAuthorities(rules)
    .map(timestampAuthority)
    .filter((t): t is Record<string, unknown> => t !== undefined);
}

/** The TrustRoots for the rules' private logs with a known key, by log; a log left out has its reason in `missing`. */
function trustRoots(
  rules: readonly PolicyRule[],
  logs: readonly RekorLog[],
  prefix: string,
): { byLog: Map<RekorLog, PolicyDocument>; missing: Map<RekorLog, string> } {
  const byLog = new Map<RekorLog, PolicyDocument>();
  const missing = new Map<RekorLog, string>();
  const names = new Set<string>();
  for (const log of logs.filter((l) => !isPublicRekor(l.url))) {
    const users = rules.filter((r) => ruleLog(r, logs) === log);
    const cas = keyChains(users).flatMap((c) => certificateAuthority(c) ?? []);
    const tsas = timestampAuthorities(users);
    rekorKey(log); // policy-controller's reconciler takes only ECDSA log keys, as signet does
    if (cas.length === 0 && tsas.length === 0) {
      missing.set(log, "none of its rules' keys has a certificate chain whose root names O and CN, and none of its rules has a timestamp authority");
      continue;
    }
    let name = k8sName(prefix, 'rekor', new URL(log.url).host);
    for (let i = 2; names.has(name); i++) name = k8sName(prefix, 'rekor', new URL(log.url).host, i);
    names.add(name);
    byLog.set(log, {
      file: `trustroot-${name}`,
      comments: [
        `Generated by \`signet policy export --for policy-controller\`: the Rekor log of ${users.map(ruleLabel).join(', ')}.`,
        `Log ID (policy-controller derives it from publicKey: sha256 of the DER SPKI): ${rekorLogId(log).toString('hex')}`,
        'certificateAuthorities: the CA chains of the keys signing into this log; policy-controller requires a CA or TSA in a TrustRoot, key authorities do not read them.',
      ],
      content: {
        apiVersion: 'policy.sigstore.dev/v1alpha1',
        kind: 'TrustRoot',
        metadata: { name },
        spec: {
          sigstoreKeys: {
            ...(cas.length ? { certificateAuthorities: cas } : {}),
            tLogs: [{ baseURL: log.url, hashAlgorithm: 'sha-256', publicKey: Buffer.from(log.publicKeyPem, 'utf8').toString('base64') }],
            ...(tsas.length ? { timestampAuthorities: tsas } : {}),
          },
        },
      },
    });
  }
  return { byLog, missing };
}

export const policyControllerExporter: VerifierExporter = {
  id: 'policy-controller',
  title: 'sigstore policy-controller ClusterImagePolicy (policy.sigstore.dev/v1beta1), one per key',
  export(input: PolicyInput): ExportResult {
    const prefix = input.name ?? 'signet';
    const notes: string[] = [];
    const documents: ExportResult['documents'] = [];
    const logs = knownRekorLogs(input.rules);
    const roots = trustRoots(input.rules, logs, prefix);
    // TSAs of rules without a private-log TrustRoot: a TrustRoot of their own, one per TSA
    const tsaRoots = new Map<string, PolicyDocument>();
    for (const rule of input.rules) {
      const log = ruleLog(rule, logs);
      if (!rule.timestamp || (log && roots.byLog.has(log)) || tsaRoots.has(rule.timestamp.chainPem)) continue;
      const tsa = timestampAuthority(rule.timestamp);
      if (!tsa) {
        notes.push(
          `policy-controller: ${ruleLabel(rule)}: the timestamp authority's root names no O and CN, which a TrustRoot requires: no rfc3161timestamp check written`,
        );
        continue;
      }
      const name = k8sName(prefix, 'tsa', new URL(rule.timestamp.url).host, ...(tsaRoots.size ? [tsaRoots.size + 1] : []));
      tsaRoots.set(rule.timestamp.chainPem, {
        file: `trustroot-${name}`,
        comments: [`Generated by \`signet policy export --for policy-controller\`: the RFC 3161 timestamp authority ${rule.timestamp.url}.`],
        content: { apiVersion: 'policy.sigstore.dev/v1alpha1', kind: 'TrustRoot', metadata: { name }, spec: { sigstoreKeys: { timestampAuthorities: [tsa] } } },
      });
    }
    input.rules.forEach((rule, i) => {
      requireLegacy(rule, 'policy-controller', 'policy-controller reads only for keyless authorities');
      notes.push(...rekorNotes(rule, 'policy-controller'));
      const url = rekorUrl(rule);
      const log = ruleLog(rule, logs);
      const trustRoot = log && roots.byLog.get(log);
      const refused = `policy-controller checks its entries against the public Rekor's keys (its TUF root) and refuses them`;
      if (url && !isPublicRekor(url) && !log) {
        notes.push(
          `policy-controller: ${ruleLabel(rule)}: Rekor ${url} is not the public instance and its public key is not configured (rule.rekor.publicKey), so no TrustRoot can be written: ${refused}`,
        );
      } else if (log && roots.missing.has(log)) {
        notes.push(
          `policy-controller: ${ruleLabel(rule)}: Rekor ${url} is private, and policy-controller refuses a TrustRoot that has no certificate or timestamp authority, but ${roots.missing.get(log)}: no TrustRoot written, and ${refused}. Create a TrustRoot with spec.sigstoreKeys.tLogs [{baseURL: ${url}, hashAlgorithm: sha-256, publicKey: base64 of the Rekor PEM}] plus a certificateAuthorities entry, and set ctlog.trustRootRef to it`,
        );
      }
      // the log's TrustRoot lists the TSAs of every rule logging there; else the TSA's own
      const tsaRoot = rule.timestamp && (trustRoot && timestampAuthorities([rule]).length ? trustRoot : tsaRoots.get(rule.timestamp.chainPem));
      const r = toPolicyController(rule.match);
      for (const n of r.notes) notes.push(`policy-controller: ${ruleLabel(rule)}: ${n}`);
      // tags.include as `R:<tag glob>` images; tags.exclude has no spelling there (a note)
      const tagged = policyControllerTags(r, rule.tags);
      for (const n of tagged.notes) notes.push(`policy-controller: ${ruleLabel(rule)}: ${n}`);
      for (const earlier of input.rules.slice(0, i)) {
        if (mayOverlap(earlier.match, rule.match) && !keysSubset(rule.keys, earlier.keys)) {
          notes.push(
            `policy-controller: ${ruleLabel(rule)} overlaps ${ruleLabel(earlier)}: policy-controller requires every matching policy, so images matching both need both rules' keys, but signet signs them with ${ruleLabel(earlier)}'s keys only`,
          );
        }
      }
      for (const key of rule.keys) {
        const name = k8sName(prefix, 'rule', rule.index, key.name);
        const authority: Record<string, unknown> = {
          name: k8sName(key.name),
          key: { data: normalizePem(key.pem), hashAlgorithm: 'sha256' },
          ...(url ? { ctlog: { url, ...(trustRoot ? { trustRootRef: (trustRoot.content['metadata'] as { name: string }).name } : {}) } } : {}),
          ...(tsaRoot ? { rfc3161timestamp: { trustRootRef: (tsaRoot.content['metadata'] as { name: string }).name } } : {}),
        };
        documents.push({
          file: `clusterimagepolicy-${name}`,
          comments: [
            `Generated by \`signet policy export --for policy-controller\`: ${ruleLabel(rule)}, key ${key.name}.`,
            ...(rule.keys.length > 1
              ? [`One of ${rule.keys.length} policies for this rule: policy-controller requires all of them (one signature per key).`]
              : []),
            ...(rule.rekor ? [] : ['No ctlog: signet writes no Rekor entries, and policy-controller then skips the transparency log.']),
            ...(trustRoot ? [`ctlog.trustRootRef: the Rekor key is in ${trustRoot.file}; apply it with this policy.`] : []),
          ],
          content: {
            apiVersion: 'policy.sigstore.dev/v1beta1',
            kind: 'ClusterImagePolicy',
            metadata: { name },
            spec: { mode: 'enforce', images: tagged.patterns.map((glob) => ({ glob })), authorities: [authority] },
          },
        });
      }
    });
    if (documents.length) notes.push('policy-controller: it checks pods only in namespaces labelled policy.sigstore.dev/include=true');
    return { documents: [...roots.byLog.values(), ...tsaRoots.values(), ...documents], notes: [...new Set(notes)] };
  },
};
