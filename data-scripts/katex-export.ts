/**
 * Maths in the notebooks' HTML exports, offline: nbconvert leaves the markdown cells' TeX ($...$ and
 * $$...$$) as text for a MathJax it loads from elsewhere (a CDN, or a Debian path that is usually
 * absent). This pre-renders that TeX with KaTeX (katex.renderToString) into the exported HTML, drops
 * the MathJax scripts, and links KaTeX's CSS and fonts copied beside the export (katex/), so the page
 * needs no network.
 *
 *   npx tsx data-scripts/katex-export.ts FILE.html ...   (run-notebooks does this after each export)
 */
import * as fs from "fs";
import * as path from "path";
// katex declares its types only under package.json "exports", which this project's module resolution
// (node10, as tslab's) does not read: name the declaration file itself.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const katex: typeof import("katex/types/katex") = require("katex");
import { parseCommandLine, runCommand } from "./cli";

/** Marks an export already processed (a second pass changes nothing). */
const MARK = '<meta name="diffprobe-math" content="katex">';
/** The folder, beside the export, that holds KaTeX's CSS and fonts. */
export const KATEX_DIR = "katex";

export interface MathResult {
  html: string;
  /** Formulas rendered. */
  rendered: number;
  /** TeX that KaTeX could not parse (shown in red in the page, with its source). */
  errors: string[];
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, e: string) => {
    if (e[0] === "#") return String.fromCodePoint(e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[e.toLowerCase()] ?? all;
  });
}

/**
 * Render the TeX in one text node (HTML-escaped, as nbconvert writes it). Display maths: $$...$$.
 * Inline maths: $...$ whose content neither starts nor ends with a space and whose closing $ is not
 * followed by a digit (so "costs $5 and $6" stays text); \$ is a literal dollar.
 */
export function renderMathInText(text: string, errors: string[] = []): { html: string; rendered: number } {
  let rendered = 0;
  const render = (tex: string, displayMode: boolean) => {
    const source = decodeEntities(tex);
    try {
      const out = katex.renderToString(source, { displayMode, throwOnError: true, output: "htmlAndMathml" });
      rendered++;
      return out;
    } catch (e) {
      errors.push(`${source}: ${(e as Error).message}`);
      return katex.renderToString(source, { displayMode, throwOnError: false, output: "htmlAndMathml" });
    }
  };
  const re = /\\\$|\$\$([\s\S]+?)\$\$|\$(?![\s$])((?:\\.|[^$\\])*?[^\s\\])\$(?!\d)|\$(?![\s$])([^\s$\\])\$(?!\d)/g;
  const html = text.replace(re, (all, display?: string, inline?: string, single?: string) => {
    if (all === "\\$") return "$";
    if (display !== undefined) return render(display, true);
    return render((inline ?? single)!, false);
  });
  return { html, rendered };
}

/** Elements whose text is never maths. */
const SKIP = new Set(["code", "pre", "script", "style", "kbd", "samp", "textarea"]);

/** Render the TeX inside the rendered-markdown blocks of an nbconvert HTML export. */
export function renderMathInHtml(html: string): MathResult {
  const errors: string[] = [];
  let rendered = 0;
  const open = /<div\b[^>]*class="[^"]*\bjp-RenderedMarkdown\b[^"]*"[^>]*>/g;
  let out = "";
  let at = 0;
  for (let m = open.exec(html); m; m = open.exec(html)) {
    const start = m.index + m[0].length;
    // Find the matching </div>, counting nested divs.
    const tag = /<(\/?)div\b[^>]*>/g;
    tag.lastIndex = start;
    let depth = 1;
    let end = html.length;
    for (let t = tag.exec(html); t; t = tag.exec(html)) {
      depth += t[1] ? -1 : 1;
      if (depth === 0) {
        end = t.index;
        break;
      }
    }
    out += html.slice(at, start);
    // Walk tags and text; render maths in text outside <code>, <pre>, ...
    const body = html.slice(start, end);
    const parts = body.split(/(<[^>]+>)/);
    let skipDepth = 0;
    for (const part of parts) {
      if (part.startsWith("<")) {
        const name = /^<\/?([a-z0-9]+)/i.exec(part)?.[1]?.toLowerCase() ?? "";
        if (SKIP.has(name) && !part.endsWith("/>")) skipDepth += part[1] === "/" ? -1 : 1;
        out += part;
      } else if (skipDepth > 0 || !part.includes("$")) {
        out += part;
      } else {
        const r = renderMathInText(part, errors);
        rendered += r.rendered;
        out += r.html;
      }
    }
    at = end;
    open.lastIndex = end;
  }
  out += html.slice(at);
  return { html: out, rendered, errors };
}

/** Drop nbconvert's MathJax loader and configuration (they would fetch MathJax and re-typeset). */
export function removeMathJax(html: string): string {
  return html
    .replace(/<!-- Load mathjax -->/g, "")
    .replace(/<script\b[^>]*\bsrc="[^"]*mathjax[^"]*"[^>]*>\s*<\/script>/gi, "<!-- MathJax removed: maths pre-rendered with KaTeX -->")
    .replace(/<!-- MathJax configuration -->\s*<script type="text\/x-mathjax-config">[\s\S]*?<\/script>\s*<!-- End of mathjax configuration -->/gi, "");
}

/** Copy KaTeX's CSS and its woff2 fonts (what every current browser loads) into `outDir`/katex/. */
export function copyKatexAssets(outDir: string): string {
  const dist = path.join(path.dirname(require.resolve("katex/package.json")), "dist");
  const dir = path.join(outDir, KATEX_DIR);
  fs.mkdirSync(path.join(dir, "fonts"), { recursive: true });
  fs.copyFileSync(path.join(dist, "katex.min.css"), path.join(dir, "katex.min.css"));
  for (const f of fs.readdirSync(path.join(dist, "fonts"))) {
    if (f.endsWith(".woff2")) fs.copyFileSync(path.join(dist, "fonts", f), path.join(dir, "fonts", f));
  }
  return dir;
}

/**
 * Pre-render the maths of one HTML export in place (atomically), link katex/katex.min.css beside it
 * and copy KaTeX's assets there. Idempotent.
 */
export function renderMathInExport(file: string): MathResult {
  const original = fs.readFileSync(file, "utf8");
  if (original.includes(MARK)) return { html: original, rendered: 0, errors: [] };
  const r = renderMathInHtml(removeMathJax(original));
  const link = `${MARK}\n<link rel="stylesheet" href="${KATEX_DIR}/katex.min.css">\n`;
  const html = /<\/head>/i.test(r.html) ? r.html.replace(/<\/head>/i, `${link}</head>`) : link + r.html;
  copyKatexAssets(path.dirname(file));
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  fs.writeFileSync(tmp, html);
  fs.renameSync(tmp, file);
  return { ...r, html };
}

const USAGE = `usage: npx tsx data-scripts/katex-export.ts FILE.html ...
  pre-render the TeX of nbconvert HTML exports with KaTeX, in place (npm run notebooks does it after each export)`;

if (require.main === module) {
  runCommand({ name: "katex-export", usage: USAGE }, () => {
    const { positionals } = parseCommandLine({ options: {}, positionals: [1, Infinity] });
    for (const f of positionals) {
      if (!fs.existsSync(f)) throw new Error(`${f} not found`);
      const r = renderMathInExport(f);
      console.log(`${f}: ${r.rendered} formula(s) rendered${r.errors.length ? `; ${r.errors.length} KaTeX error(s): ${r.errors.join("; ")}` : ""}`);
    }
    return 0;
  });
}
