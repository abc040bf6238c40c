/**
 * The validation protocol of notebook 08, for any FeatureExtractor (U-Net engines, the GAN
 * discriminator, the supervised encoder): extract the candidate settings into the feature store for the
 * fit and validation images; fit one linear probe per candidate on the fit images and score it on the
 * validation images; the candidate with the best validation accuracy is chosen, and only then are its
 * test features extracted and its probe scored on them (once). The test predictions come back for
 * paired tests.
 */
import type { NoisePolicy } from "../../features/extract";
import { Features, LinearProbeOptions, probePredict, trainLinearProbe } from "../../heads/linear";
import { accuracy } from "../../metrics/classification";
import type { LabelledImages } from "../../experiments/probe-grid";
import { PoolSpec, poolLabel } from "../../features/pooling";
import { progress } from "../../display/progress";
import type { FeatureExtractor } from "../../features/store/extractor";
import { extractToStore } from "../../features/store/extract";
import { memorySource } from "../../features/store/images";
import { defaultStoreRoot, FeatureSet } from "../../features/store/store";

/** Images of the three roles; `split` names them in the store keys (distinct image sets, distinct names). */
export interface ProtocolData {
  fit: LabelledImages & { split: string };
  val: LabelledImages & { split: string };
  test: LabelledImages & { split: string };
  dataset: string;
  preprocessing: string;
  numClasses: number;
}

export interface Candidate { block: number | string; t: number; pool: PoolSpec }

export interface CandidateRow { features: string; block: number; module: string; t: number; pool: string; dim: number; fitAcc: number; valAcc: number }

export interface ChosenResult {
  /** Every candidate's validation score (test never looked at). */
  candidates: CandidateRow[];
  chosen: CandidateRow & { testAcc: number };
  /** The chosen probe's test predictions. */
  testPred: Int32Array;
}

const feats = (s: FeatureSet): Features => ({ data: s.matrix(), rows: s.rows, dim: s.dim });

/** Extract `cands` (grouped by pool) for the three roles; returns sets keyed `${module}|${t}|${pool}` per role. */
async function extractAll(name: string, extractor: FeatureExtractor, data: ProtocolData, cands: Candidate[], roles: ("fit" | "val" | "test")[], opts: { store?: string; noise?: NoisePolicy }) {
  const root = opts.store ?? defaultStoreRoot();
  const byPool = new Map<string, { pool: PoolSpec; blocks: Set<string | number>; ts: Set<number> }>();
  for (const c of cands) {
    const k = poolLabel(c.pool);
    const g = byPool.get(k) ?? { pool: c.pool, blocks: new Set(), ts: new Set() };
    g.blocks.add(c.block);
    g.ts.add(c.t);
    byPool.set(k, g);
  }
  const out: Record<"fit" | "val" | "test", Map<string, FeatureSet>> = { fit: new Map(), val: new Map(), test: new Map() };
  for (const role of roles) {
    const set = data[role];
    for (const g of byPool.values()) {
      const images = memorySource({ dataset: data.dataset, split: set.split, preprocessing: data.preprocessing, images: set.images, ids: set.ids, labels: set.labels });
      const r = await extractToStore({
        root, extractor, images, blocks: [...g.blocks], timesteps: [...g.ts], pool: g.pool, noise: opts.noise ?? { policy: "seeded", seed: 0 },
        progress: `${name}: ${role} features (${poolLabel(g.pool)})`,
      });
      for (const s of r.sets) out[role].set(`${s.key.module}|${s.key.t}|${s.key.pool}`, s);
    }
  }
  return out;
}

/**
 * Choose among `cands` on validation, then score the chosen once on test. `cands` with one element
 * is a pre-chosen setting (e.g. the DDPM's choice applied to another checkpoint).
 */
export async function chooseOnValidation(
  name: string,
  extractor: FeatureExtractor,
  data: ProtocolData,
  cands: Candidate[],
  opts: { store?: string; noise?: NoisePolicy; probe?: Partial<LinearProbeOptions> } = {},
): Promise<ChosenResult> {
  if (cands.length === 0) throw new Error(`${name}: no candidate settings`);
  const sets = await extractAll(name, extractor, data, cands, ["fit", "val"], opts);
  const rows: CandidateRow[] = [];
  const probes = new Map<string, Awaited<ReturnType<typeof trainLinearProbe>>>();
  const bar = progress({ total: sets.fit.size, label: `${name}: validation probes`, unit: "probe" });
  try {
    for (const [key, fit] of sets.fit) {
      const val = sets.val.get(key)!;
      const probe = await trainLinearProbe(feats(fit), fit.labels!, data.numClasses, { showProgress: false, ...opts.probe });
      probes.set(key, probe);
      rows.push({
        features: name, block: fit.key.block, module: fit.key.module, t: fit.key.t, pool: fit.key.pool, dim: fit.dim,
        fitAcc: accuracy(probePredict(probe, feats(fit)), fit.labels!), valAcc: accuracy(probePredict(probe, feats(val)), val.labels!),
      });
      bar.tick(1, { best: Math.max(...rows.map((r) => r.valAcc)).toFixed(3) });
    }
  } finally {
    bar.done();
  }
  // Ties: the earliest candidate (blocks and t in the order asked).
  const best = rows.reduce((a, b) => (b.valAcc > a.valAcc ? b : a));
  const key = `${best.module}|${best.t}|${best.pool}`;
  // Test features of the chosen setting only.
  const chosen = cands.find((c) => poolLabel(c.pool) === best.pool && c.t === best.t && extractor.layout({ ...c, blocks: [c.block], timesteps: [c.t], noise: opts.noise ?? { policy: "seeded", seed: 0 } }, data.test.images.shape[1], data.test.images.shape[2])[0].block === best.module)!;
  const test = (await extractAll(name, extractor, data, [chosen], ["test"], opts)).test.get(key)!;
  const testPred = probePredict(probes.get(key)!, feats(test));
  return { candidates: rows, chosen: { ...best, testAcc: accuracy(testPred, test.labels!) }, testPred };
}

/** Raw pixels through the same protocol (no choice to make). */
export async function pixelsOnTest(data: ProtocolData, probe: Partial<LinearProbeOptions> = {}): Promise<{ valAcc: number; testAcc: number; testPred: Int32Array; dim: number }> {
  const px = (s: LabelledImages): Features => ({ data: s.images.data, rows: s.labels.length, dim: s.images.data.length / s.labels.length });
  const p = await trainLinearProbe(px(data.fit), data.fit.labels, data.numClasses, { showProgress: false, ...probe });
  const testPred = probePredict(p, px(data.test));
  return { valAcc: accuracy(probePredict(p, px(data.val)), data.val.labels), testAcc: accuracy(testPred, data.test.labels), testPred, dim: px(data.fit).dim };
}
