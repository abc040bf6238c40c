/**
 * Settings as a small two-column table (setting, value): one HTML table and a text form within ~100
 * columns, instead of one raw JSON line that the output area breaks mid-word. Nested objects become
 * dotted keys ("probe.epochs"), arrays a comma-separated list.
 */
import { displayBundle, MimeBundle } from "./notebook";
import { escapeHtml } from "./progress";

export type Settings = Record<string, unknown>;

/** Text width of the plain form (values wrap at spaces or after commas beyond it). */
const TEXT_WIDTH = 100;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

function valueText(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (Array.isArray(v)) return v.map(valueText).join(", ");
  if (typeof v === "object") return typeof (v as object).toString === "function" && (v as object).toString !== Object.prototype.toString ? String(v) : JSON.stringify(v);
  return String(v);
}

/** The settings as [key, value text] rows, nested plain objects flattened to dotted keys, in their order. */
export function settingsRows(settings: Settings, prefix = ""): [string, string][] {
  return Object.entries(settings).flatMap(([k, v]): [string, string][] =>
    isPlainObject(v) && Object.keys(v).length ? settingsRows(v, `${prefix}${k}.`) : [[`${prefix}${k}`, valueText(v)]],
  );
}

/** `text` in lines of at most `width` characters, broken at spaces (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines;
}

export function settingsText(settings: Settings, title?: string): string {
  const rows = settingsRows(settings);
  const keyWidth = Math.max(0, ...rows.map(([k]) => k.length));
  const valueWidth = Math.max(20, TEXT_WIDTH - keyWidth - 2);
  const lines = rows.flatMap(([k, v]) => wrap(v, valueWidth).map((part, i) => `${(i ? "" : k).padEnd(keyWidth)}  ${part}`));
  return [...(title ? [title] : []), ...lines].join("\n");
}

export function settingsHtml(settings: Settings, title?: string): string {
  const body = settingsRows(settings)
    .map(([k, v]) => `<tr><th style="text-align:left;font-weight:normal;white-space:nowrap">${escapeHtml(k)}</th><td style="text-align:left">${escapeHtml(v)}</td></tr>`)
    .join("\n");
  const caption = title ? `<caption style="text-align:left;font-weight:bold">${escapeHtml(title)}</caption>` : "";
  return `<table class="diffprobe-settings">${caption}<tbody>\n${body}\n</tbody></table>`;
}

export function settingsBundle(settings: Settings, title?: string): MimeBundle {
  return { "text/html": settingsHtml(settings, title), "text/plain": settingsText(settings, title) };
}

/** Show settings as a table in the notebook, or print their text form elsewhere. */
export function showSettings(settings: Settings, title?: string): void {
  const bundle = settingsBundle(settings, title);
  if (!displayBundle(bundle)) console.log(bundle["text/plain"]);
}
