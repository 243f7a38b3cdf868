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
=============  ==============================================================================

PyG does the work where it has the layer; NodeNorm and PairNorm's ``PN-SCS`` mode are not in
PyG 2.8 and are written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch import Tensor, nn
from torch_geometric.nn import BatchNorm, PairNorm

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


__all__ = ["NORMS", "NodeNorm", "NormSpec", "PairNormSCS", "build_norm", "option", "unknown"]
