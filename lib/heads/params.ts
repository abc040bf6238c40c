/**
 * Parameter counts of the heads, by formula (no tensors built), for the paper's settings and ours.
 * test/heads.test.ts checks each formula against a built head (countParams) and against the rows of
 * ../shared/paper/results.json `imagenet50_heads` (1024-channel block map, 16 x 16, 1000 classes).
 */

/** A dense layer with bias. */
export function denseParams(fanIn: number, out: number): number {
  return fanIn * out + out;
}

/** Linear head on a D-dimensional (pooled) vector: D*K + K. Pool 1 on 1024 channels, 1000 classes: 1,025,000. */
export function linearParams(inDim: number, numClasses: number): number {
  return denseParams(inDim, numClasses);
}

/** MLP head: D -> hidden[0] -> ... -> K, every layer with bias (ReLU between). hidden [] is the linear head. */
export function mlpParams(inDim: number, hidden: readonly number[], numClasses: number): number {
  let total = 0, prev = inDim;
  for (const h of hidden) {
    total += denseParams(prev, h);
    prev = h;
  }
  return total + denseParams(prev, numClasses);
}

/** Our CNN head (lib/heads/cnn.ts): see CnnHeadConfig. */
export interface CnnHeadConfig {
  /** Channels of every conv layer. */
  width: number;
  /** Number of 3x3 stride-2 conv layers after the 1x1 reduction (>= 0). */
  depth: number;
  /** Adaptive average pooling of the block map to prePool x prePool before the first conv (null: none). */
  prePool: number | null;
}

/** 1x1 conv C -> w, then depth x (3x3 conv w -> w), then dense w -> K; all with bias. */
export function cnnParams(channels: number, numClasses: number, cfg: CnnHeadConfig): number {
  const w = cfg.width;
  return denseParams(channels, w) + cfg.depth * denseParams(9 * w, w) + denseParams(w, numClasses);
}

/** The smallest CNN width whose head has at least `target` parameters (to place points on a params axis). */
export function cnnWidthForParams(channels: number, numClasses: number, depth: number, target: number): number {
  let w = 1;
  while (cnnParams(channels, numClasses, { width: w, depth, prePool: null }) < target) w++;
  return w;
}

/** Our attention head (lib/heads/attention.ts), after the authors' later code. */
export interface AttentionHeadConfig {
  /** Token width. The paper's: 1024. */
  dim: number;
  heads: number;
  mlpRatio: number;
  blocks: number;
  /** Average pooling kernel = stride applied to the block map to make tokens (paper: 2: 16x16 -> 64 tokens). */
  pool: number;
  /**
   * LayerNorm over [C, s, s] then a 1x1 conv C -> dim before the tokens (the authors' fusion code,
   * recipes.attention). Needed when C != dim; the paper's head counts (12,593,152 per block) have none.
   */
  project: boolean;
}

/** One pre-norm transformer block: 2 LayerNorms, qkv without bias, output projection, MLP (with biases). */
export function attentionBlockParams(dim: number, mlpRatio: number): number {
  const hidden = Math.floor(dim * mlpRatio);
  return 2 * (2 * dim) + 3 * dim * dim + denseParams(dim, dim) + denseParams(dim, hidden) + denseParams(hidden, dim);
}

/** CLS token + blocks + dense CLS -> K (+ the optional LayerNorm and 1x1 conv over a C x H x W map). */
export function attentionParams(mapShape: readonly number[], numClasses: number, cfg: AttentionHeadConfig): number {
  const [c, h, w] = mapShape;
  const s = Math.floor(h / cfg.pool) * Math.floor(w / cfg.pool);
  const proj = cfg.project ? 2 * c * s + denseParams(c, cfg.dim) : 0;
  return proj + cfg.dim + cfg.blocks * attentionBlockParams(cfg.dim, cfg.mlpRatio) + denseParams(cfg.dim, numClasses);
}

/**
 * The DifFormer head (lib/heads/difformer.ts; the official AttentionFusion over several blocks and
 * timesteps): per map an adaptive pool to min(size, prePool), LayerNorm over [C, s, s] and a 1x1 conv
 * to `dim`; one transformer shared by all timesteps; the CLS outputs of all timesteps into one dense.
 */
export interface DifFormerConfig {
  dim: number;
  heads: number;
  mlpRatio: number;
  /** Transformer blocks. */
  blocks: number;
  /** Pooled side = min(map side, prePool) (the official `pre_pool_size`). */
  prePool: number;
  /** [C, H, W] of each chosen block's map, in token order. */
  maps: number[][];
  /** How many timesteps' feature sets a row holds (timestep-major). */
  timesteps: number;
  /**
   * Which maps share a pre-layer (equal keys share; the official code keys its pre-layers by block
   * number, so a block read in both passes shares one). Default: one per map.
   */
  preLayerKeys?: string[];
}

/** Pre-layers (2*C*s^2 + C*dim + dim each, once per distinct key) + CLS + blocks + dense(T*dim -> K). */
export function difformerParams(numClasses: number, cfg: DifFormerConfig): number {
  const keys = cfg.preLayerKeys ?? cfg.maps.map((_, i) => String(i));
  const seen = new Set<string>();
  let pre = 0;
  cfg.maps.forEach(([c, h, w], i) => {
    if (seen.has(keys[i])) return;
    seen.add(keys[i]);
    pre += 2 * c * Math.min(h, cfg.prePool) * Math.min(w, cfg.prePool) + denseParams(c, cfg.dim);
  });
  return pre + cfg.dim + cfg.blocks * attentionBlockParams(cfg.dim, cfg.mlpRatio) + denseParams(cfg.dim * cfg.timesteps, numClasses);
}

/**
 * The MLP hidden widths that reproduce the paper's Fig. 1 counts (widths are not published): one hidden
 * layer of 2000 units (pool 1: 4.05M, pool 2: 10.20M, pool 4: 34.77M) and two of 2000 (pool 2: 14.20M).
 * The figure reads ~1-2% low at these sizes, as it does for the linear heads whose counts are exact
 * (pool 4: 16.1 read for 16.385M); 2048 units would give 35.6M for the 34.1M point.
 */
export const PAPER_MLP_HIDDEN: Readonly<Record<string, readonly number[]>> = {
  "1:4.1": [2000],
  "2:10.1": [2000],
  "2:14": [2000, 2000],
  "4:34.1": [2000],
};

/** The paper's attention setting (Fig. 1 D), `blocks` 1..5. */
export function paperAttentionConfig(blocks: number): AttentionHeadConfig {
  return { dim: 1024, heads: 8, mlpRatio: 4, blocks, pool: 2, project: false };
}

/** A row of results.json imagenet50_heads. */
export interface PaperHeadRow {
  head: string;
  pool?: number | null;
  blocks?: number;
  params_M: number;
}

/**
 * Our exact count for a row of results.json `imagenet50_heads` (1024 x 16 x 16 map, 1000 classes), or
 * null where the architecture is unknown (the CNN rows).
 */
export function paperRowParams(row: PaperHeadRow, channels = 1024, size = 16, numClasses = 1000): number | null {
  switch (row.head) {
    case "linear":
      return linearParams(channels * (row.pool as number) ** 2, numClasses);
    case "mlp": {
      const hidden = PAPER_MLP_HIDDEN[`${row.pool}:${row.params_M}`];
      if (!hidden) throw new Error(`paperRowParams: no MLP widths for pool ${row.pool}, ${row.params_M}M`);
      return mlpParams(channels * (row.pool as number) ** 2, hidden, numClasses);
    }
    case "attention":
      return attentionParams([channels, size, size], numClasses, paperAttentionConfig(row.blocks as number));
    case "cnn":
      return null;
    default:
      throw new Error(`paperRowParams: unknown head ${JSON.stringify(row.head)}`);
  }
}
