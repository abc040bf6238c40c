/**
 * Ours beside the paper's: table rows that put our accuracy (with its 95% Wilson interval) next to the
 * paper's number and its source, and vega-lite charts in the paper's figure form with the paper's curve in
 * a panel of its own (its own axis: the paper's numbers are ImageNet with ADM-256, ours may be another model
 * and data set).
 */
import { wilsonInterval } from "../metrics/classification";
import type { VegaLiteSpec } from "../display/charts";

export interface CompareRow {
  setting: string;
  "ours %": number | null;
  "ours 95% interval": string;
  "test images": number | null;
  "paper %": number | null;
  "paper source": string;
}

const pct = (x: number) => Math.round(1e4 * x) / 100;

/** One row: our accuracy `acc` (0..1) on `n` images (or null: not run) beside the paper's `paper` (%, or null). */
export function compareRow(setting: string, ours: { acc: number; n: number } | null, paper: number | null, source: string): CompareRow {
  if (ours && !(ours.acc >= 0 && ours.acc <= 1 && Number.isInteger(ours.n) && ours.n > 0)) {
    throw new Error(`compareRow ${setting}: accuracy ${ours.acc} on ${ours.n} images is not a fraction of a positive count`);
  }
  const ci = ours ? wilsonInterval(ours.acc, ours.n) : null;
  return {
    setting,
    "ours %": ours ? pct(ours.acc) : null,
    "ours 95% interval": ci ? `${pct(ci.low).toFixed(2)}-${pct(ci.high).toFixed(2)}` : "not run",
    "test images": ours ? ours.n : null,
    "paper %": paper,
    "paper source": paper === null ? "-" : source,
  };
}

export interface CurvePoint {
  x: number;
  acc: number;
  series: string;
  low?: number;
  high?: number;
}

function curve(points: CurvePoint[], title: string, xTitle: string, yTitle: string, logX: boolean, width: number): object {
  const hasBand = points.some((p) => p.low !== undefined);
  const x = { field: "x", type: "quantitative", title: xTitle, scale: logX ? { type: "log" } : { zero: false } };
  const y = { field: "acc", type: "quantitative", title: yTitle, scale: { zero: false } };
  const color = { field: "series", type: "nominal", title: null };
  return {
    title, width, height: 190,
    data: { values: points },
    layer: [
      ...(hasBand ? [{ mark: { type: "rule", opacity: 0.5 }, encoding: { x, y: { field: "low", type: "quantitative" }, y2: { field: "high" }, color } }] : []),
      { mark: { type: "line", point: true }, encoding: { x, y, color, tooltip: [{ field: "series" }, { field: "x" }, { field: "acc", format: ".2f" }] } },
    ],
  };
}

/** Two panels side by side, ours and the paper's, each with its own y axis. */
export function besidePaperSpec(opts: {
  title: string; xTitle: string; ours: CurvePoint[]; paper: CurvePoint[]; oursTitle: string; paperTitle: string; yOurs?: string; yPaper?: string; logX?: boolean; width?: number;
}): VegaLiteSpec {
  const w = opts.width ?? 260;
  return {
    title: opts.title,
    hconcat: [
      curve(opts.ours, opts.oursTitle, opts.xTitle, opts.yOurs ?? "our accuracy %", !!opts.logX, w),
      curve(opts.paper, opts.paperTitle, opts.xTitle, opts.yPaper ?? "paper's accuracy %", !!opts.logX, w),
    ],
    resolve: { scale: { color: "independent" } },
  } as unknown as VegaLiteSpec;
}

/** The paper's points of a sweep as curve points (`xs` with one or more named series of accuracies). */
export function paperCurve(xs: number[], series: Record<string, number[]>): CurvePoint[] {
  return Object.entries(series).flatMap(([name, accs]) => {
    if (accs.length !== xs.length) throw new Error(`paperCurve ${name}: ${accs.length} values for ${xs.length} x positions`);
    return xs.map((x, i) => ({ x, acc: accs[i], series: name }));
  });
}
