/**
 * Open the notebooks in a browser: Jupyter's classic Notebook (Debian's jupyter-notebook) serving
 * notebooks/ on 127.0.0.1 only, token authentication on, with the project's TypeScript kernel (tslab,
 * registered under .jupyter/, nothing installed globally).
 *
 *   npm run notebook -- [--port N]
 *
 * `npm run notebook` first runs `node data-scripts/setup.cjs notebook`, the setup path of `npm run demo`
 * (npm ci, Debian's Jupyter and its web UI when missing). Once the server answers, this prints the URL
 * with its token (the token is the password). Ctrl-C stops the server.
 *   --port N   the port on 127.0.0.1 (default 8888); a port already taken is an error, not another port
 * Jupyter runs as $DIFFPROBE_PYTHON, else /usr/bin/python3; as root it gets --allow-root.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import { headerComment, numberOption, parseCommandLine, runCommand } from "./cli";
import { checkJupyter, installKernel, jupyterEnv, PYTHON, ROOT } from "./jupyter";

export const DEFAULT_PORT = 8888;
export const NOTEBOOK_DIR = path.join(ROOT, "notebooks");

export interface ServerPlan {
  python: string;
  args: string[];
  /** Extra environment (the token, the kernel's JUPYTER_PATH). */
  env: NodeJS.ProcessEnv;
  /** The address to open, token included. */
  url: string;
}

/** How the server is started: loopback only, a fixed port (no silent retry), token on, --allow-root only as root. */
export function serverPlan(opts: { port: number; token: string; root: boolean; python?: string }): ServerPlan {
  const args = [
    "-m", "notebook", "--no-browser", "--ip=127.0.0.1", `--port=${opts.port}`, "--port-retries=0", `--notebook-dir=${NOTEBOOK_DIR}`,
    ...(opts.root ? ["--allow-root"] : []),
  ];
  return {
    python: opts.python ?? PYTHON,
    args,
    env: jupyterEnv({ JUPYTER_TOKEN: opts.token }),
    url: `http://127.0.0.1:${opts.port}/tree?token=${opts.token}`,
  };
}

/** The classic Notebook's version, or an error that says how to install it. */
export function checkWebUi(python = PYTHON): string {
  const r = spawnSync(python, ["-c", "import notebook; print(notebook.__version__)"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    throw new Error(
      `${python} cannot import notebook, Jupyter's web UI (${(r.error?.message ?? r.stderr).trim().split("\n").pop()}).\n` +
        "`npm run notebook` installs Debian's (node data-scripts/setup.cjs notebook); by hand: apt-get install jupyter-notebook, " +
        "or pip install notebook into $DIFFPROBE_PYTHON",
    );
  }
  return r.stdout.trim();
}

/** Resolves when nothing listens on 127.0.0.1:port; rejects naming the port when something does. */
export function checkPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === "EADDRINUSE" ? `port ${port} on 127.0.0.1 is taken: pick another with --port N` : `port ${port}: ${e.message}`)),
    );
    s.listen(port, "127.0.0.1", () => s.close(() => resolve()));
  });
}

/** GET a JSON API path of the server with its token (null while it does not answer yet). */
function getJson(port: number, apiPath: string, token: string): Promise<unknown | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: apiPath, headers: { Authorization: `token ${token}` }, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : null);
        } catch {
          resolve(null);
        }
      });
    });
    req.on("error", () => resolve(null));
    req.on("timeout", () => req.destroy());
  });
}

export interface KernelSpecs {
  default: string;
  kernelspecs: Record<string, { spec: { display_name: string; language: string } }>;
}

/** Wait until the server lists its kernels; fail when the process exits first or after `timeoutS`. */
export async function waitForServer(child: ChildProcess, port: number, token: string, timeoutS = 120): Promise<KernelSpecs> {
  const t0 = Date.now();
  let exited: number | null | undefined;
  child.once("exit", (code) => (exited = code));
  while (Date.now() - t0 < timeoutS * 1000) {
    if (exited !== undefined) throw new Error(`Jupyter exited with status ${exited} before it answered on port ${port} (its log is above)`);
    const specs = (await getJson(port, "/api/kernelspecs", token)) as KernelSpecs | null;
    if (specs && specs.kernelspecs) return specs;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`Jupyter did not answer on 127.0.0.1:${port} within ${timeoutS}s`);
}

if (require.main === module) {
  runCommand({ name: "notebook", usage: () => headerComment(__filename) }, async () => {
    const { values } = parseCommandLine({ options: { port: { type: "string" } } });
    const port = numberOption(values, "port", { integer: true, min: 1, max: 65535 }) ?? DEFAULT_PORT;
    checkJupyter();
    const version = checkWebUi();
    installKernel();
    await checkPortFree(port);
    const token = randomBytes(24).toString("hex");
    const plan = serverPlan({ port, token, root: process.getuid?.() === 0 });
    // stdin closed: Ctrl-C stops the server at once (with a terminal it would ask to confirm).
    const child = spawn(plan.python, plan.args, { cwd: ROOT, env: plan.env, stdio: ["ignore", "inherit", "inherit"] });
    const stop = () => child.kill("SIGTERM");
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    const done = new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 0 : 1))));
    let specs: KernelSpecs;
    try {
      specs = await waitForServer(child, port, token);
      if (!specs.kernelspecs.tslab) throw new Error(`the server does not list the tslab kernel (it has ${Object.keys(specs.kernelspecs).join(", ")}); JUPYTER_PATH=${plan.env.JUPYTER_PATH}`);
    } catch (e) {
      stop();
      await done;
      throw e;
    }
    const kernels = Object.entries(specs.kernelspecs).map(([name, k]) => `${k.spec.display_name} (${name})`).join(", ");
    console.log(
      [
        "",
        `notebook: Jupyter Notebook ${version} serving notebooks/ on 127.0.0.1:${port} (this machine only); kernels: ${kernels}`,
        "Open this address in a browser (the token in it is the password: keep it to yourself):",
        "",
        `    ${plan.url}`,
        "",
        "Open a notebook, then Kernel > Restart & Run All. Ctrl-C here stops the server.",
        "Saving in the browser writes outputs into notebooks/*.ipynb; `npm run strip-notebooks` takes them out again.",
        "",
      ].join("\n"),
    );
    return done;
  });
}
