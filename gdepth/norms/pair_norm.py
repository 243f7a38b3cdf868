"""PairNorm per seed (Zhao & Akoglu 2020): :class:`PairNorm` and its modes."""

from __future__ import annotations

from torch import Tensor

from gdepth.norms.base import SeedNormBase
from gdepth.options import unknown

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
