"""The cell's ``engine`` key: the one training loop, seeds in batches (``engine=batched``) or in
batches of one (``engine=loop``, or where the cell cannot batch).

Runs real cells (``cell.run_cell``) on the embedded CSBM graph (1000 nodes, 4 classes: chance is
0.25), composed through Hydra with the typed schema, a few epochs each.
"""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gdepth import cell, engine
from gdepth.cli import config_dir
from gdepth.sweep import collect, plan, records

torch.set_num_threads(1)
CHANCE = 0.25


def composed(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=["name=t", "progress=false", "threads=1",
                                            "model=gcn_res", *overrides])


def run(tmp_path, *overrides: str) -> dict:
    return cell.run_cell(composed(*overrides), tmp_path)


def test_default_engine_is_auto_and_a_bad_name_fails_at_compose_time():
    assert composed().engine == "auto"
    with pytest.raises(Exception, match="engine"):
        composed("engine=fast")


def test_auto_batches_gcn_res_and_reports_every_seed(tmp_path):
    record = run(tmp_path, "depth=2", "seeds=3", "train.epochs=20")
    assert record["status"] == "ok", record["error"]
    assert record["engine"] == {"requested": "auto", "used": "batched", "reason": None,
                                "adjacency": "sparse",  # auto on CPU
                                "seeds_per_batch": 3}  # they fit in memory
    assert [s["seed"] for s in record["seeds"]] == [0, 1, 2]
    assert all(s["status"] == "ok" and s["test_acc"] > CHANCE + 0.1 for s in record["seeds"])
    assert record["summary"]["test_acc"]["n"] == 3
    assert record["params"] > 0 and record["features"].startswith("dense")
    # what is on disk is what came back, and the report reads it (results.csv, table)
    on_disk = records.read(records.record_path(tmp_path, record["key"]))
    assert on_disk["engine"] == record["engine"]
    frame = records.to_frame(collect.load(tmp_path))
    assert len(frame) == 3 and frame["test_acc"].notna().all()


def test_dense_adjacency_trains_the_same_seeds_and_is_recorded(tmp_path):
    """adjacency=dense: the batched engine propagates with a dense matrix, the record says
    so, the cell key is the sparse run's, and the seeds' results agree (same masks: the
    generator is seeded the same; only the summation order differs)."""
    sparse = run(tmp_path / "s", "depth=4", "seeds=2", "train.epochs=15")
    dense = run(tmp_path / "d", "depth=4", "seeds=2", "train.epochs=15", "adjacency=dense")
    assert dense["status"] == "ok", dense["error"]
    assert dense["engine"]["adjacency"] == "dense" and dense["key"] == sparse["key"]
    # The same algorithm is checked to 1e-10 in float64 by tests/test_engine.py (step by step
    # and whole fits, adjacency=dense); here the cell's plumbing, in float32 over 15 epochs,
    # where only the summation order of Â Z differs: a relative 1e-4 (~800 eps32) tolerates
    # that drift on any CPU (measured: 0 on the 2-core dev CPU), and another graph, seed or
    # split would move the loss by far more (> 1e-2).
    for a, b in zip(sparse["seeds"], dense["seeds"], strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4 * max(1.0, a["train_loss"]), (
            a, b)
    with pytest.raises(Exception, match="adjacency"):
        composed("adjacency=csr")


def test_loop_engine_runs_the_seed_loop(tmp_path):
    record = run(tmp_path, "engine=loop", "seeds=2", "train.epochs=5")
    assert record["status"] == "ok", record["error"]
    assert record["engine"] == {"requested": "loop", "used": "loop", "reason": "engine=loop",
                                "adjacency": "sparse", "seeds_per_batch": 1}
    assert len(record["seeds"]) == 2
    # a batch of one reports the seed's own timings, no batch entry
    assert all(s["wall_s"] > 0 and s["epoch_s"] > 0 and "batch" not in s
               for s in record["seeds"])


@pytest.mark.parametrize("kind", ["smoothing", "influence"])
def test_diagnostics_batch_and_measure_each_seed(tmp_path, kind):
    """diagnostics=smoothing|influence no longer need the loop: the seeds train in one batch,
    each seed's model at its selected epoch is measured (a one-seed slice of the batch)."""
    extra = (("diagnostics.max_nodes=64",) if kind == "smoothing"
             else ("diagnostics.samples=4", "diagnostics.hops=2"))
    record = run(tmp_path, f"diagnostics={kind}", *extra, "seeds=2", "train.epochs=3")
    assert record["status"] == "ok", record["error"]
    assert record["engine"]["used"] == "batched" and record["engine"]["seeds_per_batch"] == 2
    found = record["diagnostics"]
    assert found["kind"] == kind and [s["seed"] for s in found["seeds"]] == [0, 1]
    key = "dirichlet_last" if kind == "smoothing" else "receptive_field"
    assert all(key in s for s in record["seeds"])
    if kind == "smoothing":  # the seeds' own initial weights: different profiles
        assert found["seeds"][0]["init"] != found["seeds"][1]["init"]


def test_batched_trains_every_model_and_fails_only_what_cannot_batch(tmp_path):
    """engine=batched runs any model (a model not written seed-native runs per seed inside the
    batch, gdepth.nn.seeds.SeedStack); the tree task cannot batch and fails with its reason."""
    record = run(tmp_path / "gat", "engine=batched", "model=gat", "seeds=2", "train.epochs=2")
    assert record["status"] == "ok", record["error"]
    assert record["engine"]["used"] == "batched" and record["engine"]["seeds_per_batch"] == 2
    trees = run(tmp_path / "trees", "engine=batched", "dataset=tree_match", "model=bottleneck",
                "seeds=1", "train.epochs=1")
    assert trees["status"] == "failed"
    assert trees["error"].startswith("ValueError: engine=batched cannot run this cell: "
                                      "dataset tree_match")
    assert "\n" not in trees["error"] and "loop" in trees["error"]
    assert trees["engine"] == {"requested": "batched", "used": None,
                               "reason": trees["engine"]["reason"]}
    assert trees["seeds"] == []
    # the failed record is on disk (status failed), so a resume runs the cell again
    assert records.read(records.record_path(tmp_path / "trees", trees["key"]))["status"] == (
        "failed")


def test_engine_is_not_part_of_the_cell_identity(tmp_path):
    loop, auto = composed("engine=loop", "seeds=2", "train.epochs=3"), composed("seeds=2",
                                                                              "train.epochs=3")
    key = plan.cell_identity(loop)[0]
    assert plan.cell_identity(auto)[0] == key
    # a config from before the key existed (no `engine`) has the same key: old records resume
    config = OmegaConf.to_container(auto, resolve=True, enum_to_str=True)
    del config["engine"]
    assert records.cell_key(config) == key
    first = cell.run_cell(loop, tmp_path)
    assert first["key"] == key and first["engine"]["used"] == "loop"
    again = cell.run_cell(auto, tmp_path)  # the same cell: its ok record is found, not rerun
    assert again == first


def test_batched_and_loop_without_dropout_agree_per_seed(tmp_path):
    """model.dropout=0: nothing random after the initial weights (the same per seed in any
    batch), so each seed's numbers do not depend on its batch: engine=batched (one batch of
    3) and engine=loop (3 batches of one) agree per seed. float32 over 12 epochs, only the
    kernels' blocking changing with the batch width: 1e-5 relative is ~80 eps32 (measured: at
    most a few ulp)."""
    common = ("depth=3", "seeds=3", "train.epochs=12", "model.dropout=0", "norm=nodenorm")
    batched = run(tmp_path / "b", "engine=batched", *common)
    loop = run(tmp_path / "l", "engine=loop", *common)
    assert batched["engine"]["seeds_per_batch"] == 3 and loop["engine"]["seeds_per_batch"] == 1
    for a, b in zip(batched["seeds"], loop["seeds"], strict=True):
        assert a["seed"] == b["seed"] and a["selected_epoch"] == b["selected_epoch"], (a, b)
        for key in ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss"):
            assert abs(a[key] - b[key]) <= 1e-5 * max(1.0, abs(a[key])), (key, a, b)
    assert batched["params"] == loop["params"]


def test_batched_and_loop_agree_in_distribution(tmp_path):
    """Different dropout masks, same splits and initial weights: the means must agree."""
    common = ("depth=2", "seeds=5", "train.epochs=50")
    batched = run(tmp_path / "b", "engine=batched", *common)
    loop = run(tmp_path / "l", "engine=loop", *common)
    assert batched["engine"]["used"] == "batched" and loop["engine"]["used"] == "loop"
    assert [s["split"] for s in batched["seeds"]] == [s["split"] for s in loop["seeds"]]
    accs = {name: [s["test_acc"] for s in r["seeds"]] for name, r in
            (("batched", batched), ("loop", loop))}
    means = {name: sum(a) / len(a) for name, a in accs.items()}
    assert min(means.values()) > CHANCE + 0.15, means  # both learned: ~0.5 on this graph
    assert abs(means["batched"] - means["loop"]) < 0.05, accs
    assert batched["params"] == loop["params"]


def test_seeds_with_their_own_features_train_in_batches_of_one(tmp_path, monkeypatch):
    """Seeds whose graphs do not share the features cannot share a batch: batches of one,
    the record says why; engine=batched fails the cell with that reason."""
    from dataclasses import replace

    real = cell.graphs.prepare

    def own_features(graph, dataset_cfg, device):
        moved, adj, kind = real(graph, dataset_cfg, device)
        return replace(moved, x=moved.x.clone()), adj, kind

    monkeypatch.setattr(cell.graphs, "prepare", own_features)
    record = run(tmp_path / "auto", "seeds=2", "train.epochs=3")
    assert record["status"] == "ok", record["error"]
    assert record["engine"] == {"requested": "auto", "used": "loop",
                                "reason": engine.OWN_INPUTS, "adjacency": "sparse",
                                "seeds_per_batch": 1}
    assert len(record["seeds"]) == 2
    record = run(tmp_path / "batched", "engine=batched", "seeds=2", "train.epochs=3")
    assert record["status"] == "failed" and engine.OWN_INPUTS in record["error"]


def test_seeds_per_batch_trains_the_seeds_in_batches_with_the_same_numbers(tmp_path):
    """seeds_per_batch=2 trains 3 seeds as batches of 2 and 1; without dropout each seed's
    training does not depend on its batch, so every seed's numbers are those of one batch of 3.
    A bad value fails the cell with a one-line error naming it."""
    common = ("depth=3", "seeds=3", "train.epochs=12", "model.dropout=0")
    whole = run(tmp_path / "whole", *common)
    split = run(tmp_path / "split", *common, "seeds_per_batch=2")
    assert split["status"] == "ok", split["error"]
    assert whole["engine"]["seeds_per_batch"] == 3 and split["engine"]["seeds_per_batch"] == 2
    assert split["key"] == whole["key"]  # not part of the identity
    # each seed's products are its own columns / batch entries: only the kernels' blocking
    # can change with the batch width, a few eps32 per epoch (measured: at most 1 ulp, 1.2e-7,
    # over 12 epochs); 1e-5 relative is ~80 eps32.
    for a, b in zip(whole["seeds"], split["seeds"], strict=True):
        assert a["seed"] == b["seed"] and a["test_acc"] == b["test_acc"]
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5 * max(1.0, a["train_loss"]), (
            a, b)
    bad = run(tmp_path / "bad", *common, "seeds_per_batch=0")
    assert bad["status"] == "failed" and "seeds_per_batch=0" in bad["error"]


def test_dropedge_cells_batch_per_seed_or_with_a_shared_graph(tmp_path):
    """train.dropedge: the batched engine trains each seed alone with its own draws (as the
    loop), unless train.shared_graph_dropout=true opts in to one draw per epoch for the batch;
    the option is part of the cell's identity (the seeds' draws are correlated)."""
    common = ("depth=2", "seeds=3", "train.epochs=15", "train.dropedge=0.3")
    alone = run(tmp_path / "alone", *common)
    assert alone["status"] == "ok", alone["error"]
    assert alone["engine"]["used"] == "batched"
    assert alone["engine"]["graph_dropout"] == "per seed"
    assert alone["engine"]["seeds_per_batch"] == 1
    shared = run(tmp_path / "shared", *common, "train.shared_graph_dropout=true")
    assert shared["status"] == "ok", shared["error"]
    assert shared["engine"]["graph_dropout"] == "shared"
    assert shared["engine"]["seeds_per_batch"] == 3 and shared["key"] != alone["key"]
    assert shared["config"]["train"]["shared_graph_dropout"] is True
    for record in (alone, shared):
        assert all(s["test_acc"] > CHANCE + 0.1 for s in record["seeds"])
    looped = run(tmp_path / "loop", *common, "engine=loop")
    assert looped["key"] == alone["key"]
    mean = [r["summary"]["test_acc"]["mean"] for r in (alone, looped)]
    assert abs(mean[0] - mean[1]) < 0.1  # other draws only
    plain = run(tmp_path / "plain", "depth=2", "seeds=3", "train.epochs=15")
    off = run(tmp_path / "off", "depth=2", "seeds=3", "train.epochs=15",
              "train.shared_graph_dropout=false")
    assert off["key"] == plain["key"]  # the default leaves earlier records' keys alone
    assert "graph_dropout" not in plain["engine"]


def test_a_batched_cell_killed_between_batches_keeps_its_finished_batches(tmp_path,
                                                                           monkeypatch):
    """Batches of one seed (DropEdge): the second batch dies; the first seed's result is kept
    in the cell's checkpoint folder, and the re-run trains only seeds 1 and 2, reporting seed
    0's kept numbers exactly."""
    common = ("depth=2", "seeds=3", "train.epochs=10", "train.dropedge=0.3")
    real, calls = engine.fit_batched, []

    def dying(*args, **kw):
        calls.append(list(args[4]))
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(*args, **kw)

    monkeypatch.setattr(engine, "fit_batched", dying)
    first = run(tmp_path, *common)
    assert first["status"] == "failed" and "killed" in first["error"]
    monkeypatch.setattr(engine, "fit_batched", lambda *a, **kw: calls.append(list(a[4]))
                        or real(*a, **kw))
    second = run(tmp_path, *common)
    assert second["status"] == "ok", second["error"]
    assert calls == [[0], [1], [1], [2]]  # seed 0 is not trained again
    assert [s["seed"] for s in second["seeds"]] == [0, 1, 2]
    kept = second["seeds"][0]
    assert kept["status"] == "ok" and kept["test_acc"] > CHANCE + 0.1
    assert second["engine"]["used"] == "batched" and second["params"] > 0
    assert not (tmp_path / "checkpoints").exists()  # cleared once the record is written


def test_a_seed_job_from_seed_2_batches_exactly_its_seeds(tmp_path):
    """seeds_per_job: the part seeds 2-3 trains seeds 2 and 3 (initial weights and splits of
    those seeds) in one batch; seed 2's split is the whole cell's seed 2 split."""
    part = run(tmp_path / "part", "depth=2", "seeds=4", "seed_range=[2,4]", "train.epochs=20")
    assert part["status"] == "ok", part["error"]
    assert part["engine"]["used"] == "batched" and part["seed_range"] == [2, 4]
    assert [s["seed"] for s in part["seeds"]] == [2, 3]
    whole = run(tmp_path / "whole", "depth=2", "seeds=4", "train.epochs=20")
    assert [s["split"] for s in part["seeds"]] == [s["split"] for s in whole["seeds"][2:]]
    assert all(s["test_acc"] > CHANCE + 0.1 for s in part["seeds"])


def test_activation_checkpointing_batches_with_the_same_numbers(tmp_path):
    args = ("depth=6", "seeds=2", "train.epochs=8", "norm=nodenorm")
    plain = run(tmp_path / "plain", *args)
    saved = run(tmp_path / "ckpt", "activation_checkpointing=true", *args)
    assert plain["status"] == saved["status"] == "ok", saved["error"]
    assert saved["engine"]["used"] == "batched" and saved["engine"]["reason"] is None
    assert saved["key"] == plain["key"]  # a memory setting, not part of what the cell computes
    fields = ("selected_epoch", "train_acc", "val_acc", "test_acc", "train_loss", "val_loss")
    assert ([[s[f] for f in fields] for s in saved["seeds"]]
            == [[s[f] for f in fields] for s in plain["seeds"]])


def test_activation_checkpointing_refuses_what_it_cannot_recompute(tmp_path):
    bn = run(tmp_path / "bn", "activation_checkpointing=true", "norm=batchnorm", "seeds=1",
             "train.epochs=2")
    assert bn["status"] == "failed"
    assert "norm BatchNorm: " in bn["error"] and "running statistics twice" in bn["error"]
    group = run(tmp_path / "group", "activation_checkpointing=true", "norm=groupnorm", "seeds=1",
                "train.epochs=2")  # DiffGroupNorm's inner BatchNorm1d keeps them too
    assert group["status"] == "failed" and "norm DiffGroupNorm: " in group["error"]
    gat = run(tmp_path / "gat", "activation_checkpointing=true", "model=gat", "seeds=1",
              "train.epochs=2")
    assert gat["status"] == "failed" and "models that do: gcn, gcn_res" in gat["error"]


def test_a_cell_batches_its_seeds_beside_what_its_model_caches(tmp_path, monkeypatch):
    """A cell asks its probe model what it will cache (SGC: Â^K X, N·F floats) and sizes the
    seed batches in the memory left: room for 2.5 seeds beside the cache gives batches of 2."""
    from gdepth.engine import memory

    seen: list[int] = []
    real = memory.shared_bytes

    def spy(*args):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(memory, "shared_bytes", spy)
    monkeypatch.setattr(memory, "seed_bytes", lambda *args: seen[-1] // 10)
    monkeypatch.setattr(memory, "available_bytes", lambda device: seen[-1] + int(
        2.5 * (seen[-1] // 10) / memory.BUDGET_SHARE))
    record = run(tmp_path, "model=sgc", "engine=batched", "seeds=5", "train.epochs=2")
    assert record["status"] == "ok", record["error"]
    graph = record["config"]["dataset"]  # csbm: dense features
    assert seen and seen[-1] == graph["num_nodes"] * graph["num_features"] * 4
    assert record["engine"]["seeds_per_batch"] == 2
    assert [s["seed"] for s in record["seeds"]] == [0, 1, 2, 3, 4]
