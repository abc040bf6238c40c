/**
 * CKA of two feature matrices over the same images, in one call (the streaming accumulators under the
 * hood): `linearCka(x, y)`, `minibatchCka(x, y, batchSize)`, and the full-sample unbiased HSIC.
 */
import { CkaPairValue } from "./layers";
import { LinearCka, LinearCkaOptions } from "./linear";
import { MinibatchCka } from "./minibatch";
import { FeatureRows, checkRows } from "./rows";

function pairOf(x: FeatureRows, y: FeatureRows, what: string) {
  checkRows(x, `${what}: x`);
  checkRows(y, `${what}: y`);
  if (x.n !== y.n) throw new Error(`${what}: x has ${x.n} rows, y has ${y.n}; both must hold the same images`);
  return { layers: [{ name: "x", dim: x.dim }, { name: "y", dim: y.dim }], pairs: [["x", "y"]] as [string, string][], batch: { x: x.data, y: y.data } };
}

/** Linear CKA (biased HSIC) of two matrices. */
export function linearCka(x: FeatureRows, y: FeatureRows, opts: Pick<LinearCkaOptions, "maxBytes"> = {}): CkaPairValue {
  const p = pairOf(x, y, "linearCka");
  const acc = new LinearCka({ layers: p.layers, pairs: p.pairs, maxBytes: opts.maxBytes });
  acc.add(p.batch);
  return acc.result().pairs[0];
}

/** Minibatch CKA over consecutive batches of `batchSize` rows (the last one shorter, if any, per `tail`). */
export function minibatchCka(x: FeatureRows, y: FeatureRows, batchSize: number, tail: "batch" | "drop" = "batch"): CkaPairValue {
  const p = pairOf(x, y, "minibatchCka");
  const acc = new MinibatchCka({ layers: p.layers, pairs: p.pairs, batchSize, tail });
  acc.add(p.batch);
  return acc.result().pairs[0];
}

/** The unbiased HSIC of the two linear Grams over all rows (one batch of n; n >= 4). */
export function hsicUnbiasedFull(x: FeatureRows, y: FeatureRows): number {
  pairOf(x, y, "hsicUnbiasedFull");
  if (x.n < 4) throw new Error(`hsicUnbiasedFull: needs at least 4 rows, got ${x.n}`);
  return minibatchCka(x, y, x.n).hsicXY;
}
