/**
 * Atomic file replacement: write to a temporary file beside the target, then rename it over the
 * target, so a crash or error never leaves a half-written checkpoint under the final name.
 */
import * as fs from "fs";
import * as path from "path";

export async function writeAtomically(file: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  try {
    await write(tmp);
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
