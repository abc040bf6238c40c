/**
 * The test machinery itself: CI's counts of a real mocha log (.ci/mocha-counts) and the temporary
 * folders of test/helpers/tmp.ts, each checked on a child mocha run of a fixture in test/fixtures/runner.
 */
import { strict as assert } from "assert";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { removeTempDir, tempDir } from "./helpers/tmp";

const ROOT = path.join(__dirname, "..");
const FIXTURES = path.join(__dirname, "fixtures", "runner");
const MOCHA = path.join(ROOT, "node_modules", "mocha", "bin", "mocha.js");

/** Run mocha on one fixture file; the log (stdout and stderr) and exit status. */
function mocha(file: string, env: Record<string, string>): { log: string; status: number } {
  const r = spawnSync(process.execPath, [MOCHA, "--no-config", "--require", "tsx/cjs", "--reporter", "spec", path.join(FIXTURES, file)], {
    cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8",
  });
  return { log: `${r.stdout}${r.stderr}`, status: r.status ?? 1 };
}

/** .ci/mocha-counts on a log file: its stdout ("<passed> <failed>") and stderr. */
function counts(logFile: string, status: number, shared: string): { out: string; err: string } {
  const r = spawnSync("bash", [path.join(ROOT, ".ci", "mocha-counts"), logFile, String(status)], {
    env: { ...process.env, DIFFPROBE_SHARED: shared }, encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return { out: r.stdout.trim(), err: r.stderr };
}

describe("test machinery", function () {
  this.timeout(120_000);

  describe(".ci/mocha-counts on a real mocha log with forced skips", () => {
    let dir: string;
    before(() => (dir = tempDir("runner-counts")));
    after(() => removeTempDir(dir));

    for (const failing of [false, true]) {
      it(`${failing ? "one failing test" : "no failing test"}: pending counts as failed only where ../shared exists`, () => {
        // The fixture's own sharedOrSkip must see no shared folder, so that it skips as on a machine without one.
        const run = mocha("outcomes.spec.ts", { DIFFPROBE_SHARED: path.join(dir, "absent"), RUNNER_FIXTURE_FAIL: failing ? "1" : "0" });
        const p = failing ? 1 : 2;
        assert.match(run.log, new RegExp(`^ +${p} passing`, "m"), run.log);
        assert.match(run.log, /^ +2 pending/m, run.log);
        assert.equal(run.status === 0, !failing, run.log);
        const log = path.join(dir, `log-${failing}.txt`);
        fs.writeFileSync(log, run.log);
        const f = failing ? 1 : 0;

        const absent = counts(log, run.status, path.join(dir, "absent"));
        assert.equal(absent.out, `${p} ${f}`);
        assert.match(absent.err, /^pending: 2 skipped test\(s\) \(.*absent is absent\)$/m);
        assert.match(absent.err, /\(skipped: shared fixture .*no-such-fixture-for-the-runner-test is absent\)/);
        assert.match(absent.err, /\(skipped: a reason other than \.\.\/shared\)/);
        assert.match(absent.err, /^ +- skips for another reason$/m, "the pending tests' titles are listed");

        const present = counts(log, run.status, dir);
        assert.equal(present.out, `${p} ${f + 2}`);
        assert.match(present.err, /^pending: 2 skipped test\(s\), counted as failed: .* is present/m);
      });
    }

    it("a runner that failed without a 'failing' line counts as one failure; a clean log has 0 pending", () => {
      const log = path.join(dir, "clean.txt");
      fs.writeFileSync(log, "  3 passing (2s)\n");
      assert.equal(counts(log, 0, dir).out, "3 0");
      assert.match(counts(log, 0, dir).err, /^pending: 0$/m);
      fs.writeFileSync(log, "Error: cannot find module\n");
      assert.equal(counts(log, 1, dir).out, "0 1");
    });
  });

  describe("temporary folders (test/helpers/tmp.ts)", () => {
    let tmp: string;
    beforeEach(() => (tmp = tempDir("runner-tmp")));
    afterEach(() => removeTempDir(tmp));
    const left = () => fs.readdirSync(tmp).filter((f) => f.startsWith("diffprobe-"));

    it("are removed when a test fails before its own clean-up", () => {
      const run = mocha("temp-dirs.spec.ts", { TMPDIR: tmp, RUNNER_FIXTURE_MODE: "fail" });
      assert.notEqual(run.status, 0, run.log);
      assert.match(run.log, /failing on purpose/);
      assert.deepEqual(left(), []);
    });

    it("are removed when the run is interrupted (SIGINT, SIGTERM)", async () => {
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        const child = spawn(process.execPath, [MOCHA, "--no-config", "--require", "tsx/cjs", path.join(FIXTURES, "temp-dirs.spec.ts")], {
          cwd: ROOT, env: { ...process.env, TMPDIR: tmp, RUNNER_FIXTURE_MODE: "hang" }, stdio: "ignore",
        });
        const exited = new Promise<NodeJS.Signals | null>((res) => child.on("exit", (_code, sig) => res(sig)));
        const t0 = Date.now();
        const ready = () => fs.readdirSync(tmp, { recursive: true } as never).map(String).some((f) => f.endsWith("ready"));
        while (!ready()) {
          assert.ok(Date.now() - t0 < 60_000, "the fixture did not start");
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(left().length, 2, `${signal}: both folders exist while the test runs`);
        child.kill(signal);
        assert.equal(await exited, signal, `${signal}: the process still ends by the signal`);
        assert.deepEqual(left(), [], signal);
      }
    });

    it("every test file makes its folders through the helper (no direct mkdtemp)", () => {
      const files = fs.readdirSync(__dirname, { recursive: true } as never).map(String).filter((f) => f.endsWith(".ts"));
      const call = new RegExp("mkdtemp" + "(Sync)?\\(");
      const direct = files.filter((f) => f !== path.join("helpers", "tmp.ts") && call.test(fs.readFileSync(path.join(__dirname, f), "utf8")));
      assert.deepEqual(direct, []);
    });
  });
});
