/**
 * A rule's `annotations:` go into the simple-signing payload's `optional` section (what
 * `cosign sign -a k=v` writes, matched by `cosign verify -a k=v` and Kyverno `annotations:`) and
 * into a sigstore bundle statement's subject annotations. Values are templates over the push:
 *
 *   ${registry} ${repository} ${tag} ${digest} ${pusher}
 *
 * `$${` writes a literal `${`. The config file's environment expansion reads only `${env.VAR}`
 * here (src/config/env.ts), so a push field never comes from the environment. An annotation
 * whose template names a field this push does not have (no tag for a push by digest, no pusher
 * in the webhook, or one its integration cannot vouch for: src/config/rules.ts pusherPolicy) is
 * left out rather than written empty. Values stay strings: cosign, Kyverno and containers/image compare strings, and
 * containers/image requires `timestamp` to be an integer, so that key is refused.
 */

export const ANNOTATION_FIELDS = ['registry', 'repository', 'tag', 'digest', 'pusher'] as const;
export type AnnotationField = (typeof ANNOTATION_FIELDS)[number];
export type AnnotationValues = Partial<Record<AnnotationField, string>>;

const PLACEHOLDER = /\$\$\{|\$\{([^}]*)\}/g;
/** Keys: what cosign -a accepts in practice, kept to printable ASCII without '='. */
const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._\-/:]{0,252}$/;
/** containers/image: optional.timestamp must be an integer, optional.creator a string. */
const RESERVED_KEYS = new Set(['timestamp']);

/** Problems with an `annotations:` map, as messages keyed by annotation key ('' for the map). */
export function checkAnnotationTemplates(annotations: Readonly<Record<string, string>>): { key: string; message: string }[] {
  const problems: { key: string; message: string }[] = [];
  for (const [k, v] of Object.entries(annotations)) {
    if (!KEY_RE.test(k)) problems.push({ key: k, message: `annotation key "${k.slice(0, 80)}" must be letters, digits and . _ - / : (at most 253)` });
    if (RESERVED_KEYS.has(k))
      problems.push({ key: k, message: `annotation key "${k}" is reserved: containers/image requires optional.timestamp to be an integer` });
    for (const m of v.matchAll(PLACEHOLDER)) {
      if (m[0] === '$${') continue;
      const field = m[1]!;
      if ((ANNOTATION_FIELDS as readonly string[]).includes(field)) continue;
      const withDefault = /^([A-Za-z_][A-Za-z0-9_]*):-/.exec(field);
      if (withDefault && (ANNOTATION_FIELDS as readonly string[]).includes(withDefault[1]!)) {
        problems.push({ key: k, message: `\${${field.slice(0, 40)}}: push fields take no default (an annotation naming a field the push lacks is left out)` });
      } else {
        const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(field)?.[0];
        const hint = name ? `; an environment variable is written \${env.${name}} here` : '';
        problems.push({ key: k, message: `unknown field \${${field.slice(0, 40)}} (known: ${ANNOTATION_FIELDS.map((f) => `\${${f}}`).join(' ')}${hint})` });
      }
    }
    const stray = v.replace(PLACEHOLDER, '');
    if (stray.includes('${')) problems.push({ key: k, message: 'unterminated ${ in annotation value' });
  }
  return problems;
}

/** Expand the templates for one push; annotations naming a missing field are omitted. */
export function expandAnnotations(templates: Readonly<Record<string, string>> | undefined, values: AnnotationValues): Record<string, string> | undefined {
  if (!templates) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(templates)) {
    let missing = false;
    const expanded = v.replace(PLACEHOLDER, (all, field: string | undefined) => {
      if (all === '$${') return '${';
      const value = values[field as AnnotationField];
      if (value === undefined || value === '') missing = true;
      return value ?? '';
    });
    if (!missing) out[k] = expanded;
  }
  return Object.keys(out).length ? out : undefined;
}
