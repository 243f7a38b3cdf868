"""Per-layer and per-hop diagnostics of a folder as Plotly figures (the interactive twins of
``gdepth plot smoothing|influence``, :mod:`gdepth.diagnostics.plot`).

* smoothing (``diagnostics=smoothing``): each measure of
  :mod:`gdepth.diagnostics.oversmoothing` against the layer index (0 = input features, last =
  logits), at the selected epoch or at initialization (a menu picks the pair), one line per
  cell (mean over its seeds);
* influence (``diagnostics=influence``): PyG's normalized total influence I_k / I_0 against the
  hop k (Bamberger et al., arXiv 2503.09008), one line per cell (mean over its seeds).

Lines of one model·norm share a colour scale, shaded by depth (many depths stay readable).
A measure whose values are all positive is drawn on a log axis, otherwise on a linear one.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from gdepth.report.figures import cell_lines

SCALES = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys")
AT = {"selected": "selected epoch", "init": "initialization"}


def _cells(found: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The records with ``kind`` diagnostics, sorted by model·norm then depth."""
    out = [r for r in found if (r.get("diagnostics") or {}).get("kind") == kind
           and r["diagnostics"].get("seeds")]
    return sorted(out, key=lambda r: (_group(r), r["config"]["depth"]))


def _group(record: dict[str, Any]) -> str:
    config = record["config"]
    return f"{config['model']['name']}·{config['norm']['name']}"


def _mean(seeds: list[dict[str, Any]], pick) -> list[float] | None:
    """The mean over seeds of ``pick(seed)`` (a list per seed), NaN-aware; None if no seed
    has it."""
    rows = [pick(s) for s in seeds]
    rows = [r for r in rows if r]
    if not rows:
        return None
    width = max(len(r) for r in rows)
    padded = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        padded[i, :len(r)] = np.asarray(r, dtype=float)
    with np.errstate(all="ignore"):
        means = np.nanmean(padded, axis=0)
    return [float(v) for v in means]


def _colors(cells: list[dict[str, Any]]) -> list[str]:
    groups = list(dict.fromkeys(_group(r) for r in cells))
    out = []
    for record in cells:
        g = groups.index(_group(record))
        members = [r for r in cells if _group(r) == _group(record)]
        shade = 0.45 + 0.5 * (members.index(record) / max(len(members) - 1, 1))
        out.append(sample_colorscale(SCALES[g % len(SCALES)], [shade])[0])
    return out


def _hover(record: dict[str, Any], head: str, values: list[float], what: str) -> list[str]:
    lines = [escape(t) for t in cell_lines(record)]
    return ["<br>".join([f"<b>{escape(head)}</b>", f"{what} {i}: {v:.4g}", *lines])
            for i, v in enumerate(values)]


def _label(record: dict[str, Any]) -> str:
    return f"{_group(record)} L={record['config']['depth']}"


def smoothing_figure(found: list[dict[str, Any]]) -> go.Figure | None:
    """Every measure × (selected, init) against the layer, a menu to pick; None without
    smoothing records."""
    cells = _cells(found, "smoothing")
    if not cells:
        return None
    # the measures the records hold, in their order (:data:`~gdepth.diagnostics.oversmoothing.
    # MEASURES` by default; ``diagnostics.measures`` may choose fewer)
    measures = list(dict.fromkeys(m for r in cells for s in r["diagnostics"]["seeds"]
                                  for at in AT for m in (s.get(at) or {})))
    options: dict[tuple[str, str], list[list[float] | None]] = {}
    for at in AT:
        for measure in measures:
            ys = [_mean(r["diagnostics"]["seeds"], lambda s, a=at, m=measure:
                        (s.get(a) or {}).get(m)) for r in cells]
            if any(y for y in ys):
                options[(measure, at)] = ys
    if not options:
        return None
    first = ("dirichlet", "selected") if ("dirichlet", "selected") in options else \
        next(iter(options))
    fig = go.Figure()
    for record, color, y in zip(cells, _colors(cells), options[first], strict=True):
        fig.add_trace(_trace(record, color, y or [], "layer", "smoothing"))
    buttons = []
    for (measure, at), ys in options.items():
        buttons.append({"label": f"{measure} ({AT[at]})", "method": "update", "args": [
            {"y": [y or [] for y in ys], "x": [list(range(len(y or []))) for y in ys],
             "hovertext": [_hover(r, _label(r), y or [], "layer")
                           for r, y in zip(cells, ys, strict=True)]},
            {"yaxis.type": _axis_type(ys), "yaxis.title.text": measure}]})
    fig.update_layout(
        xaxis={"title": {"text": "layer (0 = input features, last = logits)"}},
        yaxis={"title": {"text": first[0]}, "type": _axis_type(options[first])},
        height=460, template="plotly_white", margin={"t": 60, "l": 60, "r": 20, "b": 50},
        legend={"font": {"size": 10}}, hovermode="closest",
        updatemenus=[{"type": "dropdown", "x": 0, "xanchor": "left", "y": 1.14,
                      "yanchor": "top", "buttons": buttons,
                      "active": list(options).index(first)}])
    return fig


def _trace(record: dict[str, Any], color: str, y: list[float], axis: str, role: str
           ) -> go.Scatter:
    """One cell's per-layer (or per-hop) curve, its key in ``customdata`` and ``meta``."""
    return go.Scatter(
        x=list(range(len(y))), y=y, mode="lines+markers", name=_label(record),
        line={"color": color, "width": 1.5}, marker={"size": 4},
        customdata=[record["key"]] * len(y), hoverinfo="text",
        hovertext=_hover(record, _label(record), y, axis),
        meta={"role": role, "key": record["key"]})


def _axis_type(ys: list[list[float] | None]) -> str:
    """``log`` when every finite value of the curves is positive, else ``linear``."""
    flat = [v for y in ys if y for v in y if np.isfinite(v)]
    return "log" if flat and min(flat) > 0 else "linear"


def influence_figure(found: list[dict[str, Any]]) -> go.Figure | None:
    """I_k / I_0 against the hop k per cell; None without influence records."""
    cells = _cells(found, "influence")
    if not cells:
        return None
    fig = go.Figure()
    positive = True
    for record, color in zip(cells, _colors(cells), strict=True):
        y = _mean(record["diagnostics"]["seeds"], lambda s: s.get("influence")) or []
        positive &= all(v > 0 for v in y if np.isfinite(v))
        fig.add_trace(_trace(record, color, y, "hop", "influence"))
    fig.update_layout(
        xaxis={"title": {"text": "hop k"}, "dtick": 1},
        yaxis={"title": {"text": "influence I_k / I_0 (mean over seeds)"},
               "type": "log" if positive else "linear"},
        height=420, template="plotly_white", margin={"t": 30, "l": 60, "r": 20, "b": 50},
        legend={"font": {"size": 10}}, hovermode="closest")
    return fig


def kinds(found: list[dict[str, Any]]) -> dict[str, int]:
    """How many cells carry each diagnostics kind."""
    counts: dict[str, int] = defaultdict(int)
    for record in found:
        kind = (record.get("diagnostics") or {}).get("kind")
        if kind:
            counts[kind] += 1
    return dict(counts)
