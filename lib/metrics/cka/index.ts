/**
 * Centred kernel alignment (CKA) between feature sets: estimators on Gram matrices (hsic), streaming
 * accumulators for many layer pairs (minibatch: unbiased HSIC over batches; linear: biased HSIC from
 * cross-products), one-shot helpers, reference-folder checks, and heat-map helpers for the paper's
 * figure. Import files, not this folder, from lib/ (tslab): `import { ... } from "./cka/index"`.
 */
export * from "./rows";
export * from "./hsic";
export * from "./layers";
export * from "./minibatch";
export * from "./linear";
export * from "./oneshot";
export * from "./fixtures";
export * from "./table";
export * from "./heatmap";
export * from "./paper";
export * from "./paper-bands";
export * from "./repool";
export * from "./zip";
