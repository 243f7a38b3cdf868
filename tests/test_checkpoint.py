"""Training checkpoints (gdepth/checkpoint.py): a seed resumed from its last checkpoint ends
exactly as the uninterrupted run, and a cell killed with ``kill -9`` resumes where it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import test_launchers
import torch
from omegaconf import OmegaConf
from test_faults import wait_for
from test_launchers import GDEPTH, gdepth

from gdepth import cell, collect, data, models, train
from gdepth.checkpoint import CellCheckpoints, SeedCheckpoint

env = test_launchers.env  # the fixture: one thread, offline, a private data cache
CPU = torch.device("cpu")
FIELDS = ("status", "selected_epoch", "epochs_run", "train_acc", "val_acc", "test_acc",
          "train_loss", "val_loss")


class Killed(Exception):
    pass


def _setup(**train_options):
    dataset = {"name": "csbm", "num_nodes": 300, "split": "random_per_class",
               "train_per_class": 20, "val_per_class": 30}
    cfg = OmegaConf.create({
        "model": {"name": "gcn_res", "hidden": 16, "dropout": 0.5, "dropout_layers": "all",
                  "activation": "relu"},
        "norm": {"name": "none"},
        "train": {"optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "epochs": 40,
                  "patience": None, "selection": "best_val_acc", **train_options}})
    graph = data.load(OmegaConf.create(dataset), OmegaConf.create({"root": None, "mirror": None}),
                      0)
    graph, adj, _ = cell.prepare(graph, dataset, CPU)
    return cfg, graph, adj


def _fit(cfg, graph, adj, checkpoint=None, kill_at=None):
    torch.manual_seed(0)
    model = models.build(cfg.model, cfg.norm, 3, graph.num_features, graph.num_classes)

    def on_epoch(epoch: int) -> None:
        if epoch == kill_at:
            raise Killed

    train_adj = None
    if cfg.train.get("dropedge"):
        from gdepth import graph_dropout

        train_adj = graph_dropout.sampler(graph.edge_index, graph.num_nodes,
                                          dropedge=float(cfg.train.dropedge))
    return train.fit(model, graph, adj, cfg.train, 0, on_epoch=on_epoch, train_adj=train_adj,
                     checkpoint=checkpoint)


@pytest.mark.parametrize("options", [{}, {"grad_clip": "adaptive", "grad_clip_window": 5,
                                          "dropedge": 0.3}])
def test_a_seed_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run(tmp_path, options):
    cfg, graph, adj = _setup(**options)
    whole = _fit(cfg, graph, adj)
    ckpt = SeedCheckpoint(tmp_path / "seed-0.pt", every=7)
    with pytest.raises(Killed):  # dies at epoch 25: the last checkpoint is epoch 21
        _fit(cfg, graph, adj, ckpt, kill_at=25)
    saved = ckpt.load()
    assert saved is not None and saved["epoch"] == 21
    torch.manual_seed(123)  # whatever the generator holds now, the checkpoint's state wins
    resumed = _fit(cfg, graph, adj, ckpt)
    assert resumed.epochs_run == 40
    for field in FIELDS:
        assert getattr(resumed, field) == getattr(whole, field), field
    assert whole.test_acc > 0.4  # a trained model, not a degenerate one


def test_without_the_saved_random_state_the_resumed_run_differs(tmp_path):
    """The test above can fail: drop the generator state and the dropout masks change."""
    cfg, graph, adj = _setup()
    whole = _fit(cfg, graph, adj)
    ckpt = SeedCheckpoint(tmp_path / "seed-0.pt", every=7)
    with pytest.raises(Killed):
        _fit(cfg, graph, adj, ckpt, kill_at=25)
    state = ckpt.load()
    state["rng"] = {"cpu": torch.manual_seed(99).get_state()}
    ckpt.save(state)
    resumed = _fit(cfg, graph, adj, ckpt)
    assert (resumed.train_loss, resumed.val_loss) != (whole.train_loss, whole.val_loss)


def test_a_torn_checkpoint_is_ignored_and_bad_settings_are_one_line(tmp_path):
    ckpt = SeedCheckpoint(tmp_path / "seed-0.pt", every=5)
    ckpt.path.write_bytes(b"not a checkpoint")
    assert ckpt.load() is None
    with pytest.raises(ValueError, match=r"checkpoint_every=0: must be a number of epochs >= 1"):
        CellCheckpoints(tmp_path, "k", 0)
    off = CellCheckpoints(tmp_path, "k", None)
    assert off.seed(0) is None and off.finished(0) is None


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
                    and list(folder.glob("checkpoints/*/seed-1.pt")))

    wait_for(seed1_checkpointed, timeout=300, every=0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(folder.glob("records/*.json"))  # nothing was written for the cell
    time.sleep(0.2)
    again = gdepth(args, env, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "seed 0: kept its result from before the restart" in again.stderr
    assert "seed 1 resumes from its checkpoint at epoch" in again.stderr
    (record,) = collect.load(folder)
    (reference,) = collect.load(tmp_path / "clean/runs/c")
    assert record["status"] == "ok" and record["key"] == reference["key"]
    for mine, theirs in zip(record["seeds"], reference["seeds"], strict=True):
        for field in FIELDS:
            assert mine[field] == theirs[field], field
    assert not (folder / "checkpoints").exists()  # removed with the record written
    assert json.loads(json.dumps(record["summary"]))["test_acc"]["n"] == 2
