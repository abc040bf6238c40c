/**
 * The paper's CKA values as far as they can be read off its last figure, transcribed from
 * ../shared/paper/results.json (`cka`; test/cka.test.ts checks the copy where that file is present).
 * The figure is a raster heat-map: the values are approximate and values >= 0.9 are clipped. Only
 * what that section says is here: same-block CKA of GD at t = 90 against t = 10, 300 and 500 for the
 * 25 block indices, and the findings in words. The pooled-size, ResNet-50 and ViT-B panels have no
 * numbers in it.
 */
export interface PaperCka {
  source: string;
  method: string;
  layout: string;
  /** Same-block CKA, GD at t = 90 vs GD at t, for block indices 0..24. */
  sameBlockT90Vs: Record<"t10" | "t300" | "t500", number[]>;
  findings: string[];
}

export const PAPER_CKA: PaperCka = {
  source: "A (raster heat-maps: approximate, values >= 0.9 clipped)",
  method: "centered kernel alignment; linear or minibatch, image set and pooling not stated (the first author's earlier code: linear CKA on every 5th ImageNet val image)",
  layout:
    "y axis: GD, 25 block indices (0..24); panels: GD t=90 vs GD t=10/90/300/500; GD vs GD at pooled dims 1024/4096/16384/65536; GD vs ResNet-50 (supervised, MoCo v2, SimCLR, SwAV; 19 layers each); GD vs ViT-B (supervised, DINO, MAE; 14 layers each) and Stable Diffusion (17 layers)",
  sameBlockT90Vs: {
    t10: [0.9, 0.79, 0.71, 0.77, 0.79, 0.8, 0.8, 0.83, 0.84, 0.86, 0.84, 0.71, 0.8, 0.73, 0.65, 0.66, 0.7, 0.74, 0.77, 0.75, 0.68, 0.6, 0.59, 0.57, 0.54],
    t300: [0.9, 0.9, 0.85, 0.74, 0.75, 0.69, 0.78, 0.84, 0.84, 0.86, 0.82, 0.77, 0.81, 0.8, 0.79, 0.81, 0.82, 0.82, 0.81, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86],
    t500: [0.6, 0.88, 0.79, 0.55, 0.55, 0.42, 0.55, 0.72, 0.72, 0.76, 0.69, 0.59, 0.66, 0.63, 0.64, 0.67, 0.69, 0.7, 0.69, 0.68, 0.68, 0.7, 0.72, 0.74, 0.72],
  },
  findings: [
    "early GD blocks 0-2 match layer 0 of every network (0.78-0.90)",
    "GD blocks 3-9 match early ResNet layers (0.75-0.89)",
    "GD blocks 10-16 match mid ResNet layers and ViT layers 3-8 (0.6-0.84)",
    "GD blocks 17-24 match the last ResNet layers and late ViT layers (0.57-0.78)",
    "deep GD blocks vs shallow GD blocks at another t: near 0.1-0.2",
  ],
};
