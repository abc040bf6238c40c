/**
 * The demo's images: the first N of a Fashion-MNIST split (its seeded order), named with N in the store's
 * dataset field ("fashion-mnist-first640"). The store's key does not hold the image list, so two notebooks
 * (or two scales) that take different N must not share a set: with N in the name, smoke and demo sets live
 * side by side, and notebooks that take the same N (04 and 05 at demo) share theirs.
 */
import { fashionMnistSource, ImageSource } from "../features/store/images";

export function fashionMnistFirst(split: "train" | "test", n: number): ImageSource {
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`fashionMnistFirst: image count ${n} must be a positive integer`);
  const src = fashionMnistSource(split, n);
  if (src.ids.length !== n) throw new Error(`fashion-mnist/${split}: asked for the first ${n} images, the split has ${src.ids.length}`);
  return { ...src, dataset: `${src.dataset}-first${n}` };
}
