"""Train/val/test splits drawn per seed.

``random_per_class`` is the protocol of Shchur et al., *Pitfalls of Graph Neural Network
Evaluation* (arXiv:1811.05868): per class, ``train_per_class`` nodes for training and
``val_per_class`` for validation, all remaining nodes for testing (they use 20/30/rest).
"""

from __future__ import annotations

import torch


def index_to_mask(index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """A ``[num_nodes]`` bool mask that is True at ``index``."""
    mask = torch.zeros(num_nodes, dtype=torch.bool)
    mask[index] = True
    return mask


def random_per_class(
    y: torch.Tensor,
    num_classes: int,
    train_per_class: int = 20,
    val_per_class: int = 30,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``train_per_class`` / ``val_per_class`` nodes per class; the rest is the test set.

    The draw uses its own ``torch.Generator`` seeded with ``seed``, so split ``i`` is the same
    in every process and does not depend on (or advance) the global torch RNG. For each class
    in order 0..C-1, the class's nodes are permuted once; the first ``train_per_class`` go to
    train, the next ``val_per_class`` to val, the rest to test.

    A class with fewer than ``train_per_class + val_per_class`` nodes gives what it has:
    train first (up to ``train_per_class``), then val, and no test nodes; it does not raise.

    Returns:
        ``(train_mask, val_mask, test_mask)``, ``[N]`` bool, disjoint and covering all
        labelled nodes.
    """
    if train_per_class < 0 or val_per_class < 0:
        raise ValueError(
            f"train_per_class and val_per_class must be >= 0, got {train_per_class}, "
            f"{val_per_class}"
        )
    gen = torch.Generator().manual_seed(int(seed))
    num_nodes = int(y.numel())
    train, val, test = [], [], []
    for c in range(num_classes):
        idx = (y == c).nonzero(as_tuple=True)[0]
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        train.append(idx[:train_per_class])
        val.append(idx[train_per_class : train_per_class + val_per_class])
        test.append(idx[train_per_class + val_per_class :])
    return tuple(index_to_mask(torch.cat(part), num_nodes) for part in (train, val, test))  # type: ignore[return-value]


def describe_random(train_per_class: int, val_per_class: int, seed: int) -> str:
    """The human description stored in :attr:`Graph.split`."""
    return f"random_per_class({train_per_class}/{val_per_class}/rest, seed={seed})"
