"""Per-group weight decay (train.weight_decay_groups, weight_decay_graph as its shorthand):
each model's declared groups, the optimizer's decays per parameter, the error that names the
fix, and a batch of seeds doing what each seed does alone. Also JKNet's shared dropout mask
in a batch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from test_engine import (  # noqa: F401 (fixtures)
    _compare_fits,
    _pair,
    _train_cfg,
    graphs,
    graphs64,
)

from gdepth import config, engine, models, train
from gdepth.models import common

IN, OUT = 10, 3


def build(name, depth=3, **kw):
    torch.manual_seed(0)
    cfg = config.group("model", {"name": name, "hidden": 8, "dropout": 0.5, **kw})
    return models.build(cfg, None, depth, IN, OUT)


def decays(model, optimizer) -> dict[str, float]:
    """Parameter name -> the weight decay its optimizer group applies."""
    group_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    return {name: group_of[id(p)] for name, p in model.named_parameters()}


@pytest.mark.parametrize(("name", "kw", "groups"), [
    ("appnp", {}, ("input", "output")),
    ("jknet", {"mode": "cat"}, ("graph", "output")),
    ("jknet", {"mode": "lstm"}, ("graph", "output")),
    ("gcnii", {}, ("graph", "dense")),
])
def test_groups_partition_every_parameter(name, kw, groups):
    """Every parameter in exactly one group, in the loop model and in the stacked one."""
    model = build(name, **kw)
    declared = model.named_parameter_groups()
    assert tuple(declared) == groups == common.declared_groups(model)
    ids = [id(p) for params in declared.values() for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    stacked = models.build_seeded(config.group("model", {"name": name, "hidden": 8, **kw}), None,
                                  3, IN, OUT, seeds=[0, 1])
    ids = [id(p) for params in stacked.named_parameter_groups().values() for p in params]
    assert tuple(stacked.named_parameter_groups()) == groups
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in stacked.parameters()}


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_the_registry_names_each_models_groups(name):
    cfg = {"gcn": {"skip": "none"}, "bottleneck": {"hidden": 8}}.get(name, {})
    assert models.groups(name) == common.declared_groups(build(name, **cfg))


def test_appnp_decays_its_input_and_output_layers_apart():
    """Bag of Tricks' APPNP: weight_decay1 5e-3 on the input layer, weight_decay2 0 on the
    output layer (options/configs/APPNP.yml); the norm is in the input group."""
    model = build("appnp")
    cfg = _train_cfg(weight_decay=1e-4, weight_decay_groups={"input": 5e-3, "output": 0.0})
    assert decays(model, train.make_optimizer(model, cfg)) == {
        "native.lin1.weight": 5e-3, "native.lin1.bias": 5e-3, "native.lin2.weight": 0.0,
        "native.lin2.bias": 0.0}
    only_input = decays(model, train.make_optimizer(
        model, _train_cfg(weight_decay=1e-4, weight_decay_groups={"input": 5e-3})))
    assert only_input["native.lin1.weight"] == 5e-3 and only_input["native.lin2.weight"] == 1e-4


def test_a_decay_on_the_input_group_moves_only_the_input_layer():
    """One Adam step with zero gradients: only the decayed group's parameters move (by lr,
    Adam's first step is lr · sign)."""
    model = build("appnp")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = train.make_optimizer(model, _train_cfg(lr=0.1, weight_decay_groups={
        "input": 0.5, "output": 0.0}))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    assert moved["native.lin2.weight"] == moved["native.lin2.bias"] == 0.0
    assert moved["native.lin1.weight"] == pytest.approx(0.1, rel=1e-4)


def test_weight_decay_graph_is_the_groups_graph_shorthand():
    model = build("gcnii")
    short = decays(model, train.make_optimizer(model, _train_cfg(weight_decay_graph=0.01)))
    long = decays(model, train.make_optimizer(
        model, _train_cfg(weight_decay_groups={"graph": 0.01})))
    assert short == long
    assert short["native.convs.0.weight"] == 0.01 and short["native.lin_in.weight"] == 5e-4
    jk = build("jknet")
    got = decays(jk, train.make_optimizer(jk, _train_cfg(weight_decay_graph=0.0,
                                                         weight_decay_groups={"output": 1e-3})))
    assert got["native.convs.0.weight"] == 0.0 and got["native.lin_out.weight"] == 1e-3
    with pytest.raises(ValueError, match="disagree"):
        train.make_optimizer(jk, _train_cfg(weight_decay_graph=0.1,
                                            weight_decay_groups={"graph": 0.2}))
    with pytest.raises(ValueError, match="exclude each other"):
        train.make_optimizer(jk, _train_cfg(weight_decay_first_only=True,
                                            weight_decay_groups={"graph": 0.2}))


@pytest.mark.parametrize(("name", "kw", "message"), [
    ("appnp", {"weight_decay_graph": 0.01},
     "train.weight_decay_graph=0.01 is set but model APPNP has no separate graph layers (its "
     "groups: input, output); fix: train.weight_decay_graph=null (one decay, "
     "train.weight_decay, on every parameter); or its own groups: "
     "++train.weight_decay_groups={input: ..., output: ...}"),
    ("sgc", {"weight_decay_graph": 0.01},
     "model SGC has no separate graph layers (it has no parameter groups); fix: "
     "train.weight_decay_graph=null"),
    ("jknet", {"weight_decay_groups": {"input": 0.1}},
     "train.weight_decay_groups.input=0.1 is set but model JKNet has no parameter group "
     "'input' (its groups: graph, output); fix: ++train.weight_decay_groups={}"),
])
def test_a_missing_group_fails_naming_the_fix(name, kw, message):
    with pytest.raises(ValueError) as err:
        train.make_optimizer(build(name), _train_cfg(**kw))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "kw", "groups"), [
    ("appnp", {}, {"input": 5e-3, "output": 0.0}),
    ("jknet", {"dropout_layers": "hidden", "shared_dropout": True}, {"graph": 0.0,
                                                                     "output": 1e-2}),
    ("jknet", {"mode": "max", "shared_dropout": True}, {}),
    ("jknet", {"mode": "lstm"}, {"graph": 0.0, "output": 1e-2}),
    ("gcnii", {}, {"graph": 1e-2, "dense": 5e-4}),
])
def test_a_batch_with_groups_and_shared_dropout_reports_what_its_seeds_report_alone(
        graphs64, float64, name, kw, groups):  # noqa: F811
    """tests/test_engine.py's harness: the same initial weights and dropout masks, float64."""
    gs, adj = graphs64["dense"], graphs64["adj"]
    batch, alone = _pair(gs, name, {"name": "none"}, 4, **kw)
    assert batch.named_parameter_groups().keys() == alone[0].named_parameter_groups().keys()
    cfg = _train_cfg(lr=0.05, weight_decay=1e-3, weight_decay_groups=groups)
    _compare_fits(gs, adj, batch, alone, cfg)


def test_stacked_shared_dropout_draws_one_mask_per_layer():
    stacked = models.build_seeded(
        config.model("jknet", hidden=8, dropout=0.5, dropout_layers="hidden",
                     shared_dropout=True),
        None, 3, IN, OUT, seeds=[0, 1])
    if not hasattr(stacked, "mask_fn"):
        pytest.skip("jknet is not written seed-native here: no injected masks")
    shapes = []

    def mask_fn(shape, p):
        shapes.append(shape)
        return torch.ones(2, *shape)

    stacked.mask_fn = mask_fn
    from gdepth.nn.kernels import StackedInput
    from gdepth.nn.propagation import Propagation

    x = torch.randn(5, IN)
    adj = torch.eye(5).to_sparse_csr()
    stacked.train()
    out = stacked(StackedInput(x), Propagation(adj))
    assert out.shape == (5, 2, OUT) and shapes == [(5, 8)] * 3


def test_groups_batch_and_a_missing_group_names_the_fix():
    """Per-group decays no longer keep a cell from batching; a group the model lacks fails
    the optimizer (batch or one seed alike) with the one-line error that names the fix."""
    for name, groups in (("gcn", {"graph": 0.1}), ("appnp", {"input": 5e-3, "output": 0.0})):
        cfg = config.typed({"model": {"name": name}, "norm": {"name": "none"},
                            "dataset": {"name": "csbm", "split": "random_per_class"},
                            "train": {"name": "test", "weight_decay_groups": groups}})
        assert engine.unsupported(cfg) is None
    stacked = models.build_seeded(config.group("model", {"name": "appnp", "hidden": 8}), None, 3,
                                  IN, OUT, seeds=[0, 1])
    bad = _train_cfg(weight_decay_groups={"graph": 0.1})
    with pytest.raises(ValueError, match="no separate graph layers.*fix: "):
        train.make_optimizer(stacked, bad)
    with pytest.raises(ValueError, match="fix: "):
        train.make_optimizer(build("appnp"), bad)


def test_a_decayed_output_group_ends_smaller_and_leaves_the_input_layers_first_step():
    """SGD on APPNP with decay 0.5 on the output group only: after one step the input layer
    equals the undecayed run's (same gradient, no decay there), the output layer differs by
    exactly lr · 0.5 · w; after ten steps the output layer is the smaller one."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, IN, generator=gen), torch.randint(0, OUT, (20,), generator=gen)
    adj = torch.eye(20).to_sparse_csr()

    def trained(groups, steps):
        model = build("appnp", dropout=0.0)
        start = model.native.lin2.weight.detach().clone()
        opt = train.make_optimizer(model, _train_cfg(optimizer="sgd", lr=0.5, weight_decay=0.0,
                                                     weight_decay_groups=groups))
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(x, adj), y).backward()
            opt.step()
        return model, start

    (plain, start), (decayed, _) = trained({}, 1), trained({"output": 0.5}, 1)
    torch.testing.assert_close(decayed.native.lin1.weight, plain.native.lin1.weight, rtol=0,
                               atol=0)
    torch.testing.assert_close(plain.native.lin2.weight - decayed.native.lin2.weight,
                               0.5 * 0.5 * start, rtol=1e-5, atol=1e-6)
    (plain, _), (decayed, _) = trained({}, 10), trained({"output": 0.5}, 10)
    assert decayed.native.lin2.weight.norm() < plain.native.lin2.weight.norm()


def test_the_new_keys_at_their_defaults_keep_every_records_key():
    """train.weight_decay_groups, train.per_model and model.shared_dropout at their defaults
    leave a cell's key as it was before they existed (records.NEUTRAL)."""
    from gdepth.sweep import records

    old = {"dataset": {"name": "cora"}, "model": {"name": "jknet", "hidden": 8},
           "norm": {"name": "none"}, "train": {"name": "default", "lr": 0.01}, "depth": 2,
           "seeds": 3}
    new = copy.deepcopy(old)
    new["train"].update(weight_decay_groups={}, per_model={})
    new["model"]["shared_dropout"] = False
    assert records.cell_key(new) == records.cell_key(old)
    new["model"]["shared_dropout"] = True
    assert records.cell_key(new) != records.cell_key(old)
