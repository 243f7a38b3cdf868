"""The names a config key takes out of a fixed set: :class:`Choice` and its enums (the schemas
of :mod:`gdepth.config` type their keys with them, so a wrong name fails at compose time)."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A name out of a fixed set; ``str()`` and f-strings give the name (``"last"``, not
    ``"Selection.last"``), and it equals its plain string."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Engine(Choice):
    """How a cell trains its seeds (gdepth/engine): batched together or one after another."""

    auto = "auto"  # batched where the cell supports it, else the per-seed loop
    batched = "batched"  # batched, or the cell fails with the reason
    loop = "loop"  # the same loop, batches of one seed


class Adjacency(Choice):
    """How the seed-batched engine stores the normalized adjacency it propagates with."""

    auto = "auto"  # dense on CUDA for graphs up to nn.propagation.DENSE_AUTO_MAX_NODES, else sparse
    sparse = "sparse"  # CSR (embedding_bag rows on CPU, torch.sparse.mm elsewhere)
    dense = "dense"  # a dense [N, N] matrix and dense matmuls


class Selection(Choice):
    """Model-selection rule: which epoch's test metric a seed reports."""

    best_val_acc = "best_val_acc"
    min_val_loss = "min_val_loss"
    last = "last"


class DropoutLayers(Choice):
    all = "all"  # dropout before every convolution (Kipf & Welling)
    io = "io"  # only before the first and the last convolution
    hidden = "hidden"  # before every convolution but the first: not on the input (DropEdge)
    nodenorm = "nodenorm"  # after the input block and on the logits (NodeNorm's code; gcn, gcn_res)


class Skip(Choice):
    """Bag-of-Tricks skip connections (Chen et al. 2021, official code skipConnections.py)."""

    none = "none"
    residual = "residual"
    initial = "initial"
    dense = "dense"
    jumping = "jumping"


class Stopping(Choice):
    """When ``patience`` ends training early."""

    patience = "patience"  # no improvement of the selection criterion for `patience` epochs
    window = "window"  # Kipf & Welling: val loss above the mean of the previous `patience`


class LRSchedule(Choice):
    none = "none"
    plateau = "plateau"  # ReduceLROnPlateau(mode=max) on train accuracy (Alon & Yahav's code)


class GradClip(Choice):
    none = "none"
    adaptive = "adaptive"  # NodeNorm code: clip to the mean norm of the previous window
