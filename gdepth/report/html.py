"""``gdepth report DIR [DIR…]``: one self-contained HTML page of one or more sweep folders.

Plotly draws the figures; its JavaScript is inlined once (``include_plotlyjs=True`` on the first
figure), so the file opens with no network. Per folder: the accuracy-against-depth figure with
interval bands and collapse depths (:mod:`.figures`) above the table of ``gdepth table``
(:mod:`.tables`, best mean in bold), the cells not done, the per-layer smoothing and influence
per hop where the records have them (:mod:`.profiles`), and published vs ours for a
``gdepth reproduce`` folder (:mod:`.reproduced`); then the structure of every dataset the
folders ran on (:mod:`.datasets`). Clicking a point shows its cell's full config under the
figure (the configs are embedded as JSON; a few lines of JavaScript of our own, as Plotly has
no click-to-panel of its own).
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from gdepth import __version__, frames
from gdepth.report import datasets, figures, profiles, reproduced, tables
from gdepth.sweep import records

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { margin-top: 1.5em; } .note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
pre.cell { background: #f6f6f6; font-size: 0.8em; max-height: 24em; overflow: auto;
           padding: 0.5em; color: #666; }
pre.cell.filled { color: #222; }
"""

CLICK_JS = """
window.addEventListener('load', function () {
  var cells = JSON.parse(document.getElementById('gdepth-cells').textContent);
  document.querySelectorAll('.js-plotly-plot').forEach(function (gd) {
    var box = document.getElementById(gd.id + '-cell');
    if (!box || !gd.on) { return; }
    gd.on('plotly_click', function (ev) {
      var key = ev.points.length ? ev.points[0].customdata : null;
      var cell = key ? cells[key] : null;
      if (!cell) { return; }
      box.textContent = cell.head.join('\\n') + '\\n\\n' + JSON.stringify(cell.config, null, 2);
      box.classList.add('filled');
    });
  });
});
"""


class _Figures:
    """Figures as HTML fragments: plotly.js inlined into the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: Any, clickable: bool = True) -> str:
        div_id = f"fig-{self.count}"
        body = fig.to_html(full_html=False, include_plotlyjs=self.count == 0, div_id=div_id,
                           config={"displaylogo": False, "responsive": True})
        self.count += 1
        box = (f'<pre class="cell" id="{div_id}-cell">click a point: its cell\'s config '
               "appears here</pre>") if clickable else ""
        return f'<div class="figure">{body}{box}</div>'


def frame_html(frame: pd.DataFrame, bold: set[tuple[str, str]] = frozenset()) -> str:
    """A frame as an HTML table, every text escaped, the ``(row, column)`` cells in ``bold``
    in bold."""
    body = frame.astype(str).map(escape)
    for row, column in bold:
        body.loc[row, column] = f"<b>{body.loc[row, column]}</b>"
    body.insert(0, str(frame.index.name or ""), [str(i) for i in frame.index])
    body.iloc[:, 0] = body.iloc[:, 0].map(escape)
    body.columns = [escape(str(c)) for c in body.columns]
    return body.to_html(escape=False, border=0, index=False)


def markdown_html(text: str) -> str:
    """A pipe table (``DataFrame.to_markdown``) as an HTML table."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    head = "".join(f"<th>{escape(c)}</th>" for c in cells[0])
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in cells[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def table_html(table: pd.DataFrame) -> str:
    """The ``gdepth table`` table (collapse column first) with each column's best in bold."""
    bold = {(label, f"L={d}") for d, labels in table.attrs.get("best", {}).items()
            for label in labels}
    return frame_html(tables.with_collapse(table), bold)


def _title(folder: Path) -> str:
    """The first heading of the folder's README (a committed study's title), or ''."""
    readme = folder / "README.md"
    if not readme.is_file():
        return ""
    first = next((line for line in readme.read_text().splitlines() if line.startswith("#")), "")
    return first.lstrip("# ").strip()


def _not_done(found: list[dict[str, Any]]) -> str:
    rows = [{"cell": r["key"], "model·norm": f"{r['config']['model']['name']}·"
             f"{r['config']['norm']['name']}", "depth": r["config"].get("depth"),
             "status": r["status"], "error": (r.get("error") or "")[:160]}
            for r in found if r["status"] not in records.DONE and r.get("config")]
    return frame_html(pd.DataFrame(rows).set_index("cell")) if rows else ""


def section(i: int, folder: Path, found: list[dict[str, Any]], frame: pd.DataFrame,
            figs: _Figures, metric: str, ddof: int, delta: float) -> str:
    """One folder's part of the page."""
    title, counts = _title(folder), figures.statuses(found)
    parts = [f'<section id="folder-{i}"><h2>{escape(folder.name)} '
             f'<span class="note">{escape(str(folder))}</span></h2>']
    if title:
        parts.append(f"<p><b>{escape(title)}</b></p>")
    names = sorted(frame["dataset.name"].dropna().astype(str).unique()) \
        if "dataset.name" in frame else []
    parts.append(f'<p class="note">{len(found)} cells: '
                 + ", ".join(f"{n} {s}" for s, n in counts.items())
                 + f"; datasets: {escape(', '.join(names) or '?')}</p>")
    table = tables.build_table(frame, metric, ddof, delta)
    parts += [f"<h3>{escape(metric)} against depth</h3>",
              '<p class="note">Lines: mean over seeds; bands (buttons): mean ± std '
              f"(ddof={ddof}) or the bootstrap 95 % interval of the mean; ×: the row's collapse "
              f"depth (δ={delta:g} below its best mean, or at the mlp·none row's best) with its "
              "bootstrap interval. Hover a point for its cell's engine, time and memory.</p>",
              figs.html(figures.accuracy_figure(frame, found, metric, ddof, delta)),
              table_html(table)]
    bad = _not_done(found)
    if bad:
        parts += ["<h3>Cells not done</h3>", bad]
    smoothing, influence = profiles.smoothing_figure(found), profiles.influence_figure(found)
    if smoothing is not None:
        parts += ["<h3>Per-layer smoothing (diagnostics=smoothing)</h3>", figs.html(smoothing)]
        if "dirichlet_last" in frame:
            parts += ['<p class="note">Dirichlet energy of the last hidden layer:</p>',
                      table_html(tables.build_table(frame, "dirichlet_last", ddof, delta))]
    if influence is not None:
        parts += ["<h3>Influence per hop (diagnostics=influence)</h3>", figs.html(influence)]
        if "receptive_field" in frame:
            parts += ['<p class="note">Influence-weighted receptive field R:</p>',
                      table_html(tables.build_table(frame, "receptive_field", ddof, delta))]
    comparison = reproduced.load(folder)
    if comparison is not None:
        compared, labels, depth = comparison
        parts.append("<h3>Published vs ours (gdepth reproduce)</h3>")
        if depth is not None:
            parts.append(figs.html(reproduced.figure(compared, labels, depth)))
        parts.append(markdown_html(reproduced.table(compared, labels)))
    parts.append("</section>")
    return "\n".join(parts)


def _plain(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cells_json(found: list[dict[str, Any]]) -> str:
    """``{key: {"head": hover lines, "config": resolved config}}`` for the click panel, safe
    inside a ``<script>`` element."""
    cells = {r["key"]: {"head": figures.cell_lines(r), "config": r.get("config")}
             for r in found}
    return json.dumps(_plain(cells), default=str, allow_nan=False).replace("</", "<\\/")


def page(folders: list[Path], metric: str = "test_acc", ddof: int = 0, delta: float = 2.0,
         structure: bool = True) -> str:
    """The HTML text of the report of ``folders`` (raises FileNotFoundError for a folder
    without records, ValueError for an unknown metric or ddof)."""
    loaded = [(folder, *tables.load_frame(folder)) for folder in folders]
    for folder, _, frame in loaded:
        try:
            frames.check_metric(frame, metric)
        except ValueError as err:
            raise ValueError(f"{folder}: {err}") from None
    figs = _Figures()
    body = [section(i, folder, found, frame, figs, metric, ddof, delta)
            for i, (folder, found, frame) in enumerate(loaded)]
    everything = [r for _, found, _ in loaded for r in found]
    if structure:
        described, failed = datasets.describe_all(datasets.graphs(everything))
        if described or failed:
            body.append('<section id="structure"><h2>Dataset structure</h2>'
                        '<p class="note">As <code>gdepth inspect</code>: diameter, mean path and '
                        "spectral gap on the largest connected component.</p>"
                        + frame_html(datasets.table(described, failed)))
            fig = datasets.receptive_figure(described)
            body.append((figs.html(fig, clickable=False) if fig is not None else "")
                        + "</section>")
    nav = " · ".join(f'<a href="#folder-{i}">{escape(f.name)}</a>' for i, f in enumerate(folders))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>gdepth report: {escape(', '.join(f.name for f in folders))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>gdepth report</h1><p class=\"note\">gdepth {escape(__version__)}; {nav}"
        + (' · <a href="#structure">dataset structure</a>' if structure else "") + "</p>",
        *body,
        f'<script type="application/json" id="gdepth-cells">{_cells_json(everything)}</script>',
        f"<script>{CLICK_JS}</script>", "</body></html>"])


def write_html(folders: list[str | Path] | str | Path, out: str | Path | None = None,
               metric: str = "test_acc", ddof: int = 0, delta: float = 2.0,
               structure: bool = True) -> Path:
    """Write the report of ``folders`` to ``out`` (default: ``<folder>/report.html`` for one
    folder, ``report.html`` in the working folder for several); return its path."""
    folders = [Path(f) for f in ([folders] if isinstance(folders, str | Path) else folders)]
    target = Path(out) if out is not None else \
        folders[0] / "report.html" if len(folders) == 1 else Path("report.html")
    text = page(folders, metric, ddof, delta, structure)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
