"""Accuracy-vs-depth tables from a folder of cell records (:func:`gdepth.report.write_report`
writes them with the PNG of :mod:`gdepth.report.plots`).

``write_report(DIR)`` writes into DIR:

- ``results.csv``: tidy, one row per seed per cell, every config key a column;
- ``table.md`` / ``table.csv`` / ``table.tex``: rows = model·norm plus any other key that
  varies between cells, columns = depth, cells ``mean ± std (n)`` in percent, the best mean
  of each column marked; a failed or diverged cell is shown as such, never dropped; a split
  cell with seed jobs not all done shows the seeds done, e.g. ``71.2 ± 1.3 (2/4, running)``;
  the std's ``ddof`` (0: population, the default; 1: sample) is stated in the index header,
  e.g. ``model·norm [mean ± std (ddof=0) (n)]``; for an accuracy, a column ``collapse δ=2``
  after the row label gives each row's collapse depth with its bootstrap 95 % interval
  (:func:`gdepth.stats.collapse`: the first depth more than δ points below the row's best mean,
  or at the best mean of the ``mlp·none`` row of the same folder), e.g. ``L=16 [8, 32]``;
- ``accuracy_vs_depth.png``: one line per row over log₂ depth with a ±std band.

For a metric other than ``test_acc`` the table files are named ``table_<metric>.*``. Any numeric
per-seed value of the records is a metric: the accuracies (shown in percent, best marked) and,
e.g., ``dirichlet_last`` from ``diagnostics=smoothing`` or ``selected_epoch`` (shown as is, with
three significant digits and no "best").

Timings: a seed trained alone has its own ``wall_s`` / ``epoch_s``; a seed-batched one has nan
there and its batch's measured timings (:mod:`gdepth.engine.fit`), which the frame shows as
``batch_wall_s``, ``batch_epoch_s`` (seconds per epoch of all its seeds together),
``batch_epochs`` and ``batch_seeds`` (:func:`batch_columns`): ``--metric batch_epoch_s``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from gdepth import frames, stats
from gdepth.frames import check_metric, is_accuracy, row_keys
from gdepth.sweep import records

BATCH_KEYS = ("wall_s", "epoch_s", "epochs")


def batch_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-seed ``batch`` entries (seed-batched cells) as columns ``batch_<key>`` for
    ``wall_s``, ``epoch_s`` and ``epochs`` (nan for a seed trained alone) and ``batch_seeds``
    (a JSON list), in place of the ``batch`` column of dicts."""
    if "batch" not in frame:
        return frame
    entries = [b if isinstance(b, dict) else {} for b in frame["batch"]]
    columns = {f"batch_{k}": [float(b.get(k, math.nan)) for b in entries] for k in BATCH_KEYS}
    columns["batch_seeds"] = [json.dumps(b["seeds"]) if "seeds" in b else None for b in entries]
    out = frame.drop(columns="batch").assign(**columns)
    out.attrs.update(frame.attrs)
    return out


def _cell_text(group: pd.DataFrame, metric: str, ddof: int = 0) -> tuple[str, float]:
    status = group["status"].iloc[0]
    if status == "failed":
        return "failed", math.nan
    if metric not in group:
        return "–", math.nan
    values = group.loc[group["seed_status"] == "ok", metric].dropna()
    values = values * 100 if is_accuracy(metric) else values
    if values.empty:
        return status, math.nan
    mean, std = values.mean(), values.std(ddof=ddof)  # nan for one value with ddof=1
    n = str(len(values))
    if status not in records.DONE:  # a split cell whose seed jobs are not all done
        seeds = group["seeds"].iloc[0] if "seeds" in group else math.nan
        n = f"{n}/{int(seeds)}, {status}" if pd.notna(seeds) else f"{n}, {status}"
    if is_accuracy(metric):
        text = f"{mean:.1f} ± {_num(std, '.1f')} ({n})"
    else:
        text = f"{mean:.3g} ± {_num(std, '.2g')} ({n})"
    if status not in records.DONE:
        return text, math.nan  # shown, marked, never the column's best
    return (text + " †" if status == "diverged" else text), mean


def _num(value: float, spec: str) -> str:
    return "–" if math.isnan(value) else format(value, spec)


def std_header(ddof: int) -> str:
    """What a table cell holds, as its index header states it."""
    return f"mean ± std (ddof={ddof}) (n)"


def collapse_column(delta: float) -> str:
    return f"collapse δ={delta:g}"


def collapses(frame: pd.DataFrame, metric: str, delta: float, seed: int = 0
              ) -> dict[str, tuple[stats.Collapse, int]]:
    """Each row's collapse depth with its bootstrap interval (:func:`gdepth.stats.collapse`,
    the ``mlp·none`` row of the folder as baseline) and the row's deepest depth measured."""
    rows = stats.curves(frame, metric)
    out = {}
    for label, curve in rows.items():
        curve = curve.dropna(how="all")
        if curve.empty:
            continue
        result = stats.collapse(curve, delta, stats.baseline_of(label, rows), seed=seed)
        out[label] = (result, int(max(curve.index)))
    return out


def build_table(frame: pd.DataFrame, metric: str = "test_acc", ddof: int = 0,
                delta: float = 2.0) -> pd.DataFrame:
    """Wide table of ``mean ± std (n)`` strings; the best mean per depth gets a ``best`` flag.

    Returns a frame indexed by row label with one column per depth; a second level of columns
    is avoided on purpose so Markdown/CSV/LaTeX render it directly. For an accuracy, each row's
    collapse text is in ``attrs["collapse"]`` ({column name: {label: text}}), which
    :func:`render` (and so every table file) shows as the first column (:func:`with_collapse`).
    ``ddof``: the std's delta degrees of freedom.
    """
    if ddof not in (0, 1):
        raise ValueError(f"ddof {ddof}; valid: 0 (population std), 1 (sample std)")
    check_metric(frame, metric)
    keys = row_keys(frame)
    attrs = dict(frame.attrs)
    for key in keys:
        if key not in frame:
            frame = frame.assign(**{key: "?"})
    frame.attrs.update(attrs)
    depths = sorted(frame["depth"].dropna().astype(int).unique())
    texts: dict[str, dict[int, str]] = {}
    means: dict[str, dict[int, float]] = {}
    for values, group in frame.groupby(keys, sort=True, dropna=False):
        label = frames.label(keys, values if isinstance(values, tuple) else (values,))
        for depth, cell in group.groupby("depth"):
            text, mean = _cell_text(cell, metric, ddof)
            texts.setdefault(label, {})[int(depth)] = text
            means.setdefault(label, {})[int(depth)] = mean
    table = pd.DataFrame(texts).T.reindex(columns=depths).fillna("–")
    best = pd.DataFrame(means).T.reindex(columns=depths)
    # every row that reaches the column's best mean (rounded as shown) is marked
    shown = best.round(1)
    table.attrs["best"] = {d: list(shown.index[shown[d] == shown[d].max()]) for d in depths
                           if best[d].notna().sum() > 1  # a column with one number has no best
                           and is_accuracy(metric)}
    table.attrs["means"] = best
    keys_text = " · ".join(["model·norm", *[k.removesuffix(".name") for k in keys[2:]]])
    table.index.name = f"{keys_text} [{std_header(ddof)}]"
    table.columns = [f"L={d}" for d in depths]
    table.attrs["ddof"] = ddof
    if is_accuracy(metric):
        found = {label: stats.collapse_text(result, deepest)
                 for label, (result, deepest) in collapses(frame, metric, delta).items()}
        table.attrs["collapse"] = {collapse_column(delta): {
            label: found.get(label, "–") for label in table.index}}
    return table


def with_collapse(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its collapse column (``attrs["collapse"]``) first, as rendered."""
    out = table.copy()
    for name, texts in table.attrs.get("collapse", {}).items():
        out.insert(0, name, [texts.get(label, "–") for label in table.index])
    return out


def _marked(table: pd.DataFrame, mark: str) -> pd.DataFrame:
    out = with_collapse(table)
    for depth, labels in table.attrs.get("best", {}).items():
        for label in labels:
            out.loc[label, f"L={depth}"] = mark.format(out.loc[label, f"L={depth}"])
    return out


def render(table: pd.DataFrame, fmt: str = "md") -> str:
    """The table as Markdown (best in bold), CSV (best with a trailing ``*``) or LaTeX."""
    if fmt == "md":
        return _marked(table, "**{}**").to_markdown()
    if fmt == "csv":
        return _marked(table, "{} *").to_csv()
    if fmt == "tex":
        latex = _marked(table, "\\textbf{{{}}}").map(lambda s: s.replace("±", "$\\pm$"))
        latex.index = pd.Index([i.replace("_", "\\_") for i in latex.index],
                               name=_tex(table.index.name or ""))
        latex.columns = [_tex(c) for c in latex.columns]
        return latex.to_latex(escape=False)
    raise ValueError(f"unknown format '{fmt}'; valid: csv, md, tex")


def _tex(text: str) -> str:
    return (text.replace("_", "\\_").replace("±", "$\\pm$").replace("δ", "$\\delta$"))


def load_frame(directory: str | Path) -> tuple[list[dict], pd.DataFrame]:
    """The records below ``directory`` (a search's trial cells left out: its final cell
    stands for them; :func:`gdepth.frames.table_records`) and their tidy frame
    (:func:`batch_columns` applied, the searched keys in ``attrs["searched"]``). Raises
    FileNotFoundError when there is no record."""
    found, searched = frames.table_records(directory)
    if not found:
        raise FileNotFoundError(f"no gdepth records below '{directory}'")
    frame = batch_columns(frames.table_frame(found, searched))
    frame.attrs["searched"] = searched
    return found, frame
