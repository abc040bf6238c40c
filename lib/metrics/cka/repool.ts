/**
 * Adaptive average pooling of channel-major [C, H, W] rows (one extraction at full resolution serves several
 * pooled sizes): lib/features/pooling's poolChannelMajorRows, re-exported for the CKA code.
 */
export { poolChannelMajorRows } from "../../features/pooling";
