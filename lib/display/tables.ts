/**
 * Tables: results live as plain rows (objects), so any frame library reads them; arquero is
 * used for grouping/pivoting, and this module shows a table as HTML + text in one bundle.
 */
import * as aq from "arquero";
import { displayBundle, MimeBundle } from "./notebook";
import { escapeHtml } from "./progress";

export type Row = Record<string, unknown>;
/** Anything row-like: plain objects (interfaces too) or an arquero table. */
export type Rows = Table | readonly object[];
type Table = ReturnType<typeof aq.from>;

function toRows(t: Rows): Row[] {
  return Array.isArray(t) ? (t as Row[]) : ((t as Table).objects() as Row[]);
}

function cell(v: unknown, digits: number): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function columnsOf(rows: Row[]): string[] {
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  return cols;
}

/** Fixed-width text rendering with right-aligned numbers. */
export function tableText(t: Rows, digits = 3): string {
  const rows = toRows(t);
  const cols = columnsOf(rows);
  const cells = rows.map((r) => cols.map((c) => cell(r[c], digits)));
  const widths = cols.map((c, j) => Math.max(c.length, ...cells.map((r) => r[j].length)));
  const numeric = cols.map((c) => rows.every((r) => r[c] === undefined || r[c] === null || typeof r[c] === "number"));
  const fmt = (vals: string[]) => vals.map((v, j) => (numeric[j] ? v.padStart(widths[j]) : v.padEnd(widths[j]))).join("  ");
  return [fmt(cols), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(fmt)].join("\n");
}

/** HTML rendering (a plain <table>, styled by the notebook's own CSS). */
export function tableHtml(t: Rows, digits = 3): string {
  const rows = toRows(t);
  const cols = columnsOf(rows);
  const head = cols.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = rows
    .map((r) => `<tr>${cols.map((c) => `<td style="text-align:${typeof r[c] === "number" ? "right" : "left"}">${escapeHtml(cell(r[c], digits))}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export function tableBundle(t: Rows, digits = 3): MimeBundle {
  return { "text/html": tableHtml(t, digits), "text/plain": tableText(t, digits) };
}

/** Show a table in the notebook, or print it as text elsewhere. */
export function showTable(t: Rows, digits = 3): void {
  const bundle = tableBundle(t, digits);
  if (!displayBundle(bundle)) console.log(bundle["text/plain"]);
}

function isFlatObject(v: unknown): v is Row {
  if (!v || typeof v !== "object" || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  return Object.values(v).every((x) => x === null || x === undefined || typeof x !== "object");
}

/**
 * Rows with no object left in a cell: a column whose values are all flat objects (a block's
 * `{number, module}`) becomes one column per field (`block.number`, `block.module`; empty where the
 * row has none), and any other object or array is written as JSON text.
 */
function csvRows(rows: Row[]): Row[] {
  const split = new Map<string, string[]>();
  for (const c of columnsOf(rows)) {
    const objects = rows.map((r) => r[c]).filter((v) => v !== null && v !== undefined && typeof v === "object");
    if (objects.length > 0 && objects.every(isFlatObject)) split.set(c, columnsOf(objects as Row[]));
  }
  return rows.map((r) => {
    const out: Row = {};
    for (const [k, v] of Object.entries(r)) {
      const fields = split.get(k);
      if (fields) for (const f of fields) out[`${k}.${f}`] = v === null || v === undefined ? null : (v as Row)[f];
      else out[k] = v !== null && typeof v === "object" ? JSON.stringify(v) : v;
    }
    return out;
  });
}

/** Rows → CSV (RFC 4180 quoting), for results files any tool reads; nested values as in `csvRows`. */
export function toCsv(t: Rows): string {
  const rows = csvRows(toRows(t));
  const cols = columnsOf(rows);
  const q = (v: unknown) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [cols.map(q).join(","), ...rows.map((r) => cols.map((c) => q(r[c])).join(","))].join("\n") + "\n";
}

export { aq };
