"""Accuracy against depth as an interactive Plotly figure, and what hovering a cell shows.

One line per table row (the rows, labels and numbers of :func:`gdepth.stats.curves`, i.e. of
``gdepth table``), over log₂ depth, with two interval bands a button switches between:

- mean ± std over the seeds (``ddof`` as in the table);
- the percentile bootstrap 95 % interval of the mean (Efron & Tibshirani, 1993), seeds
  resampled with replacement, seeded: the interval :mod:`gdepth.stats` gives paired
  differences (``gdepth compare``), here of one row's values.

Each row's collapse depth (:func:`gdepth.report.tables.collapses`, the table's collapse column)
is an ``×`` on the line with its bootstrap interval as a horizontal bar. Hovering a point shows
the cell: mean ± std (n), interval, key, status, engine, device, wall time, time per epoch,
peak memory, parameters; clicking it shows its full config under the figure
(:mod:`gdepth.report.html`).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from gdepth import frames, stats
from gdepth.frames import is_accuracy
from gdepth.report.tables import collapses
from gdepth.sweep import records

COLORS = qualitative.Plotly + qualitative.D3
RESAMPLES = 2000
BANDS = ("std", "ci")


def cell_keys(frame: pd.DataFrame) -> dict[str, dict[int, str]]:
    """``{row label: {depth: cell key}}``, the rows labelled as the table labels them."""
    keys = frames.row_keys(frame)
    out: dict[str, dict[int, str]] = {}
    for values, group in frame.groupby(keys, sort=True, dropna=False):
        label = frames.label(keys, values if isinstance(values, tuple) else (values,))
        for depth, cell in group.groupby("depth"):
            out.setdefault(label, {})[int(depth)] = str(cell["key"].iloc[0])
    return out


def _number(value: Any, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{format(value, spec)}{unit}"


def cell_lines(record: dict[str, Any]) -> list[str]:
    """What a cell's hover says about how it ran: key and status, engine, device, timings,
    memory, parameters (plain text lines)."""
    engine = record.get("engine") or {}
    used = engine.get("used") or "–"
    how = [f"{engine['seeds_per_batch']} seeds per batch" if engine.get("seeds_per_batch")
           else "", f"{engine['adjacency']} adjacency" if engine.get("adjacency") else ""]
    how_text = ", ".join(h for h in how if h)
    seeds = record.get("seeds") or []
    alone = [s["epoch_s"] for s in seeds if isinstance(s.get("epoch_s"), float)
             and math.isfinite(s["epoch_s"])]
    batches = {tuple((s.get("batch") or {}).get("seeds", ())): s["batch"] for s in seeds
               if s.get("batch")}
    if alone:
        per_epoch = f"{np.mean(alone):.3g} s/epoch per seed"
    elif batches:
        batch = next(iter(batches.values()))
        per_epoch = (f"{_number(batch.get('epoch_s'), '.3g', ' s')}/epoch per batch of "
                     f"{len(batch.get('seeds', []))} seeds")
    else:
        per_epoch = "– s/epoch"
    threads = record.get("threads")
    return [
        f"cell {record['key']} · {record['status']}"
        + (f": {str(record.get('error'))[:80]}" if record.get("error") else ""),
        f"engine {used}" + (f" ({how_text})" if how_text else "")
        + f" on {record.get('device') or '–'}"
        + (f", {threads} thread{'s' * (threads != 1)}" if isinstance(threads, int) else ""),
        f"wall {_number(record.get('wall_s'), '.1f', ' s')}; {per_epoch}",
        f"peak RSS {_number(record.get('peak_rss_mb'), ',.0f', ' MB')}"
        + (f", CUDA {_number(record['peak_cuda_mb'], ',.0f', ' MB')}"
           if record.get("peak_cuda_mb") else "")
        + f"; {_number(record.get('params'), ',d')} parameters",
    ]


def interval(values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
             ) -> tuple[float, float]:
    """The bootstrap 95 % interval of the mean of ``values`` (:mod:`gdepth.stats`'s, a point
    when there are fewer than two values or no spread)."""
    if len(values) == 0:
        return math.nan, math.nan
    return stats._interval(values, resamples, seed)


def _band(x: list[int], low: list[float], high: list[float], color: str, label: str,
          kind: str, visible: bool) -> go.Scatter:
    return go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself", mode="lines",
                      line={"width": 0}, fillcolor=color, opacity=0.2, hoverinfo="skip",
                      legendgroup=label, showlegend=False, name=f"{label} ({kind})",
                      visible=visible, meta={"role": kind, "row": label})


def accuracy_figure(frame: pd.DataFrame, found: list[dict[str, Any]], metric: str = "test_acc",
                    ddof: int = 0, delta: float = 2.0) -> go.Figure:
    """The interactive accuracy-against-depth figure of one folder (module docstring)."""
    by_key = {r["key"]: r for r in found}
    curves = stats.curves(frame, metric)
    collapsed = collapses(frame, metric, delta) if is_accuracy(metric) else {}
    keys = cell_keys(frame)
    unit = " %" if is_accuracy(metric) else ""
    fig = go.Figure()
    roles: list[str] = []
    for i, (label, curve) in enumerate(curves.items()):
        curve = curve.dropna(how="all")
        if curve.empty:
            continue
        color = COLORS[i % len(COLORS)]
        x = [int(d) for d in curve.index]
        mean = curve.mean(axis=1)
        std = curve.std(axis=1, ddof=ddof).fillna(0.0)  # one seed and ddof=1: no band
        n = curve.count(axis=1)
        cis = [interval(curve.loc[d].dropna().to_numpy(dtype=float)) for d in curve.index]
        result, deepest = collapsed.get(label, (None, 0))
        shown = stats.collapse_text(result, deepest) if result is not None else "–"
        texts, custom = [], []
        for d, m, s, k, (lo, hi) in zip(x, mean, std, n, cis, strict=True):
            key = keys.get(label, {}).get(d, "")
            lines = [f"<b>{escape(label)}</b>, L={d}",
                     f"{metric}: {m:.2f} ± {s:.2f}{unit} (n={k}; std ddof={ddof})",
                     f"bootstrap 95 % CI of the mean: [{lo:.2f}, {hi:.2f}]"]
            if result is not None:
                lines.append(f"collapse (δ={delta:g}): {escape(shown)}")
            if key in by_key:
                lines += [escape(t) for t in cell_lines(by_key[key])]
            lines.append("<i>click: the cell's config below the figure</i>")
            texts.append("<br>".join(lines))
            custom.append(key)
        fig.add_trace(go.Scatter(
            x=x, y=[float(v) for v in mean], mode="lines+markers", name=label,
            legendgroup=label, line={"color": color}, hovertext=texts, hoverinfo="text",
            customdata=custom, meta={"role": "mean", "row": label}))
        fig.add_trace(_band(x, [float(v) for v in mean - std], [float(v) for v in mean + std],
                            color, label, "std", True))
        fig.add_trace(_band(x, [lo for lo, _ in cis], [hi for _, hi in cis], color, label,
                            "ci", False))
        roles += ["mean", "std", "ci"]
        if result is not None and math.isfinite(result.depth):
            d = int(result.depth)
            high = deepest if result.high == stats.BEYOND else result.high
            fig.add_trace(go.Scatter(
                x=[d], y=[float(mean.loc[d])], mode="markers", legendgroup=label,
                showlegend=False, name=f"{label} collapse",
                marker={"symbol": "x", "size": 13, "color": color,
                        "line": {"width": 1, "color": "black"}},
                error_x={"type": "data", "symmetric": False, "array": [high - d],
                         "arrayminus": [d - result.low], "color": color, "thickness": 1.5},
                hovertext=[f"<b>{escape(label)}</b><br>collapse depth (δ={delta:g} below the "
                           f"row's best mean, or at the mlp baseline): {escape(shown)}"],
                hoverinfo="text", customdata=[keys.get(label, {}).get(d, "")],
                meta={"role": "collapse", "row": label}))
            roles.append("collapse")
    _layout(fig, frame, metric, ddof, unit, roles)
    return fig


def _layout(fig: go.Figure, frame: pd.DataFrame, metric: str, ddof: int, unit: str,
            roles: list[str]) -> None:
    depths = sorted(int(d) for d in frame["depth"].dropna().unique())

    def shown(band: str | None) -> list[bool]:
        return [r not in BANDS or r == band for r in roles]

    fig.update_layout(
        xaxis={"type": "log" if depths and min(depths) > 0 else "linear",
               "tickvals": depths, "ticktext": [str(d) for d in depths],
               "title": {"text": "depth (layers, log₂ axis)"}},
        yaxis={"title": {"text": f"{metric.replace('_', ' ')}{unit}: mean"}},
        height=480, margin={"t": 70, "l": 60, "r": 20, "b": 50}, hovermode="closest",
        legend={"font": {"size": 11}}, template="plotly_white",
        updatemenus=[{"type": "buttons", "direction": "right", "x": 0, "xanchor": "left",
                      "y": 1.16, "yanchor": "top", "showactive": True, "buttons": [
                          {"label": f"band: mean ± std (ddof={ddof})", "method": "restyle",
                           "args": [{"visible": shown("std")}]},
                          {"label": "band: bootstrap 95 % CI of the mean", "method": "restyle",
                           "args": [{"visible": shown("ci")}]},
                          {"label": "no band", "method": "restyle",
                           "args": [{"visible": shown(None)}]}]}])


def statuses(found: list[dict[str, Any]]) -> dict[str, int]:
    """How many cells have each status (:data:`gdepth.sweep.records.STATUSES` order)."""
    counts = {s: sum(r["status"] == s for r in found) for s in records.STATUSES}
    return {s: n for s, n in counts.items() if n}
