/**
 * containers/image (CRI-O, Podman, skopeo): /etc/containers/policy.json plus a registries.d file
 * that turns on `use-sigstore-attachments` for the same scopes (without it the `.sig` tag is
 * never read). One `sigstoreSigned` requirement PER KEY: all requirements of a scope must be
 * satisfied, so a two-key rule needs both signatures. `keyData` (one key) works from c/image 5.22.
 * A key with a certificate chain (bring your own PKI) gets the `pki` trust instead (c/image 5.34.1+,
 * backported to the 5.34 branch from 5.35: the `.sig` layer's certificate is verified against the
 * chain's root and intermediates, for the code-signing EKU, and its subject email or DNS name; no
 * Rekor key may go with it). containers/image before 5.34.1 refuses a policy.json naming `pki` as a
 * whole (ParanoidUnmarshalJSONObject: `Unknown key "pki"`), so such an export also writes
 * policy-keydata.json, the same policy with `keyData` for those keys, for older hosts.
 * Scopes have no globs: see patterns.ts toScopes for the approximation, and the notes.
 * Format: test/fixtures/policy-schemas/containers-policy.json.5.md, containers-registries.d.5.md;
 * the pki checks: containers/image signature/pki_cert.go verifyPKI, policy_config_sigstore.go.
 */
import { X509Certificate } from 'node:crypto';
import {
  containersChecksLog,
  containersLogNote,
  pemBase64,
  ruleLabel,
  type ExportResult,
  type PolicyInput,
  type PolicyKey,
  type PolicyRule,
  type VerifierExporter,
  tagFilterNote,
} from '../model.js';
import { scopedRules } from './scopes.js';

/** The file older containers/image (< 5.34.1, no `pki`) installs as policy.json. */
export const KEYDATA_POLICY_FILE = 'policy-keydata.json';

const CODE_SIGNING = '1.3.6.1.5.5.7.3.3';
const ANY_EKU = '2.5.29.37.0';

/** A `pki` trust for `key`, or why it has none (the key then keeps `keyData`). */
export type PkiTrust =
  { pki: { caRootsData: string; caIntermediatesData?: string; subjectEmail?: string; subjectHostname?: string }; notAfter: string } | { why: string };

/** The email, DNS and URI subject alternative names of a certificate (Node's `subjectAltName` text; values may be JSON-quoted). */
function altNames(cert: X509Certificate): { email: string[]; dns: string[] } {
  const out = { email: [] as string[], dns: [] as string[] };
  for (const m of (cert.subjectAltName ?? '').matchAll(/(?:^|, )(email|DNS|URI|[A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const value = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    if (m[1] === 'email') out.email.push(value);
    else if (m[1] === 'DNS') out.dns.push(value);
  }
  return out;
}

/**
 * What containers/image's `pki` can check for this key: the chain's last certificate as the root,
 * the others as intermediates, and a subject it matches exactly: the key's identity when it is an
 * email SAN (what cosign --certificate-identity names), else the first email SAN, else the first
 * DNS SAN as subjectHostname (x509 VerifyHostname). URI SANs (SPIFFE) have no pki field.
 */
export function pkiTrust(key: PolicyKey): PkiTrust {
  if (!key.certificate) return { why: 'no certificate' };
  if (!key.chain?.length) return { why: 'no chain (keys[].chain), so no CA to trust' };
  const leaf = new X509Certificate(key.certificate);
  const eku = leaf.keyUsage;
  if (eku?.length && !eku.includes(CODE_SIGNING) && !eku.includes(ANY_EKU)) {
    return { why: 'its certificate has no code-signing extended key usage, which the pki trust requires' };
  }
  const san = altNames(leaf);
  const email = key.identity && san.email.includes(key.identity) ? key.identity : san.email[0];
  const subject = email ? { subjectEmail: email } : san.dns[0] ? { subjectHostname: san.dns[0] } : undefined;
  if (!subject)
    return {
      why: `its certificate has no email or DNS subject alternative name (${key.identity ? `only ${key.identity}` : 'none'}), and pki matches only those`,
    };
  const intermediates = key.chain.slice(0, -1);
  return {
    pki: {
      caRootsData: Buffer.from(key.chain[key.chain.length - 1]!).toString('base64'),
      ...(intermediates.length ? { caIntermediatesData: Buffer.from(intermediates.join('')).toString('base64') } : {}),
      ...subject,
    },
    notAfter: new Date(leaf.validTo).toISOString(),
  };
}

const signedIdentity = (rule: PolicyRule) => ({ type: rule.identity === 'repository' ? 'matchRepository' : 'matchRepoDigestOrExact' });

/** The key's requirement: `pki` when `trust` has one, else `keyData` (+ the Rekor key when containers/image can check its entries). */
export function sigstoreSigned(rule: PolicyRule, key: PolicyKey, trust: PkiTrust = { why: 'keyData asked for' }): Record<string, unknown> {
  if ('pki' in trust) return { type: 'sigstoreSigned', pki: trust.pki, signedIdentity: signedIdentity(rule) };
  return {
    type: 'sigstoreSigned',
    keyData: pemBase64(key.pem),
    ...(containersChecksLog(rule, key) ? { rekorPublicKeyData: pemBase64(rule.rekor!.publicKeyPem!) } : {}),
    signedIdentity: signedIdentity(rule),
  };
}

export const containersExporter: VerifierExporter = {
  id: 'containers',
  title: 'containers/image policy.json + registries.d (CRI-O, Podman, skopeo)',
  export(input: PolicyInput): ExportResult {
    const { scoped, notes } = scopedRules(input.rules, 'containers');
    const docker: Record<string, unknown[]> = {};
    const keydata: Record<string, unknown[]> = {};
    const attachments: Record<string, { 'use-sigstore-attachments': true }> = {};
    const pkiKeys = new Set<string>();
    const noted = new Set<number>();
    let defaultDocker = false;
    for (const s of scoped) {
      const first = !noted.has(s.rule.index);
      noted.add(s.rule.index);
      const tagNote = first ? tagFilterNote(s.rule, 'containers') : undefined;
      if (tagNote) notes.push(tagNote);
      if (first && s.rule.rekor && !s.rule.rekor.publicKeyPem) {
        notes.push(`containers: ${s.rule.match}: Rekor is on but no Rekor public key is known, so policy.json does not check the log`);
      }
      const trusts = s.rule.keys.map((k) => pkiTrust(k));
      docker[s.scope] = s.rule.keys.map((k, i) => sigstoreSigned(s.rule, k, trusts[i]));
      keydata[s.scope] = s.rule.keys.map((k) => sigstoreSigned(s.rule, k));
      if (first) {
        s.rule.keys.forEach((k, i) => {
          const t = trusts[i]!;
          if ('pki' in t) {
            pkiKeys.add(k.name);
            const subject = t.pki.subjectEmail ? `subjectEmail ${t.pki.subjectEmail}` : `subjectHostname ${t.pki.subjectHostname}`;
            notes.push(
              `containers: ${ruleLabel(s.rule)}: key ${k.name} has a certificate chain: policy.json trusts its CA (pki, containers/image 5.34.1+) with ${subject}, so any code-signing certificate that CA issues to that subject is accepted, not only this key`,
              `containers: ${ruleLabel(s.rule)}: key ${k.name}: pki checks the certificate chain at pull time (no Rekor, no timestamp): after the certificate expires (${t.notAfter}) pulls are refused until signet re-signs with a renewed certificate`,
            );
            if (s.rule.rekor?.publicKeyPem)
              notes.push(`containers: ${ruleLabel(s.rule)}: key ${k.name}: the pki trust takes no Rekor key, so policy.json does not check its log entries`);
          } else if (k.certificate) {
            notes.push(`containers: ${ruleLabel(s.rule)}: key ${k.name} has a certificate but keeps keyData: ${t.why}`);
            notes.push(...containersLogNote({ ...s.rule, keys: [k] }, 'containers', 'keyData + rekorPublicKeyData', 'policy.json'));
          }
        });
      }
      // registries.d has no *.domain scopes and no "" scope: default-docker covers those.
      if (s.scope === '' || s.scope.startsWith('*.')) defaultDocker = true;
      else attachments[s.scope] = { 'use-sigstore-attachments': true };
    }
    if (scoped.length === 0) return { documents: [], notes: [...notes, 'containers: the config has no rules: nothing to verify'] };
    notes.push(
      'containers: policy.json keeps "default": insecureAcceptAnything so images signet does not sign still run; change it to reject once every registry you pull from is covered',
      'containers: registries.d: a more specific scope in another file without use-sigstore-attachments turns attachments off for it, and two files may not configure the same scope',
    );
    if (pkiKeys.size) {
      notes.push(
        `containers: policy.json uses the pki trust (keys ${[...pkiKeys].join(', ')}), which containers/image before 5.34.1 refuses, policy and all ("Unknown key \\"pki\\""): on such hosts install ${KEYDATA_POLICY_FILE} as /etc/containers/policy.json instead (keyData for those keys: the key itself is trusted, not its CA, and its log is not checked)`,
      );
    }
    if (input.rules.some((r) => r.identity === 'tag')) {
      notes.push(
        'containers: identity "tag" rules use matchRepoDigestOrExact: a pull by digest or by the pushed tag verifies; a pull by any other tag of the same image does not',
      );
    }
    const registriesD: Record<string, unknown> = {};
    if (defaultDocker) registriesD['default-docker'] = { 'use-sigstore-attachments': true };
    if (Object.keys(attachments).length) registriesD['docker'] = attachments;
    const policyOf = (d: Record<string, unknown[]>) => ({ default: [{ type: 'insecureAcceptAnything' }], transports: { docker: d } });
    return {
      notes,
      documents: [
        { file: 'policy.json', format: 'json', content: policyOf(docker) },
        ...(pkiKeys.size ? [{ file: KEYDATA_POLICY_FILE, format: 'json' as const, content: policyOf(keydata) }] : []),
        {
          file: 'registries.d/signet.yaml',
          format: 'yaml',
          comments: [
            'Generated by `signet policy export --for containers`: read sigstore attachments (the cosign',
            '.sig tags signet writes) for every scope policy.json verifies. Install as',
            '/etc/containers/registries.d/signet.yaml next to /etc/containers/policy.json.',
          ],
          content: registriesD,
        },
      ],
    };
  },
};
