/**
 * The provenance record of results files: git state and checkpoint hashes against git and sha256sum,
 * no absolute machine path in a written file, and writeResults refusing a file without provenance.
 */
import { strict as assert } from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checkProvenance, commandLine, imageListRecord, portablePath, provenance, relativePaths } from "../lib/provenance";
import { projectRoot } from "../lib/paths";
import { writeResults } from "../lib/results";
import { embeddedModel } from "../lib/model/embedded";
import { tempDir, removeTempDir } from "./helpers/tmp";

describe("provenance of results files", () => {
  let tmp: string;
  const oldBuild = process.env.DIFFPROBE_BUILD;
  beforeEach(() => {
    tmp = tempDir("prov");
    process.env.DIFFPROBE_BUILD = tmp;
  });
  afterEach(() => {
    if (oldBuild === undefined) delete process.env.DIFFPROBE_BUILD;
    else process.env.DIFFPROBE_BUILD = oldBuild;
    removeTempDir(tmp);
  });

  it("names the commit git names, and the checkpoint's SHA-256 as sha256sum computes it", () => {
    const ckpt = embeddedModel().checkpoint;
    const p = provenance({ checkpoints: { trained: ckpt }, engine: { name: "tfjs", version: "4.22.0", backend: "cpu" }, seeds: { probe: [0, 1, 2] }, options: { pool: 4 } });
    const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: projectRoot(), encoding: "utf8" }).trim();
    assert.equal(p.commit, head);
    const sum = execFileSync("sha256sum", [ckpt], { encoding: "utf8" }).split(/\s+/)[0];
    assert.equal(p.checkpoints.trained.sha256, sum);
    assert.equal(p.checkpoints.trained.file, path.relative(projectRoot(), ckpt));
    assert.equal(p.checkpoints.trained.bytes, fs.statSync(ckpt).size);
    assert.equal(typeof p.dirty, "boolean");
  });

  it("names the command as typed: npm's script with the arguments after --, paths portable; a parent's command first", () => {
    const root = projectRoot();
    const nb = { npm_lifecycle_event: "notebooks", npm_lifecycle_script: "tsx data-scripts/run-notebooks.ts" };
    const argv = ["/usr/bin/node", path.join(root, "data-scripts/run-notebooks.ts")];
    assert.equal(commandLine(nb, [...argv, "--scale", "full", "--out", "/elsewhere/nb", "--out2", path.join(root, "x"), "02"]),
      "npm run notebooks -- --scale full --out <outside>/nb --out2 x 02");
    assert.equal(commandLine(nb, argv), "npm run notebooks");
    const demo = { npm_lifecycle_event: "demo", npm_lifecycle_script: "node data-scripts/setup.cjs demo && tsx data-scripts/run-notebooks.ts --scale demo --jobs 2" };
    assert.equal(commandLine(demo, [...argv, "--scale", "demo", "--jobs", "2"]), "npm run demo");
    assert.equal(commandLine({ ...demo, DIFFPROBE_SCALE: "demo" }, [...argv, "--scale", "demo", "--jobs", "2", "04"]), "DIFFPROBE_SCALE=demo npm run demo -- 04");
    assert.equal(commandLine({ DIFFPROBE_COMMAND: "npm run notebooks -- 02", ...nb }, ["/usr/bin/python3", "-m", "tslab"]), "npm run notebooks -- 02");
    assert.equal(commandLine({}, ["/usr/bin/node", path.join(root, "data-scripts/extract.ts"), "--seed", "1"]), "node data-scripts/extract.ts --seed 1");
  });

  it("hashes image lists by their ids in order", () => {
    const a = imageListRecord(["x:1", "x:2"]);
    assert.equal(a.images, 2);
    assert.notEqual(a.idsHash, imageListRecord(["x:2", "x:1"]).idsHash);
    const expected = require("crypto").createHash("sha256").update("x:1\nx:2\n").digest("hex").slice(0, 16);
    assert.equal(a.idsHash, expected);
  });

  it("makes absolute paths portable: inside the project relative, outside cut to the file name", () => {
    assert.equal(portablePath(path.join(projectRoot(), "assets", "m.safetensors")), "assets/m.safetensors");
    assert.equal(portablePath("/somewhere/else/model.pt"), "<outside>/model.pt");
    const body = relativePaths({ a: path.join(projectRoot(), "x.json"), b: [`${projectRoot()}/y is here`], n: 3, arr: new Float32Array([1]) });
    assert.deepEqual(body.a, "x.json");
    assert.deepEqual(body.b, ["y is here"]);
    assert.equal(body.n, 3);
    assert.ok(body.arr instanceof Float32Array);
  });

  it("writeResults refuses a file without provenance and writes no absolute path of this machine", () => {
    assert.throws(() => writeResults("p", [{ a: 1 }], { provenance: undefined }), /results p: meta\.provenance is missing/);
    assert.throws(() => checkProvenance("r", { commit: "x", dirty: false, engine: { name: "ort" }, seeds: {}, options: {}, command: "c" }), /engine needs a name and a version/);
    const p = provenance({ checkpoints: { trained: embeddedModel().checkpoint }, engine: { name: "tfjs", version: "4" }, seeds: { s: 0 }, options: { store: path.join(projectRoot(), ".cache", "store") } });
    const files = writeResults("p", [{ file: embeddedModel().checkpoint }], { provenance: p, scale: "smoke" });
    const text = fs.readFileSync(files.json, "utf8") + fs.readFileSync(files.csv, "utf8");
    assert.ok(!text.includes(projectRoot()), "the project root appears in the results");
    assert.ok(!text.includes(os.tmpdir() + "/"), "a temporary folder appears in the results");
    const back = JSON.parse(fs.readFileSync(files.json, "utf8"));
    assert.equal(back.provenance.options.store, ".cache/store");
    assert.equal(back.rows[0].file, path.relative(projectRoot(), embeddedModel().checkpoint));
  });
});
