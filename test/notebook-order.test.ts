import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { chainWeights, nextRunnable, notebookAfter, notebookWeight } from "../data-scripts/notebook-order";
import { tempDir, removeTempDir } from "./helpers/tmp";

describe("notebook order (npm run notebooks -- --jobs N)", () => {
  it("reads metadata.diffprobe.after, and a notebook waits for the ones it reads from", () => {
    const dir = tempDir("nb-order");
    try {
      const write = (name: string, meta: object) => {
        const f = path.join(dir, name);
        fs.writeFileSync(f, JSON.stringify({ cells: [], metadata: meta, nbformat: 4, nbformat_minor: 5 }));
        return f;
      };
      assert.deepEqual(notebookAfter(write("a.ipynb", {})), []);
      assert.deepEqual(notebookAfter(write("b.ipynb", { diffprobe: { after: ["a"] } })), ["a"]);
      assert.throws(() => notebookAfter(write("c.ipynb", { diffprobe: { after: "a" } })), /c\.ipynb: metadata\.diffprobe\.after must be a list/);
    } finally {
      removeTempDir(dir);
    }
    const after = new Map([["05.ipynb", ["04.ipynb"]], ["09.ipynb", ["02.ipynb"]]]);
    assert.equal(nextRunnable(["05.ipynb", "06.ipynb"], after, new Set()), 1);
    assert.equal(nextRunnable(["05.ipynb", "06.ipynb"], after, new Set(["04.ipynb"])), 0);
    assert.equal(nextRunnable(["09.ipynb"], after, new Set()), -1);
  });

  it("starts the ready notebook heading the longest chain of weights first; a cycle is an error", () => {
    const after = new Map([["05", ["04"]], ["09", ["02"]]]);
    const weight = new Map([["02", 200], ["04", 90], ["05", 150], ["08", 120], ["09", 130], ["00", 5]]);
    const names = ["00", "02", "04", "05", "08", "09"];
    const chain = chainWeights(names, after, weight);
    assert.deepEqual(Object.fromEntries(chain), { "00": 5, "02": 330, "04": 240, "05": 150, "08": 120, "09": 130 });
    assert.equal(names[nextRunnable(names, after, new Set(), chain)], "02");
    assert.equal(["00", "04", "08"][nextRunnable(["00", "04", "08"], after, new Set(), chain)], "04");
    assert.equal(["00", "05", "08"][nextRunnable(["00", "05", "08"], after, new Set(["04"]), chain)], "05");
    assert.throws(() => chainWeights(["a", "b"], new Map([["a", ["b"]], ["b", ["a"]]]), new Map()), /cycle/);
  });

  it("the committed notebooks' declarations name notebooks that exist", () => {
    const dir = path.join(__dirname, "..", "notebooks");
    const stems = fs.readdirSync(dir).filter((f) => f.endsWith(".ipynb")).map((f) => f.replace(/\.ipynb$/, ""));
    for (const s of stems) for (const d of notebookAfter(path.join(dir, `${s}.ipynb`))) assert.ok(stems.includes(d), `${s} waits for ${d}, which does not exist`);
    assert.deepEqual(notebookAfter(path.join(dir, "05-heads.ipynb")), ["04-imagenet-linear"]);
    for (const s of stems) assert.ok(notebookWeight(path.join(dir, `${s}.ipynb`)) > 0, `${s} has no weight`);
  });
});
