"""The training rules (gdepth.train) and the loop on one seed (a batch of one,
gdepth.engine.fit.fit_batched): selection rules, patience, divergence, determinism, accuracy
on Cora."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from gdepth import config, data, models, train
from gdepth.cell import prepare
from gdepth.engine import fit_batched
from gdepth.models.adjacency import normalized_adjacency
from gdepth.train import Selector, should_stop


def _metrics(val_acc, val_loss, test_acc):
    return {"train_acc": 1.0, "val_acc": val_acc, "val_loss": val_loss, "test_acc": test_acc,
            "train_loss": 0.0}


SEQUENCE = [(0.5, 1.0, 0.10), (0.7, 0.9, 0.20), (0.7, 0.5, 0.30), (0.6, 0.7, 0.40)]


@pytest.mark.parametrize(
    ("rule", "epoch", "test_acc"),
    [("best_val_acc", 2, 0.20),  # first epoch reaching the max (strict >)
     ("min_val_loss", 3, 0.30),
     ("last", 4, 0.40)],
)
def test_selection_rules_pick_the_right_epoch(rule, epoch, test_acc):
    selector = Selector(rule)
    new = [selector.update(i, _metrics(*values)) for i, values in enumerate(SEQUENCE, start=1)]
    assert selector.epoch == epoch
    assert selector.metrics["test_acc"] == test_acc
    assert new.index(True) == 0 and max(i for i, n in enumerate(new, 1) if n) == epoch


def test_min_delta_and_the_stopping_rules():
    """Selector(min_delta): an epoch improves by more than min_delta only (the tree task);
    should_stop: patience counts epochs without improvement (never under ``last``), window
    compares the last validation loss with the mean of the previous ``patience``."""
    selector = Selector("best_val_acc", min_delta=0.15)
    for i, values in enumerate(SEQUENCE, start=1):
        selector.update(i, _metrics(*values))
    assert selector.epoch == 2 and selector.since == 2  # 0.7 > 0.5 + 0.15; then none
    assert should_stop("best_val_acc", "patience", 2, selector, 4, [])
    assert not should_stop("best_val_acc", "patience", 3, selector, 4, [])
    assert not should_stop("best_val_acc", "patience", None, selector, 4, [])
    last = Selector("last")
    last.update(1, _metrics(0.5, 1.0, 0.1))
    assert not should_stop("last", "patience", 0, last, 1, [])
    assert should_stop("last", "window", 2, last, 4, [1.0, 0.5, 0.5, 0.6])  # 0.6 > mean 0.5
    assert not should_stop("last", "window", 2, last, 3, [1.0, 0.5, 0.6])  # epoch <= 3


def _train_cfg(**kw):
    base = {"optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "epochs": 30,
            "patience": None, "selection": "best_val_acc"}
    return config.make(config.TrainConfig, name="test", **{**base, **kw})


@pytest.fixture(scope="module")
def csbm_graph():
    cfg = config.group("dataset", name="csbm", split="random_per_class", num_nodes=300,
                       num_classes=3, avg_degree=6.0, homophily=0.8, snr=1.0, num_features=16,
                       graph_seed=0)
    graph = data.load(cfg, None, 0)
    return graph, normalized_adjacency(graph.edge_index, graph.num_nodes)


def _fit(graph, adj, seed=0, depth=2, **train_kw):
    model = models.build_seeded(config.group("model", name="gcn", hidden=16),
                                config.norm("none"), depth, graph.num_features,
                                graph.num_classes, seeds=[seed])
    (result,) = fit_batched(model, [graph], adj, _train_cfg(**train_kw), [seed])
    return result


def test_same_seed_same_numbers_other_seed_other_numbers(csbm_graph):
    graph, adj = csbm_graph
    a, b, c = _fit(graph, adj, 0), _fit(graph, adj, 0), _fit(graph, adj, 1)
    assert a.as_dict() | {"wall_s": 0, "epoch_s": 0} == b.as_dict() | {"wall_s": 0, "epoch_s": 0}
    assert (a.val_loss, a.train_loss) != (c.val_loss, c.train_loss)


def test_patience_stops_early_and_selection_is_within_the_run(csbm_graph):
    graph, adj = csbm_graph
    result = _fit(graph, adj, epochs=200, patience=5, selection="min_val_loss", lr=0.05)
    assert result.epochs_run < 200
    assert result.epochs_run - result.selected_epoch == 5


def test_non_finite_loss_is_diverged(csbm_graph):
    graph, adj = csbm_graph
    broken = replace(graph, x=graph.x.clone())
    broken.x[0, 0] = math.nan
    result = _fit(broken, adj)
    assert result.status == "diverged"
    assert result.epochs_run == 0 and math.isnan(result.test_acc)


def test_unknown_optimizer_names_the_valid_ones(csbm_graph):
    graph, adj = csbm_graph
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; valid: adam, adamw, sgd"):
        _fit(graph, adj, optimizer="rmsprop")


def test_two_layer_gcn_on_cora_public_split(mirror, data_cache):
    """Kipf & Welling (ICLR 2017) report 81.5 % on Cora; 3 seeds must average >= 79 %."""
    cpu = torch.device("cpu")
    cfg = config.group("dataset", name="cora", split="public")
    folders = config.DataConfig(root=str(data_cache), mirror=str(mirror))
    accs = []
    for seed in range(3):
        graph, adj, features = prepare(data.load(cfg, folders, seed), cfg, cpu)
        assert features == "sparse_csr (density 1.27%)"
        accs.append(_fit(graph, adj, seed, depth=2, epochs=200).test_acc)
    assert sum(accs) / 3 >= 0.79, accs


class _TwoGroups(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.graph = torch.nn.Linear(2, 2)
        self.dense = torch.nn.Linear(2, 2)

    def parameter_groups(self, graph_decay, dense_decay):
        return [{"params": self.graph.parameters(), "weight_decay": graph_decay},
                {"params": self.dense.parameters(), "weight_decay": dense_decay}]


def test_graph_layers_get_their_own_weight_decay():
    optimizer = train.make_optimizer(_TwoGroups(), _train_cfg(weight_decay_graph=0.01))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 5e-4]
    plain = train.make_optimizer(_TwoGroups(), _train_cfg())
    assert [g["weight_decay"] for g in plain.param_groups] == [5e-4]
    with pytest.raises(ValueError, match="weight_decay_graph=0.01 is set but model Linear"):
        train.make_optimizer(torch.nn.Linear(2, 2), _train_cfg(weight_decay_graph=0.01))
