/**
 * File checksums: md5 and sha256 in one pass (with optional progress), and `<file>.sha256` sidecars in
 * sha256sum's format ("<hex>  <name>"), written after a verified download so that reruns need not rehash.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { progress, ProgressMode } from "../display/progress";

export interface Digests {
  md5: string;
  sha256: string;
  bytes: number;
}

/** Incremental md5 + sha256. */
export class Hasher {
  private md5 = crypto.createHash("md5");
  private sha = crypto.createHash("sha256");
  bytes = 0;
  update(chunk: Uint8Array): void {
    this.md5.update(chunk);
    this.sha.update(chunk);
    this.bytes += chunk.length;
  }
  digest(): Digests {
    return { md5: this.md5.digest("hex"), sha256: this.sha.digest("hex"), bytes: this.bytes };
  }
}

/** Feed the first `end` bytes (default all) of a file into a hasher. */
export async function hashInto(h: Hasher, file: string, end?: number, onBytes?: (n: number) => void): Promise<void> {
  if (end === 0) return;
  const stream = fs.createReadStream(file, end === undefined ? {} : { start: 0, end: end - 1 });
  for await (const chunk of stream) {
    h.update(chunk as Buffer);
    onBytes?.((chunk as Buffer).length);
  }
}

/** md5 and sha256 of a file, with a progress display for large files. */
export async function hashFile(file: string, opts: { progressMode?: ProgressMode; label?: string } = {}): Promise<Digests> {
  const size = (await fs.promises.stat(file)).size;
  const p = size > 64 << 20 || opts.progressMode ? progress({ total: size, label: opts.label ?? `checksum ${path.basename(file)}`, unit: "B", mode: opts.progressMode }) : null;
  const h = new Hasher();
  await hashInto(h, file, undefined, (n) => p?.tick(n));
  p?.done();
  return h.digest();
}

export const sidecarPath = (file: string, algo: "sha256" | "md5" = "sha256") => `${file}.${algo}`;

/** Write `<file>.sha256` and `<file>.md5` ("<hex>  <basename>\n", the format of sha256sum/md5sum). */
export async function writeSidecars(file: string, d: { sha256: string; md5?: string }): Promise<void> {
  await fs.promises.writeFile(sidecarPath(file, "sha256"), `${d.sha256}  ${path.basename(file)}\n`);
  if (d.md5) await fs.promises.writeFile(sidecarPath(file, "md5"), `${d.md5}  ${path.basename(file)}\n`);
}

/** The digests recorded beside a file (each null when absent). */
export function readSidecars(file: string): { sha256: string | null; md5: string | null } {
  const read = (algo: "sha256" | "md5", len: number) => {
    try {
      const m = new RegExp(`^([0-9a-f]{${len}})\\s`).exec(fs.readFileSync(sidecarPath(file, algo), "utf8"));
      return m ? m[1] : null;
    } catch {
      return null;
    }
  };
  return { sha256: read("sha256", 64), md5: read("md5", 32) };
}

/**
 * Whether the sidecars (written only after a verified download) vouch for the expected digests, so that the
 * file need not be hashed again: the sha256 sidecar must exist and agree with every expected digest given.
 */
export function sidecarsVouch(file: string, expected: { md5?: string; sha256?: string }): boolean {
  const s = readSidecars(file);
  if (!s.sha256) return false;
  if (expected.sha256 && expected.sha256.toLowerCase() !== s.sha256) return false;
  if (expected.md5 && expected.md5.toLowerCase() !== s.md5) return false;
  return true;
}

/** Compare digests with the expected ones; returns a description of the first mismatch, or null. */
export function checksumMismatch(d: Digests, expected: { md5?: string; sha256?: string; size?: number }): string | null {
  if (expected.size !== undefined && d.bytes !== expected.size) return `size ${d.bytes} bytes, expected ${expected.size}`;
  if (expected.md5 && d.md5 !== expected.md5.toLowerCase()) return `md5 ${d.md5}, expected ${expected.md5}`;
  if (expected.sha256 && d.sha256 !== expected.sha256.toLowerCase()) return `sha256 ${d.sha256}, expected ${expected.sha256}`;
  return null;
}
