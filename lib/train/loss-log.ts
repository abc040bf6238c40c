/**
 * The training loss log, a CSV file `step,loss,seconds` (seconds: cumulative training wall time at the
 * end of that step, across resumes). One line per step, appended as it finishes. On resume the file is
 * cut back to the checkpoint's step (lines written after the last checkpoint by a killed run go).
 */
import * as fs from "fs";

export const LOSS_HEADER = "step,loss,seconds";

export interface LossRow { step: number; loss: number; seconds: number }

export class LossLog {
  constructor(readonly file: string) {}

  /** Read all rows (empty when the file does not exist). */
  read(): LossRow[] {
    if (!fs.existsSync(this.file)) return [];
    const lines = fs.readFileSync(this.file, "utf8").split("\n").filter((l) => l.trim() !== "");
    if (lines[0] !== LOSS_HEADER) throw new Error(`${this.file}: not a loss log (header ${JSON.stringify(lines[0])})`);
    const rows: LossRow[] = [];
    for (const l of lines.slice(1)) {
      const [s, v, sec] = l.split(",").map(Number);
      // A torn last line (killed mid-write) is dropped.
      if (l.split(",").length === 3 && Number.isInteger(s) && Number.isFinite(sec)) rows.push({ step: s, loss: v, seconds: sec });
    }
    return rows;
  }

  /** Start a fresh log, or keep the rows up to `step` (atomic rewrite). */
  reset(step = 0): void {
    const keep = step > 0 ? this.read().filter((r) => r.step <= step) : [];
    const text = [LOSS_HEADER, ...keep.map(format)].join("\n") + "\n";
    const tmp = `${this.file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, this.file);
  }

  append(row: LossRow): void {
    fs.appendFileSync(this.file, format(row) + "\n");
  }
}

function format(r: LossRow): string {
  return `${r.step},${r.loss},${r.seconds.toFixed(3)}`;
}
