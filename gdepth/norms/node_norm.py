"""NodeNorm per seed (Zhou et al. 2021): :class:`NodeNorm` and its variants."""

from __future__ import annotations

from torch import Tensor

from gdepth.norms.base import SeedNormBase
from gdepth.options import unknown


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
