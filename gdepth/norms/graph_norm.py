"""GraphNorm per seed (Cai et al. 2021): :class:`GraphNorm`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdepth.norms.base import SeedNormBase


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
