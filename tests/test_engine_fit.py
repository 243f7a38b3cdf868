"""gdepth.engine.fit: what a seed batch records of its timings (measured, not apportioned), and
row-wise models (SGC) scored on the rows their loss and metrics read, with the same numbers."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir

from gdepth import cell, config, data, models, report
from gdepth.cli import config_dir
from gdepth.engine import fit as engine_fit
from gdepth.engine import fit_batched
from gdepth.models import sgc
from gdepth.models.adjacency import normalized_adjacency
from gdepth.nn.kernels import StackedInput
from gdepth.nn.propagation import Propagation
from gdepth.sweep import collect, records

torch.set_num_threads(1)
SEEDS = 3
TOL64 = 1e-10  # float64: the same function summed over other rows (tests/test_engine.py)


@pytest.fixture(scope="module")
def graphs():
    """CSBM, one split per seed, some nodes in no mask (so scored rows < N)."""
    cfg = config.group("dataset", name="csbm", split="random_per_class", num_nodes=200,
                       num_classes=3, avg_degree=6.0, homophily=0.8, snr=1.0, num_features=40,
                       graph_seed=0)
    loaded = [data.load(cfg, None, s) for s in range(SEEDS)]
    kept, x = torch.arange(200) < 170, loaded[0].x.double()  # nodes 170.. in no mask
    gs = [replace(g, x=x, **{f"{k}_mask": getattr(g, f"{k}_mask") & kept
                             for k in ("train", "val", "test")}) for g in loaded]
    return gs, normalized_adjacency(loaded[0].edge_index, 200).double()


def _train_cfg(**kw):
    return config.make(config.TrainConfig, {
        "name": "test", "optimizer": "adam", "lr": 0.05, "weight_decay": 5e-4, "epochs": 30,
        "patience": None, "selection": "best_val_acc", **kw})


def _seeded(graph, name="sgc", seeds=tuple(range(SEEDS)), **model_kw):
    """The seed-native model of ``seeds`` (gdepth.models.build_seeded), float64."""
    return models.build_seeded(config.group("model", {"name": name, "hidden": 8, **model_kw}),
                               config.norm("none"), 3, graph.num_features,
                               graph.num_classes, seeds=list(seeds)).double()


def test_a_batch_records_its_measured_wall_time_and_epochs(graphs, monkeypatch):
    """Issue 22: the batch's wall time is the one measured (a fake clock: 12.5 s), its epochs
    those it ran; per seed only the epochs it ran (ints), no apportioned seconds."""
    gs, adj = graphs
    clock = iter([100.0, 112.5])
    monkeypatch.setattr(engine_fit, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    cfg = _train_cfg(selection="min_val_loss", patience=3, epochs=200)
    results = fit_batched(_seeded(gs[0], "gcn", [4, 5, 6]), gs, adj, cfg, [4, 5, 6])
    runs = [r.epochs_run for r in results]
    assert all(type(e) is int for e in runs) and len(set(runs)) > 1  # seeds stopped apart
    batch = {"seeds": [4, 5, 6], "epochs": max(runs), "wall_s": 12.5,
             "epoch_s": 12.5 / max(runs)}
    assert [r.batch for r in results] == [batch] * SEEDS
    assert all(math.isnan(r.wall_s) and math.isnan(r.epoch_s) for r in results)
    assert results[0].as_dict()["batch"] == batch
    monkeypatch.undo()  # the real clock
    (alone,) = fit_batched(_seeded(gs[0], "gcn", [0]), gs[:1], adj, _train_cfg(epochs=3), [0])
    assert "batch" not in alone.as_dict() and alone.epoch_s > 0  # a batch of one: its own
    assert alone.wall_s == pytest.approx(3 * alone.epoch_s)


def test_a_batched_cells_record_and_report_carry_the_batch(tmp_path):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["name=t", "progress=false", "threads=1",
                                           "model=gcn_res", "seeds=4", "train.epochs=5",
                                           "seeds_per_batch=2"])
    record = cell.run_cell(cfg, tmp_path)
    assert record["status"] == "ok" and record["engine"]["used"] == "batched"
    batches = [s["batch"] for s in record["seeds"]]
    assert [b["seeds"] for b in batches] == [[0, 1], [0, 1], [2, 3], [2, 3]]
    assert all(b["epochs"] == 5 and 0 < b["wall_s"] < record["wall_s"] for b in batches)
    assert sum(b["wall_s"] for b in (batches[0], batches[2])) < record["wall_s"]
    assert all(s["epochs_run"] == 5 and math.isnan(s["wall_s"]) for s in record["seeds"])
    assert record["summary"]["test_acc"]["n"] == 4  # summarize reads the seeds as before
    table, _ = report.write_report(tmp_path, "batch_epoch_s")
    assert table.iloc[0, 0].endswith("(4)")
    table, _ = report.write_report(tmp_path, "epoch_s")  # not measured per seed: no number
    assert table.iloc[0, 0] == "ok"
    frame = report.batch_columns(records.to_frame(collect.load(tmp_path)))
    assert list(frame["batch_seeds"]) == ["[0, 1]", "[0, 1]", "[2, 3]", "[2, 3]"]
    assert "batch" not in frame and (frame["batch_epochs"] == 5).all()


def test_sgc_is_scored_on_the_rows_its_loss_and_metrics_read(graphs, float64):
    """Issue 22: a row-wise model (``rowwise = True``) is asked for the training rows' logits
    in the training step and for the scored rows' in the evaluation (not all N); the seeds
    report what every-row scoring reports, to float64 rounding. With dropout where the model
    takes injected masks (``mask_fn``, the same masks drawn for all N rows), else without."""
    gs, adj = graphs
    train_rows = int(torch.stack([g.train_mask for g in gs], 1).any(1).sum())
    scored = int(torch.stack([g.train_mask | g.val_mask | g.test_mask for g in gs], 1)
                 .any(1).sum())
    assert train_rows < scored < 200
    native = hasattr(_seeded(gs[0]), "mask_fn")
    got, asked = {}, {}
    for rowwise in (True, False):
        model = _seeded(gs[0], dropout=0.5 if native else 0.0)
        model.rowwise = rowwise
        calls = asked[rowwise] = []
        forward = model.forward

        def spy(x_in, adj, rows=None, forward=forward, calls=calls, model=model):
            calls.append((model.training, None if rows is None else len(rows)))
            return forward(x_in, adj, rows) if rows is not None else forward(x_in, adj)

        model.forward = spy
        if native:
            gen = torch.Generator().manual_seed(0)
            model.mask_fn = lambda shape, p, g=gen: (
                torch.rand((SEEDS, *shape), generator=g) >= p).double() / (1 - p)
        got[rowwise] = fit_batched(model, gs, adj, _train_cfg(l1_weight=1e-3), [0, 1, 2])
    assert set(asked[True]) == {(True, train_rows), (False, scored)}
    assert set(asked[False]) == {(True, None), (False, None)}
    for a, b in zip(got[True], got[False], strict=True):
        assert (a.selected_epoch, a.epochs_run) == (b.selected_epoch, b.epochs_run)
        for key in ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss"):
            assert abs(getattr(a, key) - getattr(b, key)) <= TOL64, key


def test_propagation_by_bags_equals_sparse_products(graphs):
    gs, adj = graphs
    x = gs[0].x
    by_products = x
    for _ in range(6):
        by_products = torch.sparse.mm(adj, by_products)
    torch.testing.assert_close(sgc.propagate_features(x, adj, 6), by_products,
                               atol=1e-12, rtol=0)
    with_grad = sgc.propagate_features(x.clone().requires_grad_(), adj, 6)  # autograd path
    torch.testing.assert_close(with_grad.detach(), by_products, atol=1e-12, rtol=0)


def test_sgc_without_bias_batches_without_bias(graphs, float64):
    """model.bias=false: no bias in the seed-native model (its parameters: one [40, 3] weight
    per seed), each seed's logits those of its one-seed model, and it trains."""
    gs, adj = graphs
    stacked = _seeded(gs[0], bias=False)
    assert models.count_parameters(stacked) == SEEDS * 40 * 3
    out = stacked.eval()(StackedInput(gs[0].x), Propagation(adj))
    for s in range(SEEDS):
        alone = _seeded(gs[0], seeds=[s], bias=False).eval()
        torch.testing.assert_close(out[:, s], alone(StackedInput(gs[0].x), Propagation(adj))[:, 0],
                                   atol=1e-12, rtol=0)
    results = fit_batched(stacked, gs, adj, _train_cfg(epochs=5), [0, 1, 2])
    assert all(r.status == "ok" for r in results)


def test_the_monitor_sees_each_seeds_selected_validation_accuracy_not_the_test(graphs):
    """A search's pruner (gdepth/search/prune.py) reads, after every epoch, each seed's
    validation accuracy at its selected epoch so far: never decreasing under best-validation
    selection, at the last epoch exactly what the seed reports, and blind to the test labels."""
    gs, adj = graphs

    def run(batch):
        seen: list[tuple[int, dict[int, float]]] = []
        results = fit_batched(_seeded(gs[0], "gcn", [3, 4, 5]), batch, adj,
                              _train_cfg(epochs=15), [3, 4, 5],
                              monitor=lambda epoch, values: seen.append((epoch, dict(values))))
        return seen, results

    seen, results = run(gs)
    assert [epoch for epoch, _ in seen] == list(range(1, 16))
    assert seen[-1][1] == {r.seed: r.val_acc for r in results}  # the same numbers, exactly
    for seed in (3, 4, 5):
        curve = [values[seed] for _, values in seen]
        assert curve == sorted(curve) and len(set(curve)) > 1
    # other labels on the nodes no seed trains or validates on: other test accuracies, the
    # same values seen (the labels are shared by the seeds, the splits are not)
    seen_by_fit = torch.stack([g.train_mask | g.val_mask for g in gs]).any(dim=0)
    y = torch.where(seen_by_fit, gs[0].y, (gs[0].y + 1) % 3)
    flipped = [replace(g, y=y) for g in gs]
    again, moved = run(flipped)
    assert again == seen
    assert [r.test_acc for r in moved] != [r.test_acc for r in results]
