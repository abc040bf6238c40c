"""Execute one notebook headlessly with Jupyter's nbclient and export it to HTML.

Used by `npm run notebooks` (data-scripts/run-notebooks.ts); run with Debian's /usr/bin/python3.
On a failing cell: write the partially executed notebook, print the cell and everything it printed
(tslab reports TypeScript diagnostics in the cell's output) and exit 1.

usage: execute_notebook.py NOTEBOOK OUT_DIR KERNEL_NAME TIMEOUT_S
"""
import datetime
import json
import os
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter


def output_text(output):
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("text", "")
    if kind == "error":
        tb = "\n".join(output.get("traceback", []))
        return f"{output.get('ename', '')}: {output.get('evalue', '')}\n{tb}"
    data = output.get("data", {})
    return data.get("text/plain", "")


def cell_seconds(cell):
    """Seconds a cell ran (nbclient's execution timestamps: kernel busy to idle; tslab replies at once), or None."""
    ex = cell.get("metadata", {}).get("execution", {})
    a = ex.get("iopub.status.busy") or ex.get("iopub.execute_input")
    b = ex.get("iopub.status.idle") or ex.get("shell.execute_reply")
    if not (a and b):
        return None
    parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (parse(b) - parse(a)).total_seconds()


def write_timing(nb, out_dir, stem):
    """OUT_DIR/<stem>.timing.json: seconds per code cell (index, id, first line), slowest first on stdout."""
    rows = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        s = cell_seconds(cell)
        if s is not None:
            first = next((l for l in cell.source.splitlines() if l.strip() and not l.startswith("import")), "")
            rows.append({"cell": i, "id": cell.get("id"), "seconds": round(s, 2), "first_line": first[:80]})
    with open(os.path.join(out_dir, stem + ".timing.json"), "w", encoding="utf-8") as f:
        json.dump({"notebook": stem, "seconds": round(sum(r["seconds"] for r in rows), 1), "cells": rows}, f, indent=1)
    slow = sorted(rows, key=lambda r: -r["seconds"])[:3]
    if slow:
        print(f"{stem}: slowest cells " + ", ".join(f"{r['cell']} ({r['seconds']:.0f} s)" for r in slow))


def main():
    path, out_dir, kernel, timeout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    nb = nbformat.read(path, as_version=4)
    stem = os.path.splitext(os.path.basename(path))[0]
    os.makedirs(out_dir, exist_ok=True)
    failed_cells = []
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
                            record_timing=True,
                            on_cell_error=lambda cell, cell_index, execute_reply: failed_cells.append(cell_index))
    failed = None
    try:
        client.execute()
    except CellExecutionError as err:
        failed = err
    nbformat.write(nb, os.path.join(out_dir, stem + ".ipynb"))
    write_timing(nb, out_dir, stem)
    html, _ = HTMLExporter().from_notebook_node(nb)
    with open(os.path.join(out_dir, stem + ".html"), "w", encoding="utf-8") as f:
        f.write(html)
    if failed is None:
        return 0
    if failed_cells:
        index = failed_cells[0]
        cell = nb.cells[index]
        print(f"\n{path}: cell {index} failed", file=sys.stderr)
        print("---- cell source ----", file=sys.stderr)
        print(cell.source, file=sys.stderr)
        print("---- cell output (TypeScript diagnostics and errors) ----", file=sys.stderr)
        for o in cell.get("outputs", []):
            print(output_text(o), file=sys.stderr)
        print(f"---- {failed.ename}: {failed.evalue}", file=sys.stderr)
    else:
        print(f"\n{path}: {failed}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
