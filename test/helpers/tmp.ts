/**
 * Temporary folders for tests: the one way a test makes a folder under os.tmpdir(). Each folder is
 * removed when its test calls `removeTempDir`, and whatever is still there when the test process ends
 * (every test passed, one failed or threw before its own clean-up, or the run was interrupted with
 * SIGINT/SIGTERM) is removed then, so `npm test` leaves nothing behind in the system temp directory.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const made = new Set<string>();

/** A new empty folder `os.tmpdir()/diffprobe-<prefix>-XXXXXX`, removed at the latest when the test process ends. */
export function tempDir(prefix: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(prefix)) throw new Error(`tempDir: prefix ${JSON.stringify(prefix)} must be a plain file name`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `diffprobe-${prefix}-`));
  made.add(dir);
  return dir;
}

/** Remove a folder made by `tempDir` now (for suites that want their disk back before the run ends). */
export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  made.delete(dir);
}

function removeAll(): void {
  for (const dir of made) {
    try {
      removeTempDir(dir);
    } catch (e) {
      console.error(`test temp folder ${dir} could not be removed: ${(e as Error).message}`);
    }
  }
}

process.once("exit", removeAll);

// A signal ends the process without an "exit" event: clean up, then end as the signal would have.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  const onSignal = () => {
    removeAll();
    process.removeListener(signal, onSignal);
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.on(signal, onSignal);
}
