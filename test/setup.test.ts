/**
 * data-scripts/setup.cjs decides what a fresh machine lacks and installs it. Each case runs the real
 * script, copied into a temporary project whose PATH starts with fake `npm`, `apt-get`, `sudo` and
 * `python3` executables that record their calls (so no real npm ci or apt-get ever runs here).
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { tempDir, removeTempDir } from "./helpers/tmp";

const SCRIPT = path.resolve(__dirname, "..", "data-scripts", "setup.cjs");
const DEBS = "jupyter-nbconvert jupyter-client python3-nbclient python3-ipykernel fonts-dejavu-core";

const LOCK = {
  name: "fake",
  lockfileVersion: 3,
  packages: {
    "": { name: "fake" },
    "node_modules/a": { version: "1.0.0" },
    "node_modules/a/node_modules/b": { version: "2.0.0" },
    "node_modules/opt": { version: "3.0.0", optional: true },
  },
};

// Each fake appends "<name> <args>" to $FAKE_DIR/calls.log.
const FAKES: Record<string, string> = {
  // npm ci: installs the lockfile's two required packages (or fails when $FAKE_NPM_FAIL is set).
  npm: `echo "npm $*" >> "$FAKE_DIR/calls.log"
[ -n "$FAKE_NPM_FAIL" ] && exit 1
mkdir -p node_modules/a/node_modules/b
echo '{"version":"1.0.0"}' > node_modules/a/package.json
echo '{"version":"2.0.0"}' > node_modules/a/node_modules/b/package.json`,
  // apt-get install: "installs" Jupyter, the web UI and Chromium by creating the markers the fakes look for.
  "apt-get": `echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> "$FAKE_DIR/calls.log"
[ -n "$FAKE_APT_FAIL" ] && exit 100
[ "$1" = install ] || exit 0
case " $* " in *" jupyter-nbconvert "*) touch "$FAKE_DIR/jupyter-installed";; esac
case " $* " in *" jupyter-notebook "*) touch "$FAKE_DIR/ui-installed";; esac
case " $* " in *" chromium "*) [ -z "$FAKE_NO_BROWSER_AFTER" ] && touch "$FAKE_DIR/chromium";; esac
exit 0`,
  // sudo -n true succeeds only with $FAKE_SUDO_OK; sudo -n CMD... runs CMD.
  sudo: `echo "sudo $*" >> "$FAKE_DIR/calls.log"
[ -z "$FAKE_SUDO_OK" ] && exit 1
shift
exec "$@"`,
  // python -c <probe>: prints the modules it lacks until apt-get ran (or always with $FAKE_PY_BARE); "notebook"
  // (the web UI) only when the probe asks for it.
  python3: `echo "python3" >> "$FAKE_DIR/calls.log"
if [ -n "$FAKE_PY_BROKEN" ]; then echo "broken" >&2; exit 1; fi
missing=""
if [ -n "$FAKE_PY_BARE" ] || [ ! -e "$FAKE_DIR/jupyter-installed" ]; then missing="nbclient ipykernel"; fi
case "$2" in *'"notebook"'*) [ -e "$FAKE_DIR/ui-installed" ] || missing="$missing notebook";; esac
echo $missing`,
};

interface Fake {
  dir: string;
  run(args: string[], env?: Record<string, string>, hook?: object): { status: number | null; out: string; err: string; calls: string[] };
  stamp(): string | null;
  lockHash(): string;
}

function makeFake(): Fake {
  const dir = tempDir("setup");
  fs.mkdirSync(path.join(dir, "data-scripts"));
  fs.copyFileSync(SCRIPT, path.join(dir, "data-scripts", "setup.cjs"));
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "fake", version: "0.0.0" }));
  fs.writeFileSync(path.join(dir, "package-lock.json"), JSON.stringify(LOCK, null, 2));
  fs.writeFileSync(path.join(dir, "font.ttf"), "");
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  for (const [name, body] of Object.entries(FAKES)) fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  const log = path.join(dir, "calls.log");
  return {
    dir,
    run(args, env = {}, hook = {}) {
      fs.writeFileSync(log, "");
      const r = spawnSync(process.execPath, [path.join(dir, "data-scripts", "setup.cjs"), ...args], {
        cwd: dir,
        encoding: "utf8",
        env: {
          PATH: [bin, path.dirname(process.execPath), "/usr/bin", "/bin"].join(path.delimiter),
          HOME: dir,
          FAKE_DIR: dir,
          DIFFPROBE_SETUP_TEST: JSON.stringify({ uid: 0, debianPython: path.join(bin, "python3"), font: path.join(dir, "font.ttf"), chromium: path.join(dir, "chromium"), ...hook }),
          ...env,
        },
      });
      const calls = fs.readFileSync(log, "utf8").split("\n").filter(Boolean);
      return { status: r.status, out: r.stdout, err: r.stderr, calls };
    },
    stamp() {
      const f = path.join(dir, "node_modules", ".diffprobe-lock-sha256");
      return fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim() : null;
    },
    lockHash() {
      return createHash("sha256").update(fs.readFileSync(path.join(dir, "package-lock.json"))).digest("hex");
    },
  };
}

describe("setup.cjs (fresh-machine setup)", function () {
  let fake: Fake;
  beforeEach(() => (fake = makeFake()));
  afterEach(() => removeTempDir(fake.dir));

  describe("node_modules", () => {
    it("runs npm ci when node_modules is missing, says why, and records the lockfile's hash", () => {
      const r = fake.run(["test"]);
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls, ["npm ci --no-audit --no-fund"]); // test mode never asks Python
      assert.match(r.out, /node_modules is missing: npm ci --no-audit --no-fund/);
      assert.equal(fake.stamp(), fake.lockHash());
    });

    it("does nothing, in one line, when node_modules matches the lockfile", () => {
      fake.run(["test"]);
      const r = fake.run(["test"]);
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls, []);
      assert.equal(r.out.trim().split("\n").length, 1);
      assert.match(r.out, /node_modules present/);
    });

    it("runs npm ci again when package-lock.json changed since the last install", () => {
      fake.run(["test"]);
      const lock = JSON.parse(fs.readFileSync(path.join(fake.dir, "package-lock.json"), "utf8"));
      lock.packages["node_modules/a"].version = "1.0.1";
      fs.writeFileSync(path.join(fake.dir, "package-lock.json"), JSON.stringify(lock));
      const r = fake.run(["test"]);
      assert.deepEqual(r.calls, ["npm ci --no-audit --no-fund"]);
      assert.match(r.out, /package-lock.json changed since the last npm ci/);
      assert.equal(fake.stamp(), fake.lockHash());
    });

    it("adopts an install without a stamp when every locked package is there at its version (optional ones may be absent)", () => {
      fs.mkdirSync(path.join(fake.dir, "node_modules", "a", "node_modules", "b"), { recursive: true });
      fs.writeFileSync(path.join(fake.dir, "node_modules", "a", "package.json"), '{"version":"1.0.0"}');
      fs.writeFileSync(path.join(fake.dir, "node_modules", "a", "node_modules", "b", "package.json"), '{"version":"2.0.0"}');
      const r = fake.run(["test"]);
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls, []);
      assert.equal(fake.stamp(), fake.lockHash());
    });

    it("reinstalls an install without a stamp whose nested package has another version, naming it", () => {
      fs.mkdirSync(path.join(fake.dir, "node_modules", "a", "node_modules", "b"), { recursive: true });
      fs.writeFileSync(path.join(fake.dir, "node_modules", "a", "package.json"), '{"version":"1.0.0"}');
      fs.writeFileSync(path.join(fake.dir, "node_modules", "a", "node_modules", "b", "package.json"), '{"version":"2.5.0"}');
      const r = fake.run(["test"]);
      assert.deepEqual(r.calls, ["npm ci --no-audit --no-fund"]);
      assert.match(r.out, /node_modules\/a\/node_modules\/b is 2\.5\.0, package-lock.json has 2\.0\.0/);
    });

    it("fails with status 1 and writes no stamp when npm ci fails", () => {
      const r = fake.run(["test"], { FAKE_NPM_FAIL: "1" });
      assert.equal(r.status, 1);
      assert.match(r.err, /npm ci failed/);
      assert.equal(fake.stamp(), null);
    });

    it("--dry-run says what it would do and changes nothing", () => {
      const r = fake.run(["demo", "--dry-run"]);
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls, ["python3"]);
      assert.match(r.out, /would run npm ci; apt-get install/);
      assert.equal(fs.existsSync(path.join(fake.dir, "node_modules")), false);
    });
  });

  describe("Jupyter (demo and ci)", () => {
    it("asks Python only, installs nothing, when Jupyter and node_modules are present", () => {
      fake.run(["test"]);
      fs.writeFileSync(path.join(fake.dir, "jupyter-installed"), "");
      const r = fake.run(["demo"]);
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls, ["python3"]);
      assert.match(r.out, /node_modules and Jupyter present/);
    });

    it("as root: apt-get update + install of Debian's packages, non-interactive, then checks Python again", () => {
      const r = fake.run(["demo"]);
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls, [
        "python3",
        "npm ci --no-audit --no-fund",
        "apt-get update -qq DEBIAN_FRONTEND=noninteractive",
        `apt-get install -y -qq --no-install-recommends ${DEBS} DEBIAN_FRONTEND=noninteractive`,
        "python3",
      ]);
      assert.match(r.out, /Jupyter is missing \(.*python3 cannot import nbclient, ipykernel\)/);
    });

    it("as a user with password-less sudo: apt-get through sudo -n", () => {
      const r = fake.run(["demo"], { FAKE_SUDO_OK: "1" }, { uid: 1000 });
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls.filter((c) => c.startsWith("sudo")), [
        "sudo -n true",
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
        `sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${DEBS}`,
      ]);
      assert.equal(r.calls.filter((c) => c.startsWith("apt-get install")).length, 1);
    });

    it("as a user without sudo: one message with the exact command and DIFFPROBE_PYTHON, status 2, before any npm ci", () => {
      const r = fake.run(["demo"], {}, { uid: 1000 });
      assert.equal(r.status, 2);
      assert.deepEqual(r.calls, ["python3", "sudo -n true"]);
      assert.ok(r.err.includes(`sudo apt-get install -y ${DEBS}`), r.err);
      assert.match(r.err, /DIFFPROBE_PYTHON=.* npm run demo/);
      assert.match(r.err, /cannot import nbclient, ipykernel/);
    });

    it("with DIFFPROBE_PYTHON lacking Jupyter: never apt-get (it would not help that Python), status 2", () => {
      const py = path.join(fake.dir, "bin", "python3");
      const r = fake.run(["demo"], { DIFFPROBE_PYTHON: py, FAKE_PY_BROKEN: "1" });
      assert.equal(r.status, 2);
      assert.deepEqual(r.calls, ["python3"]);
      assert.ok(r.err.includes(`DIFFPROBE_PYTHON=${py} cannot import nbclient, nbconvert, nbformat, ipykernel, jupyter_client`), r.err);
      assert.ok(r.err.includes(`${py} -m pip install`), r.err);
    });

    it("fails with status 1 when apt-get fails, or when Python still lacks the modules after it", () => {
      const failed = fake.run(["demo"], { FAKE_APT_FAIL: "1" });
      assert.equal(failed.status, 1);
      assert.match(failed.err, /installing Debian packages failed/);
      const still = fake.run(["demo"], { FAKE_PY_BARE: "1" });
      assert.equal(still.status, 1);
      assert.match(still.err, /still cannot import nbclient, ipykernel/);
    });

    it("installs only the font when Jupyter is there but DejaVu Sans is not", () => {
      fake.run(["test"]);
      fs.writeFileSync(path.join(fake.dir, "jupyter-installed"), "");
      const r = fake.run(["demo"], {}, { font: path.join(fake.dir, "no-such-font.ttf") });
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls.filter((c) => c.startsWith("apt-get install")), [
        "apt-get install -y -qq --no-install-recommends fonts-dejavu-core DEBIAN_FRONTEND=noninteractive",
      ]);
    });

    it("rejects an unknown mode with status 2 and the usage", () => {
      const r = fake.run(["deploy"]);
      assert.equal(r.status, 2);
      assert.match(r.err, /usage: node data-scripts\/setup.cjs \[test\|demo\|notebook\|ci\]/);
      assert.deepEqual(r.calls, []);
    });
  });

  describe("web UI (notebook and ci) and Chromium (ci)", () => {
    const ready = () => {
      fake.run(["test"]);
      fs.writeFileSync(path.join(fake.dir, "jupyter-installed"), "");
    };

    it("notebook: installs only Debian's classic Notebook when Jupyter is there but its web UI is not", () => {
      ready();
      const r = fake.run(["notebook"]);
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls, [
        "python3",
        "apt-get update -qq DEBIAN_FRONTEND=noninteractive",
        "apt-get install -y -qq --no-install-recommends jupyter-notebook DEBIAN_FRONTEND=noninteractive",
        "python3",
      ]);
      assert.match(r.out, /the web UI is missing \(.*python3 cannot import notebook\): will install Debian's classic Notebook, jupyter-notebook/);
      const again = fake.run(["notebook"]);
      assert.deepEqual(again.calls, ["python3"]);
      assert.match(again.out, /node_modules, Jupyter and its web UI present/);
    });

    it("notebook never installs Chromium; demo never installs the web UI", () => {
      ready();
      assert.deepEqual(fake.run(["demo"]).calls, ["python3"]);
      const r = fake.run(["notebook"]);
      assert.ok(!r.calls.some((c) => / chromium /.test(c)), r.calls.join("\n"));
    });

    it("ci on a bare machine: Jupyter, the web UI and Chromium in one apt-get install, then checks both", () => {
      const r = fake.run(["ci"]);
      assert.equal(r.status, 0, r.err);
      assert.deepEqual(r.calls.filter((c) => c.startsWith("apt-get install")), [
        `apt-get install -y -qq --no-install-recommends ${DEBS} jupyter-notebook chromium DEBIAN_FRONTEND=noninteractive`,
      ]);
      assert.match(r.out, /Chromium is missing \(no chromium or chromium-browser on PATH\)/);
      assert.match(r.out, /done \(npm ci; apt-get install/);
      const again = fake.run(["ci"]);
      assert.deepEqual(again.calls, ["python3"]);
      assert.match(again.out, /node_modules, Jupyter, its web UI and Chromium present/);
    });

    it("ci: fails with status 1 when Chromium is still missing after apt-get", () => {
      ready();
      fs.writeFileSync(path.join(fake.dir, "ui-installed"), "");
      const r = fake.run(["ci"], { FAKE_NO_BROWSER_AFTER: "1" });
      assert.equal(r.status, 1);
      assert.match(r.err, /after apt-get install chromium, there is still no chromium or chromium-browser on PATH/);
    });

    it("as a user without sudo: the exact apt-get command for what is missing, status 2", () => {
      ready();
      fs.writeFileSync(path.join(fake.dir, "ui-installed"), "");
      const r = fake.run(["ci"], {}, { uid: 1000 });
      assert.equal(r.status, 2);
      assert.ok(r.err.includes("sudo apt-get install -y chromium"), r.err);
      assert.deepEqual(r.calls, ["python3", "sudo -n true"]);
    });

    it("with DIFFPROBE_PYTHON lacking the web UI: pip install notebook into that Python, status 2", () => {
      ready();
      const py = path.join(fake.dir, "bin", "python3");
      const r = fake.run(["notebook"], { DIFFPROBE_PYTHON: py });
      assert.equal(r.status, 2);
      assert.ok(r.err.includes(`${py} -m pip install nbclient nbconvert ipykernel jupyter_client notebook`), r.err);
    });
  });
});
