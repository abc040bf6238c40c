/**
 * Register the tslab (TypeScript) kernel for this project under .jupyter/ (no global install) and
 * print how to start a Jupyter web UI with it.
 *
 *   npm run kernel
 *
 * `npm run notebook` does this itself and starts Debian's classic Notebook; this command is for a Jupyter
 * of your own (JupyterLab, which Debian does not package, renders the vega-lite charts live).
 * Uses Debian's Python (/usr/bin/python3) or $DIFFPROBE_PYTHON; `node data-scripts/setup.cjs demo`
 * installs Debian's Jupyter when it is missing.
 */
import * as path from "path";
import { headerComment, parseCommandLine, runCommand } from "./cli";
import { checkJupyter, installKernel, JUPYTER_PREFIX, PYTHON, ROOT } from "./jupyter";

runCommand({ name: "kernel", usage: () => headerComment(__filename) }, () => {
  parseCommandLine({ options: {} });
  checkJupyter();
  const dir = installKernel();
  const dataPath = path.join(JUPYTER_PREFIX, "share", "jupyter");
  const lab = PYTHON === "/usr/bin/python3" ? "jupyter lab" : `${PYTHON} -m jupyterlab`;
  const asRoot = process.getuid?.() === 0 ? " --allow-root" : "";
  console.log(`tslab kernel ("TypeScript", name tslab) registered in ${path.relative(ROOT, dir) || dir}`);
  console.log("npm run notebook starts Debian's classic Notebook with it (127.0.0.1 only, token on) and prints its address.");
  console.log("With a JupyterLab of your own (pip install jupyterlab; it renders the charts live), from the project folder:");
  console.log(`  JUPYTER_PATH=${dataPath} ${lab} --ip=127.0.0.1${asRoot} notebooks/`);
  return 0;
});
