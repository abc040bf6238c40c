/**
 * One entry point for a U-Net engine: choose (lib/model/engines/engine chooseEngine) and create it.
 */
import type { ModelSource } from "../model-source";
import { chooseEngine, EngineChoice, UNetEngine } from "./engine";
import { OrtEngineOptions, OrtUNetEngine } from "./ort-unet";
import { TfjsUNetEngine } from "./tfjs-unet";

export interface CreateEngineOptions extends OrtEngineOptions {
  /** "auto" (default: $DIFFPROBE_ENGINE, else automatic), "ort" or "tfjs". */
  engine?: string;
}

/** The engine for `src` with these outputs, and how it was chosen (`choice.log`). */
export async function createUNetEngine(src: ModelSource, opts: CreateEngineOptions): Promise<{ engine: UNetEngine; choice: EngineChoice }> {
  const choice = chooseEngine(opts.engine === "auto" ? undefined : opts.engine);
  const engine = choice.name === "ort" ? await OrtUNetEngine.create(src, opts) : await TfjsUNetEngine.create(src, opts);
  return { engine, choice };
}
