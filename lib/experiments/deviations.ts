/**
 * Where a notebook departs from the official recipe (the authors' public loop, `soumik-kanad/diffssl`
 * finetune.py and scripts/*.sh: recipes_from_code in assets/paper/later-paper.json), as one table per
 * notebook: what, the official way, ours, why, and the effect where notebook 09 measured it.
 *
 * The effect comes from 09's results file at the same scale (build/results/official-recipe.<scale>.json,
 * `effects`), so a notebook shows what was measured, when it was; before 09 has run, the column says so.
 */
import type { Scale } from "../scale";
import { readResults } from "../results";

export interface Deviation {
  what: string;
  official: string;
  ours: string;
  why: string;
  /** Measured effect (notebook 09), or how to measure it. */
  effect: string;
}

/** Keys of the effects notebook 09 records (its results' `effects`). */
export type EffectKey = "views" | "kViews" | "fusion" | "feedback";

/** The sentence 09 measured for `key` at `scale`, or a pointer to 09. */
export function measuredEffect(key: EffectKey, scale: Scale, dir?: string): string {
  const r = readResults("official-recipe", scale, dir) as (Record<string, unknown> & { effects?: Record<string, string> }) | null;
  const e = r?.effects?.[key];
  return e ? `09 (${scale}): ${e}` : `not measured at ${scale} yet: run notebook 09 (npm run notebooks -- --scale ${scale} 09)`;
}

/**
 * The departures every cached-feature notebook shares (02, 04, 05, 06, 08), plus `extra` rows of its own
 * (a learning rate chosen on validation, a head's width, ...).
 */
export function cachedProtocolDeviations(scale: Scale, extra: Deviation[] = [], dir?: string): Deviation[] {
  return [
    {
      what: "training views",
      official: "every epoch a fresh random_crop_arr (0.8-1.0) + flip and fresh noise per image",
      ours: "the centre image with one seeded noise draw, extracted once (04 and 06: settings.views switches)",
      why: "one extraction serves every head and grid point; a rerun reads the store",
      effect: measuredEffect("views", scale, dir),
    },
    {
      what: "evaluation noise",
      official: "fresh random noise at each evaluation",
      ours: "one seeded draw per test image",
      why: "a test score that reproduces exactly; 02 and 08 repeat the draw over seeds",
      effect: "the seed repeats of 02 and 08 show the spread of the noise draw",
    },
    ...extra,
  ];
}
