/**
 * Content fingerprint of a file: SHA-256 of every byte (a 2.2 GB checkpoint hashes in a few seconds).
 *
 * Cache keys built on it (extracted features, built ONNX models) can never reuse results of a file whose
 * content changed anywhere, unlike a hash of its first and last MiB. The digest is remembered per process
 * by (real path, size, mtime, inode), so one run hashes a file once; a changed file changes one of those.
 */
import * as fs from "fs";
import { createHash } from "crypto";

const memo = new Map<string, string>();

function statKey(file: string): string {
  const real = fs.realpathSync(file);
  const st = fs.statSync(real, { bigint: true });
  return `${real}\u0000${st.size}\u0000${st.mtimeNs}\u0000${st.ino}`;
}

/** `sha256:<64 hex>` of the whole file, streamed (constant memory). */
export async function contentFingerprint(file: string): Promise<string> {
  const key = statKey(file);
  const hit = memo.get(key);
  if (hit) return hit;
  const h = createHash("sha256");
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(file, { highWaterMark: 1 << 22 })
      .on("data", (chunk) => h.update(chunk as Buffer))
      .on("error", (e) => reject(new Error(`cannot read ${file} to fingerprint it: ${e.message}`)))
      .on("end", () => resolve());
  });
  const digest = `sha256:${h.digest("hex")}`;
  memo.set(key, digest);
  return digest;
}

/** SHA-256 (hex) of a whole file, read synchronously in 4 MiB chunks. */
export function sha256FileSync(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

/** Synchronous variant (same digest), for callers that cannot await. */
export function contentFingerprintSync(file: string): string {
  const key = statKey(file);
  const hit = memo.get(key);
  if (hit) return hit;
  const digest = `sha256:${sha256FileSync(file)}`;
  memo.set(key, digest);
  return digest;
}
