r"""Normalization layers placed between a graph convolution and its activation, seed-native.

Every norm is written once, with the seed axis built in (:mod:`gdepth.nn.seeds`):
it maps hidden features ``h [N, S, d]`` (seed ``s`` is ``h[:, s]``) to ``[N, S, d]``, takes
its statistics per seed, and holds its affine parameters and running statistics seed-major
``[S, d]``. Seed ``s``'s slice computes exactly what the PyG / torch module it replaces
computes on ``h[:, s]``: same formula, ``eps``, momentum and initial values (``reset_seed(s)``
draws what that module draws in its constructor). One run is S = 1.

Registry ``NORMS`` maps the config name (``norm=<name>``) to a builder and a one-line
description; :func:`build_seeded_norm` turns a ``norm`` config node into the module for S
seeds, :func:`build_norm` into the one-seed module ``[N, d] -> [N, d]``
(:class:`gdepth.nn.one_seed.OneSeedNorm` over the S = 1 module: one definition per norm).

=============  ==============================================================================
name           layer (the module it replaces)
=============  ==============================================================================
``none``       identity (:class:`gdepth.nn.kernels.StackedNorm`)
``batchnorm``  :class:`BatchNorm` (PyG ``BatchNorm``: per feature, over the nodes)
``pairnorm``   :class:`PairNorm` (Zhao & Akoglu 2020): modes ``PN``, ``PN-SI`` (PyG) and
               ``PN-SCS`` (the official code)
``nodenorm``   :class:`NodeNorm` (Zhou et al. 2021): variants ``n``, ``v``, ``srv``, ``pr``, ``m``
``layernorm``  :class:`LayerNorm` (PyG ``LayerNorm`` with ``mode="node"``, Ba et al. 2016)
``groupnorm``  :class:`DiffGroupNorm` (PyG ``DiffGroupNorm``, Zhou et al. 2020)
``meannorm``   :class:`MeanSubtractionNorm` (PyG ``MeanSubtractionNorm``, Yang et al. 2020)
``graphnorm``  :class:`GraphNorm` (PyG ``GraphNorm``, Cai et al. 2021)
``combnorm``   :class:`CombNorm`: ``DiffGroupNorm`` then ``NodeNorm`` (Chen et al. 2022)
=============  ==============================================================================

PyG's optional ``batch`` arguments have no counterpart: a full-batch node-classification graph
is one graph, and the statistics that PyG takes "over the graph" or "over the batch" are taken
over all its nodes (per seed). PyG 2.8 has no NodeNorm and no ``PN-SCS``; they follow the
official code. The tests (``tests/test_seed_norms.py``) hold S = 1 against the PyG / torch
modules and S seeds against S one-seed runs.

One module per norm, named as PyG names its own (``pair_norm.py`` holds :class:`PairNorm`),
:class:`SeedNormBase` in :mod:`.base`; the registry and the builders are here, and every name is
re-exported here (``from gdepth.norms import PairNorm``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch import nn

from gdepth.config import (
    CombNormConfig,
    GraphNormConfig,
    GroupNormConfig,
    LayerNormConfig,
    NodeNormConfig,
    NormConfig,
    PairNormConfig,
)
from gdepth.nn.kernels import StackedNorm
from gdepth.nn.one_seed import OneSeedNorm
from gdepth.norms.base import SeedNormBase
from gdepth.norms.batch_norm import BatchNorm
from gdepth.norms.comb_norm import CombNorm
from gdepth.norms.diff_group_norm import DiffGroupNorm
from gdepth.norms.graph_norm import GraphNorm
from gdepth.norms.layer_norm import LayerNorm
from gdepth.norms.mean_subtraction_norm import MeanSubtractionNorm
from gdepth.norms.node_norm import NodeNorm
from gdepth.norms.pair_norm import PAIRNORM_MODES, PairNorm
from gdepth.options import unknown


def _none(norm_cfg: NormConfig, dim: int, num_seeds: int) -> nn.Module:
    """Identity (:class:`gdepth.nn.kernels.StackedNorm`: the models' fast paths test for that
    exact type); no keys."""
    return StackedNorm(num_seeds)


def _batchnorm(norm_cfg: NormConfig, dim: int, num_seeds: int) -> nn.Module:
    """:class:`BatchNorm` (eps 1e-5, momentum 0.1, affine, running stats); no keys."""
    return BatchNorm(num_seeds, dim)


def _pairnorm(norm_cfg: PairNormConfig, dim: int, num_seeds: int) -> nn.Module:
    """:class:`PairNorm`, keys ``mode``, ``scale``, ``eps``."""
    return PairNorm(num_seeds, mode=str(norm_cfg.mode), scale=float(norm_cfg.scale),
                    eps=float(norm_cfg.eps))


def _nodenorm(norm_cfg: NodeNormConfig, dim: int, num_seeds: int) -> nn.Module:
    """:class:`NodeNorm`, keys ``variant``, ``power``, ``eps``."""
    return NodeNorm(num_seeds, variant=str(norm_cfg.variant), power=float(norm_cfg.power),
                    eps=float(norm_cfg.eps))


def _layernorm(norm_cfg: LayerNormConfig, dim: int, num_seeds: int) -> nn.Module:
    """:class:`LayerNorm`, keys ``eps``, ``affine``."""
    return LayerNorm(num_seeds, dim, eps=float(norm_cfg.eps), affine=bool(norm_cfg.affine))


def _diffgroupnorm(norm_cfg: GroupNormConfig, dim: int, num_seeds: int) -> nn.Module:
    """:class:`DiffGroupNorm`, keys ``groups``, ``lamda``, ``eps``."""
    return DiffGroupNorm(num_seeds, dim, int(norm_cfg.groups), lamda=float(norm_cfg.lamda),
                         eps=float(norm_cfg.eps))


def _meannorm(norm_cfg: NormConfig, dim: int, num_seeds: int) -> nn.Module:
    """:class:`MeanSubtractionNorm`; no keys."""
    return MeanSubtractionNorm(num_seeds)


def _graphnorm(norm_cfg: GraphNormConfig, dim: int, num_seeds: int) -> nn.Module:
    """:class:`GraphNorm`, key ``eps``."""
    return GraphNorm(num_seeds, dim, eps=float(norm_cfg.eps))


def _combnorm(norm_cfg: CombNormConfig, dim: int, num_seeds: int) -> nn.Module:
    """:class:`CombNorm`, the keys of ``groupnorm`` and ``nodenorm`` (one ``eps``)."""
    return CombNorm(num_seeds, dim, groups=int(norm_cfg.groups), lamda=float(norm_cfg.lamda),
                    eps=float(norm_cfg.eps), variant=str(norm_cfg.variant),
                    power=float(norm_cfg.power))


class NormSpec(NamedTuple):
    """A registry entry: ``builder(norm_cfg, dim, num_seeds) -> nn.Module`` (seed-native,
    ``[N, S, dim] -> [N, S, dim]``) and a one-line description."""

    builder: Callable[[Any, int, int], nn.Module]
    description: str


NORMS: dict[str, NormSpec] = {
    "none": NormSpec(_none, "no normalization (identity)"),
    "batchnorm": NormSpec(_batchnorm, "BatchNorm over nodes, per feature, with affine (PyG's)"),
    "pairnorm": NormSpec(
        _pairnorm, "PairNorm (Zhao & Akoglu, ICLR 2020); mode PN | PN-SI | PN-SCS, scale s"
    ),
    "nodenorm": NormSpec(
        _nodenorm, "NodeNorm (Zhou et al., CIKM 2021); per-node statistics, variant n|v|srv|pr|m"
    ),
    "layernorm": NormSpec(_layernorm, "LayerNorm per node (Ba et al. 2016), PyG mode='node'"),
    "groupnorm": NormSpec(
        _diffgroupnorm, "DiffGroupNorm (Zhou et al., NeurIPS 2020), PyG's; groups G, skip lamda"
    ),
    "meannorm": NormSpec(
        _meannorm, "mean subtraction over nodes (Yang et al. 2020), PyG MeanSubtractionNorm"
    ),
    "graphnorm": NormSpec(
        _graphnorm, "GraphNorm (Cai et al., ICML 2021), PyG's; learnable mean shift"
    ),
    "combnorm": NormSpec(
        _combnorm, "CombNorm (Chen et al., TPAMI 2022): DiffGroupNorm then NodeNorm (variant)"
    ),
}


def build_seeded_norm(norm_cfg: NormConfig | None, dim: int, num_seeds: int) -> nn.Module:
    """Build the normalization named by ``norm_cfg.name`` for ``num_seeds`` seeds of ``dim``
    features: a module mapping ``[N, S, dim]`` to ``[N, S, dim]``, its tensors seed-major
    (:mod:`gdepth.nn.seeds`); seed s's initial tensors are drawn as the one-seed module's
    (:func:`gdepth.nn.seeds.reset_seeds` redraws them per seed).

    Args:
        norm_cfg: the norm's config, its schema in :mod:`gdepth.config` (``name`` and the
            norm's keys); ``None`` means ``none``.
        dim: number of features ``d`` per seed.
        num_seeds: S.
    """
    if norm_cfg is None:
        norm_cfg = NormConfig(name="none")
    if norm_cfg.name not in NORMS:
        raise unknown("norm", norm_cfg.name, NORMS)
    return NORMS[norm_cfg.name].builder(norm_cfg, dim, num_seeds)


def build_norm(norm_cfg: NormConfig | None, dim: int) -> nn.Module:
    """The one-seed norm ``[N, dim] -> [N, dim]``: :func:`build_seeded_norm` with S = 1 behind
    :class:`gdepth.nn.one_seed.OneSeedNorm` (the seed-native module is its ``module``)."""
    return OneSeedNorm(build_seeded_norm(norm_cfg, dim, 1))


__all__ = ["NORMS", "BatchNorm", "CombNorm", "DiffGroupNorm", "GraphNorm", "LayerNorm",
           "MeanSubtractionNorm", "NodeNorm", "NormSpec", "OneSeedNorm", "PAIRNORM_MODES",
           "PairNorm", "SeedNormBase", "StackedNorm", "build_norm", "build_seeded_norm",
           "unknown"]
