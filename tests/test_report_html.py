"""The HTML report (gdepth.report.html and its figures): self-contained, and every plotted
number equal to a second computation from the records."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from gdepth import cli, stats
from gdepth.report import datasets, figures, profiles, reproduced, tables, write_html
from gdepth.sweep import records


def _record(model, norm, depth, accs, status="ok", dataset=None, diagnostics=None):
    config = {"dataset": dataset or {"name": "csbm", "num_nodes": 300, "homophily": 0.7},
              "model": {"name": model}, "norm": {"name": norm}, "train": {"lr": 0.01},
              "depth": depth, "seeds": 3, "name": "x", "out_dir": "outputs",
              "device": "cpu"}
    seeds = [{"seed": i, "status": "ok", "train_acc": 1.0, "val_acc": a, "test_acc": a,
              "selected_epoch": 3, "epoch_s": math.nan,
              "batch": {"seeds": list(range(len(accs))), "epochs": 10, "wall_s": 2.0,
                        "epoch_s": 0.2}} for i, a in enumerate(accs)]
    record = {"schema": records.SCHEMA_VERSION, "key": records.cell_key(config),
              "status": status, "config": config, "error": "boom" if status == "failed" else None,
              "seeds": [] if status == "failed" else seeds, "wall_s": 3.5, "peak_rss_mb": 512.0,
              "params": 1234, "device": "cpu", "threads": 1,
              "engine": {"requested": "auto", "used": "batched", "reason": None,
                         "adjacency": "sparse", "seeds_per_batch": len(accs)},
              "finished_at": "2026-01-01T00:00:00"}
    if diagnostics:
        record["diagnostics"] = diagnostics
    return record


ACCS = {("gcn", 2): [0.80, 0.82, 0.78], ("gcn", 4): [0.70, 0.74, 0.72],
        ("gcn", 8): [0.40, 0.50, 0.45], ("gcn_res", 2): [0.81, 0.79, 0.80],
        ("gcn_res", 4): [0.80, 0.80, 0.82], ("gcn_res", 8): [0.70, 0.72, 0.74]}


@pytest.fixture()
def folder(tmp_path):
    recs = [_record(m, "none", d, a) for (m, d), a in ACCS.items()]
    recs.append(_record("gcn", "none", 16, [], status="failed"))
    for rec in recs:
        records.write(records.record_path(tmp_path / "sweep", rec["key"]), rec)
    return tmp_path / "sweep"


def test_the_page_is_self_contained_with_plotly_inlined_once(folder):
    path = write_html(folder, structure=False)
    assert path == folder / "report.html"
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", text)  # no script loaded from anywhere
    assert '<script src="http' not in text and not re.search(r"<link[^>]*href=\"http", text)
    assert text.count("* plotly.js v") == 1  # the library inlined once, not per figure
    assert text.count("Plotly.newPlot(") == 1  # one figure: accuracy (no diagnostics)
    table = tables.build_table(tables.load_frame(folder)[1])
    for label in table.index:  # the table's texts, as `gdepth table` writes them
        for text_cell in table.loc[label]:
            assert text_cell in text
    assert "<b>80.0 ± 1.6 (3)</b>" in text  # gcn at L=2: the best of its column, in bold
    assert "failed" in text and "boom" in text  # the failed cell is listed with its error
    cells = json.loads(re.search(r'id="gdepth-cells">(.*?)</script>', text, re.S).group(1))
    assert set(cells) == {r["key"] for r in [_record(m, "none", d, a)
                                             for (m, d), a in ACCS.items()]} | {
        _record("gcn", "none", 16, [], status="failed")["key"]}
    key = _record("gcn", "none", 4, ACCS[("gcn", 4)])["key"]
    assert cells[key]["config"]["depth"] == 4
    assert cells[key]["head"][1] == "engine batched (3 seeds per batch, sparse adjacency) on " \
        "cpu, 1 thread"


def test_accuracy_figure_plots_the_record_means_bands_and_collapse(folder):
    found, frame = tables.load_frame(folder)
    fig = figures.accuracy_figure(frame, found, ddof=1, delta=2.0)
    by = {(t.meta["role"], t.meta["row"]): t for t in fig.data}
    curves = stats.curves(frame, "test_acc")
    for model in ("gcn", "gcn_res"):
        label = f"{model}·none"
        depths = sorted(d for m, d in ACCS if m == model)
        mean = by[("mean", label)]
        assert list(mean.x) == depths
        expected = [100 * np.mean(ACCS[(model, d)]) for d in depths]
        assert np.allclose(mean.y, expected, rtol=1e-12, atol=0)
        std = [100 * np.std(ACCS[(model, d)], ddof=1) for d in depths]
        upper = by[("std", label)].y[:len(depths)]  # the band: upper edge, then lower reversed
        assert np.allclose(upper, np.add(expected, std), rtol=1e-12)
        ci = by[("ci", label)].y[:len(depths)]
        for d, high in zip(depths, ci, strict=True):
            values = curves[label].loc[d].dropna().to_numpy()
            assert high == pytest.approx(stats._interval(values, figures.RESAMPLES, 0)[1])
            assert high >= 100 * np.mean(ACCS[(model, d)])
        assert mean.customdata[0] == _record(model, "none", 2, ACCS[(model, 2)])["key"]
        assert "peak RSS 512 MB; 1,234 parameters" in mean.hovertext[0]
        assert "0.2 s/epoch per batch of 3 seeds" in mean.hovertext[0]
    # gcn: best 80 at L=2, 72 at L=4 is more than 2 below: collapse at 4 (every resample too)
    marker = by[("collapse", "gcn·none")]
    result = stats.collapse(curves["gcn·none"], 2.0)
    assert list(marker.x) == [4] == [result.depth]
    assert marker.error_x.arrayminus[0] == 4 - result.low
    assert marker.y[0] == pytest.approx(72.0)
    shown = tables.with_collapse(tables.build_table(frame))["collapse δ=2"]["gcn·none"]
    assert shown.startswith("L=4") and shown in marker.hovertext[0]
    # the band buttons show one band kind at a time, lines and markers always
    buttons = fig.layout.updatemenus[0].buttons
    roles = [t.meta["role"] for t in fig.data]
    for button, band in zip(buttons, ("std", "ci", None), strict=True):
        visible = button.args[0]["visible"]
        assert visible == [r in ("mean", "collapse") or r == band for r in roles]


def _smoothing(seed_values):
    return {"kind": "smoothing", "seeds": [
        {"seed": i, "init": {"dirichlet": [v * 2 for v in vals]},
         "selected": {"dirichlet": vals, "mad": [0.5] * len(vals)}}
        for i, vals in enumerate(seed_values)]}


def test_smoothing_and_influence_figures_average_the_seeds(tmp_path):
    smooth = _record("gcn", "none", 2, [0.5, 0.6],
                     diagnostics=_smoothing([[4.0, 2.0, 1.0, 0.5], [2.0, 1.0, 1.0, 0.25]]))
    infl = _record("gcn", "none", 4, [0.5, 0.6], diagnostics={"kind": "influence", "seeds": [
        {"seed": 0, "influence": [1.0, 0.5, 0.0], "receptive_field": 1.2},
        {"seed": 1, "influence": [1.0, 0.3, 0.1], "receptive_field": 1.4}]})
    fig = profiles.smoothing_figure([smooth, infl])
    (trace,) = fig.data
    assert list(trace.y) == [3.0, 1.5, 1.0, 0.375] and list(trace.x) == [0, 1, 2, 3]
    assert fig.layout.yaxis.type == "log"
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["dirichlet (selected epoch)", "mad (selected epoch)",
                      "dirichlet (initialization)"]  # mad was not measured at init
    init = fig.layout.updatemenus[0].buttons[2].args[0]["y"]
    assert init == [[6.0, 3.0, 2.0, 0.75]]
    (trace,) = profiles.influence_figure([smooth, infl]).data
    assert np.allclose(trace.y, [1.0, 0.4, 0.05]) and trace.customdata[0] == infl["key"]
    assert profiles.influence_figure([smooth]) is None
    assert profiles.kinds([smooth, infl, _record("gcn", "none", 8, [0.5])]) == {
        "smoothing": 1, "influence": 1}


def test_published_vs_ours_reads_the_reproduce_comparison(tmp_path):
    frame = pd.DataFrame([
        {"dataset": "cora", "backbone": "GCN", "depth": 2, "variant": "original",
         "published": 81.1, "mean": 80.8, "std": 0.5, "n": 2, "key": "abc", "note": "",
         "verdict": "match"},
        {"dataset": "cora", "backbone": "GCN", "depth": 4, "variant": "original",
         "published": 80.4, "mean": math.nan, "std": math.nan, "n": 0, "key": "def",
         "note": "", "verdict": "not run"}])
    frame["delta"] = frame["mean"] - frame["published"]
    frame.to_csv(tmp_path / "comparison.csv", index=False)
    (tmp_path / "comparison.md").write_text("# dropedge2020_semi: DropEdge\n")
    compared, labels, depth = reproduced.load(tmp_path)
    assert labels == ["dataset", "backbone", "depth", "variant"] and depth == "depth"
    fig = reproduced.figure(compared, labels, depth)
    by = {t.meta["role"]: t for t in fig.data}
    assert list(by["published"].y) == [81.1, 80.4] and list(by["ours"].y) == [80.8]
    assert list(by["ours"].error_y.array) == [0.5]
    md = reproduced.table(compared, labels)
    assert "| cora      | GCN        | 4       | original  | 80.4" in md and "not run" in md


def test_structure_columns_are_gdepth_inspects_rows():
    a = _record("gcn", "none", 2, [0.5])
    b = _record("gcn", "none", 2, [0.5], dataset={"name": "csbm", "num_nodes": 300,
                                                  "homophily": 0.2,
                                                  "split": "full_supervised"})
    c = _record("gcn", "none", 4, [0.5], dataset={"name": "csbm", "num_nodes": 300,
                                                  "homophily": 0.2, "train_per_class": 5})
    graphs = datasets.graphs([a, b, c])  # c is b's graph: another split only
    assert list(graphs) == ["csbm homophily=0.7", "csbm homophily=0.2"]
    described, failed = datasets.describe_all(graphs)
    assert not failed
    from gdepth import data
    from gdepth.diagnostics.structure import describe
    from gdepth.inspect_graphs import rows

    graph = data.load(datasets.typed(graphs["csbm homophily=0.2"]), None, seed=0)
    table = datasets.table(described, {"ogbn_gone": "DatasetUnavailable: offline"})
    assert table["csbm homophily=0.2"].to_dict() == rows(describe(graph.edge_index,
                                                                  graph.num_nodes, graph.y))
    assert table.loc["nodes", "ogbn_gone"] == "not described: DatasetUnavailable: offline"


def test_cli_report_bad_input_names_the_problem(folder, tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", str(empty)]) == 2
    assert f"no gdepth records below '{empty}'" in capsys.readouterr().err
    assert cli.main(["report", str(folder), "--metric", "f1", "--no-structure"]) == 2
    assert "unknown metric 'f1'; valid: train_acc, val_acc, test_acc" in capsys.readouterr().err
    out = tmp_path / "two" / "page.html"
    assert cli.main(["report", str(folder), str(folder), "-o", str(out), "--no-structure"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8").count('<section id="folder-') == 2
