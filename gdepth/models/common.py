"""Pieces shared by the model families: activations and where dropout goes."""

from __future__ import annotations

from torch import nn

from gdepth.norms import unknown

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}

DROPOUT_LAYERS = ("all", "io")


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (a key of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise unknown("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def dropout_positions(dropout_layers: str, num_layers: int) -> frozenset[int]:
    """Indices of the layers whose input gets dropout.

    Args:
        dropout_layers: ``"all"``: every layer (Kipf & Welling); ``"io"``: only the first and the
            last layer, as the NodeNorm code does (``dropout.layer=[1,-1]``).
        num_layers: number of layers the dropout can precede.
    """
    if dropout_layers not in DROPOUT_LAYERS:
        raise unknown("dropout_layers", dropout_layers, DROPOUT_LAYERS)
    if dropout_layers == "all":
        return frozenset(range(num_layers))
    return frozenset({0, num_layers - 1})
