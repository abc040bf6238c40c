/**
 * Download a published network (lib/model/nets/published.ts) resumably through lib/data/download, check the digest
 * prefix its publisher gives, and build it with its keys mapped to torchvision's names: on tfjs (loadPublished) or on
 * the engine chosen as for the U-Net (publishedNetEngine: ONNX Runtime where it loads, else tfjs).
 */
import * as fs from "fs";
import * as path from "path";
import { hashFile, sidecarPath } from "../../data/checksum";
import { loadStateDict } from "../checkpoint/index";
import { ChecksumError, download, DownloadResult } from "../../data/download";
import type { ProgressMode } from "../../display/progress";
import { presetConfig, TorchvisionNet, netFromStateDict, NetConfig } from "./load";
import { createNetEngine, NetEngine, NetEngineOptions } from "./net-engine";
import type { EngineChoice } from "../engines/engine";
import { mapPublishedStateDict, PublishedNet } from "./published";

/**
 * Check a file's digest against a published prefix. On a mismatch the file is moved to `<file>.bad` (its
 * sidecars removed) and a ChecksumError names both digests.
 */
export async function verifyDigestPrefix(entry: PublishedNet, result: Pick<DownloadResult, "file" | "md5" | "sha256">): Promise<void> {
  const c = entry.checksum;
  if (!c) return;
  let digest = c.algorithm === "sha256" ? result.sha256 : result.md5;
  if (!digest) digest = (await hashFile(result.file, { progressMode: "silent" }))[c.algorithm];
  if (digest.toLowerCase().startsWith(c.prefix.toLowerCase())) return;
  const bad = `${result.file}.bad`;
  await fs.promises.rename(result.file, bad);
  for (const algo of ["sha256", "md5"] as const) await fs.promises.rm(sidecarPath(result.file, algo), { force: true });
  throw new ChecksumError(
    `${entry.url}: ${c.algorithm} ${digest} does not start with the published ${c.prefix} (${c.source}); the file was moved to ${bad}. Delete it and rerun; if this repeats, the published file changed.`,
    entry.url,
  );
}

/** Download (or find) `entry` under `root`, verified. */
export async function fetchPublished(entry: PublishedNet, root: string, opts: { progressMode?: ProgressMode } = {}): Promise<DownloadResult> {
  const r = await download({ url: entry.url, dest: path.join(root, entry.file), progressMode: opts.progressMode, label: entry.file });
  await verifyDigestPrefix(entry, r);
  return r;
}

/** The torchvision configuration a published entry builds (its preset, with or without the classifier). */
export function publishedConfig(entry: PublishedNet): NetConfig {
  const c = presetConfig(entry.preset);
  c.config.numClasses = entry.numClasses;
  return c;
}

/** Read a downloaded published checkpoint, map its keys and build the network. */
export async function loadPublished(entry: PublishedNet, file: string): Promise<TorchvisionNet> {
  const sd = mapPublishedStateDict(entry, await loadStateDict(file), file);
  return netFromStateDict(sd, { config: publishedConfig(entry), file });
}

/**
 * A downloaded published checkpoint on the chosen engine (`opts.engine`: "auto", "ort" or "tfjs"), its keys
 * mapped; the entry's configuration unless `opts.config` names another. ONNX models are cached by the file's content.
 */
export async function publishedNetEngine(entry: PublishedNet, file: string, opts: Omit<NetEngineOptions, "stateDict" | "preset"> = {}): Promise<{ engine: NetEngine; choice: EngineChoice }> {
  const sd = mapPublishedStateDict(entry, await loadStateDict(file), file);
  return createNetEngine(file, { config: publishedConfig(entry), ...opts, stateDict: sd });
}
