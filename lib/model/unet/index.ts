/**
 * guided-diffusion's ADM U-Net in TensorFlow.js.
 *
 * Layout: the model takes and returns NHWC tensors ([B, H, W, C]); PyTorch and the paper's feature order
 * are NCHW — use `toNCHW` before comparing with reference arrays or flattening features channel-major.
 */
export {
  attentionHeads, configDifferences, configFromManifest, configToKwargs, createUNetConfig, DEFAULT_FLAGS,
  defaultChannelMult, levelChannels, NUM_CLASSES,
} from "./config";
export type { UNetConfig, UNetFlags, UNetKwargs } from "./config";
export { getPreset, parseFlagLine, PRESETS } from "./presets";
export type { Preset } from "./presets";
export { buildPlan, describeModule } from "./plan";
export type { AttnSpec, BlockSpec, ConvSpec, DownSpec, ModuleSpec, ResSpec, Section, UNetPlan, UpSpec } from "./plan";
export { expectedParameterShapes, parameterCount, parameterSpecs } from "./parameters";
export type { ParamKind, ParamSpec } from "./parameters";
export { blockCount, blockLabel, blockMacs, blockName, blockOf, blockTable, forwardFlops, modelBlocks, parseBlock } from "./blocks";
export type { Block, BlockInfo } from "./blocks";
export { timestepEmbedding, toNCHW, toNHWC } from "./layers";
export { UNet } from "./model";
export type { ForwardOptions, ForwardResult } from "./model";
export { DEFAULT_RESIDENT_BUDGET, planStreaming, toTfLayout, UNetWeights, WASM_PACKED_COPIES } from "./weights";
export type { Residency, WeightOptions } from "./weights";
export { checkReferenceFolder, formatLine, relError, scheduleFromManifest } from "./reference";
export type { LineStatus, ReferenceLine, ReferenceOptions, ReferenceReport } from "./reference";
