import { strict as assert } from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { contentFingerprint, contentFingerprintSync } from "../lib/model/checkpoint/fingerprint";
import { checkpointId } from "../lib/model/model-source";
import { tempDir, removeTempDir } from "./helpers/tmp";

describe("content fingerprint", () => {
  const dir = tempDir("fp");
  after(() => removeTempDir(dir));

  it("is SHA-256 of the whole file (node's crypto on the bytes), sync and async alike", async () => {
    const f = path.join(dir, "a.bin");
    const bytes = Buffer.alloc(5 * (1 << 20) + 17, 7);
    fs.writeFileSync(f, bytes);
    const want = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    assert.equal(await contentFingerprint(f), want);
    assert.equal(contentFingerprintSync(f), want);
  });

  it("changes when one byte in the middle of a 5 MiB file changes (checkpointId too)", async () => {
    const f = path.join(dir, "b.bin");
    const bytes = Buffer.alloc(5 * (1 << 20), 1);
    fs.writeFileSync(f, bytes);
    const before = await contentFingerprint(f);
    const idBefore = checkpointId(f);
    bytes[2.5 * (1 << 20)] = 2;
    fs.writeFileSync(f, bytes);
    fs.utimesSync(f, new Date(), new Date(Date.now() + 5000)); // a new mtime even on coarse clocks
    assert.notEqual(await contentFingerprint(f), before);
    assert.notEqual(checkpointId(f), idBefore);
  });

  it("names the file when it cannot be read", async () => {
    await assert.rejects(contentFingerprint(path.join(dir, "missing.pt")), /missing\.pt/);
  });
});
