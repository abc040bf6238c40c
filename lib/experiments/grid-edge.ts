/**
 * Whether a search's winner sits at an edge of its grid: a rate or an epoch count chosen at the largest (or
 * smallest) value tried may only mean the best lies beyond the grid. The selection reads one numeric tag of
 * its candidates (setting.tags, e.g. `lr`, `epochs`); `edgeNote` returns the sentence a notebook prints and
 * a results file keeps, or null when the winner is inside the grid (or the grid has one value).
 */
import type { Selection } from "./protocol/select";

/** Where `chosen` lies among the distinct `values` of a grid: "low", "high", "inside", or "single". */
export function gridPosition(values: readonly number[], chosen: number): "low" | "high" | "inside" | "single" {
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  if (!distinct.includes(chosen)) throw new Error(`gridPosition: ${chosen} is not a value of the grid ${JSON.stringify(distinct)}`);
  if (distinct.length < 2) return "single";
  if (chosen === distinct[distinct.length - 1]) return "high";
  if (chosen === distinct[0]) return "low";
  return "inside";
}

/** The sentence for a selection whose chosen `tag` is at an edge of the grid's values; null otherwise. */
export function edgeNote(selection: Selection, tag: string, what: string): string | null {
  const values = selection.grid.map((r) => r[tag]);
  const chosen = selection.chosen[tag];
  if (typeof chosen !== "number" || values.some((v) => typeof v !== "number")) throw new Error(`edgeNote: ${selection.features}: tag "${tag}" is not a number on every candidate`);
  const grid = [...new Set(values as number[])].sort((a, b) => a - b);
  const pos = gridPosition(grid, chosen);
  if (pos === "inside" || pos === "single") return null;
  return `${what} ${chosen} chosen on validation is the ${pos === "high" ? "largest" : "smallest"} of the grid [${grid.join(", ")}]: the best may lie beyond it; widen the grid.`;
}
