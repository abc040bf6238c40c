import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { nextRunnable, notebookAfter } from "../data-scripts/notebook-order";
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

  it("the committed notebooks' declarations name notebooks that exist", () => {
    const dir = path.join(__dirname, "..", "notebooks");
    const stems = fs.readdirSync(dir).filter((f) => f.endsWith(".ipynb")).map((f) => f.replace(/\.ipynb$/, ""));
    for (const s of stems) for (const d of notebookAfter(path.join(dir, `${s}.ipynb`))) assert.ok(stems.includes(d), `${s} waits for ${d}, which does not exist`);
    assert.deepEqual(notebookAfter(path.join(dir, "05-heads.ipynb")), ["04-imagenet-linear"]);
  });
});
