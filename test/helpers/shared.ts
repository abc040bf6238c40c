/**
 * Access to the reference fixtures in ../shared (beside the checkout). Tests that need them skip
 * with a clear message when the folder is absent; the product itself never reads ../shared.
 */
import * as fs from "fs";
import * as path from "path";

/** Root of the shared fixtures: $DIFFPROBE_SHARED, else ../shared beside the repository. */
export const SHARED_ROOT = process.env.DIFFPROBE_SHARED ?? path.resolve(__dirname, "..", "..", "..", "shared");

/** Absolute path of a shared fixture, or null when it does not exist. */
export function sharedPath(...parts: string[]): string | null {
  const p = path.join(SHARED_ROOT, ...parts);
  return fs.existsSync(p) ? p : null;
}

/**
 * Path of a shared fixture, or skip the current test (or hook) with a message naming what is missing.
 * Use inside `it`/`before` with a `function () {}` so that `this` is mocha's context.
 */
export function sharedOrSkip(ctx: Mocha.Context, ...parts: string[]): string {
  const p = sharedPath(...parts);
  if (!p) {
    console.log(`      (skipped: shared fixture ${path.join(SHARED_ROOT, ...parts)} is absent)`);
    ctx.skip();
  }
  return p as string;
}
