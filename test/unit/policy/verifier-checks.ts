/**
 * Everything the verifiers check beyond the CRD's openAPIV3Schema, translated by hand from their
 * sources (fixtures README names each file):
 *  - the CEL rules (x-kubernetes-validations) met on the paths signet's documents use;
 *  - the admission-time Go validation of Kyverno and policy-controller objects;
 *  - containers/image policy.json and registries.d, which have no machine-readable schema: a
 *    strict zod schema written from docs/containers-policy.json.5.md and containers-registries.d.5.md.
 */
import { createPublicKey } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { loadCrd, validateObject, type CelRule, type Crd } from './crd-validator.js';

export const SCHEMAS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/policy-schemas');

// ---- CEL rules (openshift/api config/v1 image policy CRDs) ----

const has = (o: any, k: string) => o !== null && typeof o === 'object' && k in o;
const domainOrLocalhost =
  '((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+(?::[0-9]+)?)|(localhost(?::[0-9]+)?)';
const path_ = '(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?';
const repoRe = new RegExp(`^(${domainOrLocalhost})${path_}$`);
// [[:xdigit:]] (RE2) is [0-9A-Fa-f]
const scopeRe = new RegExp(
  `^(((${domainOrLocalhost})${path_}))(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}))?$`,
);
const wildcardScope = /^\*(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+$/;

/** Keys: the rule text exactly as in the CRD (JSON-quoted copies of the fixture's strings). */
export const openshiftCel: Record<string, CelRule> = Object.fromEntries([
  [
    "has(self.policyType) && self.policyType == 'PKI' ? has(self.pki) : !has(self.pki)",
    ({ self }) => (self.policyType === 'PKI' ? has(self, 'pki') : !has(self, 'pki')),
  ],
  [
    "has(self.policyType) && self.policyType == 'PublicKey' ? has(self.publicKey) : !has(self.publicKey)",
    ({ self }) => (self.policyType === 'PublicKey' ? has(self, 'publicKey') : !has(self, 'publicKey')),
  ],
  [
    "has(self.policyType) && self.policyType == 'FulcioCAWithRekor' ? has(self.fulcioCAWithRekor) : !has(self.fulcioCAWithRekor)",
    ({ self }) => (self.policyType === 'FulcioCAWithRekor' ? has(self, 'fulcioCAWithRekor') : !has(self, 'fulcioCAWithRekor')),
  ],
  ["string(self).startsWith('-----BEGIN PUBLIC KEY-----')", ({ self }) => self.startsWith('-----BEGIN PUBLIC KEY-----')],
  [
    "string(self).endsWith('-----END PUBLIC KEY-----\\n') || string(self).endsWith('-----END PUBLIC KEY-----')",
    ({ self }) => self.endsWith('-----END PUBLIC KEY-----\n') || self.endsWith('-----END PUBLIC KEY-----'),
  ],
  [
    "(has(self.matchPolicy) && self.matchPolicy == 'ExactRepository') ? has(self.exactRepository) : !has(self.exactRepository)",
    ({ self }) => (self.matchPolicy === 'ExactRepository' ? has(self, 'exactRepository') : !has(self, 'exactRepository')),
  ],
  [
    "(has(self.matchPolicy) && self.matchPolicy == 'RemapIdentity') ? has(self.remapIdentity) : !has(self.remapIdentity)",
    ({ self }) => (self.matchPolicy === 'RemapIdentity' ? has(self, 'remapIdentity') : !has(self, 'remapIdentity')),
  ],
  [
    "self.matches('.*:([\\\\w][\\\\w.-]{0,127})$')? self.matches('^(localhost:[0-9]+)$'): true",
    ({ self }) => (/.*:([\w][\w.-]{0,127})$/.test(self) ? /^(localhost:[0-9]+)$/.test(self) : true),
  ],
  [
    "self.matches('^(((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+(?::[0-9]+)?)|(localhost(?::[0-9]+)?))(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$')",
    ({ self }) => repoRe.test(self),
  ],
  [
    "size(self.split('/')[0].split('.')) == 1 ? self.split('/')[0].split('.')[0].split(':')[0] == 'localhost' : true",
    ({ self }) => {
      const host: string = self.split('/')[0];
      return host.split('.').length === 1 ? host.split('.')[0]!.split(':')[0] === 'localhost' : true;
    },
  ],
  [
    "self.contains('*') ? self.matches('^\\\\*(?:\\\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+$') : true",
    ({ self }) => (self.includes('*') ? wildcardScope.test(self) : true),
  ],
  [
    "!self.contains('*') ? self.matches('^((((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+(?::[0-9]+)?)|(localhost(?::[0-9]+)?))(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?)(?::([\\\\w][\\\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?$') : true",
    ({ self }) => (self.includes('*') ? true : scopeRe.test(self)),
  ],
] as [string, CelRule][]);

// ---- Kyverno admission checks (kyverno/kyverno api/kyverno/v1/image_verification_types.go Validate) ----

const signatureAlgorithms = new Set(['', 'sha224', 'sha256', 'sha384', 'sha512']);

function parsesAsPublicKey(pem: unknown): boolean {
  if (typeof pem !== 'string' || !pem.startsWith('-----BEGIN PUBLIC KEY-----')) return false;
  try {
    createPublicKey(pem);
    return true;
  } catch {
    return false;
  }
}

export function kyvernoSemantic(policy: any): string[] {
  const errs: string[] = [];
  for (const [ri, rule] of (policy.spec?.rules ?? []).entries()) {
    if (!rule.match?.any?.length && !rule.match?.all?.length && !rule.match?.resources) errs.push(`rules[${ri}]: match selects nothing`);
    for (const [vi, iv] of (rule.verifyImages ?? []).entries()) {
      const p = `rules[${ri}].verifyImages[${vi}]`;
      if (!iv.imageReferences?.length && !iv.image) errs.push(`${p}: An image reference is required`);
      if (iv.failureAction === 'Audit' && iv.mutateDigest) errs.push(`${p}: mutateDigest must be false for Audit`);
      for (const [ai, as] of (iv.attestors ?? []).entries()) {
        if (!as.entries?.length) errs.push(`${p}.attestors[${ai}]: An entry is required`);
        if (as.count !== undefined && as.count > as.entries.length) errs.push(`${p}.attestors[${ai}]: Count cannot exceed length of entries`);
        for (const [ei, e] of (as.entries ?? []).entries()) {
          const kinds = ['keys', 'certificates', 'keyless', 'attestor'].filter((k) => e[k] !== undefined);
          if (kinds.length !== 1) errs.push(`${p}.attestors[${ai}].entries[${ei}]: keys, certificates, keyless, or a nested attestor is required`);
          const k = e.keys;
          if (k) {
            if (!k.publicKeys && !k.kms && !k.secret) errs.push(`${p}...keys: A public key, kms key or secret is required`);
            if (k.publicKeys && !signatureAlgorithms.has(k.signatureAlgorithm ?? '')) errs.push(`${p}...keys: Invalid signature algorithm provided`);
            // Anything not starting with the PEM header is taken as a key *reference* (cpol/cosign/cosign.go).
            if (k.publicKeys && !parsesAsPublicKey(k.publicKeys)) errs.push(`${p}...keys.publicKeys: not one SPKI PEM public key`);
          }
        }
      }
    }
  }
  return errs;
}

// ---- policy-controller admission checks (sigstore/policy-controller pkg/apis/policy/v1beta1/clusterimagepolicy_validation.go) ----

const validGlob = /^[a-zA-Z0-9-_:/*.@]+$/;
const hashAlgorithms = new Set(['sha224', 'sha256', 'sha384', 'sha512']);

export function policyControllerSemantic(cip: any): string[] {
  const errs: string[] = [];
  const spec = cip.spec ?? {};
  if (!spec.images?.length) errs.push('spec.images: missing');
  for (const [i, im] of (spec.images ?? []).entries()) {
    if (!im.glob) errs.push(`spec.images[${i}].glob: missing`);
    else if (!validGlob.test(im.glob)) errs.push(`spec.images[${i}].glob: invalid glob ${im.glob}`);
  }
  if (spec.mode !== undefined && spec.mode !== 'enforce' && spec.mode !== 'warn') errs.push(`spec.mode: unsupported ${spec.mode}`);
  for (const [i, a] of (spec.authorities ?? []).entries()) {
    const kinds = ['key', 'keyless', 'static'].filter((k) => a[k] !== undefined);
    if (kinds.length !== 1) errs.push(`spec.authorities[${i}]: exactly one of key, keyless, static`);
    if (a.key) {
      const src = ['data', 'kms', 'secretRef'].filter((k) => a.key[k] !== undefined && a.key[k] !== '');
      if (src.length !== 1) errs.push(`spec.authorities[${i}].key: exactly one of data, kms, secretref`);
      if (a.key.hashAlgorithm !== undefined && !hashAlgorithms.has(a.key.hashAlgorithm)) errs.push(`spec.authorities[${i}].key.hashAlgorithm: invalid`);
      if (a.key.data !== undefined && !parsesAsPublicKey(a.key.data)) errs.push(`spec.authorities[${i}].key.data: invalid`);
    }
    if (a.signatureFormat === 'bundle' && a.key) errs.push(`spec.authorities[${i}]: when using the new bundle format, the authority must be keyless`);
  }
  return errs;
}

// ---- policy-controller TrustRoot (pkg/apis/policy/v1alpha1/trustroot_validation.go SigstoreKeys.Validate, and
// what the reconciler pkg/reconciler/trustroot/trustroot.go + pkg/apis/config/sigstore_keys.go parse) ----

const decodedPem = (b64: unknown): string | undefined =>
  typeof b64 === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(b64) ? Buffer.from(b64, 'base64').toString('utf8') : undefined;

export function trustRootSemantic(tr: any): string[] {
  const errs: string[] = [];
  const sk = tr.spec?.sigstoreKeys;
  const sources = ['repository', 'remote', 'sigstoreKeys'].filter((k) => tr.spec?.[k] !== undefined);
  if (sources.length !== 1) return [`spec: expected exactly one of repository, remote, sigstoreKeys (got ${sources.join(', ') || 'none'})`];
  if (!sk) return errs;
  if (!sk.certificateAuthorities?.length && !sk.timestampAuthorities?.length)
    errs.push('spec.sigstoreKeys: expected exactly one, got neither: certificateAuthority, timestampAuthorities');
  for (const [i, ca] of [...(sk.certificateAuthorities ?? []), ...(sk.timestampAuthorities ?? [])].entries()) {
    if (!ca.subject?.organization) errs.push(`authority ${i}: missing subject.organization`);
    if (!ca.subject?.commonName) errs.push(`authority ${i}: missing subject.commonName`);
    if (!ca.uri) errs.push(`authority ${i}: missing uri`);
    // DeserializeCertChain: PEM blocks only
    const pem = decodedPem(ca.certChain);
    if (!pem || !/^(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+$/.test(pem))
      errs.push(`authority ${i}: certChain is not base64 of PEM certificates`);
  }
  for (const [i, t] of [...(sk.tLogs ?? []).map((t: any) => ['tLogs', t]), ...(sk.ctLogs ?? []).map((t: any) => ['ctLogs', t])].entries()) {
    const [field, log] = t as [string, any];
    if (!log.baseURL) errs.push(`${field}[${i}]: missing baseURL`);
    // HashStringToHashAlgorithm: anything else is HASH_ALGORITHM_UNSPECIFIED
    if (!['sha-256', 'sha256', 'sha-384', 'sha384', 'sha-512', 'sha512'].includes(log.hashAlgorithm))
      errs.push(`${field}[${i}]: hashAlgorithm ${log.hashAlgorithm} unknown`);
    const pem = decodedPem(log.publicKey);
    if (!pem || !parsesAsPublicKey(pem)) errs.push(`${field}[${i}]: publicKey is not base64 of a PEM public key`);
    // the reconciler: "public key %d is not ecdsa.PublicKey" for tLogs
    else if (field === 'tLogs' && createPublicKey(pem).asymmetricKeyType !== 'ec') errs.push(`${field}[${i}]: publicKey is not ECDSA`);
  }
  return errs;
}

export function cosignWebhookSemantic(ck: any): string[] {
  // pkg/util/verify.go: sigs.LoadPublicKeyRaw on each entry; pod_webhook.go: any key suffices.
  return (ck.spec?.authorities?.key ?? []).flatMap((k: unknown, i: number) => (parsesAsPublicKey(k) ? [] : [`spec.authorities.key[${i}]: not a public key`]));
}

// ---- containers/image policy.json and registries.d (docs/*.5.md) ----

const identity = z.discriminatedUnion('type', [
  z.object({ type: z.literal('matchExact') }).strict(),
  z.object({ type: z.literal('matchRepoDigestOrExact') }).strict(),
  z.object({ type: z.literal('matchRepository') }).strict(),
  z.object({ type: z.literal('exactReference'), dockerReference: z.string() }).strict(),
  z.object({ type: z.literal('exactRepository'), dockerRepository: z.string() }).strict(),
  z.object({ type: z.literal('remapIdentity'), prefix: z.string(), signedPrefix: z.string() }).strict(),
]);

const base64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64');
const sigstoreSigned = z
  .object({
    type: z.literal('sigstoreSigned'),
    keyPath: z.string().optional(),
    keyPaths: z.array(z.string()).min(1).optional(),
    keyData: base64.optional(),
    keyDatas: z.array(base64).min(1).optional(),
    fulcio: z.record(z.string(), z.unknown()).optional(),
    pki: z.record(z.string(), z.unknown()).optional(),
    rekorPublicKeyPath: z.string().optional(),
    rekorPublicKeyPaths: z.array(z.string()).optional(),
    rekorPublicKeyData: base64.optional(),
    rekorPublicKeyDatas: z.array(base64).optional(),
    signedIdentity: identity.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const sources = ['keyPath', 'keyPaths', 'keyData', 'keyDatas', 'fulcio', 'pki'].filter((k) => (r as Record<string, unknown>)[k] !== undefined);
    if (sources.length !== 1)
      ctx.addIssue({ code: 'custom', message: `exactly one of keyPath(s), keyData(s), fulcio, pki (got ${sources.join(', ') || 'none'})` });
    const rekor = ['rekorPublicKeyPath', 'rekorPublicKeyPaths', 'rekorPublicKeyData', 'rekorPublicKeyDatas'].filter(
      (k) => (r as Record<string, unknown>)[k] !== undefined,
    );
    if (rekor.length > 1) ctx.addIssue({ code: 'custom', message: 'at most one rekorPublicKey* field' });
  });

const requirement = z.union([
  z.object({ type: z.literal('insecureAcceptAnything') }).strict(),
  z.object({ type: z.literal('reject') }).strict(),
  z.object({ type: z.literal('signedBy') }).passthrough(),
  z.object({ type: z.literal('signedBaseLayer') }).passthrough(),
  sigstoreSigned,
]);
const requirements = z.array(requirement).min(1);

/** Docker transport scope: "", *.domain, or host[:port][/path...][:tag|@digest] (docs "docker" section). */
const dockerScope = z
  .string()
  .refine(
    (s) =>
      s === '' ||
      /^\*(\.[A-Za-z0-9-]+)+$/.test(s) ||
      /^[A-Za-z0-9.-]+(:[0-9]+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})?$/.test(s),
    {
      message: 'not a docker transport scope',
    },
  );

export const policyJsonSchema = z
  .object({
    default: requirements,
    transports: z.record(z.string(), z.record(z.string(), requirements)).optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    for (const s of Object.keys(p.transports?.['docker'] ?? {})) {
      const r = dockerScope.safeParse(s);
      if (!r.success) ctx.addIssue({ code: 'custom', path: ['transports', 'docker', s], message: 'not a docker transport scope' });
    }
  });

const section = z
  .object({
    lookaside: z.string().optional(),
    'lookaside-staging': z.string().optional(),
    sigstore: z.string().optional(),
    'sigstore-staging': z.string().optional(),
    'use-sigstore-attachments': z.boolean().optional(),
  })
  .strict();
/** registries.d has no *.domain or "" scopes (docker/registries_d.go): only host[/path]. */
const registriesDScope = z.string().regex(/^[A-Za-z0-9.-]+(:[0-9]+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})?$/);
export const registriesDSchema = z.object({ 'default-docker': section.optional(), docker: z.record(registriesDScope, section).optional() }).strict();

/**
 * sigstore TrustedRoot in its proto3 JSON form (protobuf-specs protos/sigstore_trustroot.proto and
 * sigstore_common.proto: lowerCamelCase field names, bytes as standard base64, Timestamps as RFC
 * 3339 in UTC, enums by name), plus what sigstore-go's parser (pkg/root/trusted_root.go) demands:
 * the v0.1 media type, SHA2_256 logs, a log ID, a public key with raw bytes and validFor.start.
 */
const b64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/)
  .refine((v) => v.length % 4 === 0 && v.length > 0, 'not base64');
const timestamp = z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/, 'not an RFC 3339 UTC timestamp');
const timeRange = z.object({ start: timestamp, end: timestamp.optional() }).strict();
const tlogInstance = z
  .object({
    baseUrl: z.string().min(1),
    hashAlgorithm: z.literal('SHA2_256'),
    publicKey: z
      .object({ rawBytes: b64, keyDetails: z.enum(['PKIX_ECDSA_P256_SHA_256', 'PKIX_ECDSA_P384_SHA_384', 'PKIX_ECDSA_P521_SHA_512']), validFor: timeRange })
      .strict(),
    logId: z.object({ keyId: b64 }).strict(),
    checkpointKeyId: z.object({ keyId: b64 }).strict().optional(),
    operator: z.string().optional(),
  })
  .strict();
const certificateAuthority = z
  .object({
    subject: z.object({ organization: z.string().optional(), commonName: z.string().optional() }).strict(),
    uri: z.string().optional(),
    certChain: z.object({ certificates: z.array(z.object({ rawBytes: b64 }).strict()).min(1) }).strict(),
    validFor: timeRange,
    operator: z.string().optional(),
  })
  .strict();
export const trustedRootSchema = z
  .object({
    mediaType: z.literal('application/vnd.dev.sigstore.trustedroot+json;version=0.1'),
    tlogs: z.array(tlogInstance).optional(),
    certificateAuthorities: z.array(certificateAuthority).optional(),
    ctlogs: z.array(tlogInstance).optional(),
    timestampAuthorities: z.array(certificateAuthority).optional(),
  })
  .strict();

// ---- the CRDs ----

let cache: Record<string, Crd> | undefined;
export function crds(): Record<string, Crd> {
  cache ??= {
    kyverno: loadCrd(path.join(SCHEMAS, 'kyverno.io_clusterpolicies.yaml')),
    policyController: loadCrd(path.join(SCHEMAS, 'policy.sigstore.dev_clusterimagepolicies.yaml')),
    policyControllerTrustRoot: loadCrd(path.join(SCHEMAS, 'policy.sigstore.dev_trustroots.yaml')),
    openshiftCluster: loadCrd(path.join(SCHEMAS, 'config.openshift.io_clusterimagepolicies.crd.yaml')),
    openshiftNamespaced: loadCrd(path.join(SCHEMAS, 'config.openshift.io_imagepolicies.crd.yaml')),
    cosignWebhook: loadCrd(path.join(SCHEMAS, 'kubeservice.cn_cosignkeys.yaml')),
  };
  return cache;
}

/** Every problem the verifier's API server / admission webhook would report for one object. */
export function checkKubernetesObject(obj: any): string[] {
  const c = crds();
  switch (`${obj?.apiVersion?.split('/')[0]}/${obj?.kind}`) {
    case 'kyverno.io/ClusterPolicy':
      return [...validateObject(c.kyverno, obj).errors, ...kyvernoSemantic(obj)];
    case 'policy.sigstore.dev/ClusterImagePolicy':
      return [...validateObject(c.policyController, obj).errors, ...policyControllerSemantic(obj)];
    case 'policy.sigstore.dev/TrustRoot':
      return [...validateObject(c.policyControllerTrustRoot, obj).errors, ...trustRootSemantic(obj)];
    case 'config.openshift.io/ClusterImagePolicy':
      return validateObject(c.openshiftCluster, obj, openshiftCel).errors;
    case 'config.openshift.io/ImagePolicy':
      return validateObject(c.openshiftNamespaced, obj, openshiftCel).errors;
    case 'kubeservice.cn/CosignKey':
      return [...validateObject(c.cosignWebhook, obj).errors, ...cosignWebhookSemantic(obj)];
    default:
      return [`no schema for ${obj?.apiVersion} ${obj?.kind}`];
  }
}
