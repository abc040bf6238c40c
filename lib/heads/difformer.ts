/**
 * DifFormer head (the extended paper, arXiv 2311.17921; `soumik-kanad/diffssl` scripts/fusion.sh,
 * ssl_diff/attention_fusion.py): one attention head over the tokens of several U-Net blocks at several
 * timesteps.
 *
 *   per block b (weights shared by all timesteps):
 *     [C_b, S_b, S_b] -> adaptive average pooling to s_b = min(S_b, prePool) (PyTorch's bins)
 *                     -> LayerNorm over the whole [C_b, s_b, s_b] map -> 1x1 conv C_b -> dim (with bias)
 *                     -> s_b^2 tokens, row-major
 *   per timestep: the tokens of all blocks concatenated (block order), CLS in front, the transformer of
 *   ./attention.ts (one, shared across timesteps), CLS output
 *   the T CLS outputs concatenated in timestep order [n, T*dim] -> dense -> K logits.
 *
 * A row holds every map of every timestep, channel-major and flattened, timestep-major then block order:
 * row = [t0: map0, map1, ...][t1: map0, ...]... (`difformerRowLayout`). With one block and one timestep
 * whose size prePool divides, this is the attention head with `project: true`.
 * Parameter count: params.ts difformerParams. Checked against the official code by
 * `npm run check-reference -- ../shared/fixtures/diffssl/difformer`.
 */
import * as tf from "@tensorflow/tfjs";
import { applyPreLayer, applyTransformer, buildPreLayer, buildTransformer, denseApply, PreLayer } from "./attention";
import { Head, HeadTrace, ParamBuilder } from "./head";
import { adaptiveAvgPool } from "../model/resize";
import { DifFormerConfig } from "./params";

export interface DifFormerHeadOptions extends DifFormerConfig {
  numClasses: number;
  seed: number;
}

/** The pooled size of a map side: min(S, prePool). */
export function pooledSize(size: number, prePool: number): number {
  return Math.min(size, prePool);
}

/** Offsets (in values) of each [timestep][map] inside a row, and the row size. */
export function difformerRowLayout(cfg: Pick<DifFormerConfig, "maps" | "timesteps">): { offsets: number[][]; rowSize: number } {
  const sizes = cfg.maps.map((m) => m[0] * m[1] * m[2]);
  const offsets: number[][] = [];
  let at = 0;
  for (let t = 0; t < cfg.timesteps; t++) {
    offsets.push(sizes.map((s) => ((at += s), at - s)));
  }
  return { offsets, rowSize: at };
}

export function createDifFormerHead(opts: DifFormerHeadOptions): Head {
  const { maps, timesteps, prePool, dim, heads, blocks, mlpRatio } = opts;
  const what = "createDifFormerHead";
  if (!maps.length) throw new Error(`${what}: no block maps`);
  maps.forEach((m, i) => {
    if (m.length !== 3 || !m.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`${what}: maps[${i}] must be [C, H, W] positive integers, got ${JSON.stringify(m)}`);
  });
  if (!(Number.isInteger(timesteps) && timesteps >= 1)) throw new Error(`${what}: timesteps ${timesteps} must be a positive integer`);
  if (!(Number.isInteger(prePool) && prePool >= 1)) throw new Error(`${what}: prePool ${prePool} must be a positive integer`);
  if (!(Number.isInteger(dim) && Number.isInteger(heads) && heads > 0 && dim % heads === 0)) throw new Error(`${what}: dim ${dim} must be a multiple of heads ${heads}`);
  if (!(Number.isInteger(blocks) && blocks >= 0)) throw new Error(`${what}: blocks ${blocks} must be a non-negative integer`);
  const keys = opts.preLayerKeys ?? maps.map((_, i) => String(i));
  if (keys.length !== maps.length) throw new Error(`${what}: ${keys.length} preLayerKeys for ${maps.length} maps`);

  const pb = new ParamBuilder(opts.seed, 0xd1f);
  const pre = new Map<string, PreLayer>();
  maps.forEach((m, i) => {
    const [c, h, w] = m;
    const sh = pooledSize(h, prePool), sw = pooledSize(w, prePool);
    const have = pre.get(keys[i]);
    if (have) {
      const [hs, ws, hc] = have.g.shape;
      if (hs !== sh || ws !== sw || hc !== c) throw new Error(`${what}: maps sharing pre-layer ${keys[i]} differ in shape (${JSON.stringify(m)})`);
      return;
    }
    pre.set(keys[i], buildPreLayer(pb, `pre.${keys[i]}`, c, sh, sw, dim));
  });
  const tr = buildTransformer(pb, dim, heads, mlpRatio, blocks);
  const out = pb.dense("head", dim * timesteps, opts.numClasses);
  const { offsets, rowSize } = difformerRowLayout(opts);

  return {
    kind: "difformer",
    config: { dim, heads, mlpRatio, blocks, prePool, timesteps, maps: maps.map((m) => [...m]), preLayerKeys: [...keys] },
    inShape: [rowSize],
    numClasses: opts.numClasses,
    params: pb.params,
    apply(x, trace) {
      const n = x.shape[0];
      if (x.shape[1] !== rowSize) throw new Error(`DifFormer head: rows have ${x.shape[1]} values, expected ${rowSize} (${timesteps} timestep(s) x maps ${JSON.stringify(maps)})`);
      const clsOut: tf.Tensor2D[] = [];
      for (let t = 0; t < timesteps; t++) {
        const tokens = maps.map((m, i) => {
          const [c, h, w] = m;
          const sub: HeadTrace | undefined = trace && ((name, v) => trace(`${name}_t${t}_m${i}`, v));
          const map = x.slice([0, offsets[t][i]], [n, c * h * w]).reshape([n, c, h, w]).transpose([0, 2, 3, 1]) as tf.Tensor4D;
          const pooled = adaptiveAvgPool(map, pooledSize(h, prePool), pooledSize(w, prePool));
          sub?.("pool", pooled);
          return applyPreLayer(pooled, pre.get(keys[i])!, sub);
        });
        const all = tokens.length === 1 ? tokens[0] : (tf.concat(tokens, 1) as tf.Tensor3D);
        trace?.(`tokens_t${t}`, all);
        clsOut.push(applyTransformer(all, tr, trace && ((name, v) => trace(`${name}_t${t}`, v))));
      }
      const concat = clsOut.length === 1 ? clsOut[0] : tf.concat(clsOut, 1);
      trace?.("cls_concat", concat);
      const logits = denseApply(concat, out) as tf.Tensor2D;
      trace?.("logits", logits);
      return logits;
    },
    dispose() {
      for (const p of pb.params) p.variable.dispose();
    },
  };
}
