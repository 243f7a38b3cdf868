"""Train/val/test splits drawn per seed, and the fixed ones derived from Planetoid's files.

* ``random_per_class``: the protocol of Shchur et al., *Pitfalls of Graph Neural Network
  Evaluation* (arXiv:1811.05868): per class, ``train_per_class`` nodes for training and
  ``val_per_class`` for validation, all remaining nodes for testing (they use 20/30/rest).
  With ``val_size`` (and ``test_size``) the validation (test) set is instead a fixed count
  drawn from the shuffled remaining nodes, as the NodeNorm code does for Planetoid sets
  (20 per class, then 500 val, 1000 test; Zhou et al., CIKM 2021, ``utils.py``).
* ``full_supervised``: per class, ``train_frac`` / ``val_frac`` / rest of the nodes — the
  60/20/20 "full-supervised" protocol of Geom-GCN (Pei et al., ICLR 2020) that GCNII's
  ``full.sh`` evaluates on 10 fixed splits (``num_splits=10``).
* ``fastgcn`` (fixed, Planetoid only): the full-supervised split of FastGCN (Chen et al.,
  ICLR 2018) that DropEdge's full-supervised table follows: the public test set, the 500
  labelled nodes just before it for validation, every earlier node for training.
* ``public_rest`` (fixed, Planetoid only): public train and val, every other node is test
  (the PairNorm code, Zhao & Akoglu, ICLR 2020).
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


def random_counts(
    y: torch.Tensor,
    num_classes: int,
    train_per_class: int,
    val_size: int,
    test_size: int | None,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``train_per_class`` nodes per class, then ``val_size`` and ``test_size`` (None: all)
    nodes from the remaining ones, shuffled once — the NodeNorm code's random split.

    Train is drawn per class in class order from a ``torch.Generator`` seeded with ``seed``;
    the remaining nodes (ascending) are permuted by the same generator; the first ``val_size``
    are validation, the next ``test_size`` test.
    """
    if min(train_per_class, val_size, test_size or 0) < 0:
        raise ValueError(f"split sizes must be >= 0, got train_per_class={train_per_class}, "
                         f"val_size={val_size}, test_size={test_size}")
    gen = torch.Generator().manual_seed(int(seed))
    num_nodes = int(y.numel())
    train = []
    for c in range(num_classes):
        idx = (y == c).nonzero(as_tuple=True)[0]
        train.append(idx[torch.randperm(idx.numel(), generator=gen)][:train_per_class])
    train_mask = index_to_mask(torch.cat(train), num_nodes)
    rest = (~train_mask).nonzero(as_tuple=True)[0]
    if val_size + (test_size or 0) > rest.numel():
        raise ValueError(f"val_size={val_size} + test_size={test_size} exceed the "
                         f"{rest.numel()} nodes left after training")
    rest = rest[torch.randperm(rest.numel(), generator=gen)]
    val = rest[:val_size]
    test = rest[val_size:] if test_size is None else rest[val_size : val_size + test_size]
    return train_mask, index_to_mask(val, num_nodes), index_to_mask(test, num_nodes)


def full_supervised(
    y: torch.Tensor, num_classes: int, train_frac: float = 0.6, val_frac: float = 0.2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class: ``floor(train_frac·n_c)`` train, ``floor(val_frac·n_c)`` val, rest test."""
    if not (0 < train_frac and 0 <= val_frac and train_frac + val_frac <= 1):
        raise ValueError(f"need 0 < train_frac, 0 <= val_frac, train_frac + val_frac <= 1; got "
                         f"train_frac={train_frac}, val_frac={val_frac}")
    gen = torch.Generator().manual_seed(int(seed))
    num_nodes = int(y.numel())
    parts: tuple[list, list, list] = ([], [], [])
    for c in range(num_classes):
        idx = (y == c).nonzero(as_tuple=True)[0]
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_train, n_val = int(train_frac * idx.numel()), int(val_frac * idx.numel())
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    return tuple(index_to_mask(torch.cat(p), num_nodes) for p in parts)  # type: ignore[return-value]


def planetoid_fixed(
    train_mask: torch.Tensor, val_mask: torch.Tensor, test_mask: torch.Tensor
) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The fixed splits derived from Planetoid's public masks: public, fastgcn, public_rest.

    In Planetoid's files the labelled nodes ``allx`` come first and the test nodes after
    them, so ``len(allx)`` is the smallest test index: FastGCN's split (as loaded by the
    FastGCN and DropEdge code: ``idx_train = range(len(ally) - 500)``,
    ``idx_val = range(len(ally) - 500, len(ally))``) follows from the public test mask.
    """
    num_nodes = int(train_mask.numel())
    n_ally = int(test_mask.nonzero(as_tuple=True)[0].min())
    fast_train = index_to_mask(torch.arange(0, n_ally - 500), num_nodes)
    fast_val = index_to_mask(torch.arange(n_ally - 500, n_ally), num_nodes)
    rest = ~(train_mask | val_mask)
    return {
        "public": (train_mask, val_mask, test_mask),
        "fastgcn": (fast_train, fast_val, test_mask.clone()),
        "public_rest": (train_mask.clone(), val_mask.clone(), rest),
    }


def describe_random(train_per_class: int, val_per_class: int, seed: int) -> str:
    """The human description stored in :attr:`Graph.split`."""
    return f"random_per_class({train_per_class}/{val_per_class}/rest, seed={seed})"
