/**
 * A small structural validator for Kubernetes objects against a CRD's openAPIV3Schema, with the
 * semantics the API server applies on `kubectl apply` (strict field validation): unknown fields
 * are errors unless x-kubernetes-preserve-unknown-fields; type, enum, required, pattern,
 * min/max(Length|Items), format byte/date-time, list-type set/map, anyOf/oneOf/allOf/not,
 * int-or-string, nullable; metadata checked as ObjectMeta (name, namespace, labels, annotations).
 *
 * CEL rules (x-kubernetes-validations) cannot be run here: each rule met on a path the document
 * uses must be in `celRules` (a hand translation, keyed by the exact rule text). An unknown rule
 * is an error, so a schema update that adds one fails the test instead of passing silently.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

export type Schema = Record<string, any>;

export interface CelContext {
  /** The value under validation, with format: byte already decoded to a string. */
  self: any;
  /** The raw value as written. */
  raw: any;
}

export type CelRule = (c: CelContext) => boolean;

export interface Crd {
  group: string;
  kind: string;
  scope: 'Namespaced' | 'Cluster';
  versions: Map<string, Schema>;
}

const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function loadCrd(file: string): Crd {
  // uniqueKeys: false: kubeservice's CRD repeats two keys (with equal values).
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { uniqueKeys: false })
    .map((d) => d.toJS())
    .filter(Boolean);
  const crd = docs.find((d: any) => d.kind === 'CustomResourceDefinition');
  if (!crd) throw new Error(`${file}: no CustomResourceDefinition`);
  return {
    group: crd.spec.group,
    kind: crd.spec.names.kind,
    scope: crd.spec.scope,
    versions: new Map(crd.spec.versions.filter((v: any) => v.served).map((v: any) => [v.name, v.schema.openAPIV3Schema])),
  };
}

export interface ValidationResult {
  errors: string[];
  /** CEL rules evaluated (rule text), for tests that want to see them exercised. */
  celChecked: string[];
}

export function validateObject(crd: Crd, obj: any, celRules: Record<string, CelRule> = {}): ValidationResult {
  const errors: string[] = [];
  const celChecked: string[] = [];
  const [group, version] = String(obj?.apiVersion ?? '').split('/');
  if (group !== crd.group || !version) errors.push(`apiVersion "${obj?.apiVersion}" is not in group ${crd.group}`);
  if (obj?.kind !== crd.kind) errors.push(`kind "${obj?.kind}" is not ${crd.kind}`);
  const schema = version ? crd.versions.get(version) : undefined;
  if (!schema) {
    errors.push(`version "${version}" is not served by the CRD (served: ${[...crd.versions.keys()].join(', ')})`);
    return { errors, celChecked };
  }
  checkMetadata(obj?.metadata, crd.scope, errors);
  const { metadata: _m, apiVersion: _a, kind: _k, ...rest } = obj ?? {};
  const rootSchema = { ...schema, properties: { ...schema.properties } };
  delete rootSchema.properties.metadata;
  walk(rootSchema, rest, '', { errors, celChecked, celRules });
  return { errors, celChecked };
}

function checkMetadata(m: any, scope: Crd['scope'], errors: string[]): void {
  if (!m || typeof m !== 'object') {
    errors.push('metadata: required');
    return;
  }
  if (typeof m.name !== 'string' || m.name.length > 253 || !dnsSubdomain.test(m.name)) errors.push(`metadata.name "${m.name}" is not a DNS-1123 subdomain`);
  if (scope === 'Namespaced' && m.namespace !== undefined && (typeof m.namespace !== 'string' || m.namespace.length > 63 || !dnsLabel.test(m.namespace))) {
    errors.push(`metadata.namespace "${m.namespace}" is not a DNS-1123 label`);
  }
  if (scope === 'Cluster' && m.namespace !== undefined) errors.push('metadata.namespace: a cluster-scoped object has no namespace');
  for (const k of ['labels', 'annotations']) {
    if (m[k] === undefined) continue;
    if (typeof m[k] !== 'object' || Object.values(m[k]).some((v) => typeof v !== 'string')) errors.push(`metadata.${k}: must map strings to strings`);
  }
  const known = new Set(['name', 'namespace', 'labels', 'annotations', 'generateName', 'finalizers', 'ownerReferences']);
  for (const k of Object.keys(m)) if (!known.has(k)) errors.push(`metadata.${k}: not expected in a manifest`);
}

interface Ctx {
  errors: string[];
  celChecked: string[];
  celRules: Record<string, CelRule>;
  /** Inside anyOf/oneOf/allOf/not: value checks only (structural schemas prune by the outer properties). */
  branch?: boolean;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function walk(s: Schema, v: any, path: string, ctx: Ctx): void {
  const at = path || '(root)';
  const err = (m: string) => ctx.errors.push(`${at}: ${m}`);
  if (v === null) {
    if (!s.nullable) err('null is not allowed');
    return;
  }
  for (const sub of s.allOf ?? []) walk(sub, v, path, { ...ctx, branch: true });
  if (s.anyOf && !s.anyOf.some((sub: Schema) => trial(sub, v, path, ctx))) err('matches none of anyOf');
  if (s.oneOf && s.oneOf.filter((sub: Schema) => trial(sub, v, path, ctx)).length !== 1) err('must match exactly one of oneOf');
  if (s.not && trial(s.not, v, path, ctx)) err('matches a forbidden (not) schema');

  if (s['x-kubernetes-int-or-string']) {
    if (!(typeof v === 'string' || Number.isInteger(v))) err('must be an integer or a string');
  } else if (s.type) {
    const t = typeOf(v);
    const ok = s.type === t || (s.type === 'number' && t === 'integer');
    if (!ok) {
      err(`must be ${s.type}, is ${t}`);
      return;
    }
  }
  if (s.enum && !s.enum.some((e: unknown) => e === v)) err(`must be one of ${JSON.stringify(s.enum)}, is ${JSON.stringify(v)}`);

  let decoded: any = v;
  if (typeof v === 'string') {
    const len = [...v].length;
    if (s.maxLength !== undefined && len > s.maxLength) err(`longer than ${s.maxLength}`);
    if (s.minLength !== undefined && len < s.minLength) err(`shorter than ${s.minLength}`);
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) err(`does not match ${s.pattern}`);
    if (s.format === 'byte') {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) err('format byte: not base64');
      decoded = Buffer.from(v, 'base64').toString('utf8');
    }
    if (s.format === 'date-time' && Number.isNaN(Date.parse(v))) err('format date-time: not a timestamp');
  }
  if (typeof v === 'number') {
    if (s.minimum !== undefined && v < s.minimum) err(`below minimum ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) err(`above maximum ${s.maximum}`);
  }
  if (Array.isArray(v)) {
    if (s.maxItems !== undefined && v.length > s.maxItems) err(`more than ${s.maxItems} items`);
    if (s.minItems !== undefined && v.length < s.minItems) err(`fewer than ${s.minItems} items`);
    if (s['x-kubernetes-list-type'] === 'set' && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) err('list-type set: duplicate items');
    if (s['x-kubernetes-list-type'] === 'map') {
      const keys = v.map((x) => JSON.stringify((s['x-kubernetes-list-map-keys'] ?? []).map((k: string) => x?.[k])));
      if (new Set(keys).size !== keys.length) err('list-type map: duplicate keys');
    }
    if (s.items) v.forEach((x, i) => walk(s.items, x, `${path}[${i}]`, ctx));
  }
  if (typeOf(v) === 'object') {
    for (const r of s.required ?? []) if (!(r in v)) err(`missing required field "${r}"`);
    const props: Record<string, Schema> = s.properties ?? {};
    for (const [k, x] of Object.entries(v)) {
      const sub = props[k];
      const child = path ? `${path}.${k}` : k;
      if (sub) walk(sub, x, child, ctx);
      else if (s.additionalProperties && typeof s.additionalProperties === 'object') walk(s.additionalProperties, x, child, ctx);
      else if (s.additionalProperties === true || s['x-kubernetes-preserve-unknown-fields'] || ctx.branch) continue;
      else ctx.errors.push(`${child}: unknown field`);
    }
  }
  for (const rule of s['x-kubernetes-validations'] ?? []) {
    const fn = ctx.celRules[rule.rule];
    if (!fn) {
      err(`CEL rule not translated for this test (add it to the table): ${rule.rule}`);
      continue;
    }
    ctx.celChecked.push(rule.rule);
    if (!fn({ self: decoded, raw: v })) err(`CEL: ${rule.message ?? rule.rule}`);
  }
}

function trial(s: Schema, v: any, path: string, ctx: Ctx): boolean {
  const sub: Ctx = { errors: [], celChecked: ctx.celChecked, celRules: ctx.celRules, branch: true };
  walk(s, v, path, sub);
  return sub.errors.length === 0;
}
