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
(:class:`gdepth.nn.seeds.OneSeedNorm` over the S = 1 module: one definition per norm).

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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
from gdepth.nn.seeds import OneSeedNorm, kaiming_linear_
from gdepth.options import unknown


class SeedNormBase(nn.Module):
    """What every seed-native norm has: ``num_seeds``, ``reset_seed(s)`` (seed ``s``'s initial
    tensors), and ``weight_parameters()`` (the tensors the module it replaces named
    ``*weight*``: the L1 penalty's)."""

    def __init__(self, num_seeds: int) -> None:
        super().__init__()
        if num_seeds < 1:
            raise ValueError(f"a norm needs at least one seed, got {num_seeds}")
        self.num_seeds = int(num_seeds)

    def reset_seed(self, s: int) -> None:
        """Seed ``s``'s initial tensors (none here: no parameters)."""

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if "weight" in name]


class BatchNorm(SeedNormBase):
    r"""Batch normalization per seed and feature, over the nodes.

    Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift", ICML 2015, arXiv 1502.03167. Replaces PyG
    ``BatchNorm(dim)`` (``torch.nn.BatchNorm1d``: eps :math:`10^{-5}`, momentum 0.1, affine,
    running statistics). For seed :math:`s` and feature :math:`j` over the :math:`n` nodes:

    .. math::
        x'_{isj} = \gamma_{sj} \frac{x_{isj} - \mu_{sj}}{\sqrt{\sigma^2_{sj} + \epsilon}}
        + \beta_{sj}, \qquad
        \mu_{sj} = \tfrac1n\textstyle\sum_i x_{isj}, \quad
        \sigma^2_{sj} = \tfrac1n\textstyle\sum_i (x_{isj} - \mu_{sj})^2

    in training, which also updates the running statistics
    :math:`\hat\mu \leftarrow (1 - m)\hat\mu + m\mu`,
    :math:`\hat\sigma^2 \leftarrow (1 - m)\hat\sigma^2 + m\,\frac{n}{n-1}\sigma^2`
    (:math:`m` = momentum); eval normalizes by :math:`\hat\mu, \hat\sigma^2`. Init
    :math:`\gamma = 1, \beta = 0, \hat\mu = 0, \hat\sigma^2 = 1`.

    One ``F.batch_norm`` on the ``[N, S·d]`` view: each column is one (seed, feature), so the
    statistics are per seed; ``weight``, ``bias``, ``running_mean``, ``running_var`` are
    ``[S, d]``. torch's ``num_batches_tracked`` is not kept (it only matters for
    ``momentum=None``, a cumulative average, which gdepth does not use).
    """

    track_running_stats = True  # models refuse activation checkpointing for such norms
    affine = True

    def __init__(self, num_seeds: int, dim: int, eps: float = 1e-5,
                 momentum: float = 0.1) -> None:
        super().__init__(num_seeds)
        self.num_features, self.eps, self.momentum = int(dim), float(eps), float(momentum)
        self.weight = nn.Parameter(torch.ones(num_seeds, dim))
        self.bias = nn.Parameter(torch.zeros(num_seeds, dim))
        self.register_buffer("running_mean", torch.zeros(num_seeds, dim))
        self.register_buffer("running_var", torch.ones(num_seeds, dim))

    def reset_seed(self, s: int) -> None:
        with torch.no_grad():
            self.weight[s].fill_(1.0)
            self.bias[s].zero_()
            self.running_mean[s].zero_()
            self.running_var[s].fill_(1.0)

    def forward(self, h: Tensor) -> Tensor:
        n = h.shape[0]
        out = F.batch_norm(h.reshape(n, -1), self.running_mean.view(-1),
                           self.running_var.view(-1), self.weight.view(-1), self.bias.view(-1),
                           self.training, self.momentum, self.eps)
        return out.view(h.shape)

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, {self.num_features}, eps={self.eps}, "
                f"momentum={self.momentum}")


PAIRNORM_MODES = ("PN", "PN-SI", "PN-SCS")


class PairNorm(SeedNormBase):
    r"""PairNorm per seed, statistics over the nodes; no parameters.

    Zhao and Akoglu, "PairNorm: Tackling Oversmoothing in GNNs", ICLR 2020, arXiv 1909.12223,
    https://arxiv.org/abs/1909.12223; official code https://github.com/LingxiaoShawn/PairNorm
    (``layers.py``). With :math:`\bar{\mathbf{x}} = \frac1n\sum_i \mathbf{x}_i` and
    :math:`\mathbf{x}^c_i = \mathbf{x}_i - \bar{\mathbf{x}}` (per seed):

    ==========  ==========================================================================
    mode        output
    ==========  ==========================================================================
    ``PN``      :math:`s\,\mathbf{x}^c_i / \sqrt{\epsilon + \frac1n\sum_i\|\mathbf{x}^c_i\|^2}`
                (PyG ``PairNorm``)
    ``PN-SI``   :math:`s\,\mathbf{x}^c_i / (\epsilon + \|\mathbf{x}^c_i\|)` (PyG
                ``PairNorm(scale_individually=True)``: eps outside the norm)
    ``PN-SCS``  :math:`s\,\mathbf{x}_i / \sqrt{\epsilon + \|\mathbf{x}_i\|^2} - \bar{\mathbf{x}}`
                (official code only: scale and center simultaneously, the *input's* mean)
    ==========  ==========================================================================

    Args:
        mode: ``PN``, ``PN-SI`` or ``PN-SCS``. (default: ``"PN"``)
        scale: :math:`s`. (default: ``1.0``)
        eps: :math:`\epsilon` (PyG's default; the official code uses ``1e-6``).
            (default: ``1e-5``)
    """

    def __init__(self, num_seeds: int, mode: str = "PN", scale: float = 1.0,
                 eps: float = 1e-5) -> None:
        super().__init__(num_seeds)
        if mode not in PAIRNORM_MODES:
            raise unknown("pairnorm mode", mode, PAIRNORM_MODES)
        self.mode, self.scale, self.eps = mode, float(scale), float(eps)

    def forward(self, h: Tensor) -> Tensor:
        mean = h.mean(dim=0, keepdim=True)  # [1, S, d]: per seed, over the nodes
        if self.mode == "PN-SCS":
            rownorm = (self.eps + h.pow(2).sum(dim=-1, keepdim=True)).sqrt()
            return self.scale * h / rownorm - mean
        h = h - mean
        if self.mode == "PN-SI":
            return self.scale * h / (self.eps + h.norm(2, -1, keepdim=True))
        total = (self.eps + h.pow(2).sum(-1).mean(dim=0, keepdim=True)).sqrt()  # [1, S]
        return self.scale * h / total.unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"seeds={self.num_seeds}, mode={self.mode!r}, scale={self.scale}, eps={self.eps}"


class NodeNorm(SeedNormBase):
    r"""NodeNorm: normalize each node's feature vector by its own statistics (per seed).

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

    There is no learnable affine transform. The statistics are over the last axis only, so
    any leading axes (nodes, seeds) are independent rows. Written by hand: PyG has no NodeNorm
    (variant ``n`` equals ``LayerNorm(mode='node', affine=False)``, the others have no PyG
    counterpart).

    Args:
        variant: one of ``n``, ``v``, ``srv``, ``pr``, ``m``. (default: ``"n"``)
        power: :math:`p` of variant ``pr``, > 0. (default: ``2.0``)
        eps: :math:`\epsilon` added to the variance. (default: ``1e-5``)
    """

    VARIANTS = ("n", "v", "srv", "pr", "m")

    def __init__(self, num_seeds: int, variant: str = "n", power: float = 2.0,
                 eps: float = 1e-5) -> None:
        super().__init__(num_seeds)
        if variant not in self.VARIANTS:
            raise unknown("nodenorm variant", variant, self.VARIANTS)
        if variant == "pr" and not power > 0:
            raise ValueError(f"nodenorm power must be > 0, got {power}")
        self.variant = variant
        self.power = float(power)
        self.eps = float(eps)

    def forward(self, h: Tensor) -> Tensor:
        """Normalize ``h`` (``[N, S, d]``) over its last axis."""
        if self.variant == "m":
            return h - h.mean(dim=-1, keepdim=True)
        std = (h.var(dim=-1, unbiased=False, keepdim=True) + self.eps).sqrt()
        if self.variant == "n":
            return (h - h.mean(dim=-1, keepdim=True)) / std
        root = {"v": 1.0, "srv": 2.0, "pr": self.power}[self.variant]
        return h / std.pow(1.0 / root)

    def extra_repr(self) -> str:
        power = f", power={self.power}" if self.variant == "pr" else ""
        return f"seeds={self.num_seeds}, variant={self.variant!r}{power}, eps={self.eps}"


class LayerNorm(SeedNormBase):
    r"""Per-node LayerNorm with a per-seed affine transform.

    Ba, Kiros and Hinton, "Layer Normalization", arXiv 1607.06450 (2016),
    https://arxiv.org/abs/1607.06450. Replaces PyG ``LayerNorm(dim, eps, affine, mode="node")``
    (``F.layer_norm`` over the :math:`d` features of each node; biased variance,
    :math:`\epsilon` inside the square root):

    .. math::
        \mathbf{x}_i' = \frac{\mathbf{x}_i - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}} \odot
        \boldsymbol{\gamma} + \boldsymbol{\beta}, \qquad
        \mu_i = \tfrac{1}{d}\textstyle\sum_j x_{ij}, \quad
        \sigma_i^2 = \tfrac{1}{d}\textstyle\sum_j (x_{ij} - \mu_i)^2

    with learnable :math:`\boldsymbol{\gamma}` (ones) and :math:`\boldsymbol{\beta}` (zeros),
    ``[S, d]``, when ``affine``; ``affine=False`` equals NodeNorm variant ``n``. (PyG's default
    ``mode="graph"`` would pool the statistics over all nodes and features instead.)
    """

    def __init__(self, num_seeds: int, dim: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__(num_seeds)
        self.in_channels, self.eps, self.affine = int(dim), float(eps), bool(affine)
        if self.affine:
            self.weight = nn.Parameter(torch.ones(num_seeds, dim))
            self.bias = nn.Parameter(torch.zeros(num_seeds, dim))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_seed(self, s: int) -> None:
        if self.affine:
            with torch.no_grad():
                self.weight[s].fill_(1.0)
                self.bias[s].zero_()

    def forward(self, h: Tensor) -> Tensor:
        out = F.layer_norm(h, (self.in_channels,), None, None, self.eps)
        return torch.addcmul(self.bias, out, self.weight) if self.affine else out

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, {self.in_channels}, eps={self.eps}, "
                f"affine={self.affine}")


class DiffGroupNorm(SeedNormBase):
    r"""Differentiable group normalization per seed.

    Zhou, Huang, Zha, Chen, Li, Choi and Hu, "Towards Deeper Graph Neural Networks with
    Differentiable Group Normalization", NeurIPS 2020, arXiv 2006.06972,
    https://arxiv.org/abs/2006.06972. Replaces PyG ``DiffGroupNorm(dim, groups, lamda, eps)``:
    with a learnable :math:`\mathbf{W} \in \mathbb{R}^{d \times G}` (no bias),

    .. math::
        \mathbf{S} = \operatorname{softmax}(\mathbf{X}\mathbf{W}), \qquad
        \mathbf{X}' = \mathbf{X} + \lambda \sum_{g=1}^{G}
        \operatorname{BatchNorm}(\mathbf{S}_{:,g} \odot \mathbf{X})

    where BatchNorm (affine, momentum 0.1, ``eps`` :math:`\epsilon`; a :class:`BatchNorm` of
    :math:`G \cdot d` features per seed) standardizes each of the :math:`G \cdot d` columns over
    the nodes in training and uses running statistics in eval. Full-batch node classification
    has one graph, so these are statistics over all its nodes. The Bag-of-Tricks code
    (``group_norm``) differs slightly: a bias in :math:`\mathbf{W}`, BatchNorm momentum 0.3,
    and per-dataset :math:`\lambda` (``skip_weight``) and :math:`G`.

    ``lin_weight`` is :math:`\mathbf{W}` per seed, ``[S, d, G]``; ``norm`` the BatchNorm
    (``[S, G·d]`` tensors). Init: PyG's ``nn.Linear(d, G, bias=False)`` is drawn twice, by its
    constructor and again by ``DiffGroupNorm.reset_parameters``; :meth:`reset_seed` draws both
    (:func:`gdepth.nn.seeds.kaiming_linear_`) and keeps the second, so seed s's ``W`` and the
    RNG state after it are those of PyG's module built after ``torch.manual_seed(s)``.
    """

    def __init__(self, num_seeds: int, dim: int, groups: int, lamda: float = 0.01,
                 eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(num_seeds)
        if groups < 1:
            raise ValueError(f"groupnorm groups must be >= 1, got {groups}")
        self.in_channels, self.groups, self.lamda = int(dim), int(groups), float(lamda)
        self.lin_weight = nn.Parameter(torch.empty(num_seeds, dim, groups))
        self.norm = BatchNorm(num_seeds, groups * dim, eps, momentum)
        for s in range(num_seeds):
            self.reset_seed(s)

    def reset_seed(self, s: int) -> None:
        """``nn.Linear(d, G, bias=False)``'s draw, then ``reset_parameters``' (kept)."""
        with torch.no_grad():
            for _ in range(2):
                kaiming_linear_(self.lin_weight[s], None, self.in_channels, self.groups)
        self.norm.reset_seed(s)

    def forward(self, h: Tensor) -> Tensor:
        n, s, d = h.shape
        g = self.groups
        assign = torch.bmm(h.transpose(0, 1), self.lin_weight).transpose(0, 1).softmax(-1)
        out = assign.unsqueeze(-1) * h.unsqueeze(-2)  # [N, S, G, d]
        out = self.norm(out.reshape(n, s, g * d)).view(n, s, g, d).sum(-2)
        return h + self.lamda * out

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, {self.in_channels}, groups={self.groups}, "
                f"lamda={self.lamda}")


class MeanSubtractionNorm(SeedNormBase):
    r"""Mean subtraction over the nodes, per seed; no parameters.

    Yang, Wang, Yao, Liu and Abdelzaher, "Revisiting Over-smoothing in Deep GCNs",
    arXiv 2003.13663 (2020), https://arxiv.org/abs/2003.13663. Replaces PyG
    ``MeanSubtractionNorm()``:
    :math:`\mathbf{x}_i' = \mathbf{x}_i - \frac{1}{n}\sum_{j=1}^{n} \mathbf{x}_j` (the
    Bag-of-Tricks ``MeanNorm``).
    """

    def forward(self, h: Tensor) -> Tensor:
        return h - h.mean(dim=0, keepdim=True)

    def extra_repr(self) -> str:
        return f"seeds={self.num_seeds}"


class GraphNorm(SeedNormBase):
    r"""GraphNorm per seed, over the :math:`n` nodes of the graph.

    Cai, Luo, Xu, He, Liu and Wang, "GraphNorm: A Principled Approach to Accelerating Graph
    Neural Network Training", ICML 2021, arXiv 2009.03294, https://arxiv.org/abs/2009.03294.
    Replaces PyG ``GraphNorm(dim, eps)``; per feature:

    .. math::
        \mathbf{x}_i' = \boldsymbol{\gamma} \odot
        \frac{\mathbf{x}_i - \boldsymbol{\alpha} \odot \boldsymbol{\mu}}
        {\sqrt{\boldsymbol{\sigma}^2 + \epsilon}} + \boldsymbol{\beta}, \qquad
        \boldsymbol{\mu} = \tfrac{1}{n}\textstyle\sum_i \mathbf{x}_i, \quad
        \boldsymbol{\sigma}^2 = \tfrac{1}{n}\textstyle\sum_i
        (\mathbf{x}_i - \boldsymbol{\alpha} \odot \boldsymbol{\mu})^2

    with learnable :math:`\boldsymbol{\alpha}` (``mean_scale``), :math:`\boldsymbol{\gamma}`
    (``weight``; ones) and :math:`\boldsymbol{\beta}` (``bias``; zeros), each ``[S, d]``. At
    init it equals BatchNorm's training-mode output on one graph, but it keeps no running
    statistics: eval uses the statistics of the input too.
    """

    def __init__(self, num_seeds: int, dim: int, eps: float = 1e-5) -> None:
        super().__init__(num_seeds)
        self.in_channels, self.eps = int(dim), float(eps)
        self.weight = nn.Parameter(torch.ones(num_seeds, dim))
        self.bias = nn.Parameter(torch.zeros(num_seeds, dim))
        self.mean_scale = nn.Parameter(torch.ones(num_seeds, dim))

    def reset_seed(self, s: int) -> None:
        with torch.no_grad():
            self.weight[s].fill_(1.0)
            self.bias[s].zero_()
            self.mean_scale[s].fill_(1.0)

    def forward(self, h: Tensor) -> Tensor:
        out = h - h.mean(dim=0) * self.mean_scale
        std = (out.pow(2).mean(dim=0) + self.eps).sqrt()  # [S, d]
        return self.weight * out / std + self.bias

    def extra_repr(self) -> str:
        return f"seeds={self.num_seeds}, {self.in_channels}, eps={self.eps}"


class CombNorm(nn.Sequential):
    r"""CombNorm: :class:`DiffGroupNorm` then :class:`NodeNorm`, one ``eps`` for the two.

    Chen, Zhou, Duan, Zheng, Wang, Hu and Wang, "Bag of Tricks for Training Deeper Graph Neural
    Networks: A Comprehensive Benchmark Study", IEEE TPAMI 2022, arXiv 2108.10521,
    https://arxiv.org/abs/2108.10521; official code
    https://github.com/VITA-Group/Deep_GCN_Benchmarking
    (``comb_norm([group_norm, node_norm])`` in ``tricks/tricks/norms.py``):
    :math:`\mathbf{X}' = \operatorname{NodeNorm}(\operatorname{DiffGroupNorm}(\mathbf{X}))`.
    Replaces ``nn.Sequential(DiffGroupNorm, NodeNorm)``; ``group, node = norm`` as before.
    """

    def __init__(self, num_seeds: int, dim: int, groups: int = 10, lamda: float = 0.01,
                 eps: float = 1e-5, variant: str = "n", power: float = 2.0) -> None:
        super().__init__(DiffGroupNorm(num_seeds, dim, groups, lamda=lamda, eps=eps),
                         NodeNorm(num_seeds, variant=variant, power=power, eps=eps))
        self.num_seeds = int(num_seeds)

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if "weight" in name]


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
    :class:`gdepth.nn.seeds.OneSeedNorm` (the seed-native module is its ``module``)."""
    return OneSeedNorm(build_seeded_norm(norm_cfg, dim, 1))


__all__ = ["NORMS", "BatchNorm", "CombNorm", "DiffGroupNorm", "GraphNorm", "LayerNorm",
           "MeanSubtractionNorm", "NodeNorm", "NormSpec", "OneSeedNorm", "PAIRNORM_MODES",
           "PairNorm", "SeedNormBase", "StackedNorm", "build_norm", "build_seeded_norm",
           "unknown"]
