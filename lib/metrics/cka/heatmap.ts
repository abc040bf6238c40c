/**
 * Vega-lite specs for CKA figures (show them with lib/display/charts' showChart, which sends the spec, a PNG
 * and a text form): a heat-map per table in the paper's layout (rows = diffusion blocks, columns =
 * the other layers, magma colours on [0, 1]) with the best match of each row marked, several tables
 * side by side on one colour scale, and same-block curves.
 */
import type { VegaLiteSpec } from "../../display/charts";
import { bestMatches, CkaTable } from "./table";

export interface HeatmapOptions {
  /** Cell size in pixels (default 14). */
  cell?: number;
  /** Colour domain (default [0, 1]; values outside are clamped: minibatch CKA can dip below 0). */
  domain?: [number, number];
  /** Mark each row's best-matching column with a ring (default true). */
  markBest?: boolean;
}

function cells(t: CkaTable) {
  const best = new Map(bestMatches(t).map((b) => [b.row, b.col]));
  return t.rows.flatMap((r, i) => t.cols.map((c, j) => ({ row: r, col: c, cka: t.values[i][j], best: best.get(r) === c })));
}

/** One heat-map (a vega-lite layer spec without top-level config). */
function heatmapLayer(t: CkaTable, opts: HeatmapOptions) {
  const cell = opts.cell ?? 14;
  const domain = opts.domain ?? [0, 1];
  const x = { field: "col", type: "ordinal" as const, sort: t.cols, title: t.colTitle, axis: { labelAngle: -60 } };
  const y = { field: "row", type: "ordinal" as const, sort: t.rows, title: t.rowTitle };
  const layers: object[] = [
    {
      mark: "rect",
      encoding: {
        x, y,
        color: { field: "cka", type: "quantitative", title: "CKA", scale: { scheme: "magma", domain, clamp: true } },
        tooltip: [{ field: "row", title: t.rowTitle }, { field: "col", title: t.colTitle }, { field: "cka", format: ".3f" }],
      },
    },
  ];
  if (opts.markBest ?? true) {
    layers.push({
      transform: [{ filter: "datum.best" }],
      mark: { type: "point", shape: "circle", filled: false, color: "#2ca02c", size: cell * 5, strokeWidth: 1.5 },
      encoding: { x, y },
    });
  }
  return {
    title: t.title,
    width: Math.max(60, cell * t.cols.length),
    height: Math.max(60, cell * t.rows.length),
    data: { values: cells(t) },
    layer: layers,
  };
}

/** A CKA heat-map: rows and columns in the table's order, magma colours, best match per row ringed. */
export function ckaHeatmapSpec(t: CkaTable, opts: HeatmapOptions = {}): VegaLiteSpec {
  return heatmapLayer(t, opts) as unknown as VegaLiteSpec;
}

/** Several heat-maps side by side on one colour scale (the figure's panels). */
export function ckaPanelsSpec(tables: readonly CkaTable[], title: string, opts: HeatmapOptions = {}): VegaLiteSpec {
  if (tables.length === 0) throw new Error("ckaPanelsSpec: no tables");
  return {
    title,
    hconcat: tables.map((t) => heatmapLayer(t, opts)),
    resolve: { scale: { color: "shared" } },
  } as unknown as VegaLiteSpec;
}

/** One point of a same-block curve: CKA of a block with itself under another setting. */
export interface SameBlockPoint {
  /** Which chart ("ours: t = 25 vs t", "paper: t = 90 vs t"). */
  panel: string;
  /** The other setting ("t = 10"). */
  series: string;
  block: number;
  cka: number;
}

/** Same-block CKA against block index, one line per setting, one chart per panel, side by side; y on [0, 1]. */
export function sameBlockSpec(points: readonly SameBlockPoint[], title: string): VegaLiteSpec {
  const panels = [...new Set(points.map((p) => p.panel))];
  return {
    title,
    hconcat: panels.map((panel) => ({
      title: panel,
      width: 260,
      height: 160,
      data: { values: points.filter((p) => p.panel === panel) },
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "block", type: "quantitative", title: "block", axis: { tickMinStep: 1 } },
        y: { field: "cka", type: "quantitative", title: "same-block CKA", scale: { domain: [0, 1] } },
        color: { field: "series", type: "nominal", title: "vs" },
        tooltip: [{ field: "series" }, { field: "block" }, { field: "cka", format: ".3f" }],
      },
    })),
  } as unknown as VegaLiteSpec;
}
