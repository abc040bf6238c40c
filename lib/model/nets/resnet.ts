/**
 * torchvision's ResNet with Bottleneck blocks (torchvision.models.resnet.ResNet(Bottleneck, layers)),
 * evaluation mode, on tfjs (NCHW at the API edge, NHWC inside) or ONNX Runtime.
 *
 *   conv1 (7x7/2, pad 3) - bn1 - relu - maxpool (3x3/2, pad 1) - layer1..layer4 - avgpool - flatten - fc
 *   Bottleneck (v1.5: the stride sits on the 3x3 conv): conv1 1x1 - bn1 - relu - conv2 3x3/s - bn2 - relu -
 *   conv3 1x1 - bn3, plus the identity or downsample (1x1/s conv - BatchNorm), then relu.
 *
 * BatchNorm uses its running statistics (eps 1e-5) as a per-channel scale and shift. The forward pass is
 * written once (resnetStages) and lowered to tfjs here and to ONNX by ./onnx-net. Layer outputs are
 * named as torchvision's modules: "conv1", "bn1", "relu", "maxpool", "layerK", "layerK.B", "avgpool"
 * ([N, C], flattened as ResNet.forward does) and "fc".
 */
import * as tf from "@tensorflow/tfjs";
import type { StateDict } from "../checkpoint/state-dict";
import { runStagesTfjs } from "./lower-tfjs";
import type { NetOps, Stage } from "./ops";
import type { ForwardOptions } from "./select";
import { batchNormParams, checkInput, NetParam, NetWeights } from "./weights";

export interface ResNetConfig {
  /** Bottleneck blocks per stage: resnet50 [3, 4, 6, 3]. */
  layers: number[];
  /** Channels of the stem (conv1): 64. */
  stemWidth: number;
  /** Inner width of each stage's blocks (conv1/conv2 of a Bottleneck): 64, 128, 256, 512 for resnet50. */
  widths: number[];
  /** Output channels of each stage (conv3): 4 x width for torchvision's Bottleneck. */
  outChannels: number[];
  /** Classes of `fc`; null for a backbone without it (self-supervised checkpoints). */
  numClasses: number | null;
  inChannels: number;
}

export const RESNET_PRESETS: Record<string, ResNetConfig> = {
  resnet50: { layers: [3, 4, 6, 3], stemWidth: 64, widths: [64, 128, 256, 512], outChannels: [256, 512, 1024, 2048], numClasses: 1000, inChannels: 3 },
  resnet101: { layers: [3, 4, 23, 3], stemWidth: 64, widths: [64, 128, 256, 512], outChannels: [256, 512, 1024, 2048], numClasses: 1000, inChannels: 3 },
  resnet152: { layers: [3, 8, 36, 3], stemWidth: 64, widths: [64, 128, 256, 512], outChannels: [256, 512, 1024, 2048], numClasses: 1000, inChannels: 3 },
};

/** torchvision's constructor arguments: `layers` and the kwargs (num_classes, width_per_group, groups=1). */
export function resnetConfigFromKwargs(layers: number[], kwargs: Record<string, unknown> = {}): ResNetConfig {
  if ((kwargs.groups ?? 1) !== 1) throw new Error(`ResNet: groups=${kwargs.groups} (grouped convolutions, ResNeXt) are not supported`);
  const wpg = Number(kwargs.width_per_group ?? 64);
  const planes = [64, 128, 256, 512];
  return {
    layers: [...layers],
    stemWidth: 64,
    widths: planes.map((p) => Math.floor(p * (wpg / 64))),
    outChannels: planes.map((p) => p * 4),
    numClasses: kwargs.num_classes === null ? null : Number(kwargs.num_classes ?? 1000),
    inChannels: 3,
  };
}

/** The configuration a ResNet state dict implies (block counts from the keys, widths from the shapes). */
export function resnetConfigFromStateDict(sd: StateDict, file = "state dict"): ResNetConfig {
  const shape = (k: string) => {
    const t = sd.get(k);
    if (!t) throw new Error(`${file}: not a torchvision ResNet state dict: no "${k}"`);
    return t.shape;
  };
  const stem = shape("conv1.weight");
  const layers: number[] = [];
  const widths: number[] = [];
  const outChannels: number[] = [];
  for (let s = 1; ; s++) {
    let n = 0;
    while (sd.has(`layer${s}.${n}.conv1.weight`)) n++;
    if (n === 0) break;
    layers.push(n);
    widths.push(shape(`layer${s}.0.conv1.weight`)[0]);
    outChannels.push(shape(`layer${s}.0.conv3.weight`)[0]);
  }
  if (layers.length === 0) throw new Error(`${file}: not a torchvision Bottleneck ResNet state dict: no "layer1.0.conv1.weight" / "layer1.0.conv3.weight"`);
  return { layers, stemWidth: stem[0], widths, outChannels, numClasses: sd.has("fc.weight") ? shape("fc.weight")[0] : null, inChannels: stem[1] };
}

/** Stride of each stage's first block: 1 for layer1, 2 after. */
const stageStride = (s: number) => (s === 0 ? 1 : 2);

function hasDownsample(cfg: ResNetConfig, s: number): boolean {
  const inCh = s === 0 ? cfg.stemWidth : cfg.outChannels[s - 1];
  return stageStride(s) !== 1 || inCh !== cfg.outChannels[s];
}

/** Every tensor of the state dict (without num_batches_tracked), in torchvision's order. */
export function resnetParams(cfg: ResNetConfig): NetParam[] {
  const p: NetParam[] = [{ name: "conv1.weight", shape: [cfg.stemWidth, cfg.inChannels, 7, 7], kind: "conv2d" }, ...batchNormParams("bn1", cfg.stemWidth)];
  let inCh = cfg.stemWidth;
  cfg.layers.forEach((n, s) => {
    const w = cfg.widths[s];
    const out = cfg.outChannels[s];
    for (let b = 0; b < n; b++) {
      const pre = `layer${s + 1}.${b}`;
      p.push({ name: `${pre}.conv1.weight`, shape: [w, inCh, 1, 1], kind: "conv2d" }, ...batchNormParams(`${pre}.bn1`, w));
      p.push({ name: `${pre}.conv2.weight`, shape: [w, w, 3, 3], kind: "conv2d" }, ...batchNormParams(`${pre}.bn2`, w));
      p.push({ name: `${pre}.conv3.weight`, shape: [out, w, 1, 1], kind: "conv2d" }, ...batchNormParams(`${pre}.bn3`, out));
      if (b === 0 && hasDownsample(cfg, s)) {
        p.push({ name: `${pre}.downsample.0.weight`, shape: [out, inCh, 1, 1], kind: "conv2d" }, ...batchNormParams(`${pre}.downsample.1`, out));
      }
      inCh = out;
    }
  });
  if (cfg.numClasses !== null) {
    p.push({ name: "fc.weight", shape: [cfg.numClasses, inCh], kind: "linear" }, { name: "fc.bias", shape: [cfg.numClasses], kind: "plain" });
  }
  return p;
}

/** Names of the layer outputs, in forward order. */
export function resnetLayers(cfg: ResNetConfig): string[] {
  const names = ["conv1", "bn1", "relu", "maxpool"];
  cfg.layers.forEach((n, s) => {
    for (let b = 0; b < n; b++) names.push(`layer${s + 1}.${b}`);
    names.push(`layer${s + 1}`);
  });
  names.push("avgpool");
  if (cfg.numClasses !== null) names.push("fc");
  return names;
}

/**
 * The network as named stages (./ops), lowered to tfjs (ResNet.forward) and to ONNX (./onnx-net): one
 * definition of torchvision's forward pass.
 */
export function resnetStages(cfg: ResNetConfig): Stage[] {
  const convBn = <T>(o: NetOps<T>, x: T, conv: string, bn: string, stride: number, k: number): T =>
    o.batchNorm(o.conv(x, conv, { stride, pad: (k - 1) / 2, bias: false }), bn);
  const bottleneck = (pre: string, stride: number, downsample: boolean): Stage => ({
    name: pre,
    apply: (o, x) => {
      let out = o.relu(convBn(o, x, `${pre}.conv1`, `${pre}.bn1`, 1, 1));
      out = o.relu(convBn(o, out, `${pre}.conv2`, `${pre}.bn2`, stride, 3));
      out = convBn(o, out, `${pre}.conv3`, `${pre}.bn3`, 1, 1);
      const identity = downsample ? convBn(o, x, `${pre}.downsample.0`, `${pre}.downsample.1`, stride, 1) : x;
      return o.relu(o.add(out, identity));
    },
  });
  const stages: Stage[] = [
    { name: "conv1", apply: (o, x) => o.conv(x, "conv1", { stride: 2, pad: 3, bias: false }) },
    { name: "bn1", apply: (o, x) => o.batchNorm(x, "bn1") },
    { name: "relu", apply: (o, x) => o.relu(x) },
    { name: "maxpool", apply: (o, x) => o.maxPool(x, 3, 2, 1) },
  ];
  cfg.layers.forEach((n, s) => {
    for (let b = 0; b < n; b++) stages.push(bottleneck(`layer${s + 1}.${b}`, b === 0 ? stageStride(s) : 1, b === 0 && hasDownsample(cfg, s)));
    stages.push({ name: `layer${s + 1}`, apply: (_o, x) => x });
  });
  stages.push({ name: "avgpool", apply: (o, x) => o.spatialMean(x) });
  if (cfg.numClasses !== null) stages.push({ name: "fc", apply: (o, x) => o.linear(x, "fc") });
  return stages;
}

export class ResNet {
  private constructor(readonly config: ResNetConfig, private readonly w: NetWeights) {}

  /**
   * Build from a state dict (torchvision names). The configuration is derived from the keys and shapes unless
   * given; either way every key is checked first (one error listing each missing, unexpected or mis-shaped one).
   */
  static async fromStateDict(sd: StateDict, opts: { config?: ResNetConfig; file?: string } = {}): Promise<ResNet> {
    const file = opts.file ?? "state dict";
    const config = opts.config ?? resnetConfigFromStateDict(sd, file);
    return new ResNet(config, await NetWeights.load(resnetParams(config), sd, file));
  }

  layers(): string[] {
    return resnetLayers(this.config);
  }

  /** Bytes of weights held by tfjs. */
  get weightBytes(): number {
    return this.w.bytes;
  }

  /**
   * Run on `x` (NCHW float32). Returns the requested layer outputs by name: NCHW maps, [N, C] for avgpool,
   * [N, classes] for fc. The caller disposes the returned tensors.
   */
  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): Map<string, tf.Tensor> {
    checkInput(x, this.config.inChannels, "ResNet");
    const nhwc = tf.transpose(x, [0, 2, 3, 1]);
    try {
      return runStagesTfjs(resnetStages(this.config), this.w, nhwc, { ...opts, what: "ResNet" });
    } finally {
      nhwc.dispose();
    }
  }

  dispose(): void {
    this.w.dispose();
  }
}
