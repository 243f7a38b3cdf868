"""Differentiable group normalization per seed (Zhou et al. 2020): :class:`DiffGroupNorm`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdepth.nn.seeds import kaiming_linear_
from gdepth.norms.base import SeedNormBase
from gdepth.norms.batch_norm import BatchNorm


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
