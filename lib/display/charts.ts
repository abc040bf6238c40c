/**
 * Charts: a vega-lite spec becomes one display bundle —
 * - `application/vnd.vegalite.v5+json`: the spec, rendered live by JupyterLab and VS Code;
 * - `image/png`: a static picture rendered here (vega → SVG → PNG with sharp), which survives
 *   nbconvert's HTML export (Debian's nbconvert strips inline SVG);
 * - `text/plain`: the title and the data as text, for terminals and diff-able notebooks.
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import sharp from "sharp";
import { displayBundle, MimeBundle, MimeMetadata } from "./notebook";

export type VegaLiteSpec = vl.TopLevelSpec;

export interface ChartOptions {
  /** Pixel density of the PNG (2 = sharp on high-DPI screens). */
  scale?: number;
}

/** Render a vega-lite spec to SVG text (fonts: DejaVu Sans, installed by .ci/run). */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const withFont = { config: { font: "DejaVu Sans" }, ...spec } as VegaLiteSpec;
  const compiled = vl.compile(withFont).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Render a vega-lite spec to PNG bytes. */
export async function renderPng(spec: VegaLiteSpec, opts: ChartOptions = {}): Promise<Buffer> {
  const svg = await renderSvg(spec);
  const density = 72 * (opts.scale ?? 2);
  return sharp(Buffer.from(svg), { density }).png().toBuffer();
}

/** A short text rendering of a chart: its title and up to 20 data rows. */
export function chartText(spec: VegaLiteSpec): string {
  const s = spec as { title?: unknown; description?: string; data?: { values?: unknown[] } };
  const title = typeof s.title === "string" ? s.title : s.title ? JSON.stringify(s.title) : s.description ?? "chart";
  const rows = Array.isArray(s.data?.values) ? s.data!.values! : [];
  const shown = rows.slice(0, 20).map((r) => "  " + JSON.stringify(r));
  const more = rows.length > 20 ? [`  ... ${rows.length - 20} more rows`] : [];
  return [`[vega-lite chart] ${title}`, ...shown, ...more].join("\n");
}

export interface ChartOutput {
  data: MimeBundle;
  /** Display metadata: the PNG's CSS width, so a 2x picture shows at its natural size. */
  metadata: MimeMetadata;
}

/** The full display bundle of a chart. */
export async function chartBundle(spec: VegaLiteSpec, opts: ChartOptions = {}): Promise<ChartOutput> {
  const png = await renderPng(spec, opts);
  const { width, height } = await sharp(png).metadata();
  const scale = opts.scale ?? 2;
  return {
    data: {
      "application/vnd.vegalite.v5+json": spec as object,
      "image/png": png.toString("base64"),
      "text/plain": chartText(spec),
    },
    metadata: { "image/png": { width: Math.round((width ?? 0) / scale), height: Math.round((height ?? 0) / scale) } },
  };
}

/** Show a chart in the notebook (outside a notebook: print its text form). */
export async function showChart(spec: VegaLiteSpec, opts: ChartOptions = {}): Promise<void> {
  const { data, metadata } = await chartBundle(spec, opts);
  if (!displayBundle(data, undefined, false, metadata)) console.log(data["text/plain"]);
}
