/**
 * "did you mean" for an unknown config field: the fields the schema allows at that place (found
 * by walking the zod schema along the YAML path), and the closest one by edit distance.
 * Best effort: where the walk cannot see through a schema (a transform), there is no suggestion.
 */
import type { z } from 'zod';

type Def = { type?: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; in?: z.ZodType; element?: z.ZodType; options?: z.ZodType[] };

const defOf = (s: unknown): Def => ((s as { _zod?: { def?: Def } })?._zod?.def ?? {}) as Def;

/** The object schemas a value at `path` may be checked against. */
function objectsAt(schema: z.ZodType, path: readonly (string | number)[]): Def[] {
  const d = defOf(schema);
  switch (d.type) {
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
    case 'readonly':
      return d.innerType ? objectsAt(d.innerType, path) : [];
    case 'pipe':
      return d.in ? objectsAt(d.in, path) : [];
    case 'union':
      return (d.options ?? []).flatMap((o) => objectsAt(o, path));
    case 'array':
      return typeof path[0] === 'number' && d.element ? objectsAt(d.element, path.slice(1)) : [];
    case 'object': {
      if (path.length === 0) return [d];
      const next = d.shape?.[String(path[0])];
      return next ? objectsAt(next, path.slice(1)) : [];
    }
    default:
      return [];
  }
}

/** The known field closest to `key` under `parent` (at most 2 edits, or a case-only difference). */
export function suggestField(schema: z.ZodType, parent: readonly (string | number)[], key: string): string | undefined {
  let fields: string[];
  try {
    fields = [...new Set(objectsAt(schema, parent).flatMap((d) => Object.keys(d.shape ?? {})))];
  } catch {
    return undefined;
  }
  let best: { f: string; d: number } | undefined;
  for (const f of fields) {
    const d = f.toLowerCase() === key.toLowerCase() ? 0 : distance(f, key);
    if (d <= 2 && (!best || d < best.d)) best = { f, d };
  }
  return best?.f;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
