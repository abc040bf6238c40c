/**
 * The feature store: feature sets on disk, filled part by part, read in batches.
 *
 *   <root>/<readable name>-<16 hex of the set id>/      one folder per feature-set key (key.ts)
 *     manifest.json                                     key, id, row length, dtype, part size, image ids, labels
 *     parts/000012-<16 hex of SHA-256>.f32|.f16         rows [12 * partRows, 13 * partRows), little-endian
 *
 * A part file is written to a temporary name in parts/, fsynced and renamed, so under its final name it is
 * always whole; its name carries the SHA-256 of its bytes and its length follows from the manifest, so a
 * truncated or damaged part (a disk error, a copy cut short) fails the check and counts as missing: it is
 * never read, and extraction computes it again. Parts are independent, so several processes (shards) can
 * fill one set at once. Reads (`readRows`, `batches`) touch only the parts they need, never the whole matrix.
 */
import * as fs from "fs";
import * as path from "path";
import { createHash } from "crypto";
import { projectRoot } from "../../paths";
import { FeatureSetKey, STORE_FORMAT, StoreDtype, canonicalKey, checkKey, featureSetDirName, featureSetId } from "./key";
import { decodeHalf, encodeHalf } from "./float16";

/** Default root: $DIFFPROBE_STORE, else .cache/store at the repository root. */
export function defaultStoreRoot(): string {
  return process.env.DIFFPROBE_STORE ?? path.join(projectRoot(), ".cache", "store");
}

/** Rows per part unless asked otherwise. */
export const DEFAULT_PART_ROWS = 256;

export interface FeatureSetManifest {
  format: string;
  id: string;
  key: FeatureSetKey;
  /** Values per row. */
  dim: number;
  /** Shape of one row before flattening ([C, rows, cols] of a pooled map), if known. */
  rowShape: number[] | null;
  rows: number;
  partRows: number;
  parts: number;
  /** Image id of each row. */
  ids: string[];
  /** Class label of each row, or null. */
  labels: number[] | null;
  /** When the set was first created (the only field that differs between equal sets). */
  created: string;
}

/** What a new set is made of besides its key. */
export interface FeatureSetLayout {
  dim: number;
  rowShape?: number[];
  ids: readonly string[];
  labels?: ArrayLike<number> | null;
  partRows?: number;
}

const PART_NAME = /^(\d{6})-([0-9a-f]{16})\.(f32|f16)$/;

function bytesPerValue(dtype: StoreDtype): number {
  return dtype === "float16" ? 2 : 4;
}

/** Write a file atomically and durably: temporary name, fsync, rename, fsync of the folder. */
export function writeFileDurably(file: string, bytes: Uint8Array): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.tmp-${process.pid}-${path.basename(file)}-${Math.random().toString(36).slice(2, 8)}`);
  try {
    const fd = fs.openSync(tmp, "w");
    try {
      let off = 0;
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const dfd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    /* folders cannot be fsynced on some systems: the rename is still atomic */
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sameLayout(a: FeatureSetManifest, b: FeatureSetManifest): string | null {
  if (a.dim !== b.dim) return `row length ${a.dim} vs ${b.dim}`;
  if (a.partRows !== b.partRows) return `part size ${a.partRows} vs ${b.partRows} rows`;
  if (a.rows !== b.rows) return `${a.rows} vs ${b.rows} rows`;
  const i = a.ids.findIndex((id, k) => id !== b.ids[k]);
  if (i >= 0) return `image id of row ${i}: ${JSON.stringify(a.ids[i])} vs ${JSON.stringify(b.ids[i])}`;
  if (JSON.stringify(a.labels) !== JSON.stringify(b.labels)) return "labels differ";
  return null;
}

/** One feature set on disk. */
export class FeatureSet {
  readonly dir: string;
  readonly manifest: FeatureSetManifest;
  /** Part files whose checksum this object has verified (name -> true). */
  private readonly verified = new Set<string>();
  private listing: Map<number, string[]> | null = null;

  private constructor(dir: string, manifest: FeatureSetManifest) {
    this.dir = dir;
    this.manifest = manifest;
  }

  /** Create a set (or open it when it exists with the same layout; a different layout is an error). */
  static create(root: string, key: FeatureSetKey, layout: FeatureSetLayout): FeatureSet {
    checkKey(key);
    const n = layout.ids.length;
    const partRows = layout.partRows ?? DEFAULT_PART_ROWS;
    if (!(Number.isInteger(layout.dim) && layout.dim > 0)) throw new Error(`feature set ${featureSetDirName(key)}: row length must be a positive integer, got ${layout.dim}`);
    if (!(Number.isInteger(partRows) && partRows > 0)) throw new Error(`feature set ${featureSetDirName(key)}: part size must be a positive integer, got ${partRows}`);
    if (n === 0) throw new Error(`feature set ${featureSetDirName(key)}: no images`);
    if (new Set(layout.ids).size !== n) throw new Error(`feature set ${featureSetDirName(key)}: image ids are not unique`);
    if (layout.labels && layout.labels.length !== n) throw new Error(`feature set ${featureSetDirName(key)}: ${layout.labels.length} labels for ${n} images`);
    const manifest: FeatureSetManifest = {
      format: STORE_FORMAT,
      id: featureSetId(key),
      key: JSON.parse(canonicalKey(key)),
      dim: layout.dim,
      rowShape: layout.rowShape ? [...layout.rowShape] : null,
      rows: n,
      partRows,
      parts: Math.ceil(n / partRows),
      ids: [...layout.ids],
      labels: layout.labels ? Array.from(layout.labels) : null,
      created: new Date().toISOString(),
    };
    const dir = path.join(path.resolve(root), featureSetDirName(key));
    const file = path.join(dir, "manifest.json");
    if (fs.existsSync(file)) {
      const set = FeatureSet.open(dir);
      const diff = sameLayout(set.manifest, manifest);
      if (diff) throw new Error(`feature set ${dir} exists with another layout (${diff}); remove the folder or use another store root`);
      return set;
    }
    fs.mkdirSync(path.join(dir, "parts"), { recursive: true });
    writeFileDurably(file, Buffer.from(JSON.stringify(manifest, null, 1) + "\n"));
    return new FeatureSet(dir, manifest);
  }

  /** Open an existing set folder (checks its manifest against its folder name). */
  static open(dir: string): FeatureSet {
    const file = path.join(dir, "manifest.json");
    if (!fs.existsSync(file)) throw new Error(`${file} not found: not a feature set (run extract first)`);
    let m: FeatureSetManifest;
    try {
      m = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
      throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
    }
    if (m.format !== STORE_FORMAT) throw new Error(`${file}: format ${JSON.stringify(m.format)}, expected ${STORE_FORMAT}`);
    if (featureSetId(m.key) !== m.id) throw new Error(`${file}: id ${m.id} does not match its key`);
    if (m.ids.length !== m.rows || m.parts !== Math.ceil(m.rows / m.partRows)) throw new Error(`${file}: ${m.rows} rows, ${m.ids.length} ids, ${m.parts} parts of ${m.partRows} do not agree`);
    return new FeatureSet(dir, m);
  }

  /** Open the set of a key under a root, or null when it was never created. */
  static find(root: string, key: FeatureSetKey): FeatureSet | null {
    const dir = path.join(path.resolve(root), featureSetDirName(key));
    return fs.existsSync(path.join(dir, "manifest.json")) ? FeatureSet.open(dir) : null;
  }

  get key(): FeatureSetKey {
    return this.manifest.key;
  }
  get dim(): number {
    return this.manifest.dim;
  }
  get rows(): number {
    return this.manifest.rows;
  }
  get parts(): number {
    return this.manifest.parts;
  }
  get ids(): string[] {
    return this.manifest.ids;
  }
  get labels(): Int32Array | null {
    return this.manifest.labels ? Int32Array.from(this.manifest.labels) : null;
  }

  /** Rows [start, end) of part p. */
  partRange(p: number): [number, number] {
    if (!(Number.isInteger(p) && p >= 0 && p < this.parts)) throw new Error(`feature set ${this.dir}: part ${p} is outside 0..${this.parts - 1}`);
    const start = p * this.manifest.partRows;
    return [start, Math.min(this.rows, start + this.manifest.partRows)];
  }

  private get ext(): string {
    return this.key.dtype === "float16" ? "f16" : "f32";
  }

  private partBytes(p: number): number {
    const [s, e] = this.partRange(p);
    return (e - s) * this.dim * bytesPerValue(this.key.dtype);
  }

  /** Part files by part index, from one listing of parts/ (cached until `refresh`). */
  private files(): Map<number, string[]> {
    if (this.listing) return this.listing;
    const map = new Map<number, string[]>();
    const dir = path.join(this.dir, "parts");
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const m = PART_NAME.exec(name);
      if (!m || m[3] !== this.ext) continue;
      const p = Number(m[1]);
      map.set(p, [...(map.get(p) ?? []), name]);
    }
    this.listing = map;
    return map;
  }

  /** Forget the cached listing of parts/ (another process may have written parts). */
  refresh(): void {
    this.listing = null;
  }

  /** Whether a part file is whole: its length (always) and the SHA-256 in its name (when `verify`). */
  private partOk(p: number, name: string, verify: boolean): boolean {
    const file = path.join(this.dir, "parts", name);
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      return false;
    }
    if (size !== this.partBytes(p)) return false;
    if (!verify || this.verified.has(name)) return true;
    const hash = createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 16);
    if (hash !== PART_NAME.exec(name)![2]) return false;
    this.verified.add(name);
    return true;
  }

  /** The good file of part p, or null. */
  private partFile(p: number, verify: boolean): string | null {
    for (const name of this.files().get(p) ?? []) if (this.partOk(p, name, verify)) return name;
    return null;
  }

  /** Whether part p is stored whole (`verify`: also check its checksum, reading it once per object). */
  has(p: number, opts: { verify?: boolean } = {}): boolean {
    this.partRange(p);
    return this.partFile(p, opts.verify ?? true) !== null;
  }

  /** Parts not stored whole (of `among`, default all), in order. */
  missing(opts: { verify?: boolean; among?: readonly number[] } = {}): number[] {
    this.refresh();
    const among = opts.among ?? Array.from({ length: this.parts }, (_, p) => p);
    return among.filter((p) => !this.has(p, opts));
  }

  /** Whether every part is stored whole. */
  complete(opts: { verify?: boolean } = {}): boolean {
    return this.missing(opts).length === 0;
  }

  /** Store part p: `data` holds its rows ([rows of the part, dim] float32). Replaces a damaged file. */
  writePart(p: number, data: Float32Array): void {
    const [s, e] = this.partRange(p);
    if (data.length !== (e - s) * this.dim) throw new Error(`feature set ${this.dir}: part ${p} (rows ${s}-${e - 1}) needs ${(e - s) * this.dim} values, got ${data.length}`);
    const bytes = this.key.dtype === "float16" ? encodeHalf(data) : data;
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const hash = createHash("sha256").update(view).digest("hex").slice(0, 16);
    const name = `${String(p).padStart(6, "0")}-${hash}.${this.ext}`;
    const partsDir = path.join(this.dir, "parts");
    fs.mkdirSync(partsDir, { recursive: true });
    writeFileDurably(path.join(partsDir, name), view);
    this.verified.add(name);
    this.refresh();
    for (const other of this.files().get(p) ?? []) if (other !== name) fs.rmSync(path.join(partsDir, other), { force: true });
    this.listing?.set(p, [name]);
  }

  /** Remove temporary files that dead processes left in parts/ (a kill between write and rename). */
  removeStaleTemporaries(): number {
    const dir = path.join(this.dir, "parts");
    let removed = 0;
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const m = /^\.tmp-(\d+)-/.exec(name);
      if (m && !pidAlive(Number(m[1]))) {
        fs.rmSync(path.join(dir, name), { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Rows at `indices` (any order, repeats allowed) as [indices.length, dim] float32; reads only their parts. */
  readRows(indices: ArrayLike<number>, out?: Float32Array): Float32Array {
    const dim = this.dim;
    const data = out ?? new Float32Array(indices.length * dim);
    if (data.length < indices.length * dim) throw new Error(`feature set ${this.dir}: output holds ${data.length} values, needs ${indices.length * dim}`);
    const byPart = new Map<number, number[]>();
    for (let k = 0; k < indices.length; k++) {
      const r = indices[k];
      if (!(Number.isInteger(r) && r >= 0 && r < this.rows)) throw new Error(`feature set ${this.dir}: row ${r} is outside 0..${this.rows - 1}`);
      const p = Math.floor(r / this.manifest.partRows);
      byPart.set(p, [...(byPart.get(p) ?? []), k]);
    }
    const bpv = bytesPerValue(this.key.dtype);
    const rowBytes = dim * bpv;
    for (const [p, ks] of byPart) {
      const name = this.partFile(p, true) ?? (this.refresh(), this.partFile(p, true));
      if (!name) throw new Error(`feature set ${this.dir}: part ${p} (rows ${this.partRange(p).join("-")}) is missing or damaged; run extract to (re)compute it`);
      const start = this.partRange(p)[0];
      ks.sort((a, b) => indices[a] - indices[b]);
      const fd = fs.openSync(path.join(this.dir, "parts", name), "r");
      try {
        // one read per run of consecutive rows
        for (let i = 0; i < ks.length; ) {
          let j = i + 1;
          while (j < ks.length && indices[ks[j]] - indices[ks[j - 1]] <= 1) j++;
          const first = indices[ks[i]];
          const count = indices[ks[j - 1]] - first + 1;
          const buf = Buffer.alloc(count * rowBytes);
          const got = fs.readSync(fd, buf, 0, buf.length, (first - start) * rowBytes);
          if (got !== buf.length) throw new Error(`feature set ${this.dir}/parts/${name}: rows ${first}-${first + count - 1} are truncated`);
          const values = bpv === 2 ? decodeHalf(new Uint16Array(buf.buffer, buf.byteOffset, count * dim)) : new Float32Array(buf.buffer, buf.byteOffset, count * dim);
          for (let q = i; q < j; q++) {
            const off = (indices[ks[q]] - first) * dim;
            data.set(values.subarray(off, off + dim), ks[q] * dim);
          }
          i = j;
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    return data;
  }

  /**
   * Rows in batches of `size`: in row order, or in the given order of row indices (e.g. a seeded shuffle).
   * Each batch holds its row indices, their values and their labels; memory is one batch.
   */
  *batches(size: number, order?: ArrayLike<number>): Generator<{ indices: Int32Array; data: Float32Array; labels: Int32Array | null }> {
    if (!(Number.isInteger(size) && size > 0)) throw new Error(`batches: size must be a positive integer, got ${size}`);
    const all = order ?? { length: this.rows };
    const labels = this.manifest.labels;
    for (let s = 0; s < all.length; s += size) {
      const e = Math.min(all.length, s + size);
      const indices = Int32Array.from({ length: e - s }, (_, k) => (order ? order[s + k] : s + k));
      yield { indices, data: this.readRows(indices), labels: labels ? Int32Array.from(indices, (r) => labels[r]) : null };
    }
  }

  /** Every row, [rows, dim] (for sets that fit in memory). */
  matrix(): Float32Array {
    return this.readRows(Int32Array.from({ length: this.rows }, (_, i) => i));
  }
}
