r"""Tree-NeighborsMatch: the synthetic over-squashing task of Alon & Yahav, generated as their code.

Alon and Yahav, "On the Bottleneck of Graph Neural Networks and its Practical Implications",
ICLR 2021, arXiv 2006.05205, https://arxiv.org/abs/2006.05205; official code
github.com/tech-srl/bottleneck (``tasks/tree_dataset.py``, ``tasks/dictionary_lookup.py``,
``experiment.py``; the task is ``Task.DICTIONARY`` there, later renamed ``NEIGHBORS_MATCH``).

* **Tree.** A complete binary tree of depth :math:`r` (``depth_r``): :math:`2^{r+1}-1` nodes,
  :math:`L = 2^r` leaves, numbered in DFS pre-order with root 0; the subtree ``[cur, max]`` has
  left child ``cur + 1`` and right child ``cur + 1 + (max - cur) // 2``.
* **Edges.** Directed child → parent only (messages flow toward the root), then PyG's
  ``add_remaining_self_loops``.
* **Features** (``2L`` wide): leaf :math:`\ell` (its rank among the leaves) is
  ``one_hot(ℓ, L) ‖ one_hot(values[ℓ], L)``; the root is ``one_hot(key, L) ‖ 0``; inner nodes 0.
* **Label.** ``values[key]``: the value of the leaf whose key is the root's key; :math:`L` classes.
* **Examples.** For each drawn permutation ``values`` of ``range(L)``, one example per key, keys in
  order. :math:`r \le 3`: ``random.sample(all permutations, min(1000, L!))``; :math:`r > 3`:
  ``min(1000, L!, 32000 // L)`` independent ``np.random.permutation(L)``.
* **Split.** ``sklearn.model_selection.train_test_split(train_size=0.8, shuffle=True,
  stratify=labels)``. The authors seed ``random``, ``numpy`` and ``torch`` with 11 before
  generating; here ``random.Random(graph_seed)`` and ``np.random.RandomState(graph_seed)`` draw the
  same streams without touching the global ones, so ``graph_seed=11`` gives their examples and
  split (for the same sklearn split algorithm).

Sizes (examples / train / test): r=2: 96/76/20, r=3: 8000/6400/1600, r=4: 16000/12800/3200,
r≥5: 32000/25600/6400.

The whole data set is one disjoint graph (:func:`tree_match`): train trees first, then test trees,
each tree's root first, with ``root_mask``, ``batch`` and ``ptr`` as in a PyG ``Batch``, and
``train_mask`` / ``test_mask`` on the root nodes, so a full-batch node-classification loop trains on
the roots. Dense features take :math:`4 \cdot T (2^{r+1}-1) 2^{r+1}` bytes for :math:`T` trees:
63 MB at r=4, 0.5 GB at r=5, 2 GB at r=6; beyond that use :func:`tree_examples` with a
``DataLoader`` as the authors do. The authors report the best **train** accuracy.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import add_remaining_self_loops

from gdepth.data.graph import BaseGraph

DEPTHS = range(2, 9)  # the paper's r = 2..8
NUM_PERMUTATIONS = 1000
MAX_EXAMPLES = 32000


def tree_structure(depth_r: int) -> tuple[int, list[tuple[int, int]], list[int]]:
    """``(num_nodes, child→parent edges, leaf ids)`` in the authors' DFS pre-order numbering."""
    _check_depth(depth_r)
    edges: list[tuple[int, int]] = []
    leaves: list[int] = []
    stack = [(0, 2 ** (depth_r + 1) - 2)]
    while stack:  # the authors' explicit-stack DFS, which fixes the numbering and edge order
        cur, last = stack.pop()
        if cur == last:
            leaves.append(cur)
            continue
        left, right = cur + 1, cur + 1 + (last - cur) // 2
        edges += [(left, cur), (right, cur)]
        stack += [(right, last), (left, right - 1)]
    return 2 ** (depth_r + 1) - 1, edges, leaves


def tree_edge_index(depth_r: int, self_loops: bool = True) -> Tensor:
    """``[2, E]`` edges of one tree: child → parent, then a self loop per node if ``self_loops``."""
    num_nodes, edges, _ = tree_structure(depth_r)
    edge_index = torch.tensor(edges, dtype=torch.long).t()
    if self_loops:
        edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=num_nodes)
    return edge_index


def fully_adjacent_edge_index(batch: Tensor, ptr: Tensor) -> Tensor:
    """The "fully-adjacent last layer" edges (Alon & Yahav §4; their ``graph_model.py``): every
    node → the root of its own tree (the root included), for trees whose root is their first node
    (``ptr[:-1]``) and node → tree map ``batch``. For one tree: ``batch = zeros(n)``,
    ``ptr = [0, n]``."""
    return torch.stack([torch.arange(batch.numel(), device=batch.device), ptr[:-1][batch]])


def example_count(depth_r: int) -> int:
    """Examples (trees) the authors generate for depth ``r`` (see the module docstring)."""
    _check_depth(depth_r)
    leaves = 2**depth_r
    if depth_r > 3:
        return min(NUM_PERMUTATIONS, math.factorial(leaves), MAX_EXAMPLES // leaves) * leaves
    return min(NUM_PERMUTATIONS, math.factorial(leaves)) * leaves


def draw_examples(depth_r: int, seed: int = 11) -> tuple[Tensor, Tensor, np.random.RandomState]:
    """``(keys [T], values [T, L], rng)`` of every example in the authors' order (see the module
    docstring): ``values[t]`` is the permutation, ``keys[t]`` the root's key, and ``rng`` the NumPy
    stream after the draws (the authors' global stream, which their split continues)."""
    _check_depth(depth_r)
    leaves = 2**depth_r
    rng = np.random.RandomState(seed)
    if depth_r > 3:
        count = min(NUM_PERMUTATIONS, math.factorial(leaves), MAX_EXAMPLES // leaves)
        perms = np.stack([rng.permutation(range(leaves)) for _ in range(count)])
    else:
        pool = list(itertools.permutations(range(leaves)))
        perms = np.array(random.Random(seed).sample(pool, min(NUM_PERMUTATIONS, len(pool))))
    values = torch.from_numpy(perms).long().repeat_interleave(leaves, dim=0)
    keys = torch.arange(leaves).repeat(len(perms))
    return keys, values, rng


def split_examples(labels: Tensor, rng: np.random.RandomState, train_fraction: float = 0.8
                   ) -> tuple[Tensor, Tensor]:
    """``(train, test)`` example indices by the authors' stratified ``train_test_split`` drawing
    from ``rng`` (the stream :func:`draw_examples` returns)."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction={train_fraction} must be in (0, 1)")
    train, test = train_test_split(np.arange(len(labels)), train_size=train_fraction,
                                   shuffle=True, stratify=labels.numpy(), random_state=rng)
    return torch.from_numpy(train).long(), torch.from_numpy(test).long()


def node_features(depth_r: int, keys: Tensor, values: Tensor) -> Tensor:
    """``[T, num_nodes, 2L]`` float32 one-hot features of ``T`` trees (module docstring)."""
    num_nodes, _, leaf_ids = tree_structure(depth_r)
    leaves = 2**depth_r
    x = torch.zeros(len(keys), num_nodes, 2 * leaves)
    trees = torch.arange(len(keys))
    x[trees, 0, keys] = 1.0
    leaf = torch.tensor(leaf_ids)
    x[:, leaf, torch.arange(leaves)] = 1.0
    x[trees[:, None], leaf[None, :], leaves + values] = 1.0
    return x


def tree_match(depth_r: int, seed: int = 11, train_fraction: float = 0.8) -> Data:
    """All examples as one disjoint graph (train trees, then test trees).

    Returns a ``Data`` with ``x [N, 2L]``, ``edge_index`` (child → parent + self loops, per tree,
    offset), ``y [N]`` (the tree's label on its root, −1 elsewhere), ``tree_y [T]``,
    ``root_mask [N]``, ``batch [N]``, ``ptr [T+1]``, ``train_mask`` / ``test_mask [N]`` (roots of
    the train / test trees), ``num_train_trees`` and ``num_classes`` (= L).
    """
    keys, values, rng = draw_examples(depth_r, seed)
    labels = values[torch.arange(len(keys)), keys]
    train, test = split_examples(labels, rng, train_fraction)
    order = torch.cat([train, test])
    keys, values, labels = keys[order], values[order], labels[order]
    num_trees = len(order)
    n = 2 ** (depth_r + 1) - 1
    tree_edges = tree_edge_index(depth_r)
    offsets = torch.arange(num_trees) * n
    edge_index = (tree_edges[:, None, :] + offsets[None, :, None]).reshape(2, -1)
    ptr = torch.arange(num_trees + 1) * n
    root_mask = torch.zeros(num_trees * n, dtype=torch.bool)
    root_mask[ptr[:-1]] = True
    y = torch.full((num_trees * n,), -1, dtype=torch.long)
    y[root_mask] = labels
    is_train = torch.arange(num_trees) < len(train)
    train_mask = torch.zeros_like(root_mask)
    train_mask[ptr[:-1][is_train]] = True
    return Data(
        x=node_features(depth_r, keys, values).reshape(num_trees * n, -1),
        edge_index=edge_index, y=y, tree_y=labels, root_mask=root_mask,
        batch=torch.arange(num_trees).repeat_interleave(n), ptr=ptr,
        train_mask=train_mask, test_mask=root_mask & ~train_mask,
        num_train_trees=len(train), num_classes=2**depth_r,
    )


def tree_examples(depth_r: int, seed: int = 11, train_fraction: float = 0.8
                  ) -> tuple[list[Data], list[Data]]:
    """The authors' format: ``(train, test)`` lists of one ``Data(x, edge_index, root_mask, y)``
    per tree (``y`` an int), for a mini-batch ``DataLoader``; same trees as :func:`tree_match`."""
    data = tree_match(depth_r, seed, train_fraction)
    n = 2 ** (depth_r + 1) - 1
    edges = tree_edge_index(depth_r)
    root = torch.zeros(n, dtype=torch.bool)
    root[0] = True
    trees = [Data(x=x, edge_index=edges, root_mask=root, y=int(y))
             for x, y in zip(data.x.view(-1, n, data.x.size(1)), data.tree_y, strict=True)]
    return trees[:data.num_train_trees], trees[data.num_train_trees:]


def load_tree_match(params: dict, root: Path | None = None, mirror: Path | None = None
                    ) -> BaseGraph:
    """Registry loader: ``params`` = ``depth_r``, ``graph_seed``, ``train_fraction``.

    The graph's ``edge_index`` is child → parent without self loops (the dataset's
    ``self_loops: true`` adds them back, giving the authors' edges); split ``paper`` has
    ``val_mask = train_mask`` because the authors select and stop on train accuracy.
    """
    data = tree_match(int(params["depth_r"]), int(params.get("graph_seed", 11)),
                      float(params.get("train_fraction", 0.8)))
    src, dst = data.edge_index
    edge_index = data.edge_index[:, src != dst].contiguous()
    masks = (data.train_mask, data.train_mask.clone(), data.test_mask)
    return BaseGraph(x=data.x, y=data.y, edge_index=edge_index, num_classes=data.num_classes,
                     fixed_splits={"paper": masks})


def _check_depth(depth_r: int) -> None:
    if int(depth_r) not in DEPTHS:
        raise ValueError(f"tree_match: depth_r={depth_r} must be in 2..8 (the paper's range)")
