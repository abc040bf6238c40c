/**
 * CRC-32 (the zip / IEEE 802.3 polynomial 0xEDB88320), updated incrementally:
 * `crc = crc32(chunk2, crc32(chunk1))`. Uses `zlib.crc32` when this Node has it (>= 20.15),
 * otherwise a table-driven implementation with the same contract.
 */
import * as zlib from "zlib";

let table: Uint32Array | null = null;
function crcTable(): Uint32Array {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  return table;
}

/** Portable implementation (exported for tests). */
export function crc32Portable(data: Uint8Array, previous = 0): number {
  const t = crcTable();
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const native = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

export function crc32(data: Uint8Array, previous = 0): number {
  return native ? native(data, previous) >>> 0 : crc32Portable(data, previous);
}
