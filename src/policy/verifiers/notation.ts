/**
 * Notation (Notary Project) verifier config: `trustpolicy.json` (trust policy version 1.0) and the
 * trust store layout under `truststore/x509/{ca,tsa}/<name>/`, i.e. what goes into
 * `$XDG_CONFIG_HOME/notation/` (or `notation policy import trustpolicy.json` plus
 * `notation cert add --type ca --store <name> <file>`). The directory is `truststore` (what
 * notation-go's dir package and `notation cert add` use), not the specification's illustrative
 * `trust-store`: notation 1.3 finds nothing under `trust-store/`. Read by the `notation` CLI, Ratify and
 * containerd's Notation verifier plugins.
 *
 * One statement per signet rule that writes the `notation` format, `signatureVerification: strict`:
 *   - trustStores: `ca:<store>` for each distinct root of the rule's keys' chains
 *     (PolicyKey.chain, root last), `tsa:<store>` for the root of the rule's timestamp authority;
 *   - trustedIdentities: `x509.subject: <the leaf's subject>` per key. notation-go parses both the
 *     identity and the signing certificate's subject and requires C, ST and O, unique attribute
 *     types and no multi-valued RDNs (notation-go verifier/trustpolicy, pkix.ParseDistinguishedName;
 *     trust-store-trust-policy.md "Trusted Identities Constraints"); a leaf that does not meet
 *     this can only be trusted with `*` (any certificate under the rule's roots), which a note says;
 *   - registryScopes: Notation scopes are exact repository URIs or the one global `*` (no globs;
 *     an exact scope beats `*`). A rule's literal repositories become exact scopes; a glob becomes
 *     `*`, the only scope that covers every image the rule signs (fail closed: images the glob
 *     does not match then need the same signatures). There can be only one `*` statement, so
 *     several glob rules share it (their stores and identities together) with a note.
 * Spec: notaryproject/specifications specs/trust-store-trust-policy.md.
 */
import { createHash, X509Certificate } from 'node:crypto';
import {
  PolicyExportError,
  chainRoot,
  ruleLabel,
  type ExportResult,
  type PolicyDocument,
  type PolicyInput,
  type PolicyKey,
  type PolicyRule,
  type VerifierExporter,
  tagFilterNote,
} from '../model.js';
import { expandBraces, mayOverlap, parseAlternative } from '../patterns.js';

/** The rule's images carry Notary Project signatures. */
export const writesNotation = (r: PolicyRule): boolean => Boolean(r.formats?.includes('notation'));

/** Attribute types Go's pkix.Name.String() prints by name (what notation-go compares the identity with). */
const GO_NAMED = new Set(['C', 'ST', 'L', 'O', 'OU', 'CN']);
const MANDATORY = ['C', 'ST', 'O'];

export interface TrustStore {
  /** Named store (directory name): [a-zA-Z0-9_.-]+ */
  name: string;
  type: 'ca' | 'tsa';
  /** PEM of the root certificate. */
  pem: string;
  /** The certificate's file name inside the store. */
  file: string;
}

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '') || 'root';

/** A named store for the root `pem` (distinct roots get distinct names: the slug of the subject plus a fingerprint prefix). */
function storeFor(stores: Map<string, TrustStore>, prefix: string, type: 'ca' | 'tsa', pem: string): TrustStore {
  const cert = new X509Certificate(pem);
  const fp = createHash('sha256').update(cert.raw).digest('hex');
  const key = `${type}:${fp}`;
  const known = stores.get(key);
  if (known) return known;
  const { commonName, organization } = chainRoot([pem]);
  const base = slug(commonName ?? organization ?? 'root');
  const store: TrustStore = { name: `${slug(prefix)}-${base}-${fp.slice(0, 8)}`, type, pem: cert.toString(), file: `${base}.crt` };
  stores.set(key, store);
  return store;
}

/**
 * `x509.subject: ...` for a leaf whose subject notation-go can match, else the reason it cannot.
 * Node prints the subject one attribute per line, RFC 4514-escaped (`\,` `\;` `\\`, edge spaces),
 * which is the escaping the trust policy specification asks for.
 */
export function subjectIdentity(leafPem: string): { identity: string } | { problem: string } {
  const lines = new X509Certificate(leafPem).subject.split('\n').filter(Boolean);
  const attrs: [string, string][] = [];
  for (const line of lines) {
    const eq = line.indexOf('=');
    const type = line.slice(0, eq);
    if (line.slice(eq + 1).match(/(^|[^\\])\+/)) return { problem: 'its subject has a multi-valued RDN' };
    if (!GO_NAMED.has(type)) continue; // a partial list of the subject's attributes is allowed
    if (attrs.some(([t]) => t === type)) return { problem: `its subject has ${type} more than once` };
    attrs.push([type, line.slice(eq + 1)]);
  }
  const missing = MANDATORY.filter((m) => !attrs.some(([t]) => t === m));
  if (missing.length)
    return { problem: `its subject lacks ${missing.join(', ')} (Notation requires C, ST and O in the signing certificate's subject to match it)` };
  return { identity: `x509.subject: ${attrs.map(([t, v]) => `${t}=${v}`).join(', ')}` };
}

/** Parsed x509.subject identity, for the overlap check notation-go applies (one a subset of another). */
function dnMap(identity: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of identity.replace(/^x509\.subject:\s*/, '').split(/(?<!\\), /)) {
    const eq = part.indexOf('=');
    m.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return m;
}
const subset = (a: Map<string, string>, b: Map<string, string>) => [...a].every(([k, v]) => b.get(k) === v);

/** The distinct identities of `keys`, without overlaps (a more general identity covers a more specific one); `*` when one key needs it. */
function identitiesOf(keys: readonly PolicyKey[], label: string, notes: string[]): string[] {
  const ids: string[] = [];
  let wildcard = false;
  for (const k of keys) {
    const r = subjectIdentity(k.certificate!);
    if ('problem' in r) {
      wildcard = true;
      notes.push(
        `notation: ${label}: key ${k.name}'s certificate cannot be named in trustedIdentities (${r.problem}): the statement trusts "*", any certificate under its trust stores; issue the certificate with C, ST and O in its subject (signet keys csr --subject "CN=...,O=...,ST=...,C=...") to pin it`,
      );
    } else if (!ids.includes(r.identity)) ids.push(r.identity);
  }
  if (wildcard) return ['*'];
  const maps = ids.map(dnMap);
  return ids.filter((_, i) => !maps.some((m, j) => j !== i && subset(m, maps[i]!) && (!subset(maps[i]!, m) || j < i)));
}

interface Statement {
  name: string;
  scopes: string[];
  rules: PolicyRule[];
  stores: TrustStore[];
  identities: string[];
}

/** The rule's literal repositories (exact scopes) and whether some part of its glob is not literal. */
function scopesOf(match: string): { exact: string[]; glob: boolean } {
  const exact: string[] = [];
  let glob = false;
  for (const alt of expandBraces(match)) {
    const segs = parseAlternative(alt);
    const literal = segs.every((s) => s.kind === 'parts' && s.parts.every((p) => p.kind === 'lit'));
    if (literal && segs.length >= 2) exact.push(alt);
    else glob = true;
  }
  return { exact, glob };
}

export const notationExporter: VerifierExporter = {
  id: 'notation',
  title: 'Notation (Notary Project) trustpolicy.json + trust store (notation CLI, Ratify, containerd)',
  export(input: PolicyInput): ExportResult {
    const prefix = input.name ?? 'signet';
    const notes: string[] = [];
    const rules = input.rules.filter(writesNotation);
    if (rules.length === 0) return { documents: [], notes: ['notation: no rule writes the notation format (rules[].formats): nothing for Notation to verify'] };

    const stores = new Map<string, TrustStore>();
    const statements: Statement[] = [];
    const exactOwner = new Map<string, Statement>();
    let global: Statement | undefined;

    for (const rule of rules) {
      const label = ruleLabel(rule);
      const tagNote = tagFilterNote(rule, 'notation');
      if (tagNote) notes.push(tagNote);
      const ruleStores: TrustStore[] = [];
      for (const k of rule.keys) {
        if (!k.certificate || !k.chain?.length) {
          throw new PolicyExportError(
            `notation: ${label}: key ${k.name} has no certificate chain (keys[].certificate and keys[].chain): Notation verifies X.509 signatures only; get a code-signing certificate for the key (signet keys csr ${k.name} --subject ...) and configure it with its chain`,
          );
        }
        const s = storeFor(stores, prefix, 'ca', chainRoot(k.chain).root.toString());
        if (!ruleStores.includes(s)) ruleStores.push(s);
      }
      if (rule.timestamp) {
        const blocks = rule.timestamp.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
        if (blocks.length) ruleStores.push(storeFor(stores, prefix, 'tsa', blocks[blocks.length - 1]!));
      }
      const identities = identitiesOf(rule.keys, label, notes);
      if (rule.keys.length > 1) {
        notes.push(
          `notation: ${label} has ${rule.keys.length} keys: notation verify accepts an image when ONE signature verifies under the statement, so it does not require every key's signature the way signet signs`,
        );
      }

      const { exact, glob } = scopesOf(rule.match);
      const mine = exact.filter((scope) => {
        const owner = exactOwner.get(scope);
        if (owner) notes.push(`notation: ${label} never applies to ${scope}: ${ruleLabel(owner.rules[0]!)} comes first and covers it`);
        return !owner;
      });
      if (mine.length) {
        const st: Statement = { name: `${slug(prefix)}-rule-${rule.index}`, scopes: mine, rules: [rule], stores: ruleStores, identities };
        statements.push(st);
        for (const s of mine) exactOwner.set(s, st);
      }
      if (glob) {
        notes.push(
          `notation: ${label}: registryScopes are exact repositories or "*" (no globs): "${rule.match}" becomes the global scope "*", which covers every repository no exact scope names; list the repositories literally (for example {host/a,host/b}) to scope it exactly`,
        );
        if (!global) {
          global = { name: `${slug(prefix)}-global`, scopes: ['*'], rules: [rule], stores: [...ruleStores], identities };
        } else {
          global.rules.push(rule);
          for (const s of ruleStores) if (!global.stores.includes(s)) global.stores.push(s);
          const merged = identitiesOf(
            global.rules.flatMap((r) => r.keys),
            `${ruleLabel(global.rules[0]!)} + ${label}`,
            [],
          );
          global.identities = merged;
          notes.push(
            `notation: ${label} and ${global.rules.slice(0, -1).map(ruleLabel).join(', ')} all need the one global scope "*": it trusts the keys of all of them together, so Notation cannot keep their keys apart the way signet's rules do`,
          );
        }
      }
    }
    if (global) statements.push(global);

    // Exact scopes beat "*" in Notation; the first matching rule wins in signet.
    if (global) {
      for (const st of statements) {
        if (st === global) continue;
        const r = st.rules[0]!;
        const earlierGlob = global.rules.find((g) => g.index < r.index && st.scopes.some((s) => mayOverlap(g.match, s)));
        if (earlierGlob) {
          notes.push(
            `notation: ${ruleLabel(r)}'s exact scope decides ${st.scopes.join(', ')} in Notation, but signet signs those images by the earlier ${ruleLabel(earlierGlob)}: reorder the rules or check that this is what you want`,
          );
        }
      }
    }
    const others = input.rules.filter((r) => !writesNotation(r));
    if (global && others.length) {
      notes.push(
        `notation: ${others.map(ruleLabel).join(', ')} write${others.length === 1 ? 's' : ''} no notation signatures: under the global scope "*" notation verify refuses their images; add notation to their formats or give them a statement with level skip if Notation should not check them`,
      );
    }
    if (input.rules.some((r) => writesNotation(r) && r.timestamp)) {
      notes.push("notation: the tsa trust stores hold the timestamp authorities' roots; notation verifies a countersignature when the signature carries one");
    }

    const policy = {
      version: '1.0',
      trustPolicies: statements.map((st) => ({
        name: st.name,
        registryScopes: st.scopes,
        signatureVerification: { level: 'strict' },
        trustStores: st.stores.map((s) => `${s.type}:${s.name}`),
        trustedIdentities: st.identities,
      })),
    };
    const documents: PolicyDocument[] = [{ file: 'trustpolicy.json', format: 'json', content: policy }];
    for (const s of stores.values()) documents.push({ file: `truststore/x509/${s.type}/${s.name}/${s.file}`, content: {}, text: s.pem });
    return { notes, documents };
  },
};
