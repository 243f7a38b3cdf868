"""Checkpoints of the tree task's training (gdepth/train_trees.py, gdepth/sweep/checkpoint.py): a
seed killed mid-training and resumed from its last checkpoint ends exactly as the uninterrupted
run (the same ops on the same numbers in the same order: equal, not close), and the cell's
trainer saves and clears it."""

from __future__ import annotations

import json

import pytest
import torch
from test_bottleneck_trees import build, trees

from gdepth import config, train_trees, tree_batch
from gdepth.sweep.checkpoint import BatchCheckpoint, CellCheckpoints

torch.set_num_threads(1)
EPOCHS = 8


class Killed(Exception):
    pass


def _cfg():
    # plateau patience 1 and min_delta: the scheduler halves the lr and the selector skips
    # epochs within the run, so their saved states matter
    return config.make(config.TrainConfig, name="t", selection="best_val_acc",
                       lr_schedule="plateau", lr_patience=1, optimizer="adam", lr=0.01,
                       weight_decay=0.0, epochs=EPOCHS, patience=None, min_delta=0.005)


def _fit(conv, g, checkpoint=None, kill_after=None, kept=None, lrs=None, **keys):
    model = build(conv, 3, g, **keys)

    def on_epoch(epoch):
        if lrs is not None:
            lrs.append(epoch)
        if epoch == kill_after:
            raise Killed

    result = train_trees.fit_trees(model, g, g.adj, _cfg(), 7, tree_batch.Batching(16, 2, 2),
                                   on_epoch=on_epoch, keep_state=kept, checkpoint=checkpoint)
    assert (train_trees.tree_levels.fast_forward(model, g, g.adj, tree_batch.tree_ptr(g))[0]
            is None) == bool(keys)  # dropout: PyG's message passing, torch's generator
    return result, model


@pytest.mark.parametrize(("conv", "keys"), [("gcn", {}), ("gin", {}), ("gcn", {"dropout": 0.3})])
def test_a_seed_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run(conv, keys, tmp_path):
    """Killed in epoch 8 (after its step; last checkpoint: epoch 6) and resumed: the same
    result, the same final weights and the same kept (selected) state, exactly. Every part of
    the saved state matters to some run: the scheduler halves the lr after a bad epoch, the
    selector decides ties with the best before the kill, dropout draws from torch's generator,
    and the tree order from its own (``test_the_test_above_can_fail_...``)."""
    g = trees(2)
    whole_kept: dict = {}
    whole, whole_model = _fit(conv, g, kept=whole_kept, **keys)
    ckpt = BatchCheckpoint(tmp_path / "trees-7.pt", every=3, seeds=[7])
    with pytest.raises(Killed):
        _fit(conv, g, ckpt, kill_after=8, kept={}, **keys)
    saved = ckpt.load()
    assert saved is not None and saved["epoch"] == 6 and saved["seeds"] == [7]
    # its progress: epoch 6 of 2 passes each, the selection so far, a lower bound of the
    # record's train accuracy (the selection only ever moves to a higher one)
    progress = json.loads(ckpt.progress_path.read_text())
    assert (progress["epoch"], progress["passes"], progress["seeds"]) == (6, 12, [7])
    assert progress["selected"] == saved["selector"]["metrics"]
    assert progress["selected_passes"] == 2 * saved["selector"]["epoch"]
    bound = progress["lower_bounds"]["train_acc"]
    assert bound == progress["lower_bounds"]["val_acc"] == saved["selector"]["metrics"][
        "train_acc"] <= whole.train_acc
    torch.manual_seed(123)  # whatever the generators hold now, the checkpoint's state wins
    kept: dict = {}
    ran: list[int] = []
    resumed, model = _fit(conv, g, ckpt, kept=kept, lrs=ran, **keys)
    assert ran == list(range(7, EPOCHS + 1))  # epochs 1-6 were not trained again
    for field in ("status", "selected_epoch", "epochs_run", "train_acc", "test_acc",
                  "train_loss"):
        assert getattr(resumed, field) == getattr(whole, field), field
    assert resumed.wall_s > saved["wall_s"]  # the time before the kill is counted
    assert saved["scheduler"]["last_epoch"] == 6  # it has stepped on every epoch saved
    # the resumed epochs trained: the weights moved from the checkpoint's
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in saved["model"].items())
    for mine, theirs in ((model.state_dict(), whole_model.state_dict()),
                         (kept["state"], whole_kept["state"])):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), conv


def test_the_test_above_can_fail_without_the_saved_tree_order(tmp_path):
    """Resumed with another tree-order generator, the batches differ and so do the numbers."""
    g = trees(2)
    whole, _ = _fit("gcn", g)
    ckpt = BatchCheckpoint(tmp_path / "trees-7.pt", every=2, seeds=[7])
    with pytest.raises(Killed):
        _fit("gcn", g, ckpt, kill_after=6)
    state = ckpt.load()
    state["order_rng"] = torch.Generator().manual_seed(99).get_state()
    ckpt.save(state)
    resumed, _ = _fit("gcn", g, ckpt)
    assert resumed.train_loss != whole.train_loss


def test_the_cell_checkpoint_of_a_tree_seed_counts_passes_and_is_cleared(tmp_path):
    """``checkpoint_every`` counts passes (a full-batch epoch is one): 50 with the authors' 100
    passes per epoch saves every epoch, 500 every 5th; null turns it off; a written record
    clears it."""
    assert CellCheckpoints(tmp_path, "k", None).trees(0, 100) is None
    on = CellCheckpoints(tmp_path, "k", 50)
    assert on.trees(0, 100).every == 1 and on.trees(0, 1).every == 50
    assert CellCheckpoints(tmp_path, "k", 500).trees(0, 100).every == 5
    on.trees(0, 100).save({"epoch": 1}, progress={"epoch": 1})
    on.trees(1, 100).save({"epoch": 1}, progress={"epoch": 1})
    on.clear([0])
    assert sorted(p.name for p in on.folder.iterdir()) == ["trees-1.progress.json",
                                                           "trees-1.pt"]
    on.trees(1, 100).remove()  # the seed finished
    assert not on.folder.exists() or not any(on.folder.iterdir())


class Kill(BaseException):  # not an Exception: the cell records nothing, as under kill -9
    pass


def test_a_killed_tree_cell_resumes_from_its_checkpoint_and_clears_it(tmp_path, monkeypatch):
    """``cell.run_cell`` on Tree-NeighborsMatch (r = 2): killed after epoch 4's step (saved at
    every epoch: ``checkpoint_every=2`` passes, 2 passes per epoch), the same cell run again
    trains epochs 4-6 only, records the numbers of an uninterrupted cell, and clears its
    checkpoint."""
    from test_bottleneck import composed

    from gdepth import cell, train_progress
    from gdepth.sweep import status

    cfg = composed("dataset=tree_match", "dataset.depth_r=2", "depth=3", "seeds=1", "threads=1",
                   "progress=false", "device=cpu", "train.epochs=6", "train.patience=null",
                   "checkpoint_every=2", "+train.tree_batches.gcn.r2.batch_size=32",
                   "+train.tree_batches.gcn.r2.passes_per_epoch=2")
    whole = cell.run_cell(cfg, tmp_path / "whole")
    report, seen = train_progress.Tracker.epoch, []

    def epoch(self, number, *args, **kwargs):
        seen.append(number)
        if number == 4 and len(seen) == 4:  # the first run only
            raise Kill
        return report(self, number, *args, **kwargs)

    monkeypatch.setattr(train_progress.Tracker, "epoch", epoch)
    with pytest.raises(Kill):
        cell.run_cell(cfg, tmp_path / "killed")
    (path,) = (tmp_path / "killed").rglob("trees-0.pt")
    assert torch.load(path, weights_only=False)["epoch"] == 3
    progress = json.loads(path.with_name("trees-0.progress.json").read_text())
    assert progress["passes"] == 6  # epoch 3 of 2 passes
    acc = progress["lower_bounds"]["train_acc"]
    assert status.saved_text(tmp_path / "killed", whole["key"]) == (
        "; resumes from its checkpoints: trees-0.pt "
        f"(6 passes, train acc {100 * acc:.2f} % so far)")  # what gdepth status adds
    resumed = cell.run_cell(cfg, tmp_path / "killed")
    assert seen == [1, 2, 3, 4, 4, 5, 6]
    assert resumed["status"] == whole["status"] == "ok"
    for field in ("selected_epoch", "epochs_run", "train_acc", "test_acc", "train_loss"):
        assert resumed["seeds"][0][field] == whole["seeds"][0][field], field
    assert not path.exists() and not path.with_name("trees-0.progress.json").exists()
    assert acc <= resumed["seeds"][0]["train_acc"]
