import { laterPaperFile } from "../lib/experiments/diffssl-recipe";
import { strict as assert } from "assert";
import * as fs from "fs";
import { paperResults, paperResultsFile, paperSection, sourceText } from "../lib/paper";
import { sharedPath } from "./helpers/shared";

describe("the paper's numbers", () => {
  it("the project's copy equals the shared record (where ../shared is present)", function () {
    const shared = sharedPath("paper", "results.json");
    if (!shared) {
      console.log("      (skipped: ../shared/paper/results.json is absent)");
      this.skip();
    }
    assert.deepEqual(JSON.parse(fs.readFileSync(paperResultsFile(), "utf8")), JSON.parse(fs.readFileSync(shared!, "utf8")));
    // and the extended paper's record (arXiv 2311.17921), whose recipes diffsslRecipe reads
    const later = sharedPath("paper", "later-paper.json");
    assert.ok(later, "../shared/paper/later-paper.json is absent while results.json is present");
    assert.deepEqual(JSON.parse(fs.readFileSync(laterPaperFile(), "utf8")), JSON.parse(fs.readFileSync(later!, "utf8")));
  });

  it("reads sections with their provenance, and names the sections when one is missing", () => {
    const main = paperSection<{ rows: { method: string; acc: number }[] }>("imagenet_main_table");
    assert.equal(main.rows.find((r) => r.method === "BigBiGAN*")!.acc, 60.8);
    assert.match(sourceText(main.source), /^F: read from the paper's vector figure.*; R: read from/);
    assert.throws(() => paperSection("imagenet_tables"), /no section "imagenet_tables" \(have: paper, provenance, model,/);
    assert.ok(paperResults().paper.includes("2307.08702"));
  });
});
