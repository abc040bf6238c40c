/**
 * Compare a loaded state dict with the names and shapes a model expects, and explain every
 * difference in one error.
 */
import { shapeText } from "./dtype";
import type { StateDict } from "./state-dict";

/** Lines listed per category before "... and N more". */
export const VALIDATE_MAX_LINES = 20;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function section(title: string, lines: string[]): string[] {
  if (lines.length === 0) return [];
  const shown = lines.slice(0, VALIDATE_MAX_LINES).map((l) => `  ${l}`);
  if (lines.length > VALIDATE_MAX_LINES) shown.push(`  ... and ${lines.length - VALIDATE_MAX_LINES} more`);
  return [`${title} (${lines.length}):`, ...shown];
}

/** A prefix such as "module." that, stripped from the found keys, would make most of them match. */
function prefixHint(expected: Map<string, number[]>, unexpected: string[]): string | null {
  for (const key of unexpected.slice(0, 5)) {
    for (const exp of expected.keys()) {
      if (key.length > exp.length && key.endsWith(exp) && key[key.length - exp.length - 1] === ".") {
        const prefix = key.slice(0, key.length - exp.length);
        const fixed = unexpected.filter((k) => k.startsWith(prefix) && expected.has(k.slice(prefix.length))).length;
        if (fixed >= unexpected.length / 2) return `most unexpected keys are expected keys with the prefix "${prefix}"; strip it`;
      }
    }
  }
  return null;
}

/**
 * Throw one error listing every missing key (with its expected shape), every unexpected key
 * (with its found shape) and every shape mismatch, when `found` does not match `expected`.
 */
export function validateStateDict(expected: Map<string, number[]>, found: StateDict, file: string): void {
  const missing: string[] = [];
  const mismatched: string[] = [];
  for (const [name, shape] of expected) {
    const t = found.get(name);
    if (!t) missing.push(`${name} expected ${shapeText(shape)}`);
    else if (!sameShape(t.shape, shape)) mismatched.push(`${name}: expected ${shapeText(shape)}, found ${shapeText(t.shape)}`);
  }
  const unexpectedKeys = [...found.keys()].filter((k) => !expected.has(k));
  if (missing.length + mismatched.length + unexpectedKeys.length === 0) return;
  const unexpected = unexpectedKeys.map((k) => `${k} found ${shapeText(found.get(k)!.shape)}`);

  const differ = missing.length + mismatched.length;
  const head =
    `${file}: the checkpoint does not match the model: ${missing.length} missing, ` +
    `${unexpected.length} unexpected, ${mismatched.length} with another shape ` +
    `(the model expects ${expected.size} tensors, the file has ${found.size})`;
  const hints: string[] = [];
  const prefix = prefixHint(expected, unexpectedKeys);
  if (prefix) hints.push(`hint: ${prefix}`);
  else if (mismatched.length > 0 || differ > expected.size / 10) {
    hints.push(
      `hint: this looks like a checkpoint for a different configuration: ${differ} of ${expected.size} expected keys ` +
        "differ; check the model flags (image size, channels, channel_mult, attention resolutions, learn_sigma, class_cond)",
    );
  }
  const lines = [
    head,
    ...hints,
    ...section("missing keys", missing),
    ...section("unexpected keys", unexpected),
    ...section("shape mismatches", mismatched),
  ];
  throw new Error(lines.join("\n"));
}
