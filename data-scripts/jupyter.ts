/**
 * The project-local Jupyter setup: Debian's Jupyter (/usr/bin/python3) with the tslab kernel
 * registered under .jupyter/ in the repository (no global install).
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export const ROOT = path.resolve(__dirname, "..");
export const JUPYTER_PREFIX = path.join(ROOT, ".jupyter");
export const KERNEL_DIR = path.join(JUPYTER_PREFIX, "share", "jupyter", "kernels", "tslab");
/** Debian's Python, which carries nbclient/nbconvert (the `python3` on PATH may be another one). */
export const PYTHON = process.env.DIFFPROBE_PYTHON ?? "/usr/bin/python3";

/** Check that Jupyter's Python modules are importable; throw a message that says how to install them. */
export function checkJupyter(): void {
  const r = spawnSync(PYTHON, ["-c", "import nbclient, nbconvert, nbformat, ipykernel, jupyter_client"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    throw new Error(
      `${PYTHON} cannot import nbclient/nbconvert/nbformat/ipykernel/jupyter_client (${(r.error?.message ?? r.stderr).trim()}).\n` +
        "`node data-scripts/setup.cjs demo` installs Debian's Jupyter (npm run demo runs it), or by hand: apt-get install " +
        "jupyter-nbconvert jupyter-client python3-nbclient python3-ipykernel fonts-dejavu-core " +
        "(or set DIFFPROBE_PYTHON to a Python that has them; see environment.md)",
    );
  }
}

/**
 * Register the tslab kernel under .jupyter/ (idempotent; re-registers when the checkout moved). `tslab install`
 * also registers a JavaScript kernel (jslab) that no notebook uses; it is removed, so the web UI offers only ours.
 */
export function installKernel(): string {
  const binary = path.join(ROOT, "node_modules", ".bin", "tslab");
  if (!fs.existsSync(binary)) throw new Error(`${binary} not found: run npm ci first`);
  const spec = path.join(KERNEL_DIR, "kernel.json");
  if (!(fs.existsSync(spec) && fs.readFileSync(spec, "utf8").includes(binary))) {
    execFileSync(binary, ["install", `--python=${PYTHON}`, `--prefix=${JUPYTER_PREFIX}`, `--binary=${binary}`], { stdio: "inherit" });
  }
  fs.rmSync(path.join(path.dirname(KERNEL_DIR), "jslab"), { recursive: true, force: true });
  return KERNEL_DIR;
}

/** Environment for Jupyter processes: find the project-local kernel first. */
export function jupyterEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const dataPath = path.join(JUPYTER_PREFIX, "share", "jupyter");
  return {
    ...process.env,
    JUPYTER_PATH: [dataPath, process.env.JUPYTER_PATH].filter(Boolean).join(path.delimiter),
    PYDEVD_DISABLE_FILE_VALIDATION: "1",
    ...extra,
  };
}
