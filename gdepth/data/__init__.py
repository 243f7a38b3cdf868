"""Datasets for depth sweeps: one registry, one :func:`load`, one :class:`Graph`.

``load(cfg.dataset, cfg.data, seed)`` returns a :class:`Graph` with the split for ``seed``.
The base dataset (features, labels, edges) is parsed once per process and cached, keyed by
its name, its generation parameters and the cache folder; only the split is drawn per seed.

Importing this package does not import torch or PyG; loaders import them when called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdepth.data.graph import BaseGraph, DatasetUnavailable, Graph
from gdepth.options import option, unknown

__all__ = ["DATASETS", "DatasetSpec", "DatasetUnavailable", "Graph", "clear_cache", "load"]

Loader = Callable[[dict[str, Any], Path, "Path | None"], BaseGraph]


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry.

    Attributes:
        loader: ``(params, root, mirror) -> BaseGraph``.
        description: one line for ``gdepth list datasets``.
        default_split: used when the config gives no ``split``.
        splits: the valid values of ``split``.
        params: config keys (with defaults) that define the base graph; part of the cache key.
        uses_files: whether the loader reads the cache/mirror folders.
    """

    loader: Loader
    description: str
    default_split: str
    splits: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    uses_files: bool = True


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
_CSBM_PARAMS = {
    "num_nodes": 1000,
    "num_classes": 4,
    "avg_degree": 8.0,
    "homophily": 0.7,
    "snr": 0.5,
    "num_features": 32,
    "graph_seed": 0,
}

# Synthetic graphs with a range-k node task (gdepth.data.synthetic) and the graph-transfer tasks
# (gdepth.data.transfer); the defaults equal their configs/dataset/*.yaml.
_RANGE_PARAMS = {"num_nodes": 1024, "task_range": 4, "num_sources": 32, "graph_seed": 0}
_SYNTHETIC = {
    "grid2d": ("load_grid2d", {"width": None, "periodic": False},
               "4-neighbour 2-D lattice, task: hop distance to the nearest source (range k)"),
    "ring": ("load_ring", {}, "n-cycle, task: hop distance to the nearest source (range k)"),
    "small_world": ("load_small_world", {"neighbors": 4, "rewire_prob": 0.1},
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
        params=_CSBM_PARAMS,
        uses_files=False,
    ),
} | {
    key: DatasetSpec(_lazy("gdepth.data.synthetic", func), description, "random_per_class",
                     _RANDOM, params=_RANGE_PARAMS | extra, uses_files=False)
    for key, (func, extra, description) in _SYNTHETIC.items()
} | {
    f"transfer_{topology}": DatasetSpec(
        _transfer(topology), description, "random_per_class", _RANDOM,
        params={"task_range": 5, "num_graphs": 1000, "num_classes": 5}, uses_files=False,
    )
    for topology, description in _TRANSFER.items()
} | {
    "tree_match": DatasetSpec(
        _lazy("gdepth.data.tree_match", "load_tree_match"),
        "Tree-NeighborsMatch (Alon & Yahav, ICLR 2021): depth-r binary trees, label at the root",
        "paper",
        ("paper",),
        params={"depth_r": 4, "graph_seed": 11, "train_fraction": 0.8},
        uses_files=False,
    ),
}

_CACHE: dict[tuple[Any, ...], BaseGraph] = {}


def clear_cache() -> None:
    """Forget the base datasets loaded in this process."""
    _CACHE.clear()


def load(dataset_cfg: Any, data_cfg: Any = None, seed: int = 0) -> Graph:
    """Load the dataset ``dataset_cfg.name`` with the split for ``seed``.

    Args:
        dataset_cfg: ``name`` (registry key), ``split`` (default: the dataset's), and for
            random splits ``train_per_class`` (20) and ``val_per_class`` (30); csbm also reads
            ``num_nodes, num_classes, avg_degree, homophily, snr, num_features, graph_seed``.
        data_cfg: ``root`` (writable cache; default ``$GDEPTH_DATA`` or ``~/.cache/gdepth``)
            and ``mirror`` (read-only raw files; default ``$GDEPTH_DATA_MIRROR``); may be None.
        seed: the split's seed for the random splits (seed i → split i, or split
            ``i % num_splits`` when ``num_splits`` is set); fixed splits (``public``,
            ``fastgcn``, ``public_rest``, ``ogb``) ignore it. See :mod:`gdepth.data.splits`.

    Raises:
        ValueError: unknown dataset name or invalid split.
        DatasetUnavailable: the files are nowhere and could not be downloaded.
    """
    from gdepth.data.folders import resolve_mirror, resolve_root

    name = option(dataset_cfg, "name")
    spec = DATASETS.get(name)  # type: ignore[arg-type]
    if spec is None:
        raise unknown("dataset", name, DATASETS)
    split = option(dataset_cfg, "split", spec.default_split)
    if split not in spec.splits:
        raise ValueError(
            f"invalid split {split!r} for dataset {name!r}; valid: {', '.join(spec.splits)}"
        )
    params = {k: option(dataset_cfg, k, v) for k, v in spec.params.items()}
    root = resolve_root(option(data_cfg, "root")) if spec.uses_files else None
    key = (name, tuple(sorted(params.items())), str(root))
    base = _CACHE.get(key)
    if base is None:
        mirror = resolve_mirror(option(data_cfg, "mirror")) if spec.uses_files else None
        base = _CACHE[key] = spec.loader(params, root, mirror)  # type: ignore[arg-type]

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
    )


def _split(base: BaseGraph, dataset_cfg: Any, split: str, seed: int) -> tuple[Any, ...]:
    """``(train, val, test, description)`` of ``split`` for ``seed``."""
    from gdepth.data import splits

    if split in base.fixed_splits:
        return (*(m.clone() for m in base.fixed_splits[split]), split)
    num_splits = option(dataset_cfg, "num_splits")
    index = int(seed) % int(num_splits) if num_splits else int(seed)
    if split == "full_supervised":
        fracs = (float(option(dataset_cfg, "train_frac", 0.6)),
                 float(option(dataset_cfg, "val_frac", 0.2)))
        masks = splits.full_supervised(base.y, base.num_classes, *fracs, seed=index)
        return (*masks, f"full_supervised({fracs[0]:g}/{fracs[1]:g}/rest, split={index})")
    k_train = int(option(dataset_cfg, "train_per_class", 20))
    val_size = option(dataset_cfg, "val_size")
    if val_size is not None:
        test_size = option(dataset_cfg, "test_size")
        masks = splits.random_counts(base.y, base.num_classes, k_train, int(val_size),
                                     None if test_size is None else int(test_size), index)
        test_text = "rest" if test_size is None else str(test_size)
        return (*masks, f"random_per_class({k_train}/c, {val_size}, {test_text}, split={index})")
    k_val = int(option(dataset_cfg, "val_per_class", 30))
    masks = splits.random_per_class(base.y, base.num_classes, k_train, k_val, index)
    return (*masks, splits.describe_random(k_train, k_val, index))
