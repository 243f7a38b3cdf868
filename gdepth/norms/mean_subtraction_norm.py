"""Mean subtraction over the nodes per seed (Yang et al. 2020): :class:`MeanSubtractionNorm`."""

from __future__ import annotations

from torch import Tensor

from gdepth.norms.base import SeedNormBase


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
