"""Pieces shared by the model families: activations and where dropout goes."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.options import option, unknown

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}

DROPOUT_LAYERS = ("all", "io", "hidden")


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (a key of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise unknown("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def dropout_positions(dropout_layers: str, num_layers: int) -> frozenset[int]:
    """Indices of the layers whose input gets dropout.

    Args:
        dropout_layers: ``"all"``: every layer (Kipf & Welling); ``"io"``: only the first and the
            last layer, as the NodeNorm code does (``dropout.layer=[1,-1]``); ``"hidden"``: every
            layer but the first, i.e. never on the raw input features, as DropEdge's ``mutigcn``
            (Rong et al., ICLR 2020, ``src/models.py``: dropout after every convolution's
            activation except the output one).
        num_layers: number of layers the dropout can precede.
    """
    if dropout_layers not in DROPOUT_LAYERS:
        raise unknown("dropout_layers", dropout_layers, DROPOUT_LAYERS)
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


def model_options(model_cfg: Any, norm_cfg: Any, *, without: tuple[str, ...] = ()) -> dict:
    """The constructor keywords every model config shares, with the schema's defaults.

    ``hidden`` (64), ``norm_cfg``, ``activation`` ("relu"), ``dropout`` (0.5) and
    ``dropout_layers`` ("all"); a model that has no use for one names it in ``without``.
    """
    options = {
        "hidden": int(option(model_cfg, "hidden", 64)),
        "norm_cfg": norm_cfg,
        "activation": option(model_cfg, "activation", "relu"),
        "dropout": float(option(model_cfg, "dropout", 0.5)),
        "dropout_layers": option(model_cfg, "dropout_layers", "all"),
    }
    return {k: v for k, v in options.items() if k not in without}
