/**
 * Committed notebooks hold no outputs or execution counts (the web UI's autosave writes them), and
 * data-scripts/strip-notebooks.ts brings a notebook that Jupyter saved after a run back to its committed text.
 * The "saved after a run" notebook is made by Python's nbformat (the library Jupyter saves with), not by our code.
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { notebookDirt, notebookText, projectNotebooks, readNotebook, stripNotebook } from "../data-scripts/strip-notebooks";
import { tempDir, removeTempDir } from "./helpers/tmp";

const ROOT = path.resolve(__dirname, "..");
const SCRIPT = path.join(ROOT, "data-scripts", "strip-notebooks.ts");
const TSX = path.join(ROOT, "node_modules", ".bin", "tsx");

describe("committed notebooks are clean", function () {
  this.timeout(60_000);

  it("no notebook in notebooks/ holds outputs, execution counts or run metadata", () => {
    const files = projectNotebooks(ROOT);
    assert.ok(files.length >= 9, `expected the nine notebooks, found ${files.length}`);
    const dirty = files
      .map((f) => ({ f, dirt: notebookDirt(readNotebook(f)) }))
      .filter((d) => d.dirt.length)
      .map((d) => `${path.relative(ROOT, d.f)}:\n  ${d.dirt.join("\n  ")}`);
    assert.deepEqual(dirty, [], `run \`npm run strip-notebooks\` before committing:\n${dirty.join("\n")}`);
  });

  describe("a notebook saved after a run", () => {
    let dir: string;
    let committed: string;
    let saved: string;
    beforeEach(function () {
      dir = tempDir("strip");
      committed = path.join(ROOT, "notebooks", "01-quickstart.ipynb");
      saved = path.join(dir, "01-quickstart.ipynb");
      // What Jupyter's save does after Restart & Run All: outputs, execution counts, nbclient timings, and the
      // language_info tslab reports (as the classic Notebook saved it on a fresh clone), in nbformat's layout.
      const py = [
        "import nbformat, sys",
        "nb = nbformat.read(sys.argv[1], as_version=4)",
        "n = 0",
        "for c in nb.cells:",
        "    if c.cell_type == 'code':",
        "        n += 1",
        "        c.execution_count = n",
        "        c.outputs = [nbformat.v4.new_output('stream', name='stdout', text='line %d\\n' % n)]",
        "        c.metadata['execution'] = {'iopub.status.busy': '2026-01-01T00:00:00.000000Z'}",
        "nb.metadata.language_info.update({'codemirror_mode': {'mode': 'typescript', 'name': 'javascript', 'typescript': True},",
        "                                  'mimetype': 'text/typescript', 'version': '3.7.2'})",
        "nbformat.write(nb, sys.argv[2])",
      ].join("\n");
      const r = spawnSync("/usr/bin/python3", ["-c", py, committed, saved], { encoding: "utf8" });
      if (r.error || r.status !== 0) {
        if (process.env.CI === "true") throw new Error(`python3 with nbformat is needed here: ${r.error?.message ?? r.stderr}`);
        this.skip();
      }
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("is flagged, cell by cell, with what it holds", () => {
      const dirt = notebookDirt(readNotebook(saved));
      const codeCells = readNotebook(committed).cells.filter((c) => c.cell_type === "code").length;
      assert.equal(dirt.length, codeCells + 1);
      assert.match(dirt[0], /^cell 2 \(id [^)]+\): 1 output, execution count 1, run metadata execution$/);
      assert.equal(dirt[codeCells], "notebook metadata: the kernel's language_info codemirror_mode, mimetype, version");
    });

    it("--check exits 1 naming the file and changes nothing; stripping restores the committed bytes", () => {
      const before = fs.readFileSync(saved, "utf8");
      const check = spawnSync(TSX, [SCRIPT, "--check", saved], { encoding: "utf8" });
      assert.equal(check.status, 1, check.stderr);
      assert.match(check.stdout, /01-quickstart\.ipynb holds what a committed notebook must not/);
      assert.match(check.stdout, /1 of 1 notebook hold outputs/);
      assert.equal(fs.readFileSync(saved, "utf8"), before);

      const strip = spawnSync(TSX, [SCRIPT, saved], { encoding: "utf8" });
      assert.equal(strip.status, 0, strip.stderr);
      assert.equal(fs.readFileSync(saved, "utf8"), fs.readFileSync(committed, "utf8"));
      const again = spawnSync(TSX, [SCRIPT, "--check", saved], { encoding: "utf8" });
      assert.equal(again.status, 0, again.stdout);
    });
  });

  it("writes the layout nbformat writes (a clean notebook round-trips to the same bytes)", function () {
    // 00-02 are in nbformat's layout already (checked by Python below); stripping a clean one changes nothing.
    const file = path.join(ROOT, "notebooks", "01-quickstart.ipynb");
    const r = spawnSync("/usr/bin/python3", ["-c", "import nbformat,sys; sys.stdout.write(nbformat.writes(nbformat.read(sys.argv[1], as_version=4)) + '\\n')", file], { encoding: "utf8" });
    if (r.error || r.status !== 0) {
      if (process.env.CI === "true") throw new Error(`python3 with nbformat is needed here: ${r.error?.message ?? r.stderr}`);
      this.skip();
    }
    assert.equal(notebookText(stripNotebook(readNotebook(file))), r.stdout);
  });

  it("names the file when a notebook is not JSON", () => {
    const dir = tempDir("strip");
    try {
      const bad = path.join(dir, "bad.ipynb");
      fs.writeFileSync(bad, "{ not json");
      assert.throws(() => readNotebook(bad), /bad\.ipynb: not readable as JSON/);
      fs.writeFileSync(bad, "{}");
      assert.throws(() => readNotebook(bad), /bad\.ipynb: not a notebook/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
