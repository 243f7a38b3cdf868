"""Per-node LayerNorm with a per-seed affine transform: :class:`LayerNorm`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.norms.base import SeedNormBase


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
