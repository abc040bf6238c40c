/**
 * Notebook 05's experiment: four families of heads (linear, MLP, CNN, attention) on the same stored block
 * map, accuracy against head parameters (the paper's Fig. 1, right). Each family is one selection
 * (protocol/select.ts selectAndTest) over its settings x training options (learning rates for the linear
 * heads, epoch counts for the others: trained to a validation plateau): the family's head is chosen on
 * validation, refit on all training rows and scored once on test. The family's whole grid is then shown on
 * test as the paper shows its figure (gridOnTest: never used to choose).
 *
 * Parameter counts: ours at our number of classes, and the same head with a 1000-way output layer (the
 * paper counts its heads with ImageNet-1k's classifier, even on ImageNet-50).
 */
import type { HeadSpec } from "../heads/create";
import { specParams } from "../heads/create";
import type { TrainHeadOptions } from "../heads/train-head";
import { storedCandidates } from "./candidates";
import type { StoredSet } from "./extraction-plan";
import { Candidate, disposeGrid, gridOnTest, selectAndTest, Selection, TEST_SHOWN_LABEL } from "./protocol/select";
import type { ValidationSplit } from "./protocol/split";
import { edgeNote } from "./grid-edge";

/** The paper's output width for its parameter counts. */
export const PAPER_OUTPUT_CLASSES = 1000;

export interface FamilyGrid {
  family: string;
  /** Each head of the family with its name in the figure. */
  heads: { setting: string; head: HeadSpec }[];
  /** Training options common to the family (its optimiser; seed). */
  training: TrainHeadOptions;
  /** The training options searched on validation for every head (one candidate each), with the tag they set. */
  search: { tag: "lr" | "epochs"; values: number[] };
}

/** The candidates of one family on a stored set (its map [C, s, s]): heads x searched values. */
export function familyCandidates(grid: FamilyGrid, train: StoredSet, test: (s: StoredSet) => Promise<StoredSet>, numClasses: number): Candidate[] {
  if (!grid.heads.length) throw new Error(`familyCandidates: ${grid.family} has no heads`);
  if (!grid.search.values.length || grid.search.values.some((v) => !(v > 0))) throw new Error(`familyCandidates: ${grid.family}: searched ${grid.search.tag} ${JSON.stringify(grid.search.values)} must be positive (at least one)`);
  return grid.heads.flatMap((h) =>
    grid.search.values.flatMap((v) =>
      storedCandidates([train], test, {
        numClasses, pool: train.side, head: () => h.head,
        training: grid.search.tag === "lr" ? { optimizer: { ...grid.training.optimizer, lr: v } } : { epochs: v },
        tags: { family: grid.family, setting: h.setting, [grid.search.tag]: v },
      }),
    ),
  );
}

export interface FamilyRow {
  family: string;
  setting: string;
  /** The searched value of this row (learning rate or epochs). */
  search: string;
  params: number;
  /** The same head with a 1000-way output layer, as the paper counts. */
  params1000: number;
  valAcc: number;
  /** Test accuracy of the validation-stage head (shown as the paper shows its grid; not used to choose). */
  testShown: number;
  chosen: boolean;
}

export interface FamilyResult {
  family: string;
  selection: Selection;
  /** Every head of the grid, with its shown test accuracy. */
  rows: FamilyRow[];
  /** For each head setting, the row of its best searched value on validation (the figure's points). */
  points: FamilyRow[];
  /** The chosen head refit on all training rows and scored once on test, with its 1000-way count. */
  chosen: Selection["chosen"] & { params1000: number };
  edge: string | null;
}

/** One family: select on validation, test the chosen head once, then show the grid on test. */
export async function selectFamily(grid: FamilyGrid, train: StoredSet, test: (s: StoredSet) => Promise<StoredSet>, numClasses: number, split: ValidationSplit, showProgress = false): Promise<FamilyResult> {
  const cands = familyCandidates(grid, train, test, numClasses);
  const selection = await selectAndTest(grid.family, cands, { split, training: grid.training, keepGridHeads: true, showProgress });
  let shown;
  try {
    shown = await gridOnTest(selection, cands);
  } finally {
    disposeGrid(selection);
  }
  const shape = train.set.manifest.rowShape!;
  const tag = grid.search.tag;
  const rows: FamilyRow[] = shown.map((r, i) => ({
    family: grid.family, setting: String(r.setting), search: `${tag} ${r[tag]}`, params: r.params,
    params1000: specParams(cands[i].head, shape, PAPER_OUTPUT_CLASSES), valAcc: r.valAcc, testShown: r[TEST_SHOWN_LABEL], chosen: r.chosen,
  }));
  const points = grid.heads.map((h) => rows.filter((r) => r.setting === h.setting).reduce((a, b) => (b.valAcc > a.valAcc ? b : a)));
  const chosen = Object.assign(selection.chosen, { params1000: specParams(cands[selection.index].head, shape, PAPER_OUTPUT_CLASSES) });
  return { family: grid.family, selection, rows, points, chosen, edge: edgeNote(selection, tag, `${grid.family}: ${tag === "lr" ? "learning rate" : "epochs"}`) };
}
