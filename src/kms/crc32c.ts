/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven, one byte at a time.
 *
 * Cloud KMS uses it for end-to-end integrity of requests and responses (digestCrc32c,
 * signatureCrc32c, pemCrc32c). Node has no built-in CRC32C (zlib's crc32 is the IEEE polynomial).
 * Check value: crc32c("123456789") = 0xe3069283.
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32C of `data` as an unsigned 32-bit integer. `data` strings are hashed as UTF-8. */
export function crc32c(data: Uint8Array | string): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
