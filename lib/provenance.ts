/**
 * Where a number came from: the record every results file carries (`writeResults` refuses a file without
 * one). It names the git commit (and whether the tree had uncommitted changes), each checkpoint by its
 * SHA-256, the engine that actually ran with its version, the seeds, every option that changes a number,
 * the image lists (count and hash of their ids) and the validation split, and the command.
 *
 * No absolute path of the machine that ran may stand in a results file: paths inside the project become
 * relative to its root, any other absolute path is cut to `<outside>/<file name>` (its hash says which file
 * it was). `relativePaths` does this for the whole results body.
 */
import { execFileSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { contentFingerprintSync } from "./model/checkpoint/fingerprint";
import { projectRoot } from "./paths";

export interface GitState {
  commit: string;
  /** Uncommitted changes to tracked files (untracked files are not counted). */
  dirty: boolean;
}

export interface CheckpointRecord {
  /** Path relative to the project root (or `<outside>/<name>`). */
  file: string;
  sha256: string;
  bytes: number;
}

/** The feature or training engine that ran: "onnxruntime-node" or "tfjs", its version, and tfjs's backend. */
export interface EngineRecord {
  name: string;
  version: string;
  backend?: string;
  /** Execution provider or thread detail, when the engine says. */
  detail?: string;
}

export interface ImageListRecord {
  images: number;
  /** SHA-256 (16 hex digits) of the ids, one per line, in order. */
  idsHash: string;
}

export interface Provenance {
  commit: string;
  dirty: boolean;
  checkpoints: Record<string, CheckpointRecord>;
  engine: EngineRecord | EngineRecord[];
  seeds: Record<string, number | number[]>;
  options: Record<string, unknown>;
  images?: Record<string, ImageListRecord>;
  split?: unknown;
  command: string;
  node: string;
}

let gitMemo: GitState | null = null;

/** HEAD of the project's repository and whether tracked files differ from it ("unknown" outside git). */
export function gitState(): GitState {
  if (gitMemo) return gitMemo;
  const run = (args: string[]) => execFileSync("git", args, { cwd: projectRoot(), encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    const commit = run(["rev-parse", "HEAD"]);
    const dirty = run(["status", "--porcelain", "--untracked-files=no"]) !== "";
    gitMemo = { commit, dirty };
  } catch {
    gitMemo = { commit: "unknown (not a git checkout)", dirty: false };
  }
  return gitMemo;
}

/** A path as it may appear in results: relative to the project root, else `<outside>/<file name>`. */
export function portablePath(p: string): string {
  if (!path.isAbsolute(p)) return p;
  const rel = path.relative(projectRoot(), p);
  if (!rel.startsWith("..") && !path.isAbsolute(rel)) return rel === "" ? "." : rel.split(path.sep).join("/");
  return `<outside>/${path.basename(p)}`;
}

/** SHA-256, size and portable path of a checkpoint file (hashed once per process). */
export function checkpointRecord(file: string): CheckpointRecord {
  if (!fs.existsSync(file)) throw new Error(`provenance: checkpoint ${portablePath(file)} does not exist`);
  return { file: portablePath(file), sha256: contentFingerprintSync(file).replace(/^sha256:/, ""), bytes: fs.statSync(file).size };
}

/** Count and hash of an ordered list of image ids. */
export function imageListRecord(ids: readonly string[]): ImageListRecord {
  const h = createHash("sha256");
  for (const id of ids) h.update(`${id}\n`);
  return { images: ids.length, idsHash: h.digest("hex").slice(0, 16) };
}

/** Where a process that runs others (data-scripts/run-notebooks.ts) hands its command to them. */
export const COMMAND_ENV = "DIFFPROBE_COMMAND";

/**
 * The command that ran, paths made portable: `$DIFFPROBE_COMMAND` when a parent process set it (a notebook's
 * kernel), else npm's script with the arguments given after `--` (what follows the script's own arguments
 * in argv), else node's argv. `env` and `argv` default to this process's.
 */
export function commandLine(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = process.argv): string {
  if (env[COMMAND_ENV]) return env[COMMAND_ENV]!;
  const portable = (args: readonly string[]) => args.map((a) => (path.isAbsolute(a) ? portablePath(a) : a));
  const scale = env.DIFFPROBE_SCALE ? `DIFFPROBE_SCALE=${env.DIFFPROBE_SCALE} ` : "";
  const script = env.npm_lifecycle_event;
  if (script && env.npm_lifecycle_script) {
    // the script's last command ("a && tsx data-scripts/x.ts --scale demo"): its words after the file it runs
    const words = env.npm_lifecycle_script.split("&&").pop()!.trim().split(/\s+/);
    const file = words.findIndex((w) => /\.(ts|js|cjs|mjs)$/.test(w));
    const own = file < 0 ? [] : words.slice(file + 1);
    const args = argv.slice(2);
    const extra = own.every((w, k) => args[k] === w) ? args.slice(own.length) : [];
    return `${scale}npm run ${script}${extra.length ? ` -- ${portable(extra).join(" ")}` : ""}`;
  }
  return `${scale}node ${portable(argv.slice(1)).join(" ")}`.trim();
}

export interface ProvenanceInput {
  /** Each checkpoint by a label ("trained", "random init" needs none: put its seed in `seeds`). */
  checkpoints?: Record<string, string>;
  engine: EngineRecord | EngineRecord[];
  seeds: Record<string, number | number[]>;
  /** Every option that changes a number (learning rates, epochs, batch sizes, pool, noise policy, ...). */
  options: Record<string, unknown>;
  /** Image lists by role ("train", "test"): their ids, hashed. */
  images?: Record<string, readonly string[]>;
  /** The validation split record (lib/experiments/protocol/split.ts). */
  split?: unknown;
  /** The command (default: how this process was started). */
  command?: string;
}

/** The provenance record of a run (git state, checkpoint hashes, engine, seeds, options, images, command). */
export function provenance(input: ProvenanceInput): Provenance {
  const { commit, dirty } = gitState();
  const checkpoints: Record<string, CheckpointRecord> = {};
  for (const [label, file] of Object.entries(input.checkpoints ?? {})) checkpoints[label] = checkpointRecord(file);
  const images = input.images ? Object.fromEntries(Object.entries(input.images).map(([k, ids]) => [k, imageListRecord(ids)])) : undefined;
  return {
    commit, dirty, checkpoints, engine: input.engine, seeds: input.seeds, options: input.options,
    ...(images ? { images } : {}), ...(input.split !== undefined ? { split: input.split } : {}),
    command: input.command ?? commandLine(), node: process.version,
  };
}

/** Check a provenance record has what a results file must carry; an error naming the missing key. */
export function checkProvenance(where: string, p: unknown): Provenance {
  const o = p as Partial<Provenance> | null;
  if (!o || typeof o !== "object") throw new Error(`${where}: meta.provenance is missing (build it with lib/provenance.ts provenance())`);
  for (const key of ["commit", "engine", "seeds", "options", "command"] as const) {
    if (o[key] === undefined || o[key] === null) throw new Error(`${where}: provenance.${key} is missing`);
  }
  if (typeof o.dirty !== "boolean") throw new Error(`${where}: provenance.dirty must be true or false`);
  const engines = Array.isArray(o.engine) ? o.engine : [o.engine!];
  for (const e of engines) if (!e || !e.name || !e.version) throw new Error(`${where}: provenance.engine needs a name and a version, got ${JSON.stringify(e)}`);
  for (const [k, c] of Object.entries(o.checkpoints ?? {})) {
    if (!/^[0-9a-f]{64}$/.test(c?.sha256 ?? "")) throw new Error(`${where}: provenance.checkpoints.${k} has no SHA-256`);
  }
  return o as Provenance;
}

/** Every string of `value` that is an absolute path made portable (deep copy; other values unchanged). */
export function relativePaths<T>(value: T): T {
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return looksLikeAbsolutePath(v) ? portablePath(v) : replaceEmbeddedRoot(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object" && !ArrayBuffer.isView(v)) {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return v;
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(value) as T;
}

function looksLikeAbsolutePath(s: string): boolean {
  return path.isAbsolute(s) && !/\s/.test(s) && s.length > 1;
}

/** The project root (and the home folder) inside a longer string become "." and "~". */
function replaceEmbeddedRoot(s: string): string {
  const root = projectRoot();
  let out = s.split(root + path.sep).join("").split(root).join(".");
  const home = process.env.HOME;
  if (home && home.length > 1) out = out.split(home + path.sep).join("~/");
  return out;
}
