/**
 * Random access to a file through `fs.promises` handles: exact positional reads that fail with a
 * message naming the file when it is shorter than expected, and a guard that the file has not been
 * replaced between loading an index (zip directory, safetensors header) and reading tensor bytes.
 */
import * as fs from "fs";

/** Largest single `read` call; longer ranges are read in pieces (fs limits one read to < 2 GiB). */
const MAX_READ = 1 << 28;

/** Read exactly `length` bytes at `position` into `target` (at `targetOffset`), or throw. */
export async function readExactInto(
  handle: fs.promises.FileHandle,
  file: string,
  target: Uint8Array,
  targetOffset: number,
  length: number,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const want = Math.min(length - done, MAX_READ);
    const { bytesRead } = await handle.read(target, targetOffset + done, want, position + done);
    if (bytesRead === 0) {
      throw new Error(
        `${file}: truncated: needed bytes ${position}..${position + length} but the file ends at byte ${position + done}`,
      );
    }
    done += bytesRead;
  }
}

/** Read exactly `length` bytes at `position` into a fresh (unpooled, aligned) array. */
export async function readExact(
  handle: fs.promises.FileHandle,
  file: string,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await readExactInto(handle, file, out, 0, length, position);
  return out;
}

/** Identity of a file's contents as far as cheap checks go: size and modification time. */
export interface FileStamp {
  size: number;
  mtimeMs: number;
}

export async function stampOf(handle: fs.promises.FileHandle): Promise<FileStamp> {
  const st = await handle.stat();
  return { size: st.size, mtimeMs: st.mtimeMs };
}

/**
 * Open `file`, check it is still the file that was indexed (`stamp`), run `fn`, close. Lazy tensor
 * reads go through this so a checkpoint overwritten after `loadStateDict` fails loudly instead of
 * yielding bytes from another file.
 */
export async function withFile<T>(
  file: string,
  stamp: FileStamp | null,
  fn: (handle: fs.promises.FileHandle) => Promise<T>,
): Promise<T> {
  const handle = await fs.promises.open(file, "r");
  try {
    if (stamp) {
      const now = await stampOf(handle);
      if (now.size !== stamp.size || now.mtimeMs !== stamp.mtimeMs) {
        throw new Error(
          `${file}: the file changed since it was loaded (size ${stamp.size} -> ${now.size}); load it again`,
        );
      }
    }
    return await fn(handle);
  } finally {
    await handle.close();
  }
}
