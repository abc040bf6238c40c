/**
 * The official diffssl head settings and weights (`soumik-kanad/diffssl`, as recorded in the `head`,
 * `feedback` and `checkpoints` sections of a ../shared/fixtures/diffssl manifest) mapped onto our heads
 * and feedback layers:
 *
 * - `AttentionFusion(args, feature_dim_dict, feature_size_dict)` over one block at one timestep whose
 *   pooled size divides its size is our attention head (lib/heads/attention.ts, `project: true`,
 *   pool = S / min(S, pre_pool_size)); anything else (several blocks and/or timesteps) is our DifFormer
 *   head (lib/heads/difformer.ts).
 * - the `feedback_layers` ModuleList (`C_B_R`) is lib/model/unet/feedback.ts.
 *
 * State-dict names: `pre_layer.<b>.1` (LayerNorm [C, s, s]; ours [s, s, C]), `pre_layer.<b>.2` (Conv2d 1x1
 * [D, C, 1, 1]; ours [C, D]), `intra_inter_block_attention.cls_token`, `...layers.<k+1>.*` (our
 * `blocks.<k>.*`; Linear weights [out, in], ours [in, out]), `head`; feedback `<i>.0.weight`,
 * `<i>.1.{weight,bias,running_mean,running_var,num_batches_tracked}`.
 */
import * as tf from "@tensorflow/tfjs";
import { StateDict } from "../model/checkpoint/index";
import { createAttentionHead } from "../heads/attention";
import { createDifFormerHead } from "../heads/difformer";
import { Head } from "../heads/head";
import { attentionParams, AttentionHeadConfig, DifFormerConfig, difformerParams } from "../heads/params";
import { FeedbackLayers } from "../model/unet/feedback";

/** The transformer part of a `fusion_arc` string. */
export interface FusionArc {
  dim: number;
  heads: number;
  mlpRatio: number;
  blocks: number;
}

/**
 * Parse `Use_CLS_Token:True:D,Insert_CLS_Token,Attention:D:H:R:N,Extract_CLS_Token` (the only form the
 * official AttentionHead builds with a CLS token). Throws naming the part it does not understand.
 */
export function parseFusionArc(arc: unknown, where = "fusion_arc"): FusionArc {
  if (typeof arc !== "string" || !arc.trim()) throw new Error(`${where}: expected a string like "Use_CLS_Token:True:64,Insert_CLS_Token,Attention:64:4:4:2,Extract_CLS_Token", got ${JSON.stringify(arc)}`);
  const parts = arc.split("/")[0].split(",").map((s) => s.trim());
  const first = parts[0].split(":");
  if (first[0] !== "Use_CLS_Token" || first.length !== 3) throw new Error(`${where}: the first part must be Use_CLS_Token:<flag>:<dim>, got ${JSON.stringify(parts[0])}`);
  const dim = Number(first[2]);
  let arch: FusionArc | null = null;
  const rest = parts.slice(1);
  const expect = ["Insert_CLS_Token", "Attention", "Extract_CLS_Token"];
  if (rest.length !== 3 || rest[0] !== expect[0] || !rest[1].startsWith("Attention:") || rest[2] !== expect[2]) {
    throw new Error(`${where}: supported form is Use_CLS_Token:True:D,Insert_CLS_Token,Attention:D:H:R:N,Extract_CLS_Token; got ${JSON.stringify(arc)}`);
  }
  const a = rest[1].split(":");
  if (a.length !== 5) throw new Error(`${where}: ${JSON.stringify(rest[1])} must be Attention:dim:heads:mlp_ratio:blocks`);
  arch = { dim: Number(a[1]), heads: Number(a[2]), mlpRatio: Number(a[3]), blocks: Number(a[4]) };
  if (!(Number.isInteger(arch.dim) && arch.dim === dim)) throw new Error(`${where}: Attention dim ${a[1]} must equal the Use_CLS_Token dim ${first[2]}`);
  if (!(Number.isInteger(arch.heads) && arch.heads > 0 && dim % arch.heads === 0)) throw new Error(`${where}: ${arch.heads} heads do not divide dim ${dim}`);
  if (!(Number.isFinite(arch.mlpRatio) && arch.mlpRatio > 0) || !(Number.isInteger(arch.blocks) && arch.blocks >= 1)) throw new Error(`${where}: bad mlp ratio or block count in ${JSON.stringify(rest[1])}`);
  return arch;
}

/** The official head's arguments (manifest `head`). */
export interface OfficialHead {
  arc: FusionArc;
  firstBlocks: number[];
  secondBlocks: number[];
  tList: number[];
  prePool: number;
  numClasses: number;
  /** [C, S, S] per block, keyed by block number. */
  mapOf: (b: number) => [number, number, number];
}

function intList(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) throw new Error(`${what}: expected a list of integers, got ${JSON.stringify(v)}`);
  return v as number[];
}

function posInt(v: unknown, what: string): number {
  if (!(Number.isInteger(v) && (v as number) > 0)) throw new Error(`${what}: expected a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

/** Read and check the manifest's `head` section (`where` names the file in errors). */
export function officialHeadFromManifest(head: Record<string, any> | undefined, where: string): OfficialHead {
  if (!head || typeof head !== "object") throw new Error(`${where}: no "head" section`);
  const arc = parseFusionArc(head.fusion_arc, `${where} head.fusion_arc`);
  const norm = head.norm_type ?? "layer";
  if (norm !== "layer") throw new Error(`${where} head.norm_type: ${JSON.stringify(norm)} is not supported (only "layer", the scripts' setting)`);
  const firstBlocks = intList(head.first_fw_b_list ?? [], `${where} head.first_fw_b_list`);
  const secondBlocks = intList(head.second_fw_b_list ?? [], `${where} head.second_fw_b_list`);
  if (!firstBlocks.length && !secondBlocks.length) throw new Error(`${where}: head.first_fw_b_list and head.second_fw_b_list are both empty`);
  const tList = intList(head.t_list, `${where} head.t_list`);
  if (!tList.length) throw new Error(`${where}: head.t_list is empty`);
  const dims = head.feature_dim_dict ?? {}, sizes = head.feature_size_dict ?? {};
  const mapOf = (b: number): [number, number, number] => {
    const c = posInt(dims[String(b)], `${where} head.feature_dim_dict["${b}"]`);
    const s = posInt(sizes[String(b)], `${where} head.feature_size_dict["${b}"]`);
    return [c, s, s];
  };
  for (const b of [...firstBlocks, ...secondBlocks]) mapOf(b);
  // Derived values the manifest records must agree with the fusion_arc.
  for (const [k, v] of [["dim", arc.dim], ["num_heads", arc.heads], ["num_blocks", arc.blocks], ["mlp_ratio", arc.mlpRatio]] as const) {
    if (head[k] !== undefined && head[k] !== v) throw new Error(`${where}: head.${k} is ${head[k]} but fusion_arc says ${v}`);
  }
  return { arc, firstBlocks, secondBlocks, tList, prePool: posInt(head.pre_pool_size, `${where} head.pre_pool_size`), numClasses: posInt(head.num_classes, `${where} head.num_classes`), mapOf };
}

/** Token order of the official head: first-pass blocks, then second-pass blocks. */
export function headBlockOrder(h: OfficialHead): { block: number; pass: 1 | 2 }[] {
  return [...h.firstBlocks.map((block) => ({ block, pass: 1 as const })), ...h.secondBlocks.map((block) => ({ block, pass: 2 as const }))];
}

/** Our head setting for the official arguments: the attention head where it applies, else DifFormer. */
export type OfficialHeadConfig =
  | { kind: "attention"; config: AttentionHeadConfig; block: number; inShape: [number, number, number] }
  | { kind: "difformer"; config: DifFormerConfig; blocks: number[] };

export function officialHeadConfig(h: OfficialHead): OfficialHeadConfig {
  const order = headBlockOrder(h);
  const common = { dim: h.arc.dim, heads: h.arc.heads, mlpRatio: h.arc.mlpRatio, blocks: h.arc.blocks };
  if (order.length === 1 && h.tList.length === 1) {
    const block = order[0].block;
    const inShape = h.mapOf(block);
    const s = Math.min(inShape[1], h.prePool);
    if (inShape[1] % s === 0) return { kind: "attention", config: { ...common, pool: inShape[1] / s, project: true }, block, inShape };
  }
  const config: DifFormerConfig = { ...common, prePool: h.prePool, maps: order.map((o) => h.mapOf(o.block)), timesteps: h.tList.length, preLayerKeys: order.map((o) => String(o.block)) };
  return { kind: "difformer", config, blocks: order.map((o) => o.block) };
}

/** Parameter count of our head for the official arguments (by formula; nothing built). */
export function officialHeadParams(h: OfficialHead): number {
  const c = officialHeadConfig(h);
  return c.kind === "attention" ? attentionParams(c.inShape, h.numClasses, c.config) : difformerParams(h.numClasses, c.config);
}

export type BuiltOfficialHead = OfficialHeadConfig & { head: Head };

export function buildOfficialHead(h: OfficialHead, seed = 0): BuiltOfficialHead {
  const c = officialHeadConfig(h);
  if (c.kind === "attention") return { ...c, head: createAttentionHead({ ...c.config, inShape: c.inShape, numClasses: h.numClasses, seed }) };
  return { ...c, head: createDifFormerHead({ ...c.config, numClasses: h.numClasses, seed }) };
}

/** The official name of one of our head parameters. */
function officialHeadName(ours: string, built: BuiltOfficialHead): string {
  let m: RegExpExecArray | null;
  if (built.kind === "attention" && (m = /^proj_(norm|conv)\.(weight|bias)$/.exec(ours))) return `pre_layer.${built.block}.${m[1] === "norm" ? 1 : 2}.${m[2]}`;
  if ((m = /^pre\.(\d+)_(norm|conv)\.(weight|bias)$/.exec(ours))) return `pre_layer.${m[1]}.${m[2] === "norm" ? 1 : 2}.${m[3]}`;
  if (ours === "cls_token") return "intra_inter_block_attention.cls_token";
  if ((m = /^blocks\.(\d+)\.(.+)$/.exec(ours))) return `intra_inter_block_attention.layers.${Number(m[1]) + 1}.${m[2]}`;
  if (/^head\.(weight|bias)$/.test(ours)) return ours;
  throw new Error(`no official name for parameter ${ours}`);
}

const shapeText = (s: readonly number[]) => `[${s.join(", ")}]`;

/**
 * Official values in our layout, decided by the official rank (never by comparing shapes, which a square
 * weight would pass untransposed): 1-D as is; [C, s, s] (LayerNorm over a map) -> [s, s, C]; [out, in]
 * (Linear) or [out, in, 1, 1] (1x1 conv) -> [in, out]. Throws naming the key and both shapes on a mismatch.
 */
async function toOurLayout(entry: { name: string; shape: number[]; readFloat32(): Promise<Float32Array> }, ours: number[], file: string): Promise<tf.Tensor> {
  const s = entry.shape;
  let want: number[] | null = null;
  if (s.length === 1) want = s;
  else if (s.length === 3 && s[0] === 1 && s[1] === 1) want = s; // cls_token [1, 1, D]
  else if (s.length === 3) want = [s[1], s[2], s[0]];
  else if (s.length === 2 || (s.length === 4 && s[2] === 1 && s[3] === 1)) want = [s[1], s[0]];
  if (!want || want.length !== ours.length || !want.every((d, i) => d === ours[i])) {
    throw new Error(`${file}: ${entry.name} has shape ${shapeText(s)}, which does not fit our ${shapeText(ours)}`);
  }
  const v = await entry.readFloat32();
  if (s.length === 1 || (s.length === 3 && s[0] === 1 && s[1] === 1)) return tf.tensor(v, ours);
  if (s.length === 3) return tf.tidy(() => tf.tensor(v, s).transpose([1, 2, 0]));
  return tf.tidy(() => tf.tensor(v, [s[0], s[1]]).transpose());
}

/**
 * Assign `targets` (ours name -> variable, official name) from a state dict; like PyTorch's
 * load_state_dict(strict=True), every key must be used (`ignore` matches keys that are not values).
 */
async function assignAll(targets: { official: string; variable: tf.Variable }[], sd: StateDict, file: string, ignore?: RegExp): Promise<void> {
  const missing = targets.filter((t) => !sd.has(t.official)).map((t) => t.official);
  const used = new Set(targets.map((t) => t.official));
  const unexpected = [...sd.keys()].filter((k) => !used.has(k) && !(ignore && ignore.test(k)));
  if (missing.length || unexpected.length) {
    throw new Error(`${file}: the checkpoint does not match the model: ${missing.length} missing (${missing.slice(0, 6).join(", ")}${missing.length > 6 ? ", ..." : ""}), ${unexpected.length} unexpected (${unexpected.slice(0, 6).join(", ")}${unexpected.length > 6 ? ", ..." : ""})`);
  }
  for (const t of targets) {
    const value = await toOurLayout(sd.get(t.official)!, t.variable.shape, file);
    t.variable.assign(value);
    value.dispose();
  }
}

/** Load an `AttentionFusion` state_dict into the head built by buildOfficialHead. */
export async function loadOfficialHead(built: BuiltOfficialHead, sd: StateDict, file: string): Promise<void> {
  await assignAll(built.head.params.map((p) => ({ official: officialHeadName(p.name, built), variable: p.variable })), sd, file);
}

/** Load the official `feedback_layers` state_dict (C_B_R) into our feedback layers. */
export async function loadFeedbackLayers(layers: FeedbackLayers, sd: StateDict, file: string): Promise<void> {
  await assignAll([...layers.params, ...layers.buffers].map((p) => ({ official: p.name, variable: p.variable })), sd, file, /^\d+\.1\.num_batches_tracked$/);
}
