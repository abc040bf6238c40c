/**
 * The U-Net on TensorFlow.js (lib/model/unet) behind the engine interface: NCHW in and out, like ONNX Runtime.
 * tfjs is the training engine and the fall-back where onnxruntime-node cannot load; its backend (wasm, cpu,
 * tensorflow) is the one active in tfjs (lib/model/backend selectBackend).
 */
import * as tf from "@tensorflow/tfjs";
import type { UNetConfig } from "../unet/config";
import { UNet } from "../unet/model";
import type { ModelSource } from "../model-source";
import { loadModel } from "../load-model";
import { sourceConfig } from "../model-source";
import { HostTensor, UNetEngine } from "./engine";
import { resolveOutputs } from "./unet-graph";

export class TfjsUNetEngine implements UNetEngine {
  readonly name = "tfjs" as const;

  private constructor(
    readonly config: UNetConfig,
    readonly outputs: string[],
    readonly description: string,
    readonly loadSeconds: number,
    private readonly model: UNet,
    private readonly wantOut: boolean,
  ) {}

  static async create(src: ModelSource, opts: { outputs: (number | string)[] }): Promise<TfjsUNetEngine> {
    const config = sourceConfig(src);
    const { names, wantOut } = resolveOutputs(config, opts.outputs);
    const t0 = Date.now();
    const model = await loadModel(src);
    return new TfjsUNetEngine(config, names, `tfjs ${tf.version.tfjs}, ${tf.getBackend()}`, (Date.now() - t0) / 1000, model, wantOut);
  }

  /** The tfjs model itself (for code that needs tensors, such as training). */
  get unet(): UNet {
    return this.model;
  }

  async run(x: Float32Array, n: number, t: number[], y?: number[]): Promise<Map<string, HostTensor>> {
    const c = this.config;
    const hw = x.length / (n * c.inChannels);
    const s = Math.round(Math.sqrt(hw));
    if (!Number.isInteger(hw) || s * s !== hw) throw new Error(`x has ${x.length} values: not ${n} square NCHW images of ${c.inChannels} channels`);
    const capture = this.outputs.filter((o) => o !== "emb" && o !== "out");
    const xh = tf.tidy(() => tf.transpose(tf.tensor4d(x, [n, c.inChannels, s, s]), [0, 2, 3, 1])) as tf.Tensor4D;
    let res: ReturnType<UNet["forward"]> | null = null;
    try {
      res = this.model.forward(xh, t, { ...(y !== undefined ? { y } : {}), capture: this.wantOut ? [...capture, "out"] : capture, stopEarly: !this.wantOut });
      const out = new Map<string, HostTensor>();
      for (const name of this.outputs) {
        const v = name === "emb" ? res.emb : name === "out" ? res.out : res.blocks.get(name);
        if (!v) throw new Error(`the tfjs forward pass produced no ${name}`);
        const nchw = v.rank === 4 ? tf.transpose(v, [0, 3, 1, 2]) : v;
        out.set(name, { data: (await nchw.data()) as Float32Array, shape: nchw.shape.slice() });
        if (nchw !== v) nchw.dispose();
      }
      return out;
    } finally {
      xh.dispose();
      if (res) {
        res.emb.dispose();
        res.out?.dispose();
        for (const b of res.blocks.values()) b.dispose();
      }
    }
  }

  async dispose(): Promise<void> {
    this.model.dispose();
  }
}
