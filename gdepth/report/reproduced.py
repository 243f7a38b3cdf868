"""Published numbers next to ours, for a ``gdepth reproduce`` folder, as a Plotly figure.

``gdepth reproduce NAME`` writes the comparison (:func:`gdepth.reproduce.compare.build`, one row
per planned cell and per published number in scope) to ``comparison.csv`` with the restrictions
the user gave (``dataset=``, ``depth=``, …); the report reads that file rather than re-planning
the experiment without them, and renders its table with :func:`gdepth.reproduce.compare.render`.
The figure has one panel per dataset: our mean ± std (error bars, circles) and the published
value (crosses, dashed) per series against depth, the tuned final (diamonds) where
``search=…`` ran; hovering shows the verdict, Δ and the note.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gdepth.report.figures import COLORS
from gdepth.reproduce import compare


def load(folder: Path) -> tuple[pd.DataFrame, list[str], str | None] | None:
    """The comparison frame of a reproduce folder, its label columns and its depth column;
    None when the folder has no ``comparison.csv``."""
    path = folder / "comparison.csv"
    if not path.is_file():
        return None
    texts = ("note", "key", "verdict", "progress", "tuned_verdict", "tuned_key", "budget")
    frame = pd.read_csv(path, dtype=dict.fromkeys(texts, str))
    for column in texts:
        if column in frame:
            frame[column] = frame[column].fillna("")
    labels = [c for c in frame.columns if c not in compare.NOT_LABELS]
    return frame, labels, _depth_column(folder, labels)


def _depth_column(folder: Path, labels: list[str]) -> str | None:
    """The column the experiment maps to ``depth`` (its ``columns:``), named in the first line
    of ``comparison.md`` (``# NAME: title``); ``depth`` if it is a column."""
    from gdepth.reproduce import experiment

    md = folder / "comparison.md"
    head = md.read_text().splitlines()[0] if md.is_file() else ""
    name = head.removeprefix("# ").split(":", 1)[0].strip()
    if name in experiment.names():
        column = next((c for c, p in experiment.load(name).columns.items() if p == "depth"),
                      None)
        if column in labels:
            return column
    return "depth" if "depth" in labels else None


def table(frame: pd.DataFrame, labels: list[str]) -> str:
    """The comparison's Markdown table (:func:`gdepth.reproduce.compare.render`)."""
    return compare.render(frame, labels)


def figure(frame: pd.DataFrame, labels: list[str], depth: str) -> go.Figure:
    """Published vs ours against ``depth``, one panel per dataset (module docstring)."""
    panel_key = "dataset" if "dataset" in labels else None
    panels = sorted(frame[panel_key].astype(str).unique()) if panel_key else [""]
    series = [k for k in labels if k not in (depth, panel_key)]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels,
                        horizontal_spacing=0.06)
    names = sorted({_series(r, series) for _, r in frame.iterrows()})
    for col, panel in enumerate(panels, start=1):
        part = frame if not panel_key else frame[frame[panel_key].astype(str) == panel]
        part = part.assign(x=pd.to_numeric(part[depth], errors="coerce")).sort_values("x")
        for name, group in part.groupby(part.apply(lambda r: _series(r, series), axis=1)):
            color = COLORS[names.index(name) % len(COLORS)]
            first = col == 1
            ours = group[group["n"] > 0]
            fig.add_trace(go.Scatter(
                x=ours["x"].tolist(), y=ours["mean"].tolist(), mode="lines+markers",
                error_y={"type": "data", "array": ours["std"].tolist(), "visible": True},
                name=f"{name} (ours)", legendgroup=name, showlegend=first,
                line={"color": color}, customdata=ours["key"].tolist(), hoverinfo="text",
                hovertext=_hover(ours, name, "ours"), meta={"role": "ours", "row": name}),
                row=1, col=col)
            pub = group.dropna(subset=["published"])
            fig.add_trace(go.Scatter(
                x=pub["x"].tolist(), y=pub["published"].tolist(), mode="lines+markers",
                marker={"symbol": "x", "size": 10}, line={"color": color, "dash": "dash"},
                name=f"{name} (published)", legendgroup=name, showlegend=first,
                customdata=pub["key"].tolist(), hoverinfo="text",
                hovertext=_hover(pub, name, "published"),
                meta={"role": "published", "row": name}), row=1, col=col)
            if "tuned_mean" in group:
                tuned = group.dropna(subset=["tuned_mean"])
                fig.add_trace(go.Scatter(
                    x=tuned["x"].tolist(), y=tuned["tuned_mean"].tolist(), mode="markers",
                    marker={"symbol": "diamond", "size": 9, "color": color},
                    error_y={"type": "data", "array": tuned["tuned_std"].tolist()},
                    name=f"{name} (tuned)", legendgroup=name, showlegend=first,
                    customdata=tuned["tuned_key"].tolist(), hoverinfo="text",
                    hovertext=_hover(tuned, name, "tuned"),
                    meta={"role": "tuned", "row": name}), row=1, col=col)
        ticks = sorted({int(x) for x in part["x"].dropna()})
        fig.update_xaxes(type="log", title_text=depth, tickvals=ticks,
                         ticktext=[str(t) for t in ticks], row=1, col=col)
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_layout(height=440, template="plotly_white", hovermode="closest",
                      margin={"t": 50, "l": 60, "r": 20, "b": 50}, legend={"font": {"size": 10}})
    return fig


def _series(row: pd.Series, keys: list[str]) -> str:
    return " ".join(str(row[k]) for k in keys) or "ours"


def _hover(rows: pd.DataFrame, name: str, what: str) -> list[str]:
    out = []
    for _, r in rows.iterrows():
        lines = [f"<b>{escape(name)}</b> ({what})", f"published: {_fmt(r['published'])}",
                 f"ours: {_fmt(r['mean'])} ± {_fmt(r['std'])} (n={int(r['n'])}); "
                 f"Δ {_fmt(r['delta'], '+.1f')}; {escape(str(r['verdict']))}"]
        if "tuned_verdict" in r and r["tuned_verdict"]:
            lines.append(f"tuned: {_fmt(r['tuned_mean'])} ± {_fmt(r['tuned_std'])}; "
                         f"{escape(str(r['tuned_verdict']))}")
        if r["note"]:
            lines.append(escape(str(r["note"])[:120]))
        out.append("<br>".join(lines))
    return out


def _fmt(value: float, spec: str = ".1f") -> str:
    return "–" if pd.isna(value) else format(float(value), spec)
