/**
 * Access to the tslab kernel's display channel, when running inside a notebook.
 *
 * tslab's public `display.raw` sends one MIME type per message; charts need a bundle of several
 * (vega-lite JSON + a picture + text/plain), so this module talks to tslab's display writer directly.
 */
import { randomBytes } from "crypto";

export type MimeBundle = Record<string, string | object>;
/** Per-MIME display metadata, e.g. `{"image/png": {width: 400}}` (the picture's CSS width). */
export type MimeMetadata = Record<string, object>;

interface JupyterModule {
  lastWriteDisplayData: null | ((msg: { data: MimeBundle; metadata: MimeMetadata; transient: object }, update: boolean) => void);
}

function jupyter(): JupyterModule | null {
  try {
    const dynamicRequire = require;
    const m = dynamicRequire("tslab/dist/jupyter") as JupyterModule;
    return m.lastWriteDisplayData ? m : null;
  } catch {
    return null;
  }
}

/** True when running inside a tslab kernel that can display rich output. */
export function inNotebook(): boolean {
  return jupyter() != null;
}

/** Display a MIME bundle in the notebook. Returns false (and does nothing) outside a notebook. */
export function displayBundle(data: MimeBundle, displayId?: string, update = false, metadata: MimeMetadata = {}): boolean {
  const j = jupyter();
  if (!j || !j.lastWriteDisplayData) return false;
  j.lastWriteDisplayData({ data, metadata, transient: displayId ? { display_id: displayId } : {} }, update);
  return true;
}

/** A display slot that can be overwritten in place (progress bars, live tables). */
export class DisplaySlot {
  private readonly id = randomBytes(8).toString("hex");
  private shown = false;
  show(data: MimeBundle): boolean {
    const ok = displayBundle(data, this.id, this.shown);
    this.shown = this.shown || ok;
    return ok;
  }
}
