r"""S seeds of ``sgc`` as one model: the propagated features once, one linear layer per seed.

Seed ``s`` has the weights of its loop model (:class:`gdepth.models.sgc.SGC`, Wu et al., ICML
2019): :math:`\text{logits}_s = \mathrm{drop}_s(\hat{A}^K X)\,W_s + b_s`, ``lin`` stacked as
``W [S, F, C]`` and ``b [S, C]`` (no ``b`` with ``bias: false``). :math:`\hat{A}^K X` is the same
for every seed and fixed per dataset, so it is computed once (as the loop model's cache, by the
same :func:`gdepth.models.sgc.propagate_features`) and kept on the stacked model; an epoch is
then one product :math:`\hat{A}^K X\,[W_1|\dots|W_S]` for all seeds (without dropout; with
dropout each seed's masked copy, see :class:`gdepth.nn.kernels.StackedInput`).

Row-wise (``rowwise``, :mod:`gdepth.engine.fit`): node i's logits read row i of
:math:`\hat{A}^K X` alone, so the engine asks for the rows its loss or metrics read
(``forward(..., rows=index)``). That is where the time goes otherwise: :math:`\hat{A}^K X` is
dense ``[N, F]`` (Cora: 2,708 × 1,433) even where X is sparse, and every epoch multiplies it
three times (training forward, weight gradient, evaluation) and, with dropout, masks S copies
of it, while APPNP at the same depth multiplies the sparse X once and propagates only
``[N, S·C]``. The rows' features are gathered once per row set and cached with the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.models.sgc import SGC, propagate_features
from gdepth.nn.kernels import MaskFn, NotBatchable, Propagation, StackedInput

# With dropout every seed multiplies its own masked copy of the dense [N, F] features: refuse
# (the cell runs its seed loop) past this many bytes of copies.
MAX_MASKED_BYTES = 2 << 30


class StackedSGC(nn.Module):
    """``sgc`` for S seeds; build with :meth:`from_models`. ``forward(x_in, adj)`` returns
    logits ``[N, S, C]``."""

    rowwise = True  # logits of node i from row i of the fixed features alone

    def __init__(self, loop_models: Sequence[SGC]) -> None:
        super().__init__()
        first = loop_models[0]
        self.weights = nn.ParameterList([nn.Parameter(
            torch.stack([m.lin.weight.detach().t() for m in loop_models]).contiguous())])
        self.biases = nn.ParameterList([nn.Parameter(
            torch.stack([m.lin.bias.detach() for m in loop_models]).clone())]
            if first.lin.bias is not None else [])
        self.steps, self.dropout = first.steps, first.dropout
        self.num_seeds = len(loop_models)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        # (x, adj, x's version, Â^K X, {id(rows): (rows, StackedInput of those rows)})
        self._cache: tuple[Tensor, Tensor, int, Tensor, dict[Any, Any]] | None = None

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedSGC:
        """Stack the parameters (copies) of S loop ``SGC`` models."""
        if any(type(m) is not SGC for m in loop_models):
            raise NotBatchable("StackedSGC stacks SGC models only")
        if len({m.lin.bias is None for m in loop_models}) > 1:
            raise NotBatchable("StackedSGC stacks SGC models with and without bias")
        return cls(loop_models)  # type: ignore[arg-type]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """SGC's loop model has no ``first_layer()`` either (its one layer is the output)."""
        raise NotBatchable("train.weight_decay_first_only: SGC has no first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The loop model's ``lin.weight``."""
        return [self.weights[0]]

    def features(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                 ) -> StackedInput:
        r""":math:`\hat{A}^K X` (its ``rows`` only, if given) as the shared input of the seeds'
        linear layers, cached per ``x`` and adjacency as the loop model's cache, and per row
        set (the same ``rows`` tensor)."""
        x, a = x_in.x, adj.adj
        cache = self._cache
        if cache is None or cache[0] is not x or cache[1] is not a or cache[2] != x._version:
            with torch.no_grad():
                cache = (x, a, x._version, propagate_features(x, a, self.steps), {})
            self._cache = cache
        kept = cache[4]
        key = None if rows is None else id(rows)
        if key not in kept or kept[key][0] is not rows:
            if len(kept) >= 8:  # row sets of earlier fits
                kept.clear()
            kept[key] = (rows, StackedInput(cache[3] if rows is None else cache[3][rows]))
        return kept[key][1]

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, C]``, or ``[R, S, C]`` of the nodes ``rows [R]``."""
        feats = self.features(x_in, adj, rows)
        p = self.dropout if self.training else 0.0
        if p > 0.0 and self.num_seeds * feats.x.numel() * feats.x.element_size() \
                > MAX_MASKED_BYTES:
            raise NotBatchable(f"sgc dropout {p}: {self.num_seeds} masked copies of the "
                               f"{tuple(feats.x.shape)} propagated features exceed "
                               f"{MAX_MASKED_BYTES >> 30} GiB")
        mask_fn = self.mask_fn
        if mask_fn is not None and rows is not None:
            mask_fn = _rows_of(mask_fn, x_in.x.shape[0], rows)
        out = feats(self.weights[0], p, mask_fn)
        return out + self.biases[0] if len(self.biases) else out


def _rows_of(mask_fn: MaskFn, n: int, rows: Tensor) -> MaskFn:
    """Injected masks are drawn for all ``n`` nodes (tests replay the loop's draws): keep the
    rows' ones."""
    def masks(shape: tuple[int, ...], p: float) -> Tensor:
        return mask_fn((n, *shape[1:]), p)[..., rows, :]

    return masks
