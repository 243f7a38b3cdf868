"""Batch normalization per seed and feature: :class:`BatchNorm`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.norms.base import SeedNormBase


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
