"""Normalization layers placed between a graph convolution and its activation.

Registry ``NORMS`` maps the config name (``norm=<name>``) to a builder and a one-line
description; :func:`build_norm` turns a ``norm`` config node into a module whose forward maps
node features ``x`` of shape ``[N, dim]`` to ``[N, dim]``.

=============  ==============================================================================
name           layer
=============  ==============================================================================
``none``       identity
``batchnorm``  PyG :class:`torch_geometric.nn.BatchNorm` (per feature, over the nodes)
``pairnorm``   PairNorm (Zhao & Akoglu 2020): modes ``PN``, ``PN-SI`` (PyG) and ``PN-SCS``
``nodenorm``   NodeNorm (Zhou et al. 2021): variants ``n``, ``v``, ``srv``, ``pr``, ``m``
``layernorm``  PyG :class:`torch_geometric.nn.LayerNorm` with ``mode="node"`` (Ba et al. 2016)
``groupnorm``  PyG :class:`torch_geometric.nn.DiffGroupNorm` (Zhou et al. 2020)
``meannorm``   PyG :class:`torch_geometric.nn.MeanSubtractionNorm` (Yang et al. 2020)
``graphnorm``  PyG :class:`torch_geometric.nn.GraphNorm` (Cai et al. 2021)
``combnorm``   ``DiffGroupNorm`` then :class:`NodeNorm` (Chen et al. 2022, Bag of Tricks)
=============  ==============================================================================

PyG does the work where it has the layer; NodeNorm and PairNorm's ``PN-SCS`` mode are not in
PyG 2.8 and are written here. Every module is called as ``norm(x)``: PyG's optional ``batch``
arguments are left out, so a full-batch node-classification graph is one graph and the
statistics that PyG takes "over the graph" or "over the batch" are taken over all its nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch import Tensor, nn
from torch_geometric.nn import (
    BatchNorm,
    DiffGroupNorm,
    GraphNorm,
    LayerNorm,
    MeanSubtractionNorm,
    PairNorm,
)

from gdepth.options import option, unknown


class NodeNorm(nn.Module):
    r"""NodeNorm: normalize each node's feature vector by its own statistics.

    Zhou, Huang, Zha, Wang, Zhou and Wang, "Understanding and Resolving Performance Degradation
    in Deep Graph Convolutional Networks", CIKM 2021, arXiv 2006.07107,
    https://arxiv.org/abs/2006.07107; official code https://github.com/miafei/NodeNorm
    (``NodeNorm`` in ``layers.py``). For node :math:`i` with features
    :math:`\mathbf{h}_i \in \mathbb{R}^d`:

    .. math::
        \mu_i = \frac{1}{d}\sum_j h_{ij}, \qquad
        \sigma_i = \sqrt{\frac{1}{d}\sum_j (h_{ij} - \mu_i)^2 + \epsilon}

    (biased variance, :math:`\epsilon` inside the square root, as in the official code), and

    =========  ==============================================  =======================
    variant    output                                          official ``norm`` name
    =========  ==============================================  =======================
    ``n``      :math:`(\mathbf{h}_i - \mu_i) / \sigma_i`       ``node_n`` (default)
    ``v``      :math:`\mathbf{h}_i / \sigma_i`                 ``node_v``, NodeNorm₁
    ``srv``    :math:`\mathbf{h}_i / \sigma_i^{1/2}`           ``node_srv``, NodeNorm₂
    ``pr``     :math:`\mathbf{h}_i / \sigma_i^{1/p}`           ``node_pr_p``, NodeNorm_p
    ``m``      :math:`\mathbf{h}_i - \mu_i`                    ``node_m``
    =========  ==============================================  =======================

    There is no learnable affine transform. Written by hand: PyG has no NodeNorm (variant ``n``
    equals ``LayerNorm(mode='node', affine=False)``, the others have no PyG counterpart).

    Args:
        variant: one of ``n``, ``v``, ``srv``, ``pr``, ``m``. (default: ``"n"``)
        power: :math:`p` of variant ``pr``, > 0. (default: ``2.0``)
        eps: :math:`\epsilon` added to the variance. (default: ``1e-5``)
    """

    VARIANTS = ("n", "v", "srv", "pr", "m")

    def __init__(self, variant: str = "n", power: float = 2.0, eps: float = 1e-5) -> None:
        super().__init__()
        if variant not in self.VARIANTS:
            raise unknown("nodenorm variant", variant, self.VARIANTS)
        if variant == "pr" and not power > 0:
            raise ValueError(f"nodenorm power must be > 0, got {power}")
        self.variant = variant
        self.power = float(power)
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` of shape ``[N, d]`` row by row."""
        if self.variant == "m":
            return x - x.mean(dim=1, keepdim=True)
        std = (x.var(dim=1, unbiased=False, keepdim=True) + self.eps).sqrt()
        if self.variant == "n":
            return (x - x.mean(dim=1, keepdim=True)) / std
        root = {"v": 1.0, "srv": 2.0, "pr": self.power}[self.variant]
        return x / std.pow(1.0 / root)

    def extra_repr(self) -> str:
        power = f", power={self.power}" if self.variant == "pr" else ""
        return f"variant={self.variant!r}{power}, eps={self.eps}"


class PairNormSCS(nn.Module):
    r"""PairNorm's ``PN-SCS`` mode (scale and center simultaneously).

    Zhao and Akoglu, "PairNorm: Tackling Oversmoothing in GNNs", ICLR 2020, arXiv 1909.12223,
    https://arxiv.org/abs/1909.12223; the mode is in the official code
    (https://github.com/LingxiaoShawn/PairNorm, ``layers.py``), not in the paper:

    .. math::
        \mathbf{x}_i' = s \cdot \frac{\mathbf{x}_i}{\sqrt{\epsilon + \|\mathbf{x}_i\|_2^2}}
        - \bar{\mathbf{x}}, \qquad \bar{\mathbf{x}} = \frac{1}{n}\sum_{i=1}^n \mathbf{x}_i

    with :math:`\bar{\mathbf{x}}` the column mean of the *input*. Written by hand: PyG's
    ``PairNorm`` implements only ``PN`` and ``PN-SI``.

    Args:
        scale: :math:`s`. (default: ``1.0``)
        eps: :math:`\epsilon` (PyG's default; the official code uses ``1e-6``). (default: ``1e-5``)
    """

    def __init__(self, scale: float = 1.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = float(scale)
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` of shape ``[N, d]`` (one graph)."""
        rownorm = (self.eps + x.pow(2).sum(dim=1, keepdim=True)).sqrt()
        return self.scale * x / rownorm - x.mean(dim=0, keepdim=True)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, eps={self.eps}"


PAIRNORM_MODES = ("PN", "PN-SI", "PN-SCS")


def _none(norm_cfg: Any, dim: int) -> nn.Module:
    """Identity; no keys."""
    return nn.Identity()


def _batchnorm(norm_cfg: Any, dim: int) -> nn.Module:
    """PyG ``BatchNorm(dim)`` (eps 1e-5, momentum 0.1, affine, running stats); no keys."""
    return BatchNorm(dim)


def _pairnorm(norm_cfg: Any, dim: int) -> nn.Module:
    r"""PairNorm, keys ``mode`` (``"PN"``), ``scale`` (``1.0``), ``eps`` (``1e-5``).

    Zhao and Akoglu, ICLR 2020, arXiv 1909.12223. With :math:`\mathbf{x}^c_i = \mathbf{x}_i -
    \bar{\mathbf{x}}`, PyG computes ``PN``: :math:`s\,\mathbf{x}^c_i / \sqrt{\epsilon +
    \frac{1}{n}\sum_i\|\mathbf{x}^c_i\|^2}` and ``PN-SI``: :math:`s\,\mathbf{x}^c_i / (\epsilon +
    \|\mathbf{x}^c_i\|)` (PyG adds eps outside the norm here); ``PN-SCS`` is :class:`PairNormSCS`.
    """
    mode = option(norm_cfg, "mode", "PN")
    scale = float(option(norm_cfg, "scale", 1.0))
    eps = float(option(norm_cfg, "eps", 1e-5))
    if mode not in PAIRNORM_MODES:
        raise unknown("pairnorm mode", mode, PAIRNORM_MODES)
    if mode == "PN-SCS":
        return PairNormSCS(scale=scale, eps=eps)
    return PairNorm(scale=scale, scale_individually=mode == "PN-SI", eps=eps)


def _nodenorm(norm_cfg: Any, dim: int) -> nn.Module:
    """NodeNorm, keys ``variant`` (``"n"``), ``power`` (``2.0``), ``eps`` (``1e-5``)."""
    return NodeNorm(
        variant=option(norm_cfg, "variant", "n"),
        power=float(option(norm_cfg, "power", 2.0)),
        eps=float(option(norm_cfg, "eps", 1e-5)),
    )


def _layernorm(norm_cfg: Any, dim: int) -> nn.Module:
    r"""Per-node LayerNorm, keys ``eps`` (``1e-5``), ``affine`` (``True``).

    Ba, Kiros and Hinton, "Layer Normalization", arXiv 1607.06450 (2016),
    https://arxiv.org/abs/1607.06450. PyG ``LayerNorm(dim, eps, affine, mode="node")``
    normalizes each node over its :math:`d` features (biased variance, :math:`\epsilon` inside
    the square root):

    .. math::
        \mathbf{x}_i' = \frac{\mathbf{x}_i - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}} \odot
        \boldsymbol{\gamma} + \boldsymbol{\beta}, \qquad
        \mu_i = \tfrac{1}{d}\textstyle\sum_j x_{ij}, \quad
        \sigma_i^2 = \tfrac{1}{d}\textstyle\sum_j (x_{ij} - \mu_i)^2

    with learnable :math:`\boldsymbol{\gamma}` (ones) and :math:`\boldsymbol{\beta}` (zeros)
    when ``affine``; ``affine=False`` equals NodeNorm variant ``n``. (PyG's default
    ``mode="graph"`` would pool the statistics over all nodes and features instead.)
    """
    eps = float(option(norm_cfg, "eps", 1e-5))
    return LayerNorm(dim, eps=eps, affine=bool(option(norm_cfg, "affine", True)), mode="node")


def _diffgroupnorm(norm_cfg: Any, dim: int) -> DiffGroupNorm:
    r"""Differentiable group normalization, keys ``groups`` (``10``), ``lamda`` (``0.01``), ``eps``.

    Zhou, Huang, Zha, Chen, Li, Choi and Hu, "Towards Deeper Graph Neural Networks with
    Differentiable Group Normalization", NeurIPS 2020, arXiv 2006.06972,
    https://arxiv.org/abs/2006.06972. PyG ``DiffGroupNorm(dim, groups, lamda, eps)``: with a
    learnable :math:`\mathbf{W} \in \mathbb{R}^{d \times G}` (no bias),

    .. math::
        \mathbf{S} = \operatorname{softmax}(\mathbf{X}\mathbf{W}), \qquad
        \mathbf{X}' = \mathbf{X} + \lambda \sum_{g=1}^{G}
        \operatorname{BatchNorm}(\mathbf{S}_{:,g} \odot \mathbf{X})

    where BatchNorm (affine, momentum 0.1, ``eps`` :math:`\epsilon`) standardizes each of the
    :math:`G \cdot d` columns over the nodes in training and uses running statistics in eval.
    Full-batch node classification has one graph, so these are statistics over all its nodes.
    The Bag-of-Tricks code (``group_norm``) differs slightly: a bias in :math:`\mathbf{W}`,
    BatchNorm momentum 0.3, and per-dataset :math:`\lambda` (``skip_weight``) and :math:`G`.
    """
    groups = int(option(norm_cfg, "groups", 10))
    if groups < 1:
        raise ValueError(f"groupnorm groups must be >= 1, got {groups}")
    lamda = float(option(norm_cfg, "lamda", 0.01))
    return DiffGroupNorm(dim, groups, lamda=lamda, eps=float(option(norm_cfg, "eps", 1e-5)))


def _meannorm(norm_cfg: Any, dim: int) -> nn.Module:
    r"""Mean subtraction over the nodes; no keys.

    Yang, Wang, Yao, Liu and Abdelzaher, "Revisiting Over-smoothing in Deep GCNs",
    arXiv 2003.13663 (2020), https://arxiv.org/abs/2003.13663. PyG ``MeanSubtractionNorm()``:
    :math:`\mathbf{x}_i' = \mathbf{x}_i - \frac{1}{n}\sum_{j=1}^{n} \mathbf{x}_j` (the
    Bag-of-Tricks ``MeanNorm``).
    """
    return MeanSubtractionNorm()


def _graphnorm(norm_cfg: Any, dim: int) -> nn.Module:
    r"""GraphNorm, key ``eps`` (``1e-5``).

    Cai, Luo, Xu, He, Liu and Wang, "GraphNorm: A Principled Approach to Accelerating Graph
    Neural Network Training", ICML 2021, arXiv 2009.03294, https://arxiv.org/abs/2009.03294.
    PyG ``GraphNorm(dim, eps)``, per feature over the :math:`n` nodes of the graph:

    .. math::
        \mathbf{x}_i' = \boldsymbol{\gamma} \odot
        \frac{\mathbf{x}_i - \boldsymbol{\alpha} \odot \boldsymbol{\mu}}
        {\sqrt{\boldsymbol{\sigma}^2 + \epsilon}} + \boldsymbol{\beta}, \qquad
        \boldsymbol{\mu} = \tfrac{1}{n}\textstyle\sum_i \mathbf{x}_i, \quad
        \boldsymbol{\sigma}^2 = \tfrac{1}{n}\textstyle\sum_i
        (\mathbf{x}_i - \boldsymbol{\alpha} \odot \boldsymbol{\mu})^2

    with learnable :math:`\boldsymbol{\alpha}, \boldsymbol{\gamma}` (ones) and
    :math:`\boldsymbol{\beta}` (zeros). At init it equals BatchNorm's training-mode output on
    one graph, but it keeps no running statistics: eval uses the statistics of the input too.
    """
    return GraphNorm(dim, eps=float(option(norm_cfg, "eps", 1e-5)))


def _combnorm(norm_cfg: Any, dim: int) -> nn.Module:
    r"""CombNorm: ``groupnorm`` then ``nodenorm``, keys of both (one ``eps`` for the two).

    Chen, Zhou, Duan, Zheng, Wang, Hu and Wang, "Bag of Tricks for Training Deeper Graph Neural
    Networks: A Comprehensive Benchmark Study", IEEE TPAMI 2022, arXiv 2108.10521,
    https://arxiv.org/abs/2108.10521; official code
    https://github.com/VITA-Group/Deep_GCN_Benchmarking
    (``comb_norm([group_norm, node_norm])`` in ``tricks/tricks/norms.py``):
    :math:`\mathbf{X}' = \operatorname{NodeNorm}(\operatorname{DiffGroupNorm}(\mathbf{X}))`,
    both as documented in :func:`_diffgroupnorm` and :class:`NodeNorm`, sharing ``eps``.
    """
    eps = float(option(norm_cfg, "eps", 1e-5))
    nodenorm = NodeNorm(
        variant=option(norm_cfg, "variant", "n"),
        power=float(option(norm_cfg, "power", 2.0)),
        eps=eps,
    )
    return nn.Sequential(_diffgroupnorm(norm_cfg, dim), nodenorm)


class NormSpec(NamedTuple):
    """A registry entry: ``builder(norm_cfg, dim) -> nn.Module`` and a one-line description."""

    builder: Callable[[Any, int], nn.Module]
    description: str


NORMS: dict[str, NormSpec] = {
    "none": NormSpec(_none, "no normalization (identity)"),
    "batchnorm": NormSpec(_batchnorm, "PyG BatchNorm over nodes, per feature, with affine"),
    "pairnorm": NormSpec(
        _pairnorm, "PairNorm (Zhao & Akoglu, ICLR 2020); mode PN | PN-SI | PN-SCS, scale s"
    ),
    "nodenorm": NormSpec(
        _nodenorm, "NodeNorm (Zhou et al., CIKM 2021); per-node statistics, variant n|v|srv|pr|m"
    ),
    "layernorm": NormSpec(_layernorm, "LayerNorm per node (Ba et al. 2016), PyG mode='node'"),
    "groupnorm": NormSpec(
        _diffgroupnorm, "DiffGroupNorm (Zhou et al., NeurIPS 2020), PyG; groups G, skip lamda"
    ),
    "meannorm": NormSpec(
        _meannorm, "mean subtraction over nodes (Yang et al. 2020), PyG MeanSubtractionNorm"
    ),
    "graphnorm": NormSpec(
        _graphnorm, "GraphNorm (Cai et al., ICML 2021), PyG; learnable mean shift"
    ),
    "combnorm": NormSpec(
        _combnorm, "CombNorm (Chen et al., TPAMI 2022): DiffGroupNorm then NodeNorm (variant)"
    ),
}


def build_norm(norm_cfg: Any, dim: int) -> nn.Module:
    """Build the normalization named by ``norm_cfg.name`` for ``dim`` features.

    Args:
        norm_cfg: a ``norm`` config node (DictConfig, mapping or attribute object) with ``name``
            and the per-norm keys documented in the module docstring; ``None`` means ``none``.
        dim: number of features of the input ``[N, dim]``.
    """
    name = "none" if norm_cfg is None else option(norm_cfg, "name", None)
    if name not in NORMS:
        raise unknown("norm", name, NORMS)
    return NORMS[name].builder(norm_cfg, dim)


def build_seeded_norm(norm_cfg: Any, dim: int, num_seeds: int) -> nn.Module:
    """The norm of :func:`build_norm` for ``num_seeds`` seeds at once: ``[N, S, dim]`` to
    ``[N, S, dim]``, tensors seed-major (:mod:`gdepth.nn.seeds`).

    Transitional (issue 17): the stacked kernels of :func:`gdepth.nn.kernels.stack_norms`
    where they exist, else :class:`gdepth.nn.seeds.SeedNorm` (the one-seed norm per seed).
    """
    from gdepth.nn import kernels, seeds  # kernels reads this module's NodeNorm

    try:
        return kernels.stack_norms([build_norm(norm_cfg, dim) for _ in range(num_seeds)])
    except kernels.NotBatchable:
        return seeds.SeedNorm(lambda: build_norm(norm_cfg, dim), num_seeds)


__all__ = ["NORMS", "NodeNorm", "NormSpec", "PairNormSCS", "build_norm", "build_seeded_norm",
           "option", "unknown"]
