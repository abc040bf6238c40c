/**
 * Offline maths in the HTML exports (data-scripts/katex-export.ts), on a small sample shaped like
 * Debian nbconvert 6.5's lab template: the TeX each rendered formula carries in its MathML
 * annotation must be exactly the source TeX, and text that is not maths must stay as it was.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { renderMathInExport, renderMathInHtml, renderMathInText } from "../data-scripts/katex-export";
import { tempDir, removeTempDir } from "./helpers/tmp";

/** The TeX sources KaTeX recorded in its MathML annotations, in page order. */
function annotations(html: string): string[] {
  const unescape = (s: string) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#x27;/g, "'").replace(/&amp;/g, "&");
  return [...html.matchAll(/<annotation encoding="application\/x-tex">([\s\S]*?)<\/annotation>/g)].map((m) => unescape(m[1]));
}

const SAMPLE = `<html><head><meta charset="utf-8">
<!-- Load mathjax -->
    <script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/MathJax.js?config=TeX-AMS_CHTML-full,Safe"> </script>
    <!-- MathJax configuration -->
    <script type="text/x-mathjax-config">
    init_mathjax = function() { MathJax.Hub.Config({ tex2jax: { inlineMath: [ ['$','$'] ] } }); }
    init_mathjax();
    </script>
    <!-- End of mathjax configuration --></head>
<body>
<div class="jp-Cell jp-MarkdownCell jp-Notebook-cell">
<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-MarkdownOutput " data-mime-type="text/markdown">
<h1 id="x">Noise $x_0$ to $t$<a class="anchor-link" href="#x">&#182;</a></h1><p>Forward process
($x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$) when $a &lt; b$.</p>
<div class="note"><p>nested $\\beta_t$</p></div>
$$\\mathcal{L} = \\mathbb{E}\\,\\|\\varepsilon - \\hat\\varepsilon\\|^2$$
<p>Code <code>$HOME and $x$</code> stays; so does a price: costs $5 and $6, and a literal \\$ sign.</p>
</div>
</div>
<div class="jp-Cell jp-CodeCell"><pre>echo $x_t$ in output</pre><p>outside markdown $y$</p></div>
</body></html>`;

describe("katex-export (offline maths in HTML exports)", () => {
  it("renders inline and display TeX in markdown cells, each formula's annotation being its source", () => {
    const r = renderMathInHtml(SAMPLE);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(annotations(r.html), [
      "x_0",
      "t",
      "x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon",
      "a < b", // HTML entities are decoded before KaTeX sees the TeX
      "\\beta_t", // inside a nested div of the markdown cell
      "\\mathcal{L} = \\mathbb{E}\\,\\|\\varepsilon - \\hat\\varepsilon\\|^2",
    ]);
    assert.equal(r.rendered, 6);
    assert.equal((r.html.match(/class="katex-display"/g) ?? []).length, 1, "one display formula");
  });

  it("leaves code, prices, escaped dollars and everything outside markdown cells alone", () => {
    const { html } = renderMathInHtml(SAMPLE);
    assert.ok(html.includes("<code>$HOME and $x$</code>"));
    assert.ok(html.includes("costs $5 and $6, and a literal $ sign."));
    assert.ok(html.includes("<pre>echo $x_t$ in output</pre>"));
    assert.ok(html.includes("<p>outside markdown $y$</p>"));
  });

  it("reports TeX that KaTeX cannot parse and still shows it", () => {
    const errors: string[] = [];
    const r = renderMathInText("bad $\\frac{1}{$ here", errors);
    assert.equal(r.rendered, 0);
    assert.equal(errors.length, 1);
    assert.match(errors[0], /^\\frac\{1\}\{: KaTeX parse error/);
    assert.match(r.html, /katex-error/);
  });

  it("rewrites an export in place: MathJax gone, KaTeX CSS and fonts beside it, idempotent", () => {
    const dir = tempDir("katex");
    try {
      const file = path.join(dir, "nb.html");
      fs.writeFileSync(file, SAMPLE);
      const first = renderMathInExport(file);
      assert.equal(first.rendered, 6);
      const html = fs.readFileSync(file, "utf8");
      assert.doesNotMatch(html, /MathJax\.js|x-mathjax-config|cdnjs/);
      assert.ok(html.includes('<link rel="stylesheet" href="katex/katex.min.css">'));
      const css = fs.readFileSync(path.join(dir, "katex", "katex.min.css"), "utf8");
      // Every woff2 font the CSS names is there (the woff/ttf fallbacks are not copied).
      const fonts = [...new Set([...css.matchAll(/url\((fonts\/[^)]+\.woff2)\)/g)].map((m) => m[1]))];
      assert.ok(fonts.length >= 10, `fonts named in katex.min.css: ${fonts.length}`);
      for (const f of fonts) assert.ok(fs.existsSync(path.join(dir, "katex", f)), `${f} missing`);
      const second = renderMathInExport(file);
      assert.equal(second.rendered, 0);
      assert.equal(fs.readFileSync(file, "utf8"), html);
    } finally {
      removeTempDir(dir);
    }
  });
});
