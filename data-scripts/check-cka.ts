/**
 * Compare this library's CKA with reference values made by numpy.
 *
 *   npm run check-cka -- <folder> [<folder> ...] [--tol 1e-6]
 *
 * A folder has the layout of ../shared/fixtures/cka/ (manifest.json listing cases: two .npy feature
 * matrices over the same images and any of linear_cka, hsic_unbiased_full and minibatch_cka per batch
 * size; see lib/metrics/cka/fixtures.ts). Prints one line per value with its error (absolute, or relative to
 * the reference when that exceeds 1) and PASS/FAIL, then a summary line. Exit status: 0 all passed,
 * 1 some value differs by more than the tolerance, 2 the comparison could not run (bad arguments, a
 * missing or malformed manifest, file or key).
 */
import { checkCkaFolder, CkaFixtureError, readCkaManifest, DEFAULT_CKA_TOLERANCE, formatCheckLine } from "../lib/metrics/cka/index";
import { numberOption, parseCommandLine, runCommand } from "./cli";

const fmt = (x: number) => (x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential() : String(x));

const USAGE = `usage: npm run check-cka -- <folder> [<folder> ...] [--tol ${fmt(DEFAULT_CKA_TOLERANCE)}]
  <folder>   manifest.json + the .npy feature matrices it names (layout of ../shared/fixtures/cka)
  --tol X    largest error: |ours - ref| / max(1, |ref|) (default ${fmt(DEFAULT_CKA_TOLERANCE)})
Exit status: 0 all passed, 1 some value failed, 2 the comparison could not run.`;

async function main(): Promise<number> {
  const { values, positionals: folders } = parseCommandLine({ options: { tol: { type: "string" } }, positionals: [1, Infinity] });
  const tol = numberOption(values, "tol", { positive: true }) ?? DEFAULT_CKA_TOLERANCE;
  let status = 0;
  let passed = 0;
  let failed = 0;
  let worst = 0;
  let broken = 0;
  for (const folder of folders) {
    console.log(`== ${folder}`);
    try {
      const width = Math.max(...readCkaManifest(folder).map((c) => c.name.length));
      const report = await checkCkaFolder(folder, { tolerance: tol, onLine: (l) => console.log(formatCheckLine(l, width)) });
      const f = report.lines.filter((l) => !l.pass).length;
      passed += report.lines.length - f;
      failed += f;
      for (const l of report.lines) if (Number.isFinite(l.error)) worst = Math.max(worst, l.error);
      if (f) status = Math.max(status, 1);
    } catch (e) {
      if (!(e instanceof CkaFixtureError)) throw e;
      console.error(`ERROR: ${e.message}`);
      broken++;
      status = 2;
    }
  }
  const cannot = broken ? `, ${broken} folder${broken > 1 ? "s" : ""} could not be compared` : "";
  console.log(`check-cka: ${failed === 0 && !broken ? "ALL PASS" : "FAILED"}: ${passed} passed, ${failed} failed${cannot}; worst error ${passed + failed ? worst.toExponential(1) : "n/a"} (tolerance ${fmt(tol)})`);
  return status;
}

runCommand({ name: "check-cka", usage: USAGE, errorStatus: 2 }, main);
