/**
 * The probe pipeline in one import, for notebooks and forks: extract -> select -> evaluate.
 *
 *   model      modelForScale, randomWeights (experiments/scale-model.ts)
 *   extract    createExtractor (features/store/extractor.ts); runPlan, measureJobs, planCost, findSet
 *              (experiments/extraction-plan.ts): store jobs over an image source, resumable, with their cost
 *   select     storedCandidates, pixelCandidate (experiments/candidates.ts); validationSplit (protocol/split.ts);
 *              selectAndTest, gridOnTest, pairedOnTest, repeatSeeds, testFixed, validationCurve, fitHead,
 *              probeTraining (protocol/select.ts); checkpointed fits under headCheckpointRoot (paths.ts)
 *   views      viewCandidate, viewFeatures, noisedImageSource (experiments/views.ts): a head trained on the
 *              cached centre image, on K augmented/noised views cycled over epochs, or online (a new view
 *              every epoch, the official loop); the diffssl recipes (experiments/diffssl-recipe.ts)
 *   evaluate   Evaluation (heads/evaluate.ts: top-1/top-5 with intervals), mcnemarExact, wilsonInterval
 *   record     provenance (provenance.ts), writeResults (results.ts)
 *
 * A new head type is one file under lib/heads/ plus its case in lib/heads/create.ts (HeadSpec, buildHead,
 * specParams); every candidate then takes it as `head`.
 */
export { modelForScale, randomWeights, ADM_256_UNCOND } from "./experiments/scale-model";
export type { ScaleModel, FullModel } from "./experiments/scale-model";
export { createExtractor } from "./features/store/extractor";
export type { FeatureExtractor } from "./features/store/extractor";
export { fashionMnistSource, memorySource as memoryImages, openImageSource } from "./features/store/images";
export { mnistSource } from "./features/store/images";
export type { ImageSource } from "./features/store/images";
export { defaultStoreRoot } from "./features/store/store";
export { headCheckpointRoot } from "./paths";
export { findSet, measureJobs, planCost, PLAN_NOISE, runPlan } from "./experiments/extraction-plan";
export type { CostLine, PlanJob, StoredSet } from "./experiments/extraction-plan";
export { extractedCandidate, fusedCandidate, linearHead, pixelCandidate, storedCandidates } from "./experiments/candidates";
export { validationSplit } from "./experiments/protocol/split";
export type { ValidationSplit, ValidationSplitRecord } from "./experiments/protocol/split";
export {
  chooseOnValidation, describe, disposeGrid, fitCheckpoint, fitHead, gridOnTest, pairedOnTest, probeTraining, repeatSeeds,
  selectAndTest, testFixed, validationCurve,
  TEST_SHOWN_LABEL,
} from "./experiments/protocol/select";
export type { Candidate, ChosenRow, CurveRow, SeedSummary, Selection, Setting, ValidationRow } from "./experiments/protocol/select";
export { checkViews, noisedImageSource, OFFICIAL_VIEWS, viewCandidate, viewFeatures, viewsLabel } from "./experiments/views";
export type { TrainingViews } from "./experiments/views";
export { diffsslRecipe, diffsslRecord, laterPaper } from "./experiments/diffssl-recipe";
export type { DiffsslScript } from "./experiments/diffssl-recipe";
export { headPool } from "./heads/create";
export type { HeadSpec } from "./heads/create";
export type { Evaluation } from "./heads/evaluate";
export { mcnemarExact, wilsonInterval } from "./metrics/classification";
export { blockLabel, blockOf, modelBlocks } from "./model/unet/blocks";
export type { Block } from "./model/unet/blocks";
export { provenance } from "./provenance";
export { writeResults, readResults } from "./results";
