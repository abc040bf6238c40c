#!/usr/bin/env node
/**
 * Setup: check what `npm test` / `npm run demo` need and install what is missing, so that a fresh
 * clone on a fresh machine needs only those two commands. Plain CommonJS on Node's built-ins: it runs
 * before node_modules exists.
 *
 *   node data-scripts/setup.cjs [test|demo|notebook|ci] [--dry-run]
 *
 * - node_modules: installed with `npm ci --no-audit --no-fund` when it is missing or when
 *   package-lock.json changed since the last install (its SHA-256 is kept in
 *   node_modules/.diffprobe-lock-sha256). An install made before this script existed is adopted when
 *   every package of the lockfile is there at its locked version.
 * - Jupyter (demo and ci only): the Python that runs the notebooks ($DIFFPROBE_PYTHON, else Debian's
 *   /usr/bin/python3) must import nbclient, nbconvert, nbformat, ipykernel and jupyter_client. When
 *   Debian's Python lacks them, the Debian packages are installed with apt-get (as root, or through
 *   password-less sudo); otherwise the script prints the command to run and exits with status 2.
 * - The web UI (notebook and ci): that Python must also import `notebook`, Debian's classic Notebook
 *   (package jupyter-notebook; `npm run notebook` starts it). Installed the same way.
 * - Chromium (ci only): Debian's `chromium`, which test/browser.test.ts drives through puppeteer-core
 *   ($DIFFPROBE_CHROMIUM, else `chromium` or `chromium-browser` on PATH). Installed the same way.
 * Prints what it installs and why; one line when everything is present. Downloads nothing itself:
 * npm and apt-get fetch from their registries.
 *
 * Exit status: 0 ready, 1 an install failed, 2 something is missing that this user cannot install
 * (or a wrong command line).
 */
"use strict";
const { spawnSync } = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const MODES = ["test", "demo", "notebook", "ci"];
const USAGE = "usage: node data-scripts/setup.cjs [test|demo|notebook|ci] [--dry-run]";
const STAMP = ".diffprobe-lock-sha256";
const NPM_CI = ["ci", "--no-audit", "--no-fund"];
const DEBIAN_PYTHON = "/usr/bin/python3";
const PY_MODULES = ["nbclient", "nbconvert", "nbformat", "ipykernel", "jupyter_client"];
const DEBS = ["jupyter-nbconvert", "jupyter-client", "python3-nbclient", "python3-ipykernel", "fonts-dejavu-core"];
const FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/** The web UI: Debian's classic Notebook (Debian has no JupyterLab). */
const UI_MODULE = "notebook";
const UI_DEB = "jupyter-notebook";
const BROWSER_DEB = "chromium";
const BROWSER_NAMES = ["chromium", "chromium-browser"];

/**
 * Test hook: $DIFFPROBE_SETUP_TEST holds JSON {uid, debianPython, font, chromium} that replaces the user
 * id, Debian's Python, the font file and the browser checked, so test/setup.test.ts can play every case with fakes.
 */
function testHook() {
  const raw = process.env.DIFFPROBE_SETUP_TEST;
  if (!raw) return {};
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new Error(`DIFFPROBE_SETUP_TEST is not JSON: ${e.message}`);
  }
}

function say(line) {
  console.log(`setup: ${line}`);
}

function sha256(file) {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Every package the lockfile puts in node_modules is there at its version (optional ones may be absent). */
function installMatchesLock(lock) {
  const packages = lock.packages || {};
  for (const [key, entry] of Object.entries(packages)) {
    if (!key.startsWith("node_modules/") || entry.link) continue;
    const file = path.join(ROOT, key, "package.json");
    if (!fs.existsSync(file)) {
      if (entry.optional || entry.devOptional || entry.os || entry.cpu) continue;
      return `${key} is missing`;
    }
    let version;
    try {
      version = JSON.parse(fs.readFileSync(file, "utf8")).version;
    } catch (e) {
      return `${file} is unreadable`;
    }
    if (entry.version && version !== entry.version) return `${key} is ${version}, package-lock.json has ${entry.version}`;
  }
  return null;
}

/** Why node_modules needs `npm ci` (null: it does not), and whether an existing install can be adopted. */
function nodeModulesState() {
  const lockFile = path.join(ROOT, "package-lock.json");
  if (!fs.existsSync(lockFile)) throw new Error(`${lockFile} not found: setup installs exactly what the lockfile lists`);
  const hash = sha256(lockFile);
  const dir = path.join(ROOT, "node_modules");
  if (!fs.existsSync(dir)) return { hash, reason: "node_modules is missing" };
  const stamp = path.join(dir, STAMP);
  if (fs.existsSync(stamp)) {
    const old = fs.readFileSync(stamp, "utf8").trim();
    return { hash, reason: old === hash ? null : "package-lock.json changed since the last npm ci" };
  }
  let lock;
  try {
    lock = JSON.parse(fs.readFileSync(lockFile, "utf8"));
  } catch (e) {
    throw new Error(`${lockFile}: not valid JSON (${e.message})`);
  }
  const mismatch = installMatchesLock(lock);
  if (mismatch) return { hash, reason: `node_modules does not match package-lock.json (${mismatch})` };
  return { hash, reason: null, adopt: true };
}

/**
 * Debian's Chromium (or the browser $DIFFPROBE_CHROMIUM names): its path, or null when there is none.
 * `hook.chromium` (tests) replaces the search with one file that may or may not exist.
 */
function findChromium(hook = {}) {
  if (hook.chromium !== undefined) return fs.existsSync(hook.chromium) ? hook.chromium : null;
  const named = process.env.DIFFPROBE_CHROMIUM;
  if (named) return fs.existsSync(named) ? named : null;
  for (const dir of (process.env.PATH || "").split(path.delimiter).filter(Boolean)) {
    for (const name of BROWSER_NAMES) {
      const file = path.join(dir, name);
      try {
        fs.accessSync(file, fs.constants.X_OK);
        if (fs.statSync(file).isFile()) return file;
      } catch (e) {
        // not here
      }
    }
  }
  return null;
}

/** The modules of `names` that `python` cannot import (all of them when it does not run). */
function missingPythonModules(python, names = PY_MODULES) {
  const code = [
    "import importlib, sys",
    `names = ${JSON.stringify(names)}`,
    "missing = []",
    "for n in names:",
    "    try:",
    "        importlib.import_module(n)",
    "    except Exception:",
    "        missing.append(n)",
    "print(' '.join(missing))",
  ].join("\n");
  const r = spawnSync(python, ["-c", code], { encoding: "utf8" });
  if (r.error || r.status !== 0) return { missing: names, why: r.error ? r.error.message : (r.stderr || "").trim() };
  const missing = r.stdout.trim().split(/\s+/).filter(Boolean);
  return { missing, why: null };
}

function run(cmd, args, extraEnv) {
  say(`running: ${[cmd, ...args].join(" ")}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", env: { ...process.env, ...extraEnv } });
  if (r.error) return `${cmd}: ${r.error.message}`;
  return r.status === 0 ? null : `${[cmd, ...args].join(" ")} exited with status ${r.status}`;
}

/** How this user can run apt-get: "root", "sudo" or null. */
function aptAccess(hook) {
  const uid = hook.uid !== undefined ? hook.uid : typeof process.getuid === "function" ? process.getuid() : -1;
  if (uid === 0) return "root";
  const r = spawnSync("sudo", ["-n", "true"], { stdio: "ignore" });
  return !r.error && r.status === 0 ? "sudo" : null;
}

function aptInstall(access, debs) {
  const prefix = access === "sudo" ? ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"] : [];
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const steps = [
    ["apt-get", ["update", "-qq"]],
    ["apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...debs]],
  ];
  for (const [cmd, args] of steps) {
    const full = [...prefix, cmd, ...args];
    const err = run(full[0], full.slice(1), env);
    if (err) return err;
  }
  return null;
}

function jupyterHelp(python, missing, userPython, debs) {
  const lines = [];
  const pip = ["nbclient", "nbconvert", "ipykernel", "jupyter_client", ...(missing.includes(UI_MODULE) ? [UI_MODULE] : [])];
  if (userPython) {
    lines.push(`setup: Jupyter is missing: DIFFPROBE_PYTHON=${python} cannot import ${missing.join(", ")} (the notebooks need them).`);
    lines.push("Install them into that Python:");
    lines.push(`  ${python} -m pip install ${pip.join(" ")}`);
    lines.push("or install Debian's Jupyter and unset DIFFPROBE_PYTHON (as root, npm run demo installs it by itself):");
    lines.push(`  sudo apt-get install -y ${debs.join(" ")}`);
  } else if (!missing.length) {
    lines.push(`setup: ${debs.join(" ")} ${debs.length === 1 ? "is" : "are"} missing, and this user can install Debian packages`);
    lines.push("neither as root nor through password-less sudo. Run:");
    lines.push(`  sudo apt-get install -y ${debs.join(" ")}`);
  } else {
    lines.push(`setup: Jupyter is missing: ${python} cannot import ${missing.join(", ")} (the notebooks need them),`);
    lines.push("and this user can install Debian packages neither as root nor through password-less sudo. Run:");
    lines.push(`  sudo apt-get install -y ${debs.join(" ")}`);
    lines.push("or point DIFFPROBE_PYTHON at a Python that has them, e.g.");
    lines.push("  python3 -m venv ~/.venvs/jupyter && ~/.venvs/jupyter/bin/pip install nbclient nbconvert ipykernel jupyter_client");
    lines.push("  DIFFPROBE_PYTHON=~/.venvs/jupyter/bin/python npm run demo");
  }
  return lines.join("\n");
}

function main(argv) {
  const args = argv.filter((a) => a !== "--dry-run");
  const dryRun = args.length !== argv.length;
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  const mode = args[0] || "test";
  if (args.length > 1 || !MODES.includes(mode)) {
    console.error(`setup: unknown arguments ${JSON.stringify(args)}\n${USAGE}`);
    return 2;
  }
  const hook = testHook();
  const done = [];

  // Jupyter first: when it is missing and cannot be installed, say so before a long npm ci.
  let debs = [];
  let access = null;
  const ui = mode === "notebook" || mode === "ci";
  const browser = mode === "ci";
  const modules = ui ? [...PY_MODULES, UI_MODULE] : PY_MODULES;
  if (mode !== "test") {
    const userPython = process.env.DIFFPROBE_PYTHON || "";
    const python = userPython || hook.debianPython || DEBIAN_PYTHON;
    const { missing, why } = missingPythonModules(python, modules);
    const fontMissing = !fs.existsSync(hook.font || FONT);
    const jupyterMissing = missing.filter((m) => m !== UI_MODULE);
    const wanted = [
      ...(jupyterMissing.length ? DEBS : []),
      ...(missing.includes(UI_MODULE) ? [UI_DEB] : []),
      ...(browser && !findChromium(hook) ? [BROWSER_DEB] : []),
    ];
    if (wanted.length && fontMissing && !wanted.includes("fonts-dejavu-core")) wanted.push("fonts-dejavu-core");
    if (wanted.length) {
      access = missing.length && userPython ? null : aptAccess(hook);
      if (!access) {
        console.error(jupyterHelp(python, missing, userPython, wanted));
        if (why) console.error(`(${python}: ${why.split("\n").pop()})`);
        return 2;
      }
      debs = wanted;
      if (jupyterMissing.length) say(`Jupyter is missing (${python} cannot import ${jupyterMissing.join(", ")}): will install Debian's ${DEBS.join(" ")}`);
      if (missing.includes(UI_MODULE)) say(`the web UI is missing (${python} cannot import ${UI_MODULE}): will install Debian's classic Notebook, ${UI_DEB}`);
      if (wanted.includes(BROWSER_DEB)) say(`Chromium is missing (no ${BROWSER_NAMES.join(" or ")} on PATH): will install Debian's ${BROWSER_DEB}, which the browser test drives`);
    } else if (fontMissing) {
      access = aptAccess(hook);
      if (access) {
        debs = ["fonts-dejavu-core"];
        say(`the charts' font ${hook.font || FONT} is missing: will install fonts-dejavu-core`);
      } else {
        say(`warning: ${hook.font || FONT} is missing; charts fall back to another font (sudo apt-get install fonts-dejavu-core)`);
      }
    }
  }

  const nm = nodeModulesState();
  if (nm.reason) {
    say(`${nm.reason}: npm ${NPM_CI.join(" ")}`);
    if (!dryRun) {
      const err = run("npm", NPM_CI, {});
      if (err) {
        console.error(`setup: npm ci failed (${err})`);
        return 1;
      }
      fs.writeFileSync(path.join(ROOT, "node_modules", STAMP), nm.hash + "\n");
    }
    done.push("npm ci");
  } else if (nm.adopt && !dryRun) {
    // An install that predates this script: it matches the lockfile, so record that.
    fs.writeFileSync(path.join(ROOT, "node_modules", STAMP), nm.hash + "\n");
  }

  if (debs.length) {
    if (!dryRun) {
      const err = aptInstall(access, debs);
      if (err) {
        console.error(`setup: installing Debian packages failed (${err})`);
        return 1;
      }
      if (debs.includes(DEBS[0]) || debs.includes(UI_DEB)) {
        const python = hook.debianPython || DEBIAN_PYTHON;
        const after = missingPythonModules(python, modules);
        if (after.missing.length) {
          console.error(`setup: after apt-get install, ${python} still cannot import ${after.missing.join(", ")}`);
          return 1;
        }
      }
      if (debs.includes(BROWSER_DEB) && !findChromium(hook)) {
        console.error(`setup: after apt-get install ${BROWSER_DEB}, there is still no ${BROWSER_NAMES.join(" or ")} on PATH`);
        return 1;
      }
    }
    done.push(`apt-get install ${debs.join(" ")}`);
  }

  const what = { test: "node_modules", demo: "node_modules and Jupyter", notebook: "node_modules, Jupyter and its web UI", ci: "node_modules, Jupyter, its web UI and Chromium" }[mode];
  if (dryRun) say(done.length ? `dry run: would run ${done.join("; ")}` : `${what} present, nothing to do`);
  else say(done.length ? `done (${done.join("; ")})` : `${what} present`);
  return 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`setup: ${e && e.message ? e.message : e}`);
    process.exitCode = 1;
  }
}

module.exports = { main, findChromium };
