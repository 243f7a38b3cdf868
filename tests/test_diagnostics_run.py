"""diagnostics=smoothing|influence in a cell: per-layer taps, the selected epoch's state, the
record's profiles, `gdepth table --metric dirichlet_last` and `gdepth plot`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from gdepth import config, data, models, train
from gdepth.diagnostics import run as diagnostics
from gdepth.engine import fit_batched, slices
from gdepth.models.adjacency import normalized_adjacency
from gdepth.sweep import collect

SMALL = ["dataset.num_nodes=150", "dataset.num_features=8", "train.epochs=8", "seeds=2",
         "progress=false"]


@pytest.fixture(scope="module")
def graph():
    cfg = config.group("dataset", name="csbm", split="random_per_class", num_nodes=120,
                       num_classes=3, avg_degree=4.0, homophily=0.8, snr=1.0, num_features=8,
                       graph_seed=0)
    g = data.load(cfg, None, 0)
    return g, normalized_adjacency(g.edge_index, g.num_nodes)


def build(name, depth, graph, **kw):
    torch.manual_seed(0)
    cfg = config.group("model", name=name, hidden=8, **kw)
    return models.build(cfg, config.norm("none"), depth, graph.num_features,
                        graph.num_classes)


@pytest.mark.parametrize(("name", "depth", "count"), [
    ("gcn", 4, 5), ("gcn_res", 4, 5), ("gcnii", 4, 7), ("appnp", 3, 5), ("jknet", 3, 5),
    ("gat", 3, 4), ("gin", 3, 5), ("ggnn", 3, 6), ("mlp", 3, 4)])
def test_taps_give_input_layers_and_logits(graph, name, depth, count):
    g, adj = graph
    kw = {"heads": 2} if name == "gat" else {}
    model = build(name, depth, g, **kw).eval()
    outputs = diagnostics.layer_outputs(model, g.x, adj)
    assert len(outputs) == count
    assert torch.equal(outputs[0], g.x)
    with torch.no_grad():
        assert torch.allclose(outputs[-1], model(g.x, adj))
    assert model.layer_sink is None  # detached again: training is untouched


def test_models_without_taps_say_so(graph):
    g, adj = graph
    assert diagnostics.layer_outputs(build("sgc", 2, g), g.x, adj) is None


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_kept_state_is_the_selected_epochs(graph, seeds):
    """keep_states: each seed's state at its own selected epoch; its one-seed model
    (gdepth.engine.slices.one_seed) scores that epoch's validation accuracy."""
    g, adj = graph
    model = models.build_seeded(config.group("model", name="gcn", hidden=8),
                                config.norm("none"), 2, g.num_features,
                                g.num_classes, seeds=seeds)
    kept: list = []
    cfg = config.make(config.TrainConfig, name="test", optimizer="adam", lr=0.2,
                      weight_decay=0.0, epochs=30, patience=None, selection="best_val_acc")
    gs = [replace(g, split=f"split {s}") for s in seeds]  # one graph per seed, the same split
    results = fit_batched(model, gs, adj, cfg, seeds, keep_states=kept)
    assert len(kept) == len(seeds)
    for s, result in enumerate(results):
        assert 0 < result.selected_epoch < 30  # not the last: the kept state is not the end's
        one = slices.one_seed(model, s, kept[s]).eval()
        with torch.no_grad():
            val = train.accuracy(one(g.x, adj), g.y, g.val_mask)
        assert val == pytest.approx(result.val_acc)
        assert kept[s].keys() == model.state_dict().keys()


def test_influence_of_a_two_layer_gcn_stops_at_two_hops(graph):
    g, adj = graph
    cfg = config.make(config.DiagnosticsConfig, name="influence", hops=4, samples=10)
    dataset = config.group("dataset", name="csbm", split="random_per_class", self_loops=True)
    out = diagnostics.influence(build("gcn", 2, g), g, dataset, cfg, seed=0)
    values = out["influence"]
    assert len(values) == 5 and values[0] == pytest.approx(1.0)
    assert all(v == 0.0 for v in values[3:])  # no path of length > 2 reaches the output
    assert 0.0 < out["receptive_field"] <= 2.0


def test_last_hidden_picks_the_layer_before_the_logits():
    assert diagnostics.last_hidden({"dirichlet": [5.0, 4.0, 3.0, 9.0]}) == {"dirichlet_last": 3.0}


def gdepth(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "gdepth.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_sweep_with_smoothing_records_profiles_and_plots(cli_env, tmp_path):
    out = gdepth(["sweep", "model=gcn,gcn_res", "depth=2,4", "diagnostics=smoothing",
                  "name=s", *SMALL], cli_env, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    folder = tmp_path / "outputs/sweeps/s"
    found = collect.load(folder)
    assert len(found) == 4
    for record in found:
        seeds = record["diagnostics"]["seeds"]
        assert len(seeds) == 2
        depth = record["config"]["depth"]
        for per_seed, values in zip(seeds, record["seeds"], strict=True):
            assert len(per_seed["init"]["dirichlet"]) == depth + 1
            assert per_seed["init"]["dirichlet"][0] == per_seed["selected"]["dirichlet"][0]
            assert values["dirichlet_last"] == per_seed["selected"]["dirichlet"][-2]
    table = gdepth(["table", str(folder), "--metric", "dirichlet_last"], cli_env, tmp_path)
    assert table.returncode == 0 and "gcn_res·none" in table.stdout and "%" not in table.stdout
    plot = gdepth(["plot", "smoothing", str(folder)], cli_env, tmp_path)
    assert plot.returncode == 0, plot.stderr
    assert (folder / "smoothing_dirichlet_selected.png").stat().st_size > 0
    missing = gdepth(["plot", "influence", str(folder)], cli_env, tmp_path)
    assert missing.returncode == 2 and "diagnostics=influence" in missing.stderr
    bad = gdepth(["table", str(folder), "--metric", "dirichlet_frist"], cli_env, tmp_path)
    assert bad.returncode == 2 and "valid: train_acc" in bad.stderr
    assert "dirichlet_last" in bad.stderr
