/** What the run-time environment is: versions of the packages in use and the machine. */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tf from "@tensorflow/tfjs";

/** Version of an installed package (reads its package.json; works for packages whose exports hide it). */
export function packageVersion(name: string): string {
  try {
    let dir = path.dirname(require.resolve(name));
    for (;;) {
      const pj = path.join(dir, "package.json");
      if (fs.existsSync(pj)) {
        const j = JSON.parse(fs.readFileSync(pj, "utf8"));
        if (j.name === name) return j.version;
      }
      const up = path.dirname(dir);
      if (up === dir) return "unknown";
      dir = up;
    }
  } catch {
    return "not installed";
  }
}

export interface VersionRow {
  component: string;
  version: string;
}

/** One row per component: node, tfjs and its active backend, the display libraries, the machine. */
export function versionRows(): VersionRow[] {
  return [
    { component: "node", version: process.version },
    { component: "@tensorflow/tfjs", version: tf.version.tfjs },
    { component: "tfjs backend (active)", version: tf.getBackend() ?? "none" },
    { component: "tslab", version: packageVersion("tslab") },
    { component: "vega-lite", version: packageVersion("vega-lite") },
    { component: "vega", version: packageVersion("vega") },
    { component: "arquero", version: packageVersion("arquero") },
    { component: "sharp", version: packageVersion("sharp") },
    {
      component: "machine",
      version: `${os.platform()} ${os.arch()}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
    },
  ];
}
