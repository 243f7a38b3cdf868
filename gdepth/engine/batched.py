r"""S seeds of ``gcn`` / ``gcn_res`` as one model with stacked weights.

Seed ``s`` of layer ``l`` has the weights of the loop model's ``convs[l]``:
:math:`W^{(l)}_s` (``lin.weight`` transposed, ``[d_in, d_out]``) and :math:`b^{(l)}_s`, stacked
into ``weight [S, d_in, d_out]`` and ``bias [S, d_out]``. With ``H`` of shape ``[N, S, d]``
(seed s is ``H[:, s]``) one layer is, for all seeds at once,

.. math::
    Z_s = \mathrm{drop}_s(H_s)\,W_s \quad(\texttt{bmm}), \qquad
    [\hat{A} Z_1 | \dots | \hat{A} Z_S] = \hat{A}\,[Z_1 | \dots | Z_S] \quad
    (\text{one sparse product } [N, N] \times [N, S{\cdot}d]), \qquad
    H'_s = \sigma(\mathrm{norm}(\hat{A} Z_s + b_s)) \;(+\,H_s \text{ in a gcn\_res block})

in the order ``GCNConv`` computes it (transform, then propagate, then bias), so each seed's
numbers equal its loop model's up to float rounding. The sparse product is
:class:`gdepth.engine.layers.Propagation` (``embedding_bag`` on CPU, ``torch.sparse.mm`` on
GPU); the first layer multiplies the shared input features X (sparse CSR where sparse) by
:class:`gdepth.engine.layers.StackedInput`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdepth.engine.layers import (
    MaskFn,
    NotBatchable,
    Propagation,
    StackedInput,
    StackedNorm,
    stack_norms,
    stacked_conv,
    stacked_dropout,
)
from gdepth.models.gcn import GCN, GCNRes


class StackedGCN(nn.Module):
    """``gcn`` / ``gcn_res`` for S seeds; build with :meth:`from_models`.

    ``forward(x_in, adj)`` returns logits ``[N, S, C]``; ``x_in`` is the
    :class:`StackedInput` of the shared features, made once per dataset.
    """

    def __init__(self, weights: Sequence[Tensor], biases: Sequence[Tensor],
                 norms: Sequence[nn.Module], act: nn.Module, dropout: float,
                 dropout_at: frozenset[int], residual: bool) -> None:
        super().__init__()
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in biases)
        self.norms = nn.ModuleList(norms)
        self.act = act
        self.dropout = dropout
        self.dropout_at = dropout_at
        self.residual = residual
        self.num_seeds = weights[0].shape[0]
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: F.dropout

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedGCN:
        """Stack the parameters (copies) of S loop models of one architecture.

        Raises :class:`NotBatchable` for anything but plain :class:`GCN` / ``GCNRes``
        (identity mapping and the Bag-of-Tricks skips are not batched yet).
        """
        first = loop_models[0]
        if type(first) not in (GCN, GCNRes) or any(
                type(m) is not type(first) for m in loop_models):
            raise NotBatchable(f"model {type(first).__name__} is not seed-batched yet")
        if any(beta != 1.0 for beta in first.betas):
            raise NotBatchable("identity_mapping is not seed-batched yet")
        depth = len(first.convs)
        weights = [torch.stack([m.convs[i].lin.weight.detach().t() for m in loop_models])
                   .contiguous() for i in range(depth)]
        biases = [torch.stack([m.convs[i].bias.detach() for m in loop_models]).clone()
                  for i in range(depth)]
        norms = [stack_norms([m.norms[i] for m in loop_models]) for i in range(depth - 1)]
        return cls(weights, biases, norms, first.act, first.dropout, first.dropout_at,
                   first.residual)

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The input convolution's weight and bias (Kipf & Welling decay only those)."""
        return [self.weights[0], self.biases[0]]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The parameters the loop model names ``*weight*`` (conv weights, BatchNorm's
        scale), in the same per-seed order; the L1 penalty sums over them."""
        norm_weights = [n.weight for n in self.norms if hasattr(n, "weight")]
        return [*self.weights, *norm_weights]

    def _p(self, layer: int) -> float:
        return self.dropout if self.training and layer in self.dropout_at else 0.0

    def forward(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        """Logits ``[N, S, C]`` of the S seeds; ``adj`` the cached :class:`Propagation`."""
        last = len(self.weights) - 1
        h = None
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if i == 0:
                z = x_in(weight, self._p(0), self.mask_fn)
                n, s, d = z.shape
                # a fresh tensor no backward needs: add the bias (and ReLU) in place
                out = adj(z.reshape(n, s * d)).view(n, s, d).add_(bias)
            else:
                out = stacked_conv(stacked_dropout(h, self._p(i), True, self.mask_fn),
                                   weight, bias, adj)
            if i == last:
                return out
            norm = self.norms[i]
            if type(norm) is StackedNorm and type(self.act) is nn.ReLU:
                new = out.relu_()
            else:
                new = self.act(norm(out))
            h = new + h if self.residual and i > 0 else new
        raise AssertionError("unreachable")
