/**
 * On-disk cache of feature vectors, so that a rerun (or another notebook) does not recompute them.
 *
 * A *feature set* is everything that determines the numbers except the image: model, block, timestep,
 * pooling, noise policy and seed (see features.ts `featureSetKey`). Each set is a folder
 *
 *   <root>/<readable name>-<hash of the key>/
 *     key.json     the full key and the row length (dim)
 *     data.f32     rows of `dim` little-endian float32 values, appended
 *     index.jsonl  one JSON string per row: the image id of that row, appended after the row
 *
 * Rows are appended data first, index line second, so a crash leaves at worst a row without an index
 * line, which the next open cuts off. One process writes a set at a time (a `lock` file with its pid);
 * another process opening the same set meanwhile gets a read-only view.
 *
 * Only deterministic features belong here: the caller decides (features.ts caches `seeded` and
 * `ensemble` noise, never `fresh`). Image ids are the caller's: they must identify the image *and* its
 * preprocessing (e.g. "cifar10/test/00042@32px").
 */
import * as fs from "fs";
import { projectRoot } from "./paths";
import * as path from "path";
import { createHash } from "crypto";

/** Values a feature-set key is made of. */
export type FeatureSetKey = Record<string, string | number | boolean | null>;

/** Default root: $DIFFPROBE_CACHE, else .cache/features at the repository root. */
export function defaultCacheRoot(): string {
  return process.env.DIFFPROBE_CACHE ?? path.join(projectRoot(), ".cache", "features");
}

/** The same JSON for the same key whatever the property order. */
export function canonicalKey(key: FeatureSetKey): string {
  return JSON.stringify(Object.fromEntries(Object.keys(key).sort().map((k) => [k, key[k]])));
}

/** Folder name of a set: a readable prefix (block, t, pool...) and 16 hex digits of the key's hash. */
export function featureSetDirName(key: FeatureSetKey): string {
  const hash = createHash("sha256").update(canonicalKey(key)).digest("hex").slice(0, 16);
  const readable = ["block", "t", "pool", "noise"]
    .filter((k) => key[k] !== undefined)
    .map((k) => `${k === "t" ? "t" : ""}${String(key[k])}`)
    .join("-")
    .replace(/[^A-Za-z0-9_.=-]+/g, "_")
    .slice(0, 80);
  return readable ? `${readable}-${hash}` : hash;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** One feature set on disk: image id -> row of `dim` float32 values. */
export class FeatureStore {
  readonly dir: string;
  readonly key: FeatureSetKey;
  /** Row length, fixed by the first row written (null while empty). */
  dim: number | null;
  /** False when another live process holds the write lock: puts are then ignored. */
  readonly writable: boolean;
  private readonly rows = new Map<string, number>();
  private fd: number | null = null;
  private count = 0;

  constructor(dir: string, key: FeatureSetKey) {
    this.dir = dir;
    this.key = key;
    fs.mkdirSync(dir, { recursive: true });
    const keyFile = path.join(dir, "key.json");
    let dim: number | null = null;
    if (fs.existsSync(keyFile)) {
      const stored = JSON.parse(fs.readFileSync(keyFile, "utf8")) as { key: FeatureSetKey; dim: number | null };
      if (canonicalKey(stored.key) !== canonicalKey(key)) {
        throw new Error(`feature cache ${dir}: folder holds key ${canonicalKey(stored.key)}, not ${canonicalKey(key)} (hash collision?)`);
      }
      dim = stored.dim;
    }
    this.dim = dim;
    this.writable = this.lock();
    this.load();
  }

  /** Number of rows stored. */
  get size(): number {
    return this.rows.size;
  }

  has(id: string): boolean {
    return this.rows.has(id);
  }

  /** The stored row of an image, or null. */
  get(id: string): Float32Array | null {
    const r = this.rows.get(id);
    if (r === undefined || this.dim === null) return null;
    const out = new Float32Array(this.dim);
    this.readRow(r, out);
    return out;
  }

  /**
   * Rows of several images into `out` ([ids.length, dim], allocated when absent); returns the positions
   * (in `ids`) of the images not in the cache, whose rows are left untouched.
   */
  getMany(ids: readonly string[], out?: Float32Array): { data: Float32Array | null; missing: number[] } {
    const missing: number[] = [];
    if (this.dim === null) return { data: out ?? null, missing: ids.map((_, i) => i) };
    const dim = this.dim;
    const data = out ?? new Float32Array(ids.length * dim);
    if (data.length < ids.length * dim) throw new Error(`feature cache ${this.dir}: output has ${data.length} values, needs ${ids.length * dim}`);
    ids.forEach((id, i) => {
      const r = this.rows.get(id);
      if (r === undefined) missing.push(i);
      else this.readRow(r, data.subarray(i * dim, (i + 1) * dim));
    });
    return { data, missing };
  }

  /** Store a row (ignored when the id is already there or the set is read-only). */
  put(id: string, row: Float32Array): void {
    if (typeof id !== "string" || id.length === 0) throw new Error(`feature cache ${this.dir}: image id must be a non-empty string, got ${JSON.stringify(id)}`);
    if (this.dim === null) {
      this.dim = row.length;
      if (this.writable) fs.writeFileSync(path.join(this.dir, "key.json"), JSON.stringify({ key: this.key, dim: this.dim }, null, 1));
    }
    if (row.length !== this.dim) throw new Error(`feature cache ${this.dir}: row for ${JSON.stringify(id)} has ${row.length} values, the set has ${this.dim}`);
    if (!this.writable || this.rows.has(id)) return;
    const fd = this.writeFd();
    const bytes = new Uint8Array(row.buffer, row.byteOffset, row.byteLength);
    fs.writeSync(fd, bytes, 0, bytes.length, this.count * this.dim * 4);
    fs.appendFileSync(path.join(this.dir, "index.jsonl"), JSON.stringify(id) + "\n");
    this.rows.set(id, this.count++);
  }

  /** Store rows [ids.length, dim] of a matrix. */
  putMany(ids: readonly string[], data: Float32Array, dim: number): void {
    if (data.length !== ids.length * dim) throw new Error(`feature cache ${this.dir}: ${ids.length} ids x ${dim} need ${ids.length * dim} values, got ${data.length}`);
    ids.forEach((id, i) => this.put(id, data.subarray(i * dim, (i + 1) * dim)));
  }

  /** Release the file handle and the write lock. */
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    if (this.writable) {
      try {
        const lock = path.join(this.dir, "lock");
        if (fs.readFileSync(lock, "utf8").trim() === String(process.pid)) fs.unlinkSync(lock);
      } catch {
        /* already gone */
      }
    }
  }

  private lock(): boolean {
    const lock = path.join(this.dir, "lock");
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(lock, String(process.pid), { flag: "wx" });
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const pid = Number(fs.readFileSync(lock, "utf8").trim());
        if (pid === process.pid) return true; // same process, another FeatureStore object
        if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) return false;
        fs.rmSync(lock, { force: true }); // stale lock of a dead process
      }
    }
    return false;
  }

  /** Read the index; cut off a row without index line or a torn last index line (when writable). */
  private load(): void {
    const indexFile = path.join(this.dir, "index.jsonl");
    const dataFile = path.join(this.dir, "data.f32");
    const text = fs.existsSync(indexFile) ? fs.readFileSync(indexFile, "utf8") : "";
    const complete = text.endsWith("\n") ? text : text.slice(0, text.lastIndexOf("\n") + 1);
    const lines = complete.split("\n").filter((l) => l.length > 0);
    const dataBytes = fs.existsSync(dataFile) ? fs.statSync(dataFile).size : 0;
    const rowBytes = (this.dim ?? 0) * 4;
    const dataRows = rowBytes > 0 ? Math.floor(dataBytes / rowBytes) : 0;
    const n = Math.min(lines.length, dataRows);
    for (let r = 0; r < n; r++) {
      const id = JSON.parse(lines[r]) as string;
      if (!this.rows.has(id)) this.rows.set(id, r);
    }
    this.count = n;
    if (this.writable) {
      if (lines.length !== n || complete.length !== text.length) {
        fs.writeFileSync(indexFile, lines.slice(0, n).map((l) => l + "\n").join(""));
      }
      if (dataBytes !== n * rowBytes && fs.existsSync(dataFile)) fs.truncateSync(dataFile, n * rowBytes);
    }
  }

  /** The data file, opened once: read-write for the writer, read-only otherwise. */
  private handle(): number {
    if (this.fd === null) {
      const file = path.join(this.dir, "data.f32");
      const exists = fs.existsSync(file);
      this.fd = fs.openSync(file, this.writable ? (exists ? "r+" : "w+") : "r");
    }
    return this.fd;
  }

  private writeFd(): number {
    return this.handle();
  }

  private readRow(r: number, out: Float32Array): void {
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const got = fs.readSync(this.handle(), bytes, 0, bytes.length, r * out.length * 4);
    if (got !== bytes.length) throw new Error(`feature cache ${this.dir}/data.f32: row ${r} is truncated (${got} of ${bytes.length} bytes)`);
  }
}

/** All feature sets under one root folder; opens each set once per process. */
export class FeatureCache {
  readonly root: string;
  private readonly open_ = new Map<string, FeatureStore>();

  constructor(root: string = defaultCacheRoot()) {
    this.root = path.resolve(root);
  }

  /** The store of a feature set (created on first use). */
  set(key: FeatureSetKey): FeatureStore {
    const name = featureSetDirName(key);
    let s = this.open_.get(name);
    if (!s) {
      s = new FeatureStore(path.join(this.root, name), key);
      this.open_.set(name, s);
    }
    return s;
  }

  /** Close every open store (releases locks). */
  close(): void {
    for (const s of this.open_.values()) s.close();
    this.open_.clear();
  }

  /** Delete a whole root folder (e.g. a test's temporary cache). */
  static clear(root: string): void {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
