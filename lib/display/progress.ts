/**
 * Progress for long work, with rate and ETA, in lines of at most LINE_WIDTH (100) columns — a long label is
 * shortened, then extra fields are dropped, never a figure cut:
 * - in a tslab notebook, one output line that updates in place (a 120 px HTML bar + a text that does not
 *   wrap, both within ~100 columns of the output area; text/plain for exports and terminals);
 * - in a terminal (TTY), a cli-progress bar;
 * - elsewhere (CI logs, pipes), a plain line at most every few seconds and at the end.
 * DIFFPROBE_PROGRESS=notebook|tty|log|silent overrides the choice (`npm test` sets silent).
 */
import { SingleBar } from "cli-progress";
import { DisplaySlot, inNotebook, MimeBundle } from "./notebook";

export interface ProgressOptions {
  total: number;
  label: string;
  /** What is counted: "img", "step", "B"... */
  unit?: string;
  /** Force a mode (tests): "notebook" | "tty" | "log" | "silent". */
  mode?: ProgressMode;
  /** Minimum milliseconds between updates of the log/notebook displays. */
  intervalMs?: number;
  /** Where log mode writes (default stderr). */
  write?: (line: string) => void;
}

export type ProgressMode = "notebook" | "tty" | "log" | "silent";
export type ProgressInfo = Record<string, string | number>;

export interface Progress {
  /** Advance by n (default 1), optionally updating extra fields shown beside the bar (loss, ...). */
  tick(n?: number, info?: ProgressInfo): void;
  /** Set the absolute position. */
  update(value: number, info?: ProgressInfo): void;
  /** Finish: the display shows the final count, elapsed time and mean rate. */
  done(info?: ProgressInfo): void;
  readonly value: number;
}

/** "1h02m", "3m05s", "12.3s". */
export function formatDuration(seconds: number): string {
  if (!isFinite(seconds)) return "?";
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** "12.5 img/s" or "4.2 s/img" for slow work. */
export function formatRate(perSecond: number, unit: string): string {
  if (!isFinite(perSecond) || perSecond <= 0) return `? ${unit}/s`;
  if (perSecond >= 1) return `${perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(2)} ${unit}/s`;
  return `${(1 / perSecond).toFixed(2)} s/${unit}`;
}

function formatInfo(info: ProgressInfo): string {
  return Object.entries(info)
    .map(([k, v]) => `${k}=${typeof v === "number" ? (Number.isInteger(v) ? v : v.toPrecision(4)) : v}`)
    .join(" ");
}

/** Environment variable that sets the display of every progress line that does not name its mode. */
export const PROGRESS_ENV = "DIFFPROBE_PROGRESS";
const MODES: readonly ProgressMode[] = ["notebook", "tty", "log", "silent"];

/** The default mode: $DIFFPROBE_PROGRESS if set, else notebook, tty or log by where we run. */
export function detectMode(): ProgressMode {
  const forced = process.env[PROGRESS_ENV]?.trim();
  if (forced) {
    if (!(MODES as readonly string[]).includes(forced)) throw new Error(`${PROGRESS_ENV}=${JSON.stringify(forced)}: expected one of ${MODES.join(", ")}`);
    return forced as ProgressMode;
  }
  if (inNotebook()) return "notebook";
  if (process.stderr.isTTY) return "tty";
  return "log";
}

/** Columns a progress line may take (a notebook's output area at its default width holds about 100). */
export const LINE_WIDTH = 100;
/** Columns the notebook's HTML bar takes beside its text (120 px of 13 px monospace). */
const BAR_COLUMNS = 16;
/** A label is never shortened below this many characters (extra fields are dropped first). */
const MIN_LABEL = 16;

/** `s` cut to `n` characters, ending in "…" when cut. */
function shorten(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, Math.max(0, n - 1)) + "…";
}

/**
 * The status line shared by log and notebook displays, at most `width` columns: the count, percentage,
 * rate, elapsed time and ETA are always whole; a long label is shortened (down to 16 characters), then
 * extra fields are dropped from the end.
 */
export function statusLine(label: string, value: number, total: number, elapsedS: number, unit: string, info: ProgressInfo, width = LINE_WIDTH): string {
  const rate = elapsedS > 0 ? value / elapsedS : NaN;
  const eta = rate > 0 ? (total - value) / rate : NaN;
  const pct = total > 0 ? ((100 * value) / total).toFixed(0) : "?";
  const core = `${value}/${total} (${pct}%) ${formatRate(rate, unit)} elapsed ${formatDuration(elapsedS)} ETA ${value >= total ? "0s" : formatDuration(eta)}`;
  const fields = Object.entries(info);
  const line = (l: string, f: [string, string | number][]) => `${l}: ${core}${f.length ? ` ${formatInfo(Object.fromEntries(f))}` : ""}`;
  for (let k = fields.length; k >= 0; k--) {
    const kept = fields.slice(0, k);
    const room = width - line("", kept).length;
    if (room >= Math.min(MIN_LABEL, label.length)) return line(shorten(label, room), kept);
  }
  return line(shorten(label, MIN_LABEL), []);
}

export function progress(opts: ProgressOptions): Progress {
  const mode = opts.mode ?? detectMode();
  const unit = opts.unit ?? "it";
  const interval = opts.intervalMs ?? (mode === "log" ? 5000 : 250);
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const start = Date.now();
  let value = 0;
  let info: ProgressInfo = {};
  let lastShown = 0;
  let finished = false;

  let bar: SingleBar | null = null;
  const slot = mode === "notebook" ? new DisplaySlot() : null;
  if (mode === "tty") {
    bar = new SingleBar({
      format: `${shorten(opts.label, 32)} |{bar}| {value}/{total} {percentage}% | {rate} | ETA {eta_formatted} {info}`,
      barsize: 20,
      hideCursor: true,
      etaBuffer: 50,
      stream: process.stderr,
    });
    bar.start(opts.total, 0, { rate: "", info: "" });
  }

  const render = (final: boolean) => {
    const now = Date.now();
    if (!final && now - lastShown < interval) return;
    lastShown = now;
    const elapsed = (now - start) / 1000;
    if (mode === "tty" && bar) {
      bar.update(value, { rate: formatRate(elapsed > 0 ? value / elapsed : NaN, unit), info: formatInfo(info) });
      if (final) bar.stop();
    } else if (mode === "notebook" && slot) {
      slot.show(progressBundle(statusLine(opts.label, value, opts.total, elapsed, unit, info, LINE_WIDTH - BAR_COLUMNS), value, opts.total));
    } else if (mode === "log") {
      write(statusLine(opts.label, value, opts.total, elapsed, unit, info));
    }
  };

  const p: Progress = {
    tick(n = 1, extra) {
      p.update(value + n, extra);
    },
    update(v, extra) {
      value = v;
      if (extra) info = { ...info, ...extra };
      render(false);
    },
    done(extra) {
      if (finished) return;
      finished = true;
      if (extra) info = { ...info, ...extra };
      render(true);
    },
    get value() {
      return value;
    },
  };
  render(true);
  return p;
}

/**
 * A notebook progress display: a 120 px bar and the status line, on one line that never wraps (the line is
 * sized to fit beside the bar). `class="diffprobe-progress"` and its data-value/data-total attributes let a
 * browser test read how far it got.
 */
export function progressBundle(line: string, value: number, total: number): MimeBundle {
  const pct = total > 0 ? Math.min(100, (100 * value) / total) : 0;
  return {
    "text/plain": line,
    "text/html":
      `<div class="diffprobe-progress" data-value="${value}" data-total="${total}" style="font-family:monospace;white-space:pre">` +
      `<div style="display:inline-block;width:120px;height:10px;border:1px solid #888;vertical-align:middle">` +
      `<div style="width:${pct.toFixed(1)}%;height:100%;background:#4c78a8"></div></div> ${escapeHtml(line)}</div>`,
  };
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
