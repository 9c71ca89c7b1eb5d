/**
 * RFC 7512 `pkcs11:` URIs as cosign writes and reads them, turned into a `pkcs11` key config
 * (`keys[].ref`). The PIN in `pin-value` is never echoed in an error.
 */
import path from 'node:path';

const REF_PATH_ATTRS = new Set(['token', 'slot-id', 'serial', 'object', 'id', 'type']);
/** Informational attributes (p11tool writes them): accepted and not matched. */
const REF_IGNORED = new Set([
  'manufacturer',
  'model',
  'library-manufacturer',
  'library-description',
  'library-version',
  'slot-description',
  'slot-manufacturer',
]);
const REF_QUERY_ATTRS = new Set(['module-path', 'pin-value']);

function pctDecode(v: string, attr: string): Buffer {
  if (/%(?![0-9a-fA-F]{2})/.test(v)) throw new Error(`bad percent-encoding in attribute ${attr}`);
  const bytes: number[] = [];
  for (let i = 0; i < v.length;) {
    if (v[i] === '%') {
      bytes.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const cp = v.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  return Buffer.from(bytes);
}

function refAttrs(part: string, allowed: Set<string>, where: 'path' | 'query'): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (part === '') return out;
  for (const item of part.split(where === 'path' ? /[;&]/ : /[&;]/)) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`malformed ${where} attribute "${item.slice(0, 40).replace(/=.*/, '')}" (expected name=value)`);
    const name = item.slice(0, eq).toLowerCase();
    if (REF_IGNORED.has(name) && where === 'path') continue;
    if (!allowed.has(name)) {
      const hint = name === 'pin-source' ? ' (give the PIN with pin-value or the pin field)' : name === 'module-name' ? ' (give module-path)' : '';
      throw new Error(`unsupported ${where} attribute "${name.slice(0, 40)}"${hint}; supported: ${[...allowed].join(', ')}`);
    }
    if (out.has(name)) throw new Error(`attribute "${name}" given twice`);
    out.set(name, pctDecode(item.slice(eq + 1), name));
  }
  return out;
}

/**
 * RFC 7512 `pkcs11:` URI -> config fields, following cosign's `Pkcs11UriConfig.Parse`: path
 * attributes `token`, `slot-id`, `object`, `id` (and `serial`, `type=private`), query attributes
 * `module-path` and `pin-value`; one of token/slot-id and one of object/id are required. Values are
 * percent-decoded; `id` becomes hex. Returns undefined for other schemes.
 */
export function parsePkcs11Ref(ref: string): Record<string, unknown> | undefined {
  if (!/^pkcs11:/i.test(ref)) return undefined;
  const body = ref.slice('pkcs11:'.length);
  if (body.includes('#')) throw new Error('a pkcs11: URI has no fragment');
  const q = body.indexOf('?');
  const pathAttrs = refAttrs(q < 0 ? body : body.slice(0, q), REF_PATH_ATTRS, 'path');
  const queryAttrs = refAttrs(q < 0 ? '' : body.slice(q + 1), REF_QUERY_ATTRS, 'query');
  const text = (b: Buffer | undefined) => (b === undefined ? undefined : b.toString('utf8'));
  const out: Record<string, unknown> = {};
  const token = text(pathAttrs.get('token'));
  const slot = text(pathAttrs.get('slot-id'));
  const serial = text(pathAttrs.get('serial'));
  const object = text(pathAttrs.get('object'));
  const id = pathAttrs.get('id');
  const type = text(pathAttrs.get('type'));
  const modulePath = text(queryAttrs.get('module-path'));
  const pin = text(queryAttrs.get('pin-value'));
  if (!token && !slot && !serial) throw new Error('one of token and slot-id must be set');
  if (!object && (!id || id.length === 0)) throw new Error('one of object and id must be set');
  if (type !== undefined && type !== 'private' && type !== 'public') {
    throw new Error(`type=${type.slice(0, 20)} does not name a key pair (use type=private or leave it out)`);
  }
  if (slot !== undefined) {
    if (!/^\d+$/.test(slot) || !Number.isSafeInteger(Number(slot))) throw new Error(`slot-id '${slot.slice(0, 20)}' is not a valid number`);
    out.slot = Number(slot);
  }
  if (token) out.token = token;
  if (serial) out.serial = serial;
  if (object) out.label = object;
  if (id && id.length > 0) out.id = id.toString('hex');
  if (modulePath) {
    if (!path.isAbsolute(modulePath)) throw new Error('module-path must be an absolute path');
    out.module = modulePath;
  }
  if (pin) out.pin = pin;
  return out;
}
