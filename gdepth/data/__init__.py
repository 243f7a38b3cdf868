"""Datasets for depth sweeps: one registry, one :func:`load`, one :class:`Graph`.

``load(cfg.dataset, cfg.data, seed)`` returns a :class:`Graph` with the split for ``seed``.
The base dataset (features, labels, edges) is parsed once per process and cached, keyed by
its name, its generation parameters and the cache folder; only the split is drawn per seed.

Importing this package does not import torch or PyG; loaders import them when called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gdepth.config import DataConfig, DatasetConfig
from gdepth.data.graph import BaseGraph, DatasetUnavailable, Graph
from gdepth.options import unknown

__all__ = ["DATASETS", "DatasetSpec", "DatasetUnavailable", "Graph", "clear_cache", "load",
           "params", "spec", "with_instances"]

Loader = Callable[[dict[str, Any], Path, "Path | None"], BaseGraph]


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry.

    Attributes:
        loader: ``(params, root, mirror) -> BaseGraph``.
        description: one line for ``gdepth list datasets``.
        default_split: the split its YAML (``configs/dataset/<name>.yaml``) sets.
        splits: the valid values of ``split``.
        uses_files: whether the loader reads the cache/mirror folders.
        trainer: the training loop of its task: ``graph`` (full-batch, the seeds in batches:
            :mod:`gdepth.engine`) or ``trees`` (mini-batches of trees, one seed at a time:
            :mod:`gdepth.train_trees`).
        instances: whether its graph is a disjoint union of small graphs whose node → graph
            ids its loader gives (:attr:`Graph.instance`; ``model.fully_adjacent_last`` needs
            them).

    The keys that define the base graph (passed to the loader; part of the cache key) are
    those its schema (:func:`gdepth.config.schema`) adds to :class:`gdepth.config.DatasetConfig`.
    """

    loader: Loader
    description: str
    default_split: str
    splits: tuple[str, ...]
    uses_files: bool = True
    trainer: str = "graph"
    instances: bool = False


def _pyg(key: str, family: str, name: str) -> Loader:
    def loader(params: dict[str, Any], root: Path, mirror: Path | None) -> BaseGraph:
        from gdepth.data.pyg import load_pyg

        return load_pyg(key, family, name, root, mirror)

    return loader


def _lazy(module: str, func: str) -> Loader:
    def loader(params: dict[str, Any], root: Path, mirror: Path | None) -> BaseGraph:
        return getattr(importlib.import_module(module), func)(params, root, mirror)

    return loader


def _ogbn_arxiv(params: dict[str, Any], root: Path, mirror: Path | None) -> BaseGraph:
    from gdepth.data.ogb import load_ogbn_arxiv

    return load_ogbn_arxiv("ogbn_arxiv", root, mirror)


_RANDOM = ("random_per_class", "full_supervised")
_PLANETOID = ("public", "fastgcn", "public_rest", *_RANDOM)

# Synthetic graphs with a range-k node task (gdepth.data.synthetic) and the graph-transfer tasks
# (gdepth.data.transfer).
_SYNTHETIC = {
    "grid2d": ("load_grid2d",
               "4-neighbour 2-D lattice, task: hop distance to the nearest source (range k)"),
    "ring": ("load_ring", "n-cycle, task: hop distance to the nearest source (range k)"),
    "small_world": ("load_small_world",
                    "Watts-Strogatz small world, task: hop distance to the nearest source "
                    "(range k)"),
}
_TRANSFER = {
    "ring": "ring transfer (Di Giovanni et al. 2023): label r hops away on a 2r-cycle",
    "crossed_ring": "crossed-ring transfer (Di Giovanni et al. 2023): label r hops away",
    "clique_path": "clique-path transfer (Di Giovanni et al. 2023): label r hops down a path",
}


def _transfer(topology: str) -> Loader:
    def loader(params: dict[str, Any], root: Path, mirror: Path | None) -> BaseGraph:
        from gdepth.data.transfer import loader as make

        return make(topology)(params, root, mirror)

    return loader


# Nodes of the real datasets (PyG's and OGB's statistics), for what must size a cell without
# loading its graph: the cost estimates of gdepth.reproduce.cells and engine=auto's batch policy.
NODES: dict[str, int] = {
    "cora": 2708, "citeseer": 3327, "pubmed": 19717, "coauthor_cs": 18333,
    "coauthor_physics": 34493, "amazon_computers": 13752, "amazon_photo": 7650,
    "ogbn_arxiv": 169343}

# key: (PyG family, PyG name, description); Planetoid sets default to the public split.
_PYG = {
    "cora": ("Planetoid", "Cora", "Cora citation graph (Planetoid): 2708 nodes, 7 classes"),
    "citeseer": ("Planetoid", "CiteSeer",
                 "CiteSeer citation graph (Planetoid): 3327 nodes, 6 classes"),
    "pubmed": ("Planetoid", "PubMed", "PubMed citation graph (Planetoid): 19717 nodes, 3 classes"),
    "coauthor_cs": ("Coauthor", "CS", "Coauthor CS co-authorship graph: 18333 nodes, 15 classes"),
    "coauthor_physics": ("Coauthor", "Physics",
                         "Coauthor Physics co-authorship graph: 34493 nodes, 5 classes"),
    "amazon_computers": ("Amazon", "Computers",
                         "Amazon Computers co-purchase graph: 13752 nodes, 10 classes"),
    "amazon_photo": ("Amazon", "Photo", "Amazon Photo co-purchase graph: 7650 nodes, 8 classes"),
}

DATASETS: dict[str, DatasetSpec] = {
    key: DatasetSpec(
        _pyg(key, family, name),
        description,
        "public" if family == "Planetoid" else "random_per_class",
        _PLANETOID if family == "Planetoid" else _RANDOM,
    )
    for key, (family, name, description) in _PYG.items()
} | {
    "ogbn_arxiv": DatasetSpec(
        _ogbn_arxiv,
        "OGB arXiv citation graph (undirected): 169343 nodes, 40 classes, time split",
        "ogb",
        ("ogb", *_RANDOM),
    ),
    "csbm": DatasetSpec(
        _lazy("gdepth.data.csbm", "load_csbm"),
        "contextual stochastic block model, generated offline from its parameters",
        "random_per_class",
        _RANDOM,
        uses_files=False,
    ),
} | {
    key: DatasetSpec(_lazy("gdepth.data.synthetic", func), description, "random_per_class",
                     _RANDOM, uses_files=False)
    for key, (func, description) in _SYNTHETIC.items()
} | {
    f"transfer_{topology}": DatasetSpec(
        _transfer(topology), description, "random_per_class", _RANDOM, uses_files=False,
        instances=True,
    )
    for topology, description in _TRANSFER.items()
} | {
    "tree_match": DatasetSpec(
        _lazy("gdepth.data.tree_match", "load_tree_match"),
        "Tree-NeighborsMatch (Alon & Yahav, ICLR 2021): depth-r binary trees, label at the root",
        "paper",
        ("paper",),
        uses_files=False,
        trainer="trees",
    ),
}

_CACHE: dict[tuple[Any, ...], BaseGraph] = {}


def with_instances() -> list[str]:
    """The datasets whose graphs carry node → instance ids (:attr:`DatasetSpec.instances`)."""
    return [name for name, entry in DATASETS.items() if entry.instances]


def clear_cache() -> None:
    """Forget the base datasets loaded in this process."""
    _CACHE.clear()


def spec(name: str) -> DatasetSpec:
    """The registry entry of dataset ``name``."""
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    return DATASETS[name]


def params(dataset_cfg: DatasetConfig) -> dict[str, Any]:
    """The keys that define the base graph: those the dataset's schema adds to
    :class:`gdepth.config.DatasetConfig` (csbm's ``num_nodes, …, graph_seed``), with values."""
    base = {f.name for f in fields(DatasetConfig)}
    return {f.name: getattr(dataset_cfg, f.name) for f in fields(dataset_cfg)
            if f.name not in base}


def load(dataset_cfg: DatasetConfig, data_cfg: DataConfig | None = None, seed: int = 0) -> Graph:
    """Load the dataset ``dataset_cfg.name`` with the split for ``seed``.

    Args:
        dataset_cfg: the dataset's config, its schema in :mod:`gdepth.config`: ``name``
            (registry key), ``split``, the random splits' sizes and the generated graphs'
            parameters (:func:`params`).
        data_cfg: ``root`` (writable cache; None: ``$GDEPTH_DATA`` or ``~/.cache/gdepth``)
            and ``mirror`` (read-only raw files; None: ``$GDEPTH_DATA_MIRROR``); may be None.
        seed: the split's seed for the random splits (seed i → split i, or split
            ``i % num_splits`` when ``num_splits`` is set); fixed splits (``public``,
            ``fastgcn``, ``public_rest``, ``ogb``) ignore it. See :mod:`gdepth.data.splits`.

    Raises:
        ValueError: unknown dataset name or invalid split.
        DatasetUnavailable: the files are nowhere and could not be downloaded.
    """
    from gdepth.data.folders import resolve_mirror, resolve_root

    name, entry = dataset_cfg.name, spec(dataset_cfg.name)
    split = dataset_cfg.split
    if split not in entry.splits:
        raise ValueError(
            f"invalid split {split!r} for dataset {name!r}; valid: {', '.join(entry.splits)}"
        )
    values = params(dataset_cfg)
    folders = data_cfg or DataConfig(root=None, mirror=None)
    root = resolve_root(folders.root) if entry.uses_files else None
    key = (name, tuple(sorted(values.items())), str(root))
    base = _CACHE.get(key)
    if base is None:
        mirror = resolve_mirror(folders.mirror) if entry.uses_files else None
        base = _CACHE[key] = entry.loader(values, root, mirror)  # type: ignore[arg-type]

    train, val, test, description = _split(base, dataset_cfg, split, seed)
    return Graph(
        name=name,
        x=base.x,
        y=base.y,
        edge_index=base.edge_index,
        num_classes=base.num_classes,
        train_mask=train,
        val_mask=val,
        test_mask=test,
        split=description,
        evaluator=base.evaluator,
        instance=base.instance,
    )


def _split(base: BaseGraph, dataset_cfg: DatasetConfig, split: str, seed: int
           ) -> tuple[Any, ...]:
    """``(train, val, test, description)`` of ``split`` for ``seed``."""
    from gdepth.data import splits

    if split in base.fixed_splits:
        return (*(m.clone() for m in base.fixed_splits[split]), split)
    num_splits = dataset_cfg.num_splits
    index = int(seed) % int(num_splits) if num_splits else int(seed)
    if split == "full_supervised":
        fracs = (float(dataset_cfg.train_frac), float(dataset_cfg.val_frac))
        masks = splits.full_supervised(base.y, base.num_classes, *fracs, seed=index)
        return (*masks, f"full_supervised({fracs[0]:g}/{fracs[1]:g}/rest, split={index})")
    k_train = int(dataset_cfg.train_per_class)
    val_size = dataset_cfg.val_size
    if val_size is not None:
        test_size = dataset_cfg.test_size
        masks = splits.random_counts(base.y, base.num_classes, k_train, int(val_size),
                                     None if test_size is None else int(test_size), index)
        test_text = "rest" if test_size is None else str(test_size)
        return (*masks, f"random_per_class({k_train}/c, {val_size}, {test_text}, split={index})")
    k_val = int(dataset_cfg.val_per_class)
    masks = splits.random_per_class(base.y, base.num_classes, k_train, k_val, index)
    return (*masks, splits.describe_random(k_train, k_val, index))
