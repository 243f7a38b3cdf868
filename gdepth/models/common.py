"""Pieces shared by the model families: activations and where dropout goes."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.config import ModelConfig, NormConfig, TrainConfig
from gdepth.options import unknown

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}

DROPOUT_LAYERS = ("all", "io", "hidden", "nodenorm")
LOGITS_DROPOUT = "nodenorm"  # the one placement that also drops the logits


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (a key of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise unknown("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def dropout_positions(dropout_layers: str, num_layers: int, logits: bool = False
                      ) -> frozenset[int]:
    """Indices of the layers whose input gets dropout.

    Args:
        dropout_layers: ``"all"``: every layer (Kipf & Welling); ``"io"``: only the first and the
            last layer; ``"hidden"``: every layer but the first, i.e. never on the raw input
            features, as DropEdge's ``mutigcn`` (Rong et al., ICLR 2020, ``src/models.py``:
            dropout after every convolution's activation except the output one);
            ``"nodenorm"``: the input of the second layer and the logits, as the NodeNorm code
            builds it (Zhou et al., CIKM 2021, github.com/miafei/NodeNorm ``config.py``
            ``get_structure``: ``dropout.layer=[1, -1]`` inserts ``nn.Dropout`` at list index 1
            and, after that insert, at index ``num_layers + 1``, i.e. after the input block and
            after the output layer, before ``log_softmax``; never on the input features). The
            logits' dropout is the model's own (``logits=True`` says the model applies it).
        num_layers: number of layers the dropout can precede.
        logits: whether the calling model drops its logits under ``"nodenorm"``.
    """
    if dropout_layers not in DROPOUT_LAYERS:
        raise unknown("dropout_layers", dropout_layers, DROPOUT_LAYERS)
    if dropout_layers == LOGITS_DROPOUT:
        if not logits:
            raise ValueError("dropout_layers=nodenorm (after the input block and on the logits, "
                             "as NodeNorm's code) is defined for model=gcn and gcn_res only; "
                             "valid here: all, io, hidden")
        return frozenset({1}) if num_layers > 1 else frozenset()
    if dropout_layers == "all":
        return frozenset(range(num_layers))
    if dropout_layers == "hidden":
        return frozenset(range(1, num_layers))
    return frozenset({0, num_layers - 1})


class LayerDropout:
    """Mixin for the models whose dropout precedes a chosen subset of their layers.

    ``set_dropout(p, dropout_layers, num_layers)`` stores the probability and the positions
    (:func:`dropout_positions`); ``_drop(x, position)`` applies :func:`dropout` there and is the
    identity elsewhere.
    """

    dropout: float
    dropout_at: frozenset[int]
    training: bool

    def set_dropout(self, p: float, dropout_layers: str, num_layers: int) -> None:
        self.dropout = float(p)
        self.dropout_at = dropout_positions(dropout_layers, num_layers)

    def _drop(self, x: Tensor, position: int) -> Tensor:
        if position not in self.dropout_at:
            return x
        return dropout(x, self.dropout, self.training)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}, dropout_at={sorted(self.dropout_at)}"


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout`` that also takes sparse CSR features (bag-of-words inputs).

    Dropout zeroes entries and scales the survivors by 1/(1-p); zeros stay zero, so on a sparse
    matrix it only has to touch the stored values: the same distribution as dense dropout, at
    the cost of nnz random draws instead of N·F (Coauthor CS: 1.1 M instead of 125 M).
    ``F.dropout`` itself rejects sparse CSR tensors, hence this wrapper.
    """
    if x.layout != torch.sparse_csr:
        return F.dropout(x, p=p, training=training)
    if not training or p == 0.0:
        return x
    values = F.dropout(x.values(), p=p, training=True)
    return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.size())


def tap(model: nn.Module, x: Tensor) -> Tensor:
    """Hand ``x`` (one layer's output) to ``model.layer_sink`` when diagnostics attached one.

    Models that call it at their input, after every layer and at their output declare
    ``layer_outputs = True``; :func:`gdepth.diagnostics.capture.layer_outputs` collects the list
    (input features, each layer's output, logits). Without a sink it returns ``x`` untouched.
    """
    sink = getattr(model, "layer_sink", None)
    if sink is not None:
        sink.append(x.detach())
    return x


def model_options(model_cfg: ModelConfig, norm_cfg: NormConfig | None, *,
                  without: tuple[str, ...] = ()) -> dict:
    """The constructor keywords every model config shares (:class:`gdepth.config.ModelConfig`):
    ``hidden``, ``norm_cfg``, ``activation``, ``dropout`` and ``dropout_layers``; a model that
    has no use for one names it in ``without``.
    """
    options = {
        "hidden": int(model_cfg.hidden),
        "norm_cfg": norm_cfg,
        "activation": str(model_cfg.activation),
        "dropout": float(model_cfg.dropout),
        "dropout_layers": str(model_cfg.dropout_layers),
    }
    return {k: v for k, v in options.items() if k not in without}


# Per-group weight decay (``train.weight_decay_groups``; ``train.weight_decay_graph`` is its
# shorthand for the group ``graph``). A model declares its groups with
# ``named_parameter_groups() -> {name: [parameters]}`` (every parameter in exactly one group);
# models written before that declare two, ``graph`` and ``dense``, through
# ``parameter_groups(graph_decay, dense_decay)`` (GCNII, the Bag-of-Tricks GCN).
LEGACY_GROUPS = ("graph", "dense")


def requested_decays(train_cfg: TrainConfig) -> dict[str, float]:
    """``train.weight_decay_groups`` with ``train.weight_decay_graph`` as its ``graph`` entry.

    Raises ValueError when both name the graph group with different values, or when
    ``weight_decay_first_only`` is set too.
    """
    groups = {str(k): float(v) for k, v in train_cfg.weight_decay_groups.items()}
    graph = train_cfg.weight_decay_graph
    if graph is not None:
        if "graph" in groups and groups["graph"] != float(graph):
            raise ValueError(f"train.weight_decay_graph={graph} and train.weight_decay_groups."
                             f"graph={groups['graph']} disagree; set one of them")
        groups["graph"] = float(graph)
    if groups and train_cfg.weight_decay_first_only:
        raise ValueError("train.weight_decay_first_only=true and per-group decays "
                         "(train.weight_decay_groups / weight_decay_graph) exclude each other; "
                         "set one of them")
    return groups


def declared_groups(model: nn.Module) -> tuple[str, ...]:
    """The names of ``model``'s parameter groups (``()``: it declares none)."""
    if hasattr(model, "named_parameter_groups"):
        return tuple(model.named_parameter_groups())
    return LEGACY_GROUPS if hasattr(model, "parameter_groups") else ()


def _fix(train_cfg: TrainConfig, missing: list[str], declared: tuple[str, ...]) -> str:
    """What to set instead: no per-group decay at all, or the model's own groups."""
    from_graph = train_cfg.weight_decay_graph is not None and "graph" in missing
    fixes = ["train.weight_decay_graph=null" if from_graph else "++train.weight_decay_groups={}"]
    fixes[0] += " (one decay, train.weight_decay, on every parameter)"
    if declared:  # ++: a dict of new keys replaces the typed (struct) one on the command line
        fixes.append("its own groups: ++train.weight_decay_groups={"
                     + ", ".join(f"{g}: ..." for g in declared) + "}")
    return "; or ".join(fixes)


def optimizer_groups(model: nn.Module, train_cfg: TrainConfig) -> list[dict[str, Any]]:
    """The torch optimizer's parameter groups for ``train.weight_decay_groups`` /
    ``weight_decay_graph``: each of the model's groups with its decay, the groups not named
    with ``train.weight_decay``.

    Raises ValueError (one line, naming the fix) when the model lacks a group it is asked for.
    """
    groups = requested_decays(train_cfg)
    default = float(train_cfg.weight_decay)
    declared = declared_groups(model)
    missing = [g for g in groups if g not in declared]
    if missing:
        graph = train_cfg.weight_decay_graph
        asked = (f"train.weight_decay_graph={graph}" if missing == ["graph"] and graph is not None
                 else f"train.weight_decay_groups.{missing[0]}={groups[missing[0]]:g}")
        what = ("separate graph layers" if missing == ["graph"]
                else f"parameter group '{missing[0]}'")
        has = f"its groups: {', '.join(declared)}" if declared else "it has no parameter groups"
        named = getattr(model, "native", model)  # a OneSeed: the seed-native model's name
        raise ValueError(f"{asked} is set but model {type(named).__name__} has no {what} "
                         f"({has}); fix: {_fix(train_cfg, missing, declared)}")
    if hasattr(model, "named_parameter_groups"):
        return [{"params": params, "weight_decay": groups.get(g, default)}
                for g, params in model.named_parameter_groups().items() if params]
    return model.parameter_groups(groups.get("graph", default), groups.get("dense", default))


def weight_parameters_of(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` a one-seed model names ``*weight*``: a block's own
    ``weight_parameters()`` where it declares one (a seeded norm), else by name."""
    if hasattr(module, "weight_parameters"):
        return list(module.weight_parameters())
    out = [p for n, p in module.named_parameters(recurse=False) if "weight" in n]
    for child in module.children():
        out += weight_parameters_of(child)
    return out
