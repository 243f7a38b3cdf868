"""CombNorm (Chen et al. 2022): :class:`DiffGroupNorm` then :class:`NodeNorm`."""

from __future__ import annotations

from torch import nn

from gdepth.norms.diff_group_norm import DiffGroupNorm
from gdepth.norms.node_norm import NodeNorm


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
