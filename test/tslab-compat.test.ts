/**
 * Library code is also compiled by tslab inside notebooks, which resolves `import "./x"` only to a file
 * (x.ts), never to a folder's index.ts, and compiles with TypeScript 5.0 without strict null checks (where
 * some narrowing that strict code relies on does not happen). The import rule is guarded here; the
 * compiler settings by `npm run typecheck`, which also checks lib/ with tsconfig.tslab.json.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";

const LIB = path.resolve(__dirname, "..", "lib");

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

describe("library code works under tslab", () => {
  it("imports files, not folders (tslab does not resolve a folder to its index.ts)", () => {
    const bad: string[] = [];
    for (const file of tsFiles(LIB)) {
      const src = fs.readFileSync(file, "utf8");
      for (const m of src.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*)"(\.{1,2}\/[^"]*)"/g)) {
        const target = path.resolve(path.dirname(file), m[1]);
        if (fs.existsSync(target) && fs.statSync(target).isDirectory()) bad.push(`${path.relative(LIB, file)}: "${m[1]}" is a folder; import "${m[1]}/index"`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it("the notebooks/lib symlink points at lib/", () => {
    const link = path.resolve(__dirname, "..", "notebooks", "lib");
    assert.ok(fs.lstatSync(link).isSymbolicLink(), "notebooks/lib must be a symlink");
    assert.equal(fs.realpathSync(link), fs.realpathSync(LIB));
  });
});
