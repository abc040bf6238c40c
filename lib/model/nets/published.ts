/**
 * The published weights the paper's CKA figure compares against, one table entry each: where the file is,
 * the checksum its publisher gives (none invented: where none is published, `checksum` is null and the
 * downloader records the sha256 it computed in a sidecar), and how its key names map to torchvision's.
 *
 * Publishers give short digest prefixes, not whole digests: torchvision's file names carry the first 8 hex
 * digits of the file's sha256 (torch.hub's check_hash convention); the MoCo README lists 8 hex digits of the
 * md5, the MAE README 6.
 * SimCLR is absent: its authors publish TensorFlow checkpoints only; PyTorch versions exist only as
 * third-party conversion scripts (run locally on the TF files), with no converted file at a stable URL.
 */
import type { StateDict } from "../checkpoint/state-dict";
import { isBatchCounter } from "./weights";

export interface DigestPrefix {
  algorithm: "sha256" | "md5";
  /** Lower-case hex digits the file's digest starts with. */
  prefix: string;
  /** Where it is published. */
  source: string;
}

export interface PublishedNet {
  /** Table key, used on the command line. */
  name: string;
  title: string;
  /** torchvision architecture the mapped keys build. */
  preset: "resnet50" | "vit_b_16";
  /** Classes of the classifier kept after mapping; null: the head/projection is dropped (self-supervised backbones). */
  numClasses: number | null;
  url: string;
  /** File name under the networks folder. */
  file: string;
  checksum: DigestPrefix | null;
  /** Size for messages, where the publisher gives one (torchvision's `_file_size`); else absent. */
  approxSize?: string;
  /** Where the URL and key layout come from. */
  reference: string;
  /**
   * A checkpoint key -> torchvision's name, `null` to drop it (heads, projections, momentum encoders), or
   * `undefined` when the key is not expected in this checkpoint at all.
   */
  mapKey(key: string): string | null | undefined;
}

const RESNET_KEY = /^(conv1\.weight|bn1\.\w+|layer[1-4]\.\d+\.(conv[123]\.weight|bn[123]\.\w+|downsample\.0\.weight|downsample\.1\.\w+)|fc\.(weight|bias))$/;
const BN_FIELDS = /\.(weight|bias|running_mean|running_var|num_batches_tracked)$/;
const VIT_KEY =
  /^(class_token|conv_proj\.(weight|bias)|encoder\.pos_embedding|encoder\.ln\.(weight|bias)|heads\.head\.(weight|bias)|encoder\.layers\.encoder_layer_\d+\.(ln_[12]\.(weight|bias)|self_attention\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias))|mlp\.(0|3|linear_1|linear_2)\.(weight|bias)))$/;

/** A torchvision ResNet key (with BatchNorm buffers), as named in a torchvision state dict. */
export function isResnetKey(k: string): boolean {
  if (!RESNET_KEY.test(k)) return false;
  return /\.(bn[123]|downsample\.1)\.|^bn1\./.test(k) ? BN_FIELDS.test(k) : true;
}

export function isVitKey(k: string): boolean {
  return VIT_KEY.test(k);
}

/**
 * timm-style ViT names (DINO's and MAE's vision_transformer.py) -> torchvision's VisionTransformer names:
 * cls_token -> class_token, pos_embed -> encoder.pos_embedding, patch_embed.proj -> conv_proj,
 * blocks.N.norm1/norm2 -> encoder.layers.encoder_layer_N.ln_1/ln_2, attn.qkv -> self_attention.in_proj_*,
 * attn.proj -> self_attention.out_proj, mlp.fc1/fc2 -> mlp.0/mlp.3, norm -> encoder.ln.
 * timm's fused qkv rows are q, k, v (each heads x head_dim), the order of nn.MultiheadAttention's in_proj.
 */
export function timmVitKey(k: string): string | undefined {
  const fixed: Record<string, string> = {
    cls_token: "class_token",
    pos_embed: "encoder.pos_embedding",
    "patch_embed.proj.weight": "conv_proj.weight",
    "patch_embed.proj.bias": "conv_proj.bias",
    "norm.weight": "encoder.ln.weight",
    "norm.bias": "encoder.ln.bias",
  };
  if (fixed[k]) return fixed[k];
  const m = /^blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)$/.exec(k);
  if (!m) return undefined;
  const layer = `encoder.layers.encoder_layer_${m[1]}`;
  const p = m[3];
  switch (m[2]) {
    case "norm1":
      return `${layer}.ln_1.${p}`;
    case "norm2":
      return `${layer}.ln_2.${p}`;
    case "attn.qkv":
      return `${layer}.self_attention.in_proj_${p}`;
    case "attn.proj":
      return `${layer}.self_attention.out_proj.${p}`;
    case "mlp.fc1":
      return `${layer}.mlp.0.${p}`;
    default:
      return `${layer}.mlp.3.${p}`;
  }
}

const resnetBackbone = (k: string) => (/^fc\./.test(k) ? null : isResnetKey(k) ? k : undefined);

const DL = "https://dl.fbaipublicfiles.com";

export const PUBLISHED_NETS: PublishedNet[] = [
  {
    name: "resnet50-supervised",
    title: "torchvision ResNet-50, supervised ImageNet (ResNet50_Weights.IMAGENET1K_V1)",
    preset: "resnet50",
    numClasses: 1000,
    url: "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    file: "resnet50-0676ba61.pth",
    checksum: { algorithm: "sha256", prefix: "0676ba61", source: "torchvision file name (torch.hub check_hash)" },
    approxSize: "97.8 MB",
    reference: "torchvision.models.ResNet50_Weights.IMAGENET1K_V1",
    mapKey: (k) => (isResnetKey(k) ? k : undefined),
  },
  {
    name: "vit_b_16-supervised",
    title: "torchvision ViT-B/16, supervised ImageNet (ViT_B_16_Weights.IMAGENET1K_V1)",
    preset: "vit_b_16",
    numClasses: 1000,
    url: "https://download.pytorch.org/models/vit_b_16-c867db91.pth",
    file: "vit_b_16-c867db91.pth",
    checksum: { algorithm: "sha256", prefix: "c867db91", source: "torchvision file name (torch.hub check_hash)" },
    reference: "torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1",
    mapKey: (k) => (isVitKey(k) ? k : undefined),
  },
  {
    name: "swav-resnet50",
    title: "SwAV ResNet-50, 800 epochs (facebookresearch/swav torch hub)",
    preset: "resnet50",
    numClasses: null,
    url: `${DL}/deepcluster/swav_800ep_pretrain.pth.tar`,
    file: "swav_800ep_pretrain.pth.tar",
    checksum: null,
    reference: "facebookresearch/swav hubconf.py resnet50 (strips \"module.\"; projection_head and prototypes are not part of the ResNet)",
    mapKey: (k) => {
      const s = k.replace(/^module\./, "");
      if (/^(projection_head|prototypes)\./.test(s)) return null;
      return resnetBackbone(s);
    },
  },
  {
    name: "mocov2-resnet50",
    title: "MoCo v2 ResNet-50, 800 epochs (facebookresearch/moco)",
    preset: "resnet50",
    numClasses: null,
    url: `${DL}/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar`,
    file: "moco_v2_800ep_pretrain.pth.tar",
    checksum: { algorithm: "md5", prefix: "a04e12f8", source: "facebookresearch/moco README, Models table" },
    reference: "facebookresearch/moco README and main_lincls.py (keeps module.encoder_q.*, drops its fc MLP head)",
    mapKey: (k) => {
      if (/^module\.(encoder_k\.|queue$|queue_ptr$)/.test(k)) return null;
      const m = /^module\.encoder_q\.(.*)$/.exec(k);
      return m ? resnetBackbone(m[1]) : undefined;
    },
  },
  {
    name: "dino-resnet50",
    title: "DINO ResNet-50 (facebookresearch/dino torch hub dino_resnet50)",
    preset: "resnet50",
    numClasses: null,
    url: `${DL}/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth`,
    file: "dino_resnet50_pretrain.pth",
    checksum: null,
    reference: "facebookresearch/dino hubconf.py dino_resnet50 (torchvision names, fc replaced by Identity)",
    mapKey: resnetBackbone,
  },
  {
    name: "dino-vit_b_16",
    title: "DINO ViT-B/16 (facebookresearch/dino torch hub dino_vitb16)",
    preset: "vit_b_16",
    numClasses: null,
    url: `${DL}/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth`,
    file: "dino_vitbase16_pretrain.pth",
    checksum: null,
    reference: "facebookresearch/dino hubconf.py dino_vitb16 and vision_transformer.py (timm-style names, LayerNorm eps 1e-6, no head)",
    mapKey: (k) => (/^head\./.test(k) ? null : timmVitKey(k)),
  },
  {
    name: "mae-vit_b_16",
    title: "MAE ViT-B/16 pre-trained encoder (facebookresearch/mae)",
    preset: "vit_b_16",
    numClasses: null,
    url: `${DL}/mae/pretrain/mae_pretrain_vit_base.pth`,
    file: "mae_pretrain_vit_base.pth",
    checksum: { algorithm: "md5", prefix: "8cad7c", source: "facebookresearch/mae README, pre-trained checkpoints table" },
    reference: "facebookresearch/mae README and models_vit.py (timm names under \"model\"; LayerNorm eps 1e-6)",
    mapKey: (k) => (/^(head|fc_norm|decoder_\w+|mask_token)(\.|$)/.test(k) ? null : timmVitKey(k)),
  },
];

export function publishedNet(name: string): PublishedNet {
  const e = PUBLISHED_NETS.find((p) => p.name === name || p.file === name);
  if (!e) throw new Error(`unknown published network "${name}"; known: ${PUBLISHED_NETS.map((p) => p.name).join(", ")}`);
  return e;
}

/** Lines listed before "... and N more". */
const MAX_LISTED = 20;

/**
 * Rename a checkpoint's keys to torchvision's with `entry.mapKey`, dropping heads and projections and the
 * BatchNorm counters. Throws one error listing every key that maps nowhere and every name two keys map to.
 */
export function mapPublishedStateDict(entry: Pick<PublishedNet, "name" | "mapKey">, sd: StateDict, file: string): StateDict {
  const out: StateDict = new Map();
  const unmapped: string[] = [];
  const clashes: string[] = [];
  const from = new Map<string, string>();
  for (const [k, v] of sd) {
    const to = entry.mapKey(k);
    if (to === undefined) {
      unmapped.push(`${k} ${JSON.stringify(v.shape)}`);
      continue;
    }
    if (to === null || isBatchCounter(to)) continue;
    if (from.has(to)) clashes.push(`${k} and ${from.get(to)} both map to ${to}`);
    from.set(to, k);
    out.set(to, { ...v, name: to });
  }
  if (unmapped.length || clashes.length) {
    const list = (title: string, xs: string[]) =>
      xs.length ? [`${title} (${xs.length}):`, ...xs.slice(0, MAX_LISTED).map((x) => `  ${x}`), ...(xs.length > MAX_LISTED ? [`  ... and ${xs.length - MAX_LISTED} more`] : [])] : [];
    throw new Error(
      [
        `${file}: ${unmapped.length + clashes.length} key(s) do not map to torchvision names for "${entry.name}" (${sd.size} keys in the file)`,
        ...list("keys with no mapping", unmapped),
        ...list("keys mapped twice", clashes),
      ].join("\n"),
    );
  }
  return out;
}
