/**
 * The one description of the torchvision networks (and the GAN discriminator): a network is a list of named
 * stages, each a function of a small set of operations on an opaque value `T`. The same stages are lowered
 * twice: to tfjs tensors (./lower-tfjs, NHWC inside) and to an ONNX graph (./lower-onnx, NCHW), so no network
 * is written twice. Layout is the lowering's business: the stages only say "flatten channel-major" or "map
 * to tokens", never which axis is which.
 *
 * Weights are named as in PyTorch ("layer1.0.conv1.weight"); a BatchNorm `name` refers to the folded
 * per-channel `${name}.scale` and `${name}.shift` (./weights).
 */

export interface ConvSpec {
  stride: number;
  /** Zero padding on every side. */
  pad: number;
  /** Add `${name}.bias`. */
  bias: boolean;
}

export interface NetOps<T> {
  /** nn.Conv2d with `${name}.weight` [out, in, kh, kw] (PyTorch layout). */
  conv(x: T, name: string, spec: ConvSpec): T;
  /** Evaluation-mode BatchNorm2d: x * scale + shift per channel. */
  batchNorm(x: T, name: string): T;
  relu(x: T): T;
  leakyRelu(x: T, alpha: number): T;
  gelu(x: T): T;
  tanh(x: T): T;
  add(a: T, b: T): T;
  /** nn.MaxPool2d(k, stride, pad): padding never wins the max. */
  maxPool(x: T, k: number, stride: number, pad: number): T;
  /** Mean over the spatial axes of a map: [N, C]. */
  spatialMean(x: T): T;
  /** A map flattened in PyTorch's order (channel, row, column): [N, C*H*W]. */
  flatten(x: T): T;
  /** A map [N, C, H, W] as tokens [N, H*W, C] (row-major patches). */
  mapToTokens(x: T): T;
  /** nn.Linear over the last axis: `weight` [out, in], `bias` [out]. */
  linear(x: T, name: string, weight?: string, bias?: string): T;
  /** nn.LayerNorm over the last axis (`${name}.weight`, `${name}.bias`). */
  layerNorm(x: T, name: string, eps: number): T;
  /** The parameter `name` [1, 1, D] put before every sequence of x [N, T, D]. */
  prependToken(x: T, name: string): T;
  /** x + the parameter `name` (broadcast). */
  addParam(x: T, name: string): T;
  /**
   * Scaled dot-product self-attention on packed projections qkv [N, T, 3D] (q, k, v in that order, as
   * nn.MultiheadAttention's in_proj): [N, T, D], `heads` heads of `headDim` (D = heads x headDim); q is
   * scaled by 1/sqrt(headDim) before q k^T.
   */
  selfAttention(qkv: T, heads: number, headDim: number): T;
  /** The first token of [N, T, D]: [N, D]. */
  firstToken(x: T): T;
}

/** One named step of a network; its output is what "the module `name`" returns in PyTorch. */
export interface Stage {
  name: string;
  apply<T>(ops: NetOps<T>, h: T): T;
}
