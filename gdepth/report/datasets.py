"""The structure table of the datasets a report's records ran on (as ``gdepth inspect``).

Each distinct base graph of the records (a dataset name and its generation parameters,
:func:`gdepth.data.params`; the split does not change the graph) is loaded with
:func:`gdepth.data.load` from the record's own resolved config and described by
:func:`gdepth.diagnostics.structure.describe`; the rows are
:func:`gdepth.inspect_graphs.rows`, so the
table reads exactly as ``gdepth inspect``'s. A dataset that cannot be loaded here (not in the
cache or mirror, offline) gets a column saying why instead of failing the report.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from gdepth.report.figures import COLORS


def typed(config: dict[str, Any]) -> Any:
    """A record's dataset config as its schema (a key it lacks: the dataset's default)."""
    from gdepth import config as schema
    from gdepth import data

    return schema.group("dataset", {"split": data.spec(config["name"]).default_split, **config})


def graphs(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{column label: dataset config}``, one per distinct base graph (first record's config);
    a name shared by several graphs is labelled with the parameters that differ."""
    from gdepth import data

    by_identity: dict[str, dict[str, Any]] = {}
    for record in found:
        config = (record.get("config") or {}).get("dataset") or {}
        name = config.get("name")
        if name not in data.DATASETS:
            continue
        params = data.params(typed(config))
        by_identity.setdefault(json.dumps([name, params], sort_keys=True, default=str), config)
    names = [json.loads(k)[0] for k in by_identity]
    out = {}
    for identity, config in by_identity.items():
        name, params = json.loads(identity)
        label = name
        if names.count(name) > 1:
            others = [json.loads(k)[1] for k in by_identity if json.loads(k)[0] == name]
            differ = [k for k in params if len({json.dumps(o.get(k)) for o in others}) > 1]
            label = " ".join([name, *(f"{k}={params[k]}" for k in differ)])
        out[label] = config
    return out


def describe_all(configs: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The :class:`~gdepth.diagnostics.structure.Structure` of each graph, and why any could
    not be described."""
    from gdepth import data
    from gdepth.diagnostics.structure import describe

    described, failed = {}, {}
    for label, config in configs.items():
        try:
            graph = data.load(typed(config), None, seed=0)
            described[label] = describe(graph.edge_index, graph.num_nodes, graph.y)
        except Exception as err:  # noqa: BLE001 — one unavailable dataset must not end the report
            failed[label] = f"{type(err).__name__}: {err}"
    return described, failed


def table(described: dict[str, Any], failed: dict[str, str]) -> pd.DataFrame:
    """Measures × datasets, as ``gdepth inspect`` prints them; a failed dataset's column holds
    the reason in its first row."""
    from gdepth.inspect_graphs import rows

    columns = {label: rows(s) for label, s in described.items()}
    for label, why in failed.items():
        columns[label] = {"nodes": f"not described: {why}"}
    frame = pd.DataFrame(columns).fillna("")
    frame.index.name = "measure"
    return frame


def receptive_figure(described: dict[str, Any]) -> go.Figure | None:
    """The receptive-field fraction against k, one line per dataset (log y); None if empty."""
    if not described:
        return None
    fig = go.Figure()
    for i, (label, s) in enumerate(described.items()):
        hops = list(range(1, len(s.receptive_field) + 1))
        fig.add_trace(go.Scatter(
            x=hops, y=[float(v) for v in s.receptive_field], mode="lines+markers", name=label,
            line={"color": COLORS[i % len(COLORS)]}, meta={"role": "receptive", "row": label},
            hovertemplate=f"{label}<br>k=%{{x}}: %{{y:.3%}} of the graph<extra></extra>"))
    fig.update_layout(
        xaxis={"title": {"text": "k (hops = message-passing layers)"}, "dtick": 1},
        yaxis={"title": {"text": "mean |B_k(v)| / n"}, "type": "log"}, height=380,
        template="plotly_white", margin={"t": 30, "l": 60, "r": 20, "b": 50})
    return fig
