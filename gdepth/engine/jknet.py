r"""S seeds of ``jknet`` (modes ``cat`` and ``max``) as one model with stacked weights.

Seed ``s`` has the weights of its loop model (:class:`gdepth.models.jknet.JKNet`, Xu et al.,
ICML 2018): L GCN layers :math:`H^{(l)}_s = \sigma(\mathrm{norm}(\hat{A}\,
\mathrm{drop}_s(H^{(l-1)}_s) W^{(l)}_s + b^{(l)}_s))`, then jumping knowledge over
:math:`H^{(1)}_s, \dots, H^{(L)}_s` (concatenation, or the element-wise maximum), then the
output linear layer. Each GCN layer is :class:`gdepth.models.gcn.GCN`'s: one
``bmm`` for the seeds' transforms and one sparse product for all seeds' propagation. The LSTM
attention mode is not batched (:class:`NotBatchable`). ``shared_dropout`` (Bag of Tricks' JKNet:
one mask per layer output, for the next layer and the aggregation) as the loop model; parameter
groups (``train.weight_decay_groups``): the loop model's ``graph`` / ``output``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdepth.models.jknet import JKNet
from gdepth.nn.kernels import (
    MaskFn,
    NotBatchable,
    Propagation,
    StackedInput,
    stack_norms,
    stacked_conv,
    stacked_dropout,
)


class StackedJKNet(nn.Module):
    """``jknet`` for S seeds; build with :meth:`from_models`. ``forward(x_in, adj)`` returns
    logits ``[N, S, C]``."""

    def __init__(self, loop_models: Sequence[JKNet]) -> None:
        super().__init__()
        first = loop_models[0]
        depth = len(first.convs)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([m.convs[i].lin.weight.detach().t() for m in loop_models])
                         .contiguous()) for i in range(depth))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([m.convs[i].bias.detach() for m in loop_models]).clone())
            for i in range(depth))
        self.norms = nn.ModuleList(stack_norms([m.norms[i] for m in loop_models])
                                   for i in range(depth))
        self.out_weight = nn.Parameter(torch.stack(
            [m.lin_out.weight.detach().t() for m in loop_models]).contiguous())
        self.out_bias = nn.Parameter(torch.stack(
            [m.lin_out.bias.detach() for m in loop_models]).clone())
        self.act, self.mode = first.act, first.jk.mode
        self.dropout, self.dropout_at = first.dropout, first.dropout_at
        self.shared_dropout = first.shared_dropout
        self.num_seeds = len(loop_models)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedJKNet:
        """Stack the parameters (copies) of S loop ``JKNet`` models (``cat`` or ``max``)."""
        if any(type(m) is not JKNet for m in loop_models):
            raise NotBatchable("StackedJKNet stacks JKNet models only")
        if loop_models[0].jk.mode not in ("cat", "max"):
            raise NotBatchable(f"jknet mode {loop_models[0].jk.mode} is not seed-batched yet")
        return cls(loop_models)  # type: ignore[arg-type]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        return [self.weights[0], self.biases[0]]

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The loop model's groups (:meth:`JKNet.named_parameter_groups`), stacked."""
        norms = [p for n in self.norms for p in n.parameters()]
        return {"graph": [*self.weights, *self.biases, *norms],
                "output": [self.out_weight, self.out_bias]}

    def weight_parameters(self) -> list[nn.Parameter]:
        """The parameters the loop model names ``*weight*`` (convs, norms, ``lin_out``)."""
        norm_weights = [n.weight for n in self.norms if hasattr(n, "weight")]
        return [*self.weights, *norm_weights, self.out_weight]

    def _p(self, position: int) -> float:
        return self.dropout if self.training and position in self.dropout_at else 0.0

    def forward(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        outs: list[Tensor] = []
        h: Tensor | None = None
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if h is None:
                z = x_in(weight, self._p(0), self.mask_fn)
                n, s, d = z.shape
                out = adj(z.reshape(n, s * d)).view(n, s, d) + bias
            else:
                dropped = h if self.shared_dropout else stacked_dropout(
                    h, self._p(i), True, self.mask_fn)
                out = stacked_conv(dropped, weight, bias, adj)
            h = self.act(self.norms[i](out))
            if self.shared_dropout:  # one mask for the next layer (or lin_out) and the JK
                h = stacked_dropout(h, self._p(i + 1), True, self.mask_fn)
            outs.append(h)
        # as PyG's JumpingKnowledge: concatenation, or max over the layers (ties: one argmax)
        jk = (torch.cat(outs, dim=-1) if self.mode == "cat"
              else torch.stack(outs, dim=-1).max(dim=-1)[0])
        if not self.shared_dropout:
            jk = stacked_dropout(jk, self._p(len(self.weights)), True, self.mask_fn)
        return torch.bmm(jk.transpose(0, 1), self.out_weight).transpose(0, 1) + self.out_bias
