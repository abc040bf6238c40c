/**
 * The real extraction path against the bare engine, in one child process: `npm run extract`'s own code
 * (openImageSource on an ImageNet tree, createExtractor, extractToStore) on a synthetic tree of full-size
 * JPEGs (320x256, centre-cropped to 256) with the 256x256 ADM's random weights of seed 0 (the weights of
 * part ort256) written as an official-format torch checkpoint, so that the ONNX graph is built from a
 * torch file as for a downloaded checkpoint. Then the bare ONNX Runtime engine on the same cached graph at
 * the same batch size. The inputs are written by a child process of their own (extract256Inputs) into the
 * temp folder run.ts makes and removes (tree, checkpoint, graph cache, stores).
 *
 * Figures: graph build from the torch file (its own line), the first call (warm-up, its own line), then
 * the extract path over the images (s/img, img/s, where its time went, peak RSS), then the engine alone.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { createUNetConfig } from "../lib/model/unet/config";
import { getPreset } from "../lib/model/unet/presets";
import { blockTable } from "../lib/model/unet/blocks";
import { writeRandomCheckpoint, writeSyntheticImagenet } from "../lib/data/synthetic-tree";
import { createExtractor, defaultBatchSize, FeatureRequest } from "../lib/features/store/extractor";
import { extractToStore, ExtractJob } from "../lib/features/store/extract";
import { openImageSource } from "../lib/features/store/images";
import { OrtUNetEngine } from "../lib/model/engines/ort-unet";
import type { ModelSource } from "../lib/model/model-source";
import type { PartOptions, Row } from "./parts";

const now = () => performance.now() / 1000;
const log = (s: string) => process.stderr.write(`   ${s}\n`);
const maxRssBytes = () => process.resourceUsage().maxRSS * 1024;
const MODEL = "adm-256-uncond (random, seed 0)";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const treeOf = (tmp: string) => path.join(tmp, "imagenet");
const checkpointOf = (tmp: string) => path.join(tmp, "256x256_random.pt");

/** The inputs, written by their own child process (so that its memory is not in the extract path's peak RSS). */
export async function extract256Inputs(o: PartOptions): Promise<Row[]> {
  if (!o.tmp) throw new Error("extract256-inputs: no --tmp folder");
  const config = createUNetConfig("adm-256-uncond");
  const total = o.images + defaultBatchSize(config, [o.block]); // the first batch serves the warm-up call
  let t0 = now();
  await writeSyntheticImagenet(treeOf(o.tmp), { numClasses: 2, trainPerClass: Math.ceil(total / 2), valPerClass: 1, size: 256 });
  log(`synthetic ImageNet tree: ${2 * Math.ceil(total / 2)} train JPEGs of 320x256 in ${(now() - t0).toFixed(1)} s`);
  t0 = now();
  const ckpt = checkpointOf(o.tmp);
  await writeRandomCheckpoint(ckpt, getPreset("adm-256-uncond").flags, 0);
  return [{ part: "extract256", model: MODEL, backend: "-", batch: "", measure: "write the torch checkpoint (official layout; not part of extraction)", value: now() - t0, unit: "s", note: `${(fs.statSync(ckpt).size / 2 ** 30).toFixed(2)} GiB` }];
}

export async function extract256(o: PartOptions): Promise<Row[]> {
  if (!o.tmp) throw new Error("extract256: no --tmp folder (run.ts makes one and writes the inputs first)");
  const config = createUNetConfig("adm-256-uncond");
  const rows: Row[] = [];
  const part = "extract256";
  const blockName = blockTable(config)[o.block - 1].name;
  const flopsTo = blockTable(config)[o.block - 1].cumulativeFlops / 1e9;
  const batch = defaultBatchSize(config, [o.block]);
  const n = o.images;
  const total = n + batch;
  const tmp = o.tmp;
  const tree = treeOf(tmp);
  const ckpt = checkpointOf(tmp);
  const oldCache = process.env.DIFFPROBE_ONNX_CACHE;
  process.env.DIFFPROBE_ONNX_CACHE = path.join(tmp, "onnx"); // a first build, not a cache hit of an earlier run
  let t0: number;
  try {
    const source: ModelSource = { config: "adm-256-uncond", checkpoint: ckpt };

    // npm run extract's path: the source, the extractor (default batch), the store.
    const all = await openImageSource(`imagenet:${tree}`, { split: "train", size: 256, limit: total });
    const extractor = createExtractor(source, { engine: "ort", onChoice: (_l, d) => log(`engine: ${d}`) });
    const req: FeatureRequest = { blocks: [o.block], timesteps: [o.t], pool: { kind: "adaptive", size: 2 }, noise: { policy: "seeded", seed: 0 } };
    log(`default batch ${batch} (extractor: ${extractor.rowsPerCall?.(req)}); building the ONNX graph to block ${o.block} from the torch file ...`);
    const job = (root: string, start: number, end: number): ExtractJob => ({
      root, extractor, ...req, dtype: "float16", progress: false,
      images: { ...all, ids: all.ids.slice(start, end), labels: all.labels!.slice(start, end), load: (s, e) => all.load(start + s, start + e) },
    });
    // What extractToStore does first (prepare), called here to time it and read the RSS before any model call.
    t0 = now();
    await extractor.prepare!(req);
    const build = now() - t0;
    const rssAfterBuild = maxRssBytes();
    const warm = await extractToStore(job(path.join(tmp, "store-warm-up"), 0, batch));
    const backend = extractor.engine().detail ?? "ort";
    rows.push({ part, model: MODEL, backend, batch: "", measure: `build the ONNX graph to block ${o.block} from the torch file + session (first run)`, value: build, unit: "s", note: `includes the SHA-256 of the checkpoint and of the built files; peak RSS after it ${(rssAfterBuild / 2 ** 30).toFixed(2)} GiB` });
    rows.push({ part, model: MODEL, backend, batch, measure: "extract path: first call (warm-up)", value: warm.seconds.extract / batch, unit: "s/img" });

    log(`extract path: ${n} images of 320x256 JPEG, block ${o.block} (${blockName}) at t=${o.t}, pool 2, float16 store, batch ${batch} ...`);
    t0 = now();
    const r = await extractToStore(job(path.join(tmp, "store"), batch, total));
    const wall = now() - t0;
    if (r.computed !== r.sets[0].parts) throw new Error(`extract path computed ${r.computed} of ${r.sets[0].parts} part(s)`);
    const s = r.seconds;
    const perImg = wall / n;
    rows.push({
      part, model: MODEL, backend, batch, measure: `extract path: ${n} images, whole call (decode, crop, noise, engine, pooling, store)`, value: perImg, unit: "s/img", gflop: flopsTo,
      note: `${wall.toFixed(1)} s: model calls ${s.extract.toFixed(1)} s, waiting for images ${s.waitImages.toFixed(2)} s (decoding not overlapped), writing ${s.write.toFixed(2)} s`,
    });
    rows.push({ part, model: MODEL, backend, batch, measure: "extract path", value: 1 / perImg, unit: "img/s" });
    rows.push({ part, model: MODEL, backend, batch: "", measure: "peak RSS (extract path, graph built in this process)", value: maxRssBytes(), unit: "B" });
    await extractor.close();

    // Decoding and cropping alone, for the record (the path above overlaps it with the model).
    t0 = now();
    await all.load(0, batch);
    rows.push({ part, model: MODEL, backend: "sharp + lib/data/preprocess", batch, measure: "decode + centre crop of 320x256 JPEGs (alone)", value: (now() - t0) / batch, unit: "s/img" });

    // The bare engine on the cached graph, same batch, same (noised-image sized) input.
    log(`bare engine: cached graph, batch ${batch}, warm-up + ${o.reps} timed ...`);
    t0 = now();
    const eng = await OrtUNetEngine.create(source, { outputs: [o.block] });
    rows.push({ part, model: MODEL, backend: eng.description, batch: "", measure: "cached graph: verify + session (second run)", value: now() - t0, unit: "s" });
    const x = new Float32Array(batch * 3 * 256 * 256);
    for (let i = 0; i < x.length; i++) x[i] = Math.fround(0.9 * Math.sin(0.37 * i));
    const ts = new Array(batch).fill(o.t);
    await eng.run(x, batch, ts);
    const times: number[] = [];
    for (let k = 0; k < o.reps; k++) {
      t0 = now();
      await eng.run(x, batch, ts);
      times.push((now() - t0) / batch);
    }
    await eng.dispose();
    const e = median(times);
    rows.push({ part, model: MODEL, backend: eng.description, batch, measure: `bare engine: features block ${o.block}, t=${o.t} (median of ${o.reps})`, value: e, unit: "s/img", gflop: flopsTo });
    rows.push({ part, model: MODEL, backend: eng.description, batch, measure: "bare engine", value: 1 / e, unit: "img/s" });
  } finally {
    if (oldCache === undefined) delete process.env.DIFFPROBE_ONNX_CACHE;
    else process.env.DIFFPROBE_ONNX_CACHE = oldCache;
  }
  return rows;
}

/** "extract path / bare engine" of an extract256 run, or null. */
export function extractComparison(rows: Row[]): string | null {
  const p = rows.find((r) => r.part === "extract256" && r.unit === "s/img" && r.measure.startsWith("extract path: ") && r.gflop !== undefined);
  const e = rows.find((r) => r.part === "extract256" && r.unit === "s/img" && r.measure.startsWith("bare engine"));
  if (!p || !e) return null;
  const ratio = p.value / e.value;
  return `Extract path / bare engine, batch ${p.batch}, same run: ${p.value.toFixed(2)} / ${e.value.toFixed(2)} s/img = ${ratio.toFixed(2)}x the time (${(1 / p.value).toFixed(3)} / ${(1 / e.value).toFixed(3)} img/s; ${ratio <= 1.15 ? "within" : "NOT within"} 15%).`;
}
