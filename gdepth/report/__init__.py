"""Reports of a sweep folder: tables, static plots and one self-contained HTML page.

- :mod:`.tables`: records → tidy frame → ``mean ± std (n)`` table per depth with each row's
  collapse depth; Markdown, CSV and LaTeX (``gdepth table DIR``);
- :mod:`.plots`: the static ``accuracy_vs_depth.png`` (matplotlib);
- :mod:`.html`: ``gdepth report DIR [DIR…] [-o FILE]``, one HTML file with Plotly's JavaScript
  inlined (opens offline): accuracy against depth with interval bands and collapse depths,
  per-layer smoothing, influence per hop, the datasets' structure, published vs ours, and
  each cell's config, engine, time and memory on hover and click (:mod:`.figures`,
  :mod:`.profiles`, :mod:`.reproduced`, :mod:`.datasets`; the command in :mod:`.command`).

:func:`write_report` writes the table files and the PNG into a folder (the sweep's end and
``gdepth table`` call it); :func:`write_html` writes the page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gdepth.report.html import write_html
from gdepth.report.plots import plot
from gdepth.report.tables import (
    BATCH_KEYS,
    batch_columns,
    build_table,
    collapse_column,
    collapses,
    load_frame,
    render,
    std_header,
    with_collapse,
)

__all__ = ["BATCH_KEYS", "batch_columns", "build_table", "collapse_column", "collapses",
           "load_frame", "plot", "render", "std_header", "with_collapse", "write_html",
           "write_report"]


def write_report(directory: str | Path, metric: str = "test_acc", ddof: int = 0,
                 delta: float = 2.0) -> tuple[pd.DataFrame, str]:
    """Aggregate every record below ``directory`` and write the report files into it
    (``ddof``: the std's; ``delta``: the collapse column's δ in points): ``results.csv``,
    ``table[_<metric>].{md,csv,tex}`` and ``<metric>_vs_depth.png`` (``accuracy_vs_depth.png``
    for ``test_acc``); see :mod:`gdepth.report.tables`.

    Returns the table and its Markdown text; raises FileNotFoundError when there is no record.
    """
    directory = Path(directory)
    _, frame = load_frame(directory)
    frame.to_csv(directory / "results.csv", index=False)
    table = build_table(frame, metric, ddof, delta)
    stem = "table" if metric == "test_acc" else f"table_{metric}"
    for fmt in ("md", "csv", "tex"):
        (directory / f"{stem}.{fmt}").write_text(render(table, fmt) + "\n")
    png = "accuracy_vs_depth.png" if metric == "test_acc" else f"{metric}_vs_depth.png"
    plot(table, frame, metric, directory / png, ddof)
    return table, render(table, "md")
