// The results files committed under assets/results (runs too long for CI, e.g. notebook 02 at full scale):
// each names a clean commit and the checkpoints it ran, as they are committed now; no absolute path of
// the machine that ran; its CSV twin holds the same rows; README quotes it (file and test accuracies).
import * as assert from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as aq from "arquero";
import { checkProvenance } from "../lib/provenance";
import { projectRoot } from "../lib/paths";

const dir = path.join(projectRoot(), "assets", "results");
const readme = fs.readFileSync(path.join(projectRoot(), "README.md"), "utf8");
const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort() : [];
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

describe("committed results (assets/results)", () => {
  it("holds notebook 02's full-split run", () => {
    assert.ok(files.includes("fashion-mnist-probe.full.json"), `assets/results has ${files.join(", ") || "no JSON file"}`);
  });
  for (const f of files) {
    describe(f, () => {
      const text = fs.readFileSync(path.join(dir, f), "utf8");
      const r = JSON.parse(text);
      it("names a clean commit and each checkpoint by the SHA-256 of the committed file", () => {
        const p = checkProvenance(f, r.provenance);
        assert.match(p.commit, /^[0-9a-f]{40}$/);
        assert.equal(p.dirty, false, `${f}: run from a tree with uncommitted changes`);
        assert.ok(Object.keys(p.checkpoints).length > 0, `${f}: names no checkpoint`);
        for (const [label, c] of Object.entries(p.checkpoints)) {
          const sha = createHash("sha256").update(fs.readFileSync(path.join(projectRoot(), c.file))).digest("hex");
          assert.equal(sha, c.sha256, `${f}: checkpoint ${label} (${c.file}) changed since the run`);
        }
      });
      it("names no absolute path of the machine that ran", () => {
        assert.doesNotMatch(text, /"\/(work|home|tmp|root|Users|mnt|var)\//);
      });
      it("has a CSV twin with the same rows", () => {
        const csv = fs.readFileSync(path.join(dir, f.replace(/\.json$/, ".csv")), "utf8");
        assert.equal(aq.fromCSV(csv).numRows(), r.rows.length);
        assert.doesNotMatch(csv, /object Object/);
      });
      it("is quoted in README: the file and each chosen setting's test accuracy", () => {
        assert.ok(readme.includes(`assets/results/${f}`), `README does not name assets/results/${f}`);
        const chosen = Object.values(r.answer ?? {}).filter((c) => c && typeof (c as { testAcc?: unknown }).testAcc === "number");
        assert.ok(chosen.length > 0, `${f}: answer has no chosen setting with a test accuracy`);
        for (const c of chosen as { features: string; testAcc: number }[]) {
          assert.ok(readme.includes(pct(c.testAcc)), `README does not quote ${c.features}'s ${pct(c.testAcc)}`);
        }
      });
    });
  }
});
