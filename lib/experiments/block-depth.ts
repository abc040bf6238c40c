/**
 * The paper's block numbers (ADM-256: 37 blocks, 1..18 input_blocks, 19 middle_block, 20..37 output_blocks)
 * mapped onto a smaller U-Net by relative depth: block b of P sits at (b - 1) / (P - 1) of the way through,
 * and the nearest block of our N is chosen. With the embedded model (13 blocks) the middle maps to the
 * middle (19 -> 7) and the paper's choice, block 24 (output_blocks[4]), to 9 (output_blocks[1]).
 */
export const PAPER_BLOCK_COUNT = 37;

export function mapPaperBlock(paperBlock: number, ourBlocks: number, paperBlocks = PAPER_BLOCK_COUNT): number {
  if (!(Number.isInteger(paperBlock) && paperBlock >= 1 && paperBlock <= paperBlocks)) {
    throw new Error(`mapPaperBlock: paper block ${paperBlock} is outside 1..${paperBlocks}`);
  }
  if (!(Number.isInteger(ourBlocks) && ourBlocks >= 1)) throw new Error(`mapPaperBlock: our block count ${ourBlocks} must be a positive integer`);
  if (ourBlocks === paperBlocks) return paperBlock;
  return 1 + Math.round(((paperBlock - 1) / (paperBlocks - 1)) * (ourBlocks - 1));
}

/** The mapping of several paper blocks, as rows for a table ({paper, ours}). */
export function blockMapRows(paperBlocks: number[], ourBlocks: number): { paperBlock: number; ourBlock: number }[] {
  return paperBlocks.map((b) => ({ paperBlock: b, ourBlock: mapPaperBlock(b, ourBlocks) }));
}
