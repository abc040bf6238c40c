/**
 * The scale switch every notebook reads at its top:
 * - `smoke`: CI; seconds to a few minutes, tiny data, checks that every cell runs;
 * - `demo`:  the embedded default (offline, this project's own model and data), ~minutes;
 * - `full`:  the paper's real setting (official checkpoints and datasets, hours on a GPU).
 * Set by $DIFFPROBE_SCALE (npm run notebooks -- --scale X sets it); default `demo`.
 */
export type Scale = "smoke" | "demo" | "full";
export const SCALES: readonly Scale[] = ["smoke", "demo", "full"];
export const SCALE_ENV = "DIFFPROBE_SCALE";

export function parseScale(raw: string | undefined, fallback: Scale = "demo"): Scale {
  if (raw === undefined || raw.trim() === "") return fallback;
  const s = raw.trim().toLowerCase();
  if (!(SCALES as readonly string[]).includes(s)) {
    throw new Error(`${SCALE_ENV}=${JSON.stringify(raw)}: expected one of ${SCALES.join(", ")}`);
  }
  return s as Scale;
}

/** The scale in force for this process. */
export function currentScale(): Scale {
  return parseScale(process.env[SCALE_ENV]);
}

/** Pick the value for the current scale: `byScale({smoke: 8, demo: 500, full: 50000})`. */
export function byScale<T>(values: Record<Scale, T>, scale: Scale = currentScale()): T {
  return values[scale];
}
