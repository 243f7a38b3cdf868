"""Training checkpoints (gdepth/sweep/checkpoint.py): a batch of seeds (one, or several) resumed
from its last checkpoint ends exactly as the uninterrupted run, bit for bit in float64, and a cell
killed with ``kill -9`` resumes where it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace

import pytest
import test_launchers
import torch
from test_faults import wait_for
from test_launchers import GDEPTH, gdepth

from gdepth import cell, config, data, graph_dropout, models, train_progress
from gdepth.engine import fit_batched
from gdepth.sweep import collect
from gdepth.sweep.checkpoint import BatchCheckpoint, CellCheckpoints

env = test_launchers.env  # the fixture: one thread, offline, a private data cache
CPU = torch.device("cpu")
FIELDS = ("status", "selected_epoch", "epochs_run", "train_acc", "val_acc", "test_acc",
          "train_loss", "val_loss")


REPORT = train_progress.Tracker.epoch  # the loop's progress report, unpatched


class Killed(Exception):
    pass


def _setup(**train_options):
    dataset = {"name": "csbm", "num_nodes": 300, "split": "random_per_class",
               "train_per_class": 20, "val_per_class": 30}
    cfg = config.typed({
        "model": {"name": "gcn_res", "hidden": 16, "dropout": 0.5, "dropout_layers": "all",
                  "activation": "relu"},
        "norm": {"name": "none"}, "dataset": dataset,
        "train": {"name": "test", "optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4,
                  "epochs": 40, "patience": None, "selection": "best_val_acc", **train_options}})
    graphs = []
    for seed in range(3):
        graph = data.load(cfg.dataset, None, seed)
        graph, adj, _ = cell.prepare(graph, cfg.dataset, CPU)
        graphs.append(graph)
    x = graphs[0].x.to_dense().double()  # float64: one shared tensor, as the cell shares it
    return cfg, [replace(g, x=x) for g in graphs], adj.double()


def _fit(cfg, graphs, adj, seeds, monkeypatch, checkpoint=None, kill_at=None, kept=None):
    """``seeds`` trained as one batch in float64; killed after epoch ``kill_at`` (an exception
    injected into the loop's progress report, after the epoch's step and scoring)."""
    model = models.build_seeded(cfg.model, cfg.norm, 3, graphs[0].num_features,
                                graphs[0].num_classes, seeds=seeds).double()
    def epoch(self, number, *args, **kwargs):
        if number == kill_at:
            raise Killed
        return REPORT(self, number, *args, **kwargs)

    monkeypatch.setattr(train_progress.Tracker, "epoch", epoch)
    train_adj = None
    if cfg.train.dropedge:
        draw = graph_dropout.sampler(graphs[0].edge_index, graphs[0].num_nodes,
                                     dropedge=float(cfg.train.dropedge))

        def train_adj():
            return draw().double()

    return fit_batched(model, graphs[:len(seeds)], adj, cfg.train, seeds, train_adj=train_adj,
                       checkpoint=checkpoint, keep_states=kept)


@pytest.mark.parametrize("seeds", [[0], [0, 1, 2]])
@pytest.mark.parametrize("options", [{}, {"grad_clip": "adaptive", "grad_clip_window": 5,
                                          "dropedge": 0.3, "selection": "min_val_loss",
                                          "patience": 6, "lr": 0.05}])
def test_a_batch_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run(
        tmp_path, monkeypatch, seeds, options):
    """Killed at epoch 25 (last checkpoint: epoch 21) and resumed: every seed's numbers and its
    kept state (diagnostics) are those of the uninterrupted run, exactly (float64)."""
    cfg, graphs, adj = _setup(**options)
    whole_kept: list = []
    whole = _fit(cfg, graphs, adj, seeds, monkeypatch, kept=whole_kept)
    ckpt = BatchCheckpoint(tmp_path / "batch.pt", every=7, seeds=seeds)
    with pytest.raises(Killed):
        _fit(cfg, graphs, adj, seeds, monkeypatch, ckpt, kill_at=25, kept=[])
    saved = ckpt.load()
    assert saved is not None and saved["epoch"] == 21 and saved["seeds"] == seeds
    torch.manual_seed(123)  # whatever the generator holds now, the checkpoint's state wins
    kept: list = []
    resumed = _fit(cfg, graphs, adj, seeds, monkeypatch, ckpt, kept=kept)
    for mine, theirs in zip(resumed, whole, strict=True):
        for field in FIELDS:
            assert getattr(mine, field) == getattr(theirs, field), field
        assert theirs.test_acc > 0.4  # a trained model, not a degenerate one
    if "patience" in options:  # the case exercises early stopping across the resume
        assert any(25 < r.epochs_run < 40 for r in whole)
    for mine, theirs in zip(kept, whole_kept, strict=True):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    if len(seeds) == 1:  # a batch of one: the seed's own timings, the resumed epochs included
        assert resumed[0].batch is None and resumed[0].wall_s > saved["wall_s"]
    else:
        assert resumed[0].batch["seeds"] == seeds


def test_without_the_saved_random_state_the_resumed_run_differs(tmp_path, monkeypatch):
    """The test above can fail: drop the generator state and the dropout masks change."""
    cfg, graphs, adj = _setup()
    whole = _fit(cfg, graphs, adj, [0, 1], monkeypatch)
    ckpt = BatchCheckpoint(tmp_path / "batch.pt", every=7, seeds=[0, 1])
    with pytest.raises(Killed):
        _fit(cfg, graphs, adj, [0, 1], monkeypatch, ckpt, kill_at=25)
    state = ckpt.load()
    state["rng"] = {"cpu": torch.manual_seed(99).get_state()}
    ckpt.save(state)
    resumed = _fit(cfg, graphs, adj, [0, 1], monkeypatch, ckpt)
    assert ([(r.train_loss, r.val_loss) for r in resumed]
            != [(r.train_loss, r.val_loss) for r in whole])


def test_a_torn_or_foreign_checkpoint_is_ignored_and_bad_settings_are_one_line(tmp_path):
    ckpt = BatchCheckpoint(tmp_path / "batch-0-0.pt", every=5, seeds=[0])
    ckpt.path.write_bytes(b"not a checkpoint")
    assert ckpt.load() is None
    BatchCheckpoint(ckpt.path, 5, [0, 1]).save({"epoch": 5})  # another batch's cut
    assert ckpt.load() is None
    with pytest.raises(ValueError, match=r"checkpoint_every=0: must be a number of epochs >= 1"):
        CellCheckpoints(tmp_path, "k", 0)
    off = CellCheckpoints(tmp_path, "k", None)
    assert off.batch([0]) is None and off.finished(0) is None
    on = CellCheckpoints(tmp_path, "k", 5)
    on.batch([2, 3]).save({"epoch": 5})
    on.batch([4]).save({"epoch": 5})
    on.clear([2, 3])  # the batch of seeds 2-3 goes, seed 4's stays
    assert [p.name for p in on.folder.iterdir()] == ["batch-4-4.pt"]


@pytest.mark.slow  # two real CLI runs of a few hundred epochs (~1 min on 2 cores)
def test_kill_9_of_a_running_cell_then_the_same_command_resumes_mid_training(env, tmp_path):
    args = ["run", "name=c", "model=gcn_res", "depth=4", "seeds=2", "engine=loop",
            "train.epochs=400", "train.patience=null", "dataset.num_nodes=300",
            "checkpoint_every=20", "progress=false"]
    clean = gdepth([*args, "checkpoint_every=null", "out_dir=clean"], env, tmp_path)
    assert clean.returncode == 0, clean.stderr[-3000:]
    folder = tmp_path / "outputs/runs/c"
    proc = subprocess.Popen([*GDEPTH, *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def seed1_checkpointed() -> bool:  # seed 0 finished, seed 1 past its first checkpoint
        return bool(list(folder.glob("checkpoints/*/seed-0.done.json"))
                    and list(folder.glob("checkpoints/*/batch-1-1.pt")))

    wait_for(seed1_checkpointed, timeout=300, every=0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(folder.glob("records/*.json"))  # nothing was written for the cell
    time.sleep(0.2)
    again = gdepth(args, env, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "seed 0: kept its result from before the restart" in again.stderr
    assert "seeds [1] resume from their checkpoint at epoch" in again.stderr
    (record,) = collect.load(folder)
    (reference,) = collect.load(tmp_path / "clean/runs/c")
    assert record["status"] == "ok" and record["key"] == reference["key"]
    for mine, theirs in zip(record["seeds"], reference["seeds"], strict=True):
        for field in FIELDS:
            assert mine[field] == theirs[field], field
    assert not (folder / "checkpoints").exists()  # removed with the record written
    assert json.loads(json.dumps(record["summary"]))["test_acc"]["n"] == 2
