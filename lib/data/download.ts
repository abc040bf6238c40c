/**
 * Resumable HTTP(S) downloads and archive extraction for the dataset and checkpoint scripts.
 *
 * `download({ url, dest })`:
 * - writes to `<dest>.part`; a rerun (or an automatic retry after a dropped connection) resumes from the
 *   part's size with `Range: bytes=<size>-`;
 * - a server that answers 200 instead of 206 (ignoring Range) is handled by restarting from byte 0; a 206 whose
 *   Content-Range does not start at our offset likewise; 416 with the part already complete finishes it;
 * - follows redirects (301/302/303/307/308, relative Location too);
 * - HTTP errors name the URL and status; 408/429/502/503/504 and network errors are retried (with resume),
 *   other statuses fail at once;
 * - md5/sha256/size are checked when given; a mismatching file is moved to `<dest>.bad`, never left as `dest`;
 * - the sha256 of every completed file is written to `<dest>.sha256` (sha256sum format); a rerun finds `dest`
 *   with its sidecar and does nothing;
 * - progress (bytes, rate, ETA) through lib/display/progress.
 * `extractArchive(archive, dir)`: .tar / .tar.gz / .tgz via the `tar` package, with progress, once (a
 * `<archive>.extracted` marker makes reruns skip it).
 */
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import * as tar from "tar";
import { checksumMismatch, Digests, Hasher, hashFile, hashInto, readSidecars, sidecarsVouch, writeSidecars } from "./checksum";
import { progress, Progress, ProgressMode } from "../display/progress";

export class DownloadError extends Error {
  constructor(message: string, readonly url: string, readonly status?: number) {
    super(message);
  }
}
/** The downloaded bytes do not match the published checksum or size. */
export class ChecksumError extends DownloadError {}
/** A dropped connection, timeout or transient HTTP status: retried with resume. */
class RetryableError extends DownloadError {}

export interface DownloadOptions {
  url: string;
  /** Final path of the file. */
  dest: string;
  md5?: string;
  sha256?: string;
  /** Expected size in bytes. */
  size?: number;
  /** Progress label (default: the file name). */
  label?: string;
  progressMode?: ProgressMode;
  /** Automatic resumes after a dropped connection or transient error (default 5). */
  retries?: number;
  /** Delay before the first retry, doubled each time (default 2000 ms). */
  retryDelayMs?: number;
  /** Abort a connection that sends nothing for this long (default 60 s); it is then resumed. */
  idleTimeoutMs?: number;
  maxRedirects?: number;
  headers?: Record<string, string>;
  /** Where notes go (restarts, retries); default stderr. */
  log?: (msg: string) => void;
}

export interface DownloadResult {
  file: string;
  bytes: number;
  md5: string;
  sha256: string;
  /** "present": already there (verified); "downloaded": fetched by this call; "resumed": continued a .part left by an earlier run. */
  status: "present" | "downloaded" | "resumed";
  /** The server ignored Range (200) or sent a wrong Content-Range at least once, so the file was restarted. */
  restarted: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** Parse a Content-Range header: "bytes 100-199/1000", or "bytes STAR/1000" with a literal star (416). */
function parseContentRange(h: string | undefined): { start: number | null; total: number | null } | null {
  if (!h) return null;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(h.trim());
  if (!m) return null;
  return { start: m[1] === undefined ? null : Number(m[1]), total: m[3] === "*" ? null : Number(m[3]) };
}

function httpGet(url: string, headers: Record<string, string>, idleMs: number): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new DownloadError(`bad URL ${JSON.stringify(url)}`, url));
      return;
    }
    const mod = u.protocol === "https:" ? https : u.protocol === "http:" ? http : null;
    if (!mod) {
      reject(new DownloadError(`${url}: only http and https URLs are supported`, url));
      return;
    }
    const req: http.ClientRequest = mod.get(u, { headers }, (res) => resolve({ req, res }));
    req.setTimeout(idleMs, () => req.destroy(new Error(`no data for ${idleMs / 1000}s`)));
    req.on("error", (e: Error) => reject(new RetryableError(`GET ${url}: ${e.message}`, url)));
  });
}

/** Stream a response body into `part` (append or truncate), hashing and counting; rejects if the body is cut. */
function receive(req: http.ClientRequest, res: http.IncomingMessage, part: string, append: boolean, hasher: Hasher, p: Progress, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = fs.createWriteStream(part, { flags: append ? "a" : "w" });
    let failure: Error | null = null;
    const fail = (e: Error) => {
      if (failure) return;
      failure = e;
      res.destroy();
      ws.end();
    };
    res.on("data", (chunk: Buffer) => {
      if (failure) return;
      hasher.update(chunk);
      p.tick(chunk.length);
      if (!ws.write(chunk)) {
        res.pause();
        ws.once("drain", () => res.resume());
      }
    });
    res.on("error", (e) => fail(e));
    req.on("error", (e) => fail(e));
    res.on("end", () => (res.complete ? ws.end() : fail(new Error("connection closed before the end of the body"))));
    res.on("close", () => {
      if (!res.complete) fail(new Error("connection closed before the end of the body"));
    });
    ws.on("error", (e) => {
      failure = failure ?? e;
      res.destroy();
      reject(new DownloadError(`writing ${part}: ${e.message}`, url));
    });
    ws.on("close", () => {
      if (!failure) resolve();
      else if (failure instanceof DownloadError) reject(failure);
      else reject(new RetryableError(`GET ${url}: ${failure.message} after ${fileSize(part)} bytes`, url));
    });
  });
}

interface AttemptResult {
  digests: Digests;
  restarted: boolean;
}

const TRANSIENT = new Set([408, 429, 502, 503, 504]);

/** One request (following redirects) that continues `part` from its size. */
async function attempt(opts: DownloadOptions, part: string, log: (m: string) => void, mode: ProgressMode | undefined): Promise<AttemptResult> {
  const offset = fileSize(part);
  const headers: Record<string, string> = { "user-agent": "diffprobe-download/1", "accept-encoding": "identity", ...opts.headers };
  if (offset > 0) headers.range = `bytes=${offset}-`;
  const maxRedirects = opts.maxRedirects ?? 10;
  const idle = opts.idleTimeoutMs ?? 60000;
  // Hash the part we continue before requesting: once a response has arrived, it must be consumed at once
  // (a connection closed while we were busy would otherwise go unnoticed).
  const prefix = new Hasher();
  if (offset > 0) await hashInto(prefix, part, offset);
  let url = opts.url;
  for (let hop = 0; ; hop++) {
    const { req, res } = await httpGet(url, headers, idle);
    const status = res.statusCode ?? 0;
    const where = url === opts.url ? url : `${url} (redirected from ${opts.url})`;
    if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
      res.resume();
      if (hop >= maxRedirects) throw new DownloadError(`GET ${opts.url}: more than ${maxRedirects} redirects`, opts.url, status);
      url = new URL(res.headers.location, url).toString();
      continue;
    }
    if (status === 416 && offset > 0) {
      res.resume();
      const cr = parseContentRange(res.headers["content-range"] as string | undefined);
      if (cr?.total === offset) {
        // The part is already complete (e.g. the previous run stopped before renaming it).
        return { digests: prefix.digest(), restarted: false };
      }
      log(`${where}: the server refused to resume at byte ${offset} (HTTP 416); restarting from byte 0`);
      await fs.promises.rm(part, { force: true });
      return { ...(await attempt(opts, part, log, mode)), restarted: true };
    }
    if (status === 200 || status === 206) {
      let append = false;
      let restarted = false;
      let total: number | null = null;
      const length = res.headers["content-length"] !== undefined ? Number(res.headers["content-length"]) : null;
      if (status === 206) {
        const cr = parseContentRange(res.headers["content-range"] as string | undefined);
        if (!cr || cr.start !== offset) {
          res.destroy();
          log(`${where}: HTTP 206 with Content-Range ${JSON.stringify(res.headers["content-range"])} for a resume at byte ${offset}; restarting from byte 0`);
          await fs.promises.rm(part, { force: true });
          return { ...(await attempt({ ...opts }, part, log, mode)), restarted: true };
        }
        append = true;
        total = cr.total ?? (length !== null ? offset + length : null);
      } else {
        if (offset > 0) {
          log(`${where}: the server ignored the Range request (HTTP 200 instead of 206); restarting from byte 0`);
          restarted = true;
        }
        total = length;
      }
      const hasher = append ? prefix : new Hasher();
      const p = progress({ total: total ?? opts.size ?? 0, label: opts.label ?? path.basename(opts.dest), unit: "B", mode });
      p.update(append ? offset : 0);
      try {
        await receive(req, res, part, append, hasher, p, url);
      } finally {
        p.done();
      }
      return { digests: hasher.digest(), restarted };
    }
    res.resume();
    const msg = `GET ${where}: HTTP ${status} ${res.statusMessage ?? ""}`.trim();
    if (TRANSIENT.has(status)) throw new RetryableError(msg, opts.url, status);
    throw new DownloadError(msg, opts.url, status);
  }
}

/** An existing final file: trust its sidecar, else hash it once. Returns null when it must be downloaded again. */
async function checkExisting(opts: DownloadOptions, log: (m: string) => void): Promise<DownloadResult | null> {
  const { dest } = opts;
  const size = fileSize(dest);
  if (sidecarsVouch(dest, opts) && (opts.size === undefined || opts.size === size)) {
    const s = readSidecars(dest);
    return { file: dest, bytes: size, md5: s.md5 ?? "", sha256: s.sha256 as string, status: "present", restarted: false };
  }
  const d = await hashFile(dest, { progressMode: opts.progressMode, label: `verify ${path.basename(dest)}` });
  const bad = checksumMismatch(d, opts);
  if (bad) {
    await fs.promises.rename(dest, `${dest}.bad`);
    log(`${dest}: existing file has ${bad}; moved to ${dest}.bad and downloading again`);
    return null;
  }
  await writeSidecars(dest, d);
  return { file: dest, bytes: d.bytes, md5: d.md5, sha256: d.sha256, status: "present", restarted: false };
}

/** Download `url` to `dest`, resumably; see the module comment. */
export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(m + "\n"));
  const { dest } = opts;
  await fs.promises.mkdir(path.dirname(path.resolve(dest)), { recursive: true });
  if (fs.existsSync(dest)) {
    const r = await checkExisting(opts, log);
    if (r) return r;
  }
  const part = `${dest}.part`;
  const startedAt = fileSize(part);
  const retries = opts.retries ?? 5;
  let delay = opts.retryDelayMs ?? 2000;
  let result: AttemptResult;
  let restarted = false;
  for (let tries = 0; ; tries++) {
    try {
      result = await attempt(opts, part, log, opts.progressMode);
      restarted = restarted || result.restarted;
      break;
    } catch (e) {
      if (!(e instanceof RetryableError)) throw e;
      if (tries >= retries) {
        throw new DownloadError(`${e.message}; gave up after ${tries + 1} tries. ${fileSize(part)} bytes are kept in ${part}: rerun to resume`, opts.url, e.status);
      }
      log(`${e.message}; retrying in ${(delay / 1000).toFixed(1)}s (resuming at byte ${fileSize(part)})`);
      await sleep(delay);
      delay *= 2;
    }
  }
  const d = result.digests;
  const bad = checksumMismatch(d, opts);
  if (bad) {
    const badFile = `${dest}.bad`;
    await fs.promises.rename(part, badFile);
    throw new ChecksumError(
      `${opts.url}: the downloaded file has ${bad}; it was moved to ${badFile} and not used. Delete it and rerun; if this repeats, the published file changed.`,
      opts.url,
    );
  }
  await fs.promises.rename(part, dest);
  await writeSidecars(dest, d);
  return { file: dest, bytes: d.bytes, md5: d.md5, sha256: d.sha256, status: startedAt > 0 && !restarted ? "resumed" : "downloaded", restarted };
}

/**
 * Verify a file placed by hand (e.g. ImageNet's archives): it must exist and match the given checksum/size.
 * Writes the sidecar on success; throws naming the file and what is wrong otherwise (the file is left alone).
 */
export async function verifyFile(file: string, expected: { md5?: string; sha256?: string; size?: number }, opts: { progressMode?: ProgressMode } = {}): Promise<Digests> {
  if (!fs.existsSync(file)) throw new DownloadError(`${file} not found`, file);
  if (sidecarsVouch(file, expected) && (expected.size === undefined || expected.size === fileSize(file))) {
    const s = readSidecars(file);
    return { md5: s.md5 ?? "", sha256: s.sha256 as string, bytes: fileSize(file) };
  }
  const d = await hashFile(file, { progressMode: opts.progressMode, label: `verify ${path.basename(file)}` });
  const bad = checksumMismatch(d, expected);
  if (bad) throw new ChecksumError(`${file}: ${bad}; the file is incomplete or not the published one`, file);
  await writeSidecars(file, d);
  return d;
}

export interface ExtractOptions {
  /** Leading path components to drop from each entry. */
  strip?: number;
  /** Extract again even if `<archive>.extracted` says it was done. */
  force?: boolean;
  progressMode?: ProgressMode;
  label?: string;
}

/**
 * Extract a .tar, .tar.gz or .tgz into `dir` (created), with progress over the archive's bytes. Unsafe paths
 * (absolute, `..`) are not written outside `dir`. A corrupt or truncated archive is an error naming it.
 * Zip archives are refused (none of our sources needs them).
 */
export async function extractArchive(archive: string, dir: string, opts: ExtractOptions = {}): Promise<{ entries: number; skipped: boolean }> {
  const marker = `${archive}.extracted`;
  if (!opts.force && fs.existsSync(marker)) {
    try {
      const m = JSON.parse(fs.readFileSync(marker, "utf8"));
      if (path.resolve(m.dir) === path.resolve(dir)) return { entries: m.entries, skipped: true };
    } catch {
      // a damaged marker: extract again
    }
  }
  const fd = await fs.promises.open(archive, "r");
  const magic = Buffer.alloc(4);
  await fd.read(magic, 0, 4, 0);
  await fd.close();
  if (magic.toString("latin1", 0, 2) === "PK") throw new Error(`${archive}: zip archives are not supported; extract it with unzip`);
  await fs.promises.mkdir(dir, { recursive: true });
  const size = fileSize(archive);
  const p = progress({ total: size, label: opts.label ?? `extract ${path.basename(archive)}`, unit: "B", mode: opts.progressMode });
  let entries = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const rs = fs.createReadStream(archive);
      const x = tar.x({ cwd: dir, strip: opts.strip, strict: true, onentry: () => void entries++ });
      const fail = (e: Error) => {
        rs.destroy();
        reject(new Error(`${archive}: cannot extract: ${e.message}`));
      };
      rs.on("data", (c) => p.tick(c.length));
      rs.on("error", fail);
      x.on("error", fail);
      x.on("close", () => resolve());
      rs.pipe(x);
    });
  } finally {
    p.done({ entries });
  }
  if (entries === 0) throw new Error(`${archive}: no entries extracted; not a tar archive?`);
  await fs.promises.writeFile(marker, JSON.stringify({ dir: path.resolve(dir), entries }) + "\n");
  return { entries, skipped: false };
}
