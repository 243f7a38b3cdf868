"""Tree-NeighborsMatch: sizes, edges, labels and split as in Alon & Yahav's code."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch

from gdepth import config
from gdepth.data import load
from gdepth.data import tree_match as tm

# r: (nodes per tree, classes, examples, train, test), reference diagnostics.md §1.1
SIZES = {2: (7, 4, 96, 76, 20), 3: (15, 8, 8000, 6400, 1600), 4: (31, 16, 16000, 12800, 3200),
         5: (63, 32, 32000, 25600, 6400)}


@pytest.fixture(scope="module")
def trees() -> dict:
    return {r: tm.tree_match(r) for r in SIZES}


@pytest.mark.parametrize("r", sorted(SIZES))
def test_sizes_match_the_reference_table(trees: dict, r: int) -> None:
    n, classes, examples, train, test = SIZES[r]
    d = trees[r]
    assert d.num_classes == classes and d.x.shape == (examples * n, 2 * classes)
    assert len(d.ptr) == examples + 1 and bool((d.ptr.diff() == n).all())
    assert int(d.root_mask.sum()) == examples
    assert (int(d.train_mask.sum()), int(d.test_mask.sum())) == (train, test)
    assert not bool((d.train_mask & d.test_mask).any())
    assert bool((d.train_mask | d.test_mask).eq(d.root_mask).all())
    assert bool((d.y[~d.root_mask] == -1).all()) and set(d.tree_y.tolist()) == set(range(classes))


def test_edges_are_child_to_parent_plus_self_loops() -> None:
    expected = [(1, 0), (4, 0), (2, 1), (3, 1), (5, 4), (6, 4)]  # reference §1.1, r = 2
    assert tm.tree_structure(2) == (7, expected, [2, 3, 5, 6])
    for r in range(2, 6):
        n, edges, leaves = tm.tree_structure(r)
        ei = tm.tree_edge_index(r)
        assert ei.shape == (2, len(edges) + n)
        assert ei[:, :len(edges)].t().tolist() == [list(e) for e in edges]
        assert ei[:, len(edges):].tolist() == [list(range(n))] * 2  # one self loop per node
        child, parent = torch.tensor(edges).t()
        assert bool((parent < child).all()) and sorted(child.tolist()) == list(range(1, n))
        out_degree = torch.bincount(parent, minlength=n)
        assert sorted(torch.nonzero(out_degree == 0).flatten().tolist()) == leaves
        assert len(leaves) == 2**r and bool((out_degree[out_degree > 0] == 2).all())


@pytest.mark.parametrize("r", sorted(SIZES))
def test_label_is_the_value_of_the_leaf_with_the_root_key(trees: dict, r: int) -> None:
    n, classes = SIZES[r][:2]
    d = trees[r]
    some = torch.arange(0, SIZES[r][2], max(SIZES[r][2] // 2000, 1))  # ≤ 2000 trees: fast
    x = d.x.view(-1, n, 2 * classes)[some]
    _, _, leaves = tm.tree_structure(r)
    assert bool((x[:, 0, classes:] == 0).all())  # the root holds a key only
    inner = [i for i in range(1, n) if i not in leaves]
    assert bool((x[:, inner] == 0).all())
    keys = x[:, leaves, :classes].argmax(-1)  # leaf keys 0..L-1 in leaf order
    assert bool((keys == torch.arange(classes)).all())
    root_key = x[:, 0, :classes].argmax(-1)
    match = x[:, leaves, :classes].argmax(-1) == root_key[:, None]
    assert bool((match.sum(1) == 1).all())
    value = x[:, leaves, classes:].argmax(-1)[match]
    assert torch.equal(value, d.tree_y[some]) and torch.equal(d.y[d.root_mask], d.tree_y)
    # every value a permutation of the classes
    assert bool((x[:, leaves, classes:].sum(1) == 1).all())


@pytest.mark.parametrize("r", sorted(SIZES))
def test_split_is_stratified(trees: dict, r: int) -> None:
    d = trees[r]
    train = torch.bincount(d.y[d.train_mask], minlength=d.num_classes).double()
    total = torch.bincount(d.tree_y, minlength=d.num_classes).double()
    assert bool(((train - 0.8 * total).abs() <= 1).all())


def _authors(depth: int, seed: int = 11, features: bool = True) -> tuple[list, list]:
    """A literal transcription of tech-srl/bottleneck's DictionaryLookupDataset.generate_data
    (one-hot version, global seeds as experiment.py), returning (x, y) per train / test tree
    (x None unless ``features``)."""
    from sklearn.model_selection import train_test_split

    state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        num_nodes, _, leaf_indices = tm.tree_structure(depth)
        num_leaves = len(leaf_indices)
        if depth > 3:
            count = min(1000, math.factorial(num_leaves), 32000 // num_leaves)
            perms = [np.random.permutation(range(num_leaves)) for _ in range(count)]
        else:
            perms = random.sample(list(itertools.permutations(range(num_leaves))),
                                  min(1000, math.factorial(num_leaves)))
        data = []
        for key, values in itertools.chain.from_iterable(
                zip(range(num_leaves), itertools.repeat(p)) for p in perms):
            if not features:
                data.append((None, int(values[key])))
                continue
            def one_hot(k: int) -> list[int]:
                return [1 if i == k else 0 for i in range(num_leaves)]
            nodes = [one_hot(key) + [0] * num_leaves]
            for i in range(1, num_nodes):
                if i in leaf_indices:
                    leaf = leaf_indices.index(i)
                    nodes.append(one_hot(leaf) + one_hot(values[leaf]))
                else:
                    nodes.append([0] * (2 * num_leaves))
            data.append((torch.tensor(nodes, dtype=torch.float), int(values[key])))
        return train_test_split(data, train_size=0.8, shuffle=True, stratify=[y for _, y in data])
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])


@pytest.mark.parametrize("r", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_same_trees_and_split_as_the_authors_code(r: int) -> None:
    expected_train, expected_test = _authors(r)
    train, test = tm.tree_examples(r)
    for mine, theirs in ((train, expected_train), (test, expected_test)):
        assert len(mine) == len(theirs)
        assert all(torch.equal(a.x, x) and a.y == y for a, (x, y) in zip(mine, theirs, strict=True))
    assert torch.equal(train[0].edge_index, tm.tree_edge_index(r))
    assert train[0].root_mask.tolist() == [True] + [False] * (2 ** (r + 1) - 2)


def test_same_labels_and_split_as_the_authors_code_numpy_branch(trees: dict) -> None:
    expected_train, expected_test = _authors(4, features=False)  # r > 3: np.random permutations
    d = trees[4]
    assert d.tree_y[:d.num_train_trees].tolist() == [y for _, y in expected_train]
    assert d.tree_y[d.num_train_trees:].tolist() == [y for _, y in expected_test]


def test_deterministic_from_the_seed_without_touching_global_rngs() -> None:
    state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    a, b, c = tm.tree_match(3), tm.tree_match(3), tm.tree_match(3, seed=12)
    assert torch.equal(a.x, b.x) and torch.equal(a.train_mask, b.train_mask)
    assert not torch.equal(a.x, c.x)
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])


def test_fully_adjacent_edges_point_every_node_to_its_root(trees: dict) -> None:
    one = tm.fully_adjacent_edge_index(torch.zeros(7, dtype=torch.long), torch.tensor([0, 7]))
    assert one.tolist() == [list(range(7)), [0] * 7]
    d = trees[2]
    fa = tm.fully_adjacent_edge_index(d.batch, d.ptr)
    assert fa.shape == (2, d.num_nodes)
    assert bool(d.root_mask[fa[1]].all()) and torch.equal(d.batch[fa[0]], d.batch[fa[1]])


def test_registry_loader_and_typed_config() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    from gdepth.cli import config_dir

    g = load(config.dataset("tree_match", split="paper", depth_r=2), None, seed=0)
    assert (g.num_nodes, g.num_classes, g.split) == (672, 4, "paper")
    assert torch.equal(g.val_mask, g.train_mask) and int(g.test_mask.sum()) == 20
    src, dst = g.edge_index
    assert bool((src != dst).all()) and g.num_edges == 96 * 6  # child -> parent, no self loops
    with pytest.raises(ValueError, match=r"depth_r=9 must be in 2\.\.8"):
        load(config.dataset("tree_match", split="paper", depth_r=9), None, seed=0)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["dataset=tree_match", "dataset.depth_r=5", "name=x"])
        assert (cfg.dataset.depth_r, cfg.dataset.graph_seed, cfg.dataset.split) == (5, 11, "paper")
        with pytest.raises(ConfigCompositionException, match="depth_r=deep"):
            compose("config", overrides=["dataset=tree_match", "dataset.depth_r=deep", "name=x"])
