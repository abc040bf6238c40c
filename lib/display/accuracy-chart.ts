/**
 * An accuracy chart that shows differences: one point per row with its 95% interval as a bar, on an x axis
 * zoomed to the data (not from 0, where 81% and 86% look alike), and row labels never cut (labelLimit off).
 * A vega-lite spec, displayed as lib/display/charts.ts's bundle (spec + PNG + text).
 */
import { wilsonInterval } from "../metrics/classification";
import { showChart, VegaLiteSpec } from "./charts";

export interface AccuracyPoint {
  /** The row label, e.g. "U-Net output_blocks.2, t = 100" or "raw pixels (32x32, padded)". */
  label: string;
  /** Accuracy in [0, 1]. */
  accuracy: number;
  /** Bounds of its 95% interval, in [0, 1]. */
  low: number;
  high: number;
  /** Optional colour group ("diffusion", "baseline", ...). */
  group?: string;
}

/** A point with its 95% Wilson interval from `n` test examples. */
export function accuracyPoint(label: string, accuracy: number, n: number, group?: string): AccuracyPoint {
  const { low, high } = wilsonInterval(accuracy, n);
  return { label, accuracy, low, high, ...(group !== undefined ? { group } : {}) };
}

export interface AccuracyChartOptions {
  title?: string;
  /** x axis title (default "test accuracy, 95% interval"). */
  xTitle?: string;
  /** Plot width in pixels (default 300: with labels and legend the picture stays within a notebook's output area); the height follows the number of rows. */
  width?: number;
}

/** The x domain: every interval inside, with 5% of the span as margin either side, within [0, 1]. */
export function accuracyDomain(points: readonly AccuracyPoint[]): [number, number] {
  const lo = Math.min(...points.map((p) => p.low));
  const hi = Math.max(...points.map((p) => p.high));
  const margin = Math.max(0.05 * (hi - lo), 0.005);
  return [Math.max(0, lo - margin), Math.min(1, hi + margin)];
}

function checkPoints(points: readonly AccuracyPoint[]): void {
  if (!points.length) throw new Error("accuracyChartSpec: no points");
  points.forEach((p, i) => {
    const ok = [p.accuracy, p.low, p.high].every((v) => typeof v === "number" && v >= 0 && v <= 1) && p.low <= p.accuracy && p.accuracy <= p.high;
    if (!ok) throw new Error(`accuracyChartSpec: point ${i} (${JSON.stringify(p.label)}) needs 0 <= low <= accuracy <= high <= 1, got ${JSON.stringify(p)}`);
  });
}

/** The vega-lite spec: rows in the order given, a rule from low to high and a point at the accuracy. */
export function accuracyChartSpec(points: readonly AccuracyPoint[], opts: AccuracyChartOptions = {}): VegaLiteSpec {
  checkPoints(points);
  const values = points.map((p) => ({ label: p.label, accuracy: p.accuracy, low: p.low, high: p.high, ...(p.group !== undefined ? { group: p.group } : {}) }));
  const grouped = points.some((p) => p.group !== undefined);
  const x = {
    type: "quantitative" as const,
    scale: { domain: accuracyDomain(points), zero: false, nice: false },
    axis: { format: ".0%", title: opts.xTitle ?? "test accuracy, 95% interval", labelLimit: 0 },
  };
  const y = { field: "label", type: "nominal" as const, sort: null, axis: { title: null, labelLimit: 0 } };
  const color = grouped ? { color: { field: "group", type: "nominal" as const, title: null } } : {};
  return {
    ...(opts.title ? { title: opts.title } : {}),
    width: opts.width ?? 300,
    height: { step: 24 },
    data: { values },
    encoding: { y },
    layer: [
      { mark: { type: "rule", strokeWidth: 3, opacity: 0.5 }, encoding: { x: { field: "low", ...x }, x2: { field: "high" }, ...color } },
      {
        mark: { type: "point", filled: true, size: 60 },
        encoding: {
          x: { field: "accuracy", ...x },
          ...color,
          tooltip: [{ field: "label" }, { field: "accuracy", format: ".1%" }, { field: "low", format: ".1%" }, { field: "high", format: ".1%" }],
        },
      },
    ],
  } as VegaLiteSpec;
}

/** Show the chart (PNG + live spec + text) in the notebook, or its text form elsewhere. */
export async function showAccuracyChart(points: readonly AccuracyPoint[], opts: AccuracyChartOptions = {}): Promise<void> {
  await showChart(accuracyChartSpec(points, opts));
}
