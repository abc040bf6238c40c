/**
 * Register the tslab (TypeScript) kernel for this project under .jupyter/ (no global install) and
 * print how to start JupyterLab or Notebook with it.
 *
 *   npm run kernel
 *
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
  const lab = PYTHON === "/usr/bin/python3" ? "jupyter lab" : `${PYTHON} -m jupyter lab`;
  console.log(`tslab kernel ("TypeScript", name tslab) registered in ${path.relative(ROOT, dir) || dir}`);
  console.log("start JupyterLab with it (from the project folder, so that notebooks/ and lib/ resolve):");
  console.log(`  JUPYTER_PATH=${dataPath} ${lab} notebooks/`);
  console.log("JupyterLab itself is not in Debian: pip install jupyterlab in a virtual environment (then DIFFPROBE_PYTHON=that python),");
  console.log(`or use Debian's classic Notebook: apt-get install jupyter-notebook, then JUPYTER_PATH=${dataPath} jupyter notebook notebooks/`);
  return 0;
});
