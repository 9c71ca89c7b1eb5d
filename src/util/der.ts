/**
 * A minimal DER writer for the few fixed-shape structures signet builds itself (a PKCS#10
 * certificate request, an RFC 3161 TimeStampReq). Reading DER goes through @sigstore/core's
 * ASN1Obj; writing needs only these primitives, which no small, well-kept library offers without
 * a WebCrypto engine (pkijs, @peculiar/asn1-schema), so they are written here once.
 */

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Tag, length, content. */
export const tlv = (tag: number, content: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), length(content.length), content]);
export const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
export const octets = (b: Buffer): Buffer => tlv(0x04, b);
export const bits = (b: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
export const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 + n, inner);
export const NULL = Buffer.from([0x05, 0x00]);

/** An INTEGER from big-endian unsigned bytes (minimal, a leading 0 when the high bit is set). */
export function int(b: Buffer): Buffer {
  let v = b;
  while (v.length > 1 && v[0] === 0 && (v[1]! & 0x80) === 0) v = v.subarray(1);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(0x02, v);
}

/** An INTEGER from a non-negative bigint. */
export function bigint(n: bigint): Buffer {
  if (n < 0n) throw new RangeError('negative INTEGER');
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return int(Buffer.from(hex, 'hex'));
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(s: string): Buffer {
  const parts = s.split('.').map(Number);
  const out: number[] = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack: number[] = [];
    let v = p;
    do {
      stack.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < stack.length - 1; i++) stack[i]! |= 0x80;
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}
