/**
 * A pairwise CKA table in the paper's figure layout (rows = the diffusion model's blocks, columns =
 * the layers of what they are compared with), built from an accumulator's result, and what is read
 * off it: the best-matching column per row and the same-label ("same block") diagonal.
 */
import { CkaResult, pairValue } from "./layers";

export interface CkaAxis {
  /** Layer names as given to the accumulator. */
  names: string[];
  /** Labels shown on the axis (default: the names). */
  labels?: string[];
  /** Axis title ("GD block at t = 25"). */
  title: string;
}

export interface CkaTable {
  title: string;
  rowTitle: string;
  colTitle: string;
  rows: string[];
  cols: string[];
  /** values[r][c]: CKA of row layer r with column layer c. */
  values: number[][];
}

/** The rows x cols table of a result (every pair must be in it). */
export function ckaTable(result: CkaResult, rows: CkaAxis, cols: CkaAxis, title: string): CkaTable {
  const labels = (a: CkaAxis, what: string) => {
    const l = a.labels ?? a.names;
    if (l.length !== a.names.length) throw new Error(`ckaTable: ${what} has ${a.names.length} names but ${l.length} labels`);
    if (new Set(l).size !== l.length) throw new Error(`ckaTable: ${what} labels repeat (${l.join(", ")})`);
    return l.map(String);
  };
  return {
    title,
    rowTitle: rows.title,
    colTitle: cols.title,
    rows: labels(rows, "rows"),
    cols: labels(cols, "cols"),
    values: rows.names.map((r) => cols.names.map((c) => pairValue(result, r, c).cka)),
  };
}

/** The table as long rows { row, col, cka } (charts, CSV/JSON results). */
export function tableCells(t: CkaTable): { panel: string; row: string; col: string; cka: number }[] {
  return t.rows.flatMap((r, i) => t.cols.map((c, j) => ({ panel: t.title, row: r, col: c, cka: t.values[i][j] })));
}

export interface BestMatch {
  row: string;
  /** The column with the highest CKA for this row. */
  col: string;
  cka: number;
  /** Its position among the columns (0-based). */
  colIndex: number;
}

/** The best-matching column of every row (the first of ties; rows that are all NaN are skipped). */
export function bestMatches(t: CkaTable): BestMatch[] {
  const out: BestMatch[] = [];
  t.rows.forEach((r, i) => {
    let best = -1;
    t.values[i].forEach((v, j) => {
      if (Number.isFinite(v) && (best < 0 || v > t.values[i][best])) best = j;
    });
    if (best >= 0) out.push({ row: r, col: t.cols[best], cka: t.values[i][best], colIndex: best });
  });
  return out;
}

/** "GD block 3 -> layer1.2 (CKA 0.84)" per row. */
export function bestMatchLines(t: CkaTable, digits = 2): string[] {
  return bestMatches(t).map((b) => `${t.rowTitle} ${b.row} -> ${t.colTitle} ${b.col} (CKA ${b.cka.toFixed(digits)})`);
}

/** The cells whose row and column carry the same label (same block at another t or pooled size), in row order. */
export function sameLabelDiagonal(t: CkaTable): { row: string; cka: number }[] {
  return t.rows.flatMap((r, i) => {
    const j = t.cols.indexOf(r);
    return j < 0 ? [] : [{ row: r, cka: t.values[i][j] }];
  });
}

/** Mean of the finite values of a list (NaN when none). */
export function meanOf(values: readonly number[]): number {
  const f = values.filter((v) => Number.isFinite(v));
  return f.length ? f.reduce((a, b) => a + b, 0) / f.length : NaN;
}
