"""gdepth.train_progress: progress lines in the job log and the current epoch, from all three
training loops (engine.fit.fit_batched for a seed or a batch of seeds,
train_trees.fit_trees)."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from gdepth import config, data, models, train_progress, train_trees, tree_batch
from gdepth.data import tree_match
from gdepth.engine import fit_batched
from gdepth.models.adjacency import normalized_adjacency
from gdepth.sweep import markers

torch.set_num_threads(1)
LINE = re.compile(r"^(seeds? [0-9–,]+): epoch (\d+)/(\d+), best (val acc|val loss|train acc) "
                  r"([0-9.]+) .*, ([0-9.e+-]+) s/epoch")


@pytest.fixture(autouse=True)
def job_log(monkeypatch):
    """Every epoch a line (interval 0), stderr taken for a file (as in a Slurm job)."""
    monkeypatch.setattr(train_progress, "_stderr_is_terminal", lambda: False)
    train_progress.configure(0)
    yield
    train_progress.configure()


@pytest.fixture(scope="module")
def graphs():
    cfg = config.dataset("csbm", split="random_per_class", num_nodes=200, num_classes=3,
                         avg_degree=6.0, homophily=0.8, snr=1.0, num_features=16,
                         graph_seed=0)
    loaded = [data.load(cfg, None, s) for s in range(3)]
    return loaded, normalized_adjacency(loaded[0].edge_index, loaded[0].num_nodes)


def _train_cfg(**kw):
    return config.make(config.TrainConfig, {
        "name": "test", "optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "epochs": 4,
        "patience": None, "selection": "best_val_acc", **kw})


def _model(graph, name="gcn", seeds=(0,)):
    """The seed-native model of ``seeds``."""
    return models.build_seeded(config.group("model", {"name": name, "hidden": 8}),
                               config.norm("none"), 2, graph.num_features,
                               graph.num_classes, seeds=list(seeds))


def fit(graph, adj, train_cfg, seed, on_epoch=None):
    """One seed trained alone (a batch of one)."""
    return fit_batched(_model(graph, seeds=[seed]), [graph], adj, train_cfg, [seed],
                       on_epoch)[0]


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "gdepth" and LINE.match(
        r.getMessage())]


def test_the_loop_logs_epoch_best_val_and_seconds_per_epoch(graphs, caplog):
    gs, adj = graphs
    caplog.set_level(logging.INFO, logger="gdepth")
    result = fit(gs[0], adj, _train_cfg(), 7)
    lines = _lines(caplog)
    assert len(lines) == 4, caplog.text
    parsed = [LINE.match(line).groups() for line in lines]
    assert [p[:3] for p in parsed] == [("seed 7", str(e), "4") for e in range(1, 5)]
    assert all(p[3] == "val acc" and float(p[5]) > 0 for p in parsed)
    assert float(parsed[-1][4]) == pytest.approx(result.val_acc, abs=1e-4)  # the selected one
    assert f"(epoch {result.selected_epoch})" in lines[-1]
    assert train_progress.current() is None  # nothing trains any more


def test_min_val_loss_shows_the_best_val_loss(graphs, caplog):
    gs, adj = graphs
    caplog.set_level(logging.INFO, logger="gdepth")
    result = fit(gs[0], adj, _train_cfg(selection="min_val_loss"), 0)
    last = LINE.match(_lines(caplog)[-1]).groups()
    assert last[3] == "val loss" and float(last[4]) == pytest.approx(result.val_loss, abs=1e-4)


def test_the_batched_engine_logs_the_batch(graphs, caplog):
    gs, adj = graphs
    caplog.set_level(logging.INFO, logger="gdepth")
    results = fit_batched(_model(gs[0], seeds=[0, 1, 2]), gs, adj, _train_cfg(), [0, 1, 2])
    lines = _lines(caplog)
    assert len(lines) == 4 and all(line.startswith("seeds 0–2: epoch ") for line in lines)
    mean = sum(r.val_acc for r in results) / 3
    assert float(LINE.match(lines[-1]).group(5)) == pytest.approx(mean, abs=1e-4)
    assert "(mean; " in lines[-1]


def test_the_tree_task_keeps_the_current_epoch(caplog):
    """fit_trees logs every epoch itself (no second line per epoch) and keeps the snapshot."""
    g = tree_match.tree_match(2)
    g.adj = normalized_adjacency(g.edge_index[:, g.edge_index[0] != g.edge_index[1]],
                                 g.num_nodes)
    g.split, g.val_mask = "paper", g.train_mask
    cfg = _train_cfg(epochs=2, lr=0.001)
    seen = []
    caplog.set_level(logging.INFO, logger="gdepth")
    torch.manual_seed(0)
    model = models.build(config.group("model", {"name": "bottleneck"}), None, 3, g.x.size(1),
                         g.num_classes)
    batches = tree_batch.Batching(64, 1, 1)
    train_trees.fit_trees(model, g, g.adj, cfg, 3, batches,
                          on_epoch=lambda e: seen.append(train_progress.current()))
    assert [(s["seeds"], s["epoch"], s["epochs"], s["best"]) for s in seen] == [
        ([3], 1, 2, "train acc"), ([3], 2, 2, "train acc")]
    assert not _lines(caplog)
    assert train_progress.current() is None


def test_current_progress_is_what_a_heartbeat_thread_reads(graphs):
    """Another thread (the running marker's heartbeat) reads the epoch, total and best val."""
    gs, adj = graphs
    seen: list = []

    def read_in_a_thread(epoch: int) -> None:
        thread = threading.Thread(target=lambda: seen.append(train_progress.current()))
        thread.start()
        thread.join()

    fit(gs[0], adj, _train_cfg(epochs=3), 5, on_epoch=read_in_a_thread)
    assert [(s["seeds"], s["epoch"], s["epochs"]) for s in seen] == [([5], e, 3) for e in
                                                                     (1, 2, 3)]
    assert all(0.0 <= s["value"][0] <= 1.0 and s["epoch_s"] > 0 for s in seen)
    assert train_progress.describe(seen[-1]).startswith("seed 5: epoch 3/3, best val acc ")
    assert train_progress.describe(None) == ""


def test_no_lines_on_a_terminal_or_within_the_interval(graphs, caplog, monkeypatch):
    gs, adj = graphs
    caplog.set_level(logging.INFO, logger="gdepth")
    monkeypatch.setattr(train_progress, "_stderr_is_terminal", lambda: True)  # the bar shows
    fit(gs[0], adj, _train_cfg(), 0)
    monkeypatch.setattr(train_progress, "_stderr_is_terminal", lambda: False)
    train_progress.configure(3600)
    fit(gs[0], adj, _train_cfg(), 0)
    train_progress.configure(None)  # never
    fit(gs[0], adj, _train_cfg(), 0)
    assert not _lines(caplog)


def test_interval_from_the_environment(monkeypatch):
    train_progress.configure()
    monkeypatch.delenv(train_progress.INTERVAL_ENV, raising=False)
    assert train_progress.interval_s() == train_progress.DEFAULT_INTERVAL_S
    monkeypatch.setenv(train_progress.INTERVAL_ENV, "2.5")
    assert train_progress.interval_s() == 2.5
    monkeypatch.setenv(train_progress.INTERVAL_ENV, "-1")
    assert train_progress.interval_s() is None
    train_progress.configure(0)
    assert train_progress.interval_s() == 0.0


def test_seconds_per_epoch_are_over_the_epochs_since_the_last_line(monkeypatch, caplog):
    clock = iter([0.0, 1.0, 2.0, 10.0, 11.0])  # start, then the end of epochs 1..4
    monkeypatch.setattr(train_progress, "time", SimpleNamespace(
        perf_counter=lambda: next(clock), time=time.time))
    train_progress.configure(5)
    caplog.set_level(logging.INFO, logger="gdepth")
    tracker = train_progress.Tracker([0, 1], 100, "val acc")
    for epoch, value in zip(range(1, 5), (0.5, 0.6, 0.7, 0.7), strict=True):
        tracker.epoch(epoch, [value, math.nan], [epoch, 0], running=1)
    tracker.close()
    # a line at epoch 3 (10 s >= 5 s): 10 s over 3 epochs; the snapshot keeps that rate
    assert _lines(caplog) == ["seeds 0–1: epoch 3/100, best val acc 0.7000 (mean; "
                              "0.7000–0.7000), 3.33 s/epoch, 1/2 running"]


def test_each_training_has_its_own_lines(graphs, caplog):
    """A seed, then a batch: each its own lines, one per epoch."""
    gs, adj = graphs
    caplog.set_level(logging.INFO, logger="gdepth")
    fit(gs[0], adj, _train_cfg(epochs=2), 0)
    fit_batched(_model(gs[0], seeds=[0, 1, 2]), gs, adj, _train_cfg(epochs=2), [0, 1, 2])
    heads = [line.split(",")[0] for line in _lines(caplog)]
    assert heads == ["seed 0: epoch 1/2", "seed 0: epoch 2/2", "seeds 0–2: epoch 1/2",
                     "seeds 0–2: epoch 2/2"]


def test_gdepth_status_shows_the_epoch_of_a_running_cell(tmp_path, monkeypatch):
    """The running marker's heartbeat copies the current progress; status words it."""
    monkeypatch.setenv(markers.HEARTBEAT_ENV, "0.05")
    with markers.running(tmp_path, "k"):
        tracker = train_progress.Tracker([0], 10, "val acc")
        tracker.epoch(2, [0.75], [2])
        path = markers.marker_path(tmp_path, "k")
        for _ in range(100):  # the heartbeat thread writes it within a beat or two
            marker = json.loads(path.read_text())
            if marker.get("progress"):
                break
            time.sleep(0.05)
        alive, detail = markers.marker_state(marker)
        tracker.close()
    assert marker["progress"]["epoch"] == 2 and marker["progress"]["epochs"] == 10
    assert alive and detail.endswith("; seed 0: epoch 2/10, best val acc 0.7500 (epoch 2), "
                                     f"{marker['progress']['epoch_s']:.3g} s/epoch")


def test_a_sgc_cell_keeps_its_key_without_the_bias_option():
    """``model.bias`` (added later) at its default leaves existing SGC records' keys alone."""
    from hydra import compose, initialize_config_dir

    from gdepth.cli import config_dir
    from gdepth.sweep import records

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["model=sgc", "depth=4"])
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    before = {**config, "model": {k: v for k, v in config["model"].items() if k != "bias"}}
    assert records.cell_key(config) == records.cell_key(before)
    assert records.cell_key({**config, "model": {**config["model"], "bias": False}}) != \
        records.cell_key(config)
    assert records.cell_key({**config, "progress_log_s": 5}) == records.cell_key(config)
