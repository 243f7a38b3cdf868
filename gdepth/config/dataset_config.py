"""The ``dataset`` group's schemas (``configs/dataset/``): :class:`DatasetConfig` and the
options that extend it."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class DatasetConfig:
    name: str = MISSING  # registry key in gdepth.data.DATASETS
    split: str = MISSING  # public | random_per_class | full_supervised | fastgcn | ... | ogb
    train_per_class: int = 20  # random_per_class: training nodes per class
    val_per_class: int = 30  # random_per_class: validation nodes per class (unless val_size)
    val_size: int | None = None  # random_per_class: validation nodes drawn from the rest
    test_size: int | None = None  # random_per_class: test nodes drawn after val (None: rest)
    train_frac: float = 0.6  # full_supervised: share of each class for training
    val_frac: float = 0.2  # full_supervised: share of each class for validation (rest: test)
    num_splits: int | None = None  # random splits: seed i uses split i % num_splits
    normalize_features: bool = False  # row-L1-normalize x (GCN, GCNII, PairNorm, NodeNorm code)
    adjacency: str = "sym"  # sym: D^-1/2 A D^-1/2 | row: D^-1 A (PairNorm's code)
    self_loops: bool = True  # add I to A before normalizing


@dataclass
class CSBMConfig(DatasetConfig):
    num_nodes: int = 1000
    num_classes: int = 4
    avg_degree: float = 8.0
    homophily: float = 0.7
    snr: float = 0.5
    num_features: int = 32
    graph_seed: int = 0


@dataclass
class RangeTaskConfig(DatasetConfig):
    """grid2d, ring, small_world: a graph plus the distance-to-nearest-source task of range k."""

    num_nodes: int = 1024
    task_range: int = 4  # k: labels are hop distances 0..k to the nearest source, or k+1
    num_sources: int = 32
    graph_seed: int = 0  # the sources (and small_world's rewiring)


@dataclass
class Grid2dConfig(RangeTaskConfig):
    width: int | None = None  # None: a square num_nodes = width²
    periodic: bool = False  # True: a torus


@dataclass
class SmallWorldConfig(RangeTaskConfig):
    neighbors: int = 4  # Watts–Strogatz k: each node joins its k nearest ring neighbours (even)
    rewire_prob: float = 0.1  # Watts–Strogatz p


@dataclass
class TransferConfig(DatasetConfig):
    """transfer_ring, transfer_crossed_ring, transfer_clique_path (Di Giovanni et al. 2023)."""

    task_range: int = 5  # r: hops between the readout node and the source node
    num_graphs: int = 1000  # instances in the disjoint union
    num_classes: int = 5


@dataclass
class TreeMatchConfig(DatasetConfig):
    """tree_match: Tree-NeighborsMatch of Alon & Yahav (ICLR 2021), generated as their code."""

    depth_r: int = 4  # r in 2..8: tree depth, 2^r leaves = classes; their models use r+1 layers
    graph_seed: int = 11  # the authors' seed: their examples and split
    train_fraction: float = 0.8  # stratified train share; the rest is test
