r"""S seeds of DropEdge's deep backbones (``resgcn``, ``densegcn``, ``incepgcn``) as one model.

The loop models (:mod:`gdepth.models.dropedge_backbones`, Rong et al., ICLR 2020) are built
from one unit, :math:`u(H) = \mathrm{drop}(\sigma(\mathrm{norm}(\hat{A} H W + b)))`, arranged
as an input unit, hidden blocks (residual chains, a dense chain, or inception branches) and an
output convolution :math:`\hat{A} Z W_{out} + b_{out}`. Here every unit holds its S seeds'
weights stacked (``[S, d_in, d_out]``) and computes them with one
:func:`gdepth.nn.kernels.stacked_conv` (one sparse product for all seeds); the blocks are
wired exactly as the loop model's, so seed ``s`` computes what its loop model computes.
(Cells with ``train.dropedge`` draw a graph per seed and keep the seed loop.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdepth.models.dropedge_backbones import DenseGCN, GCNUnit, IncepGCN, ResGCN
from gdepth.nn.kernels import (
    MaskFn,
    NotBatchable,
    Propagation,
    StackedInput,
    StackedNorm,
    relu_dropout,
    stack_norms,
    stacked_conv,
    stacked_dropout,
)


class StackedUnit(nn.Module):
    """S seeds of one :class:`GCNUnit`: ``drop(act(norm(Â H W_s + b_s)))``."""

    def __init__(self, units: Sequence[GCNUnit]) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.stack([u.conv.lin.weight.detach().t() for u in units]).contiguous())
        self.bias = nn.Parameter(torch.stack([u.conv.bias.detach() for u in units]).clone())
        self.norm = stack_norms([u.norm for u in units])
        self.act, self.dropout = units[0].act, units[0].dropout
        self.fused = type(self.norm) is StackedNorm and isinstance(self.act, nn.ReLU)

    def forward(self, h: Tensor | StackedInput, adj: Propagation,
                mask_fn: MaskFn | None) -> Tensor:
        if isinstance(h, StackedInput):  # the input unit: no dropout on the features
            z = h(self.weight, 0.0, None)
            n, s, d = z.shape
            out = adj(z.reshape(n, s * d)).view(n, s, d) + self.bias
        else:
            out = stacked_conv(h, self.weight, self.bias, adj)
        p = self.dropout if self.training else 0.0
        if self.fused:  # ReLU + dropout in place, only the output saved
            return relu_dropout(out, p, True, mask_fn)
        return stacked_dropout(self.act(self.norm(out)), p, True, mask_fn)


def _units(groups: Sequence[Sequence[GCNUnit]]) -> nn.ModuleList:
    """One :class:`StackedUnit` per position, from the S loop models' units at that position."""
    return nn.ModuleList(StackedUnit(list(units)) for units in zip(*groups, strict=True))


class StackedDropEdgeBackbone(nn.Module):
    """``resgcn`` / ``densegcn`` / ``incepgcn`` for S seeds; build with :meth:`from_models`.
    ``forward(x_in, adj)`` returns logits ``[N, S, C]``."""

    def __init__(self, loop_models: Sequence[ResGCN | DenseGCN | IncepGCN]) -> None:
        super().__init__()
        first = loop_models[0]
        self.kind = type(first)
        self.input = StackedUnit([m.input for m in loop_models])
        if isinstance(first, ResGCN):
            self.blocks = nn.ModuleList(
                _units([m.blocks[i] for m in loop_models]) for i in range(len(first.blocks)))
        elif isinstance(first, DenseGCN):
            self.layers = _units([m.layers for m in loop_models])
        else:
            self.branches = nn.ModuleList(
                _units([m.branches[j] for m in loop_models])
                for j in range(len(first.branches)))
        self.out_weight = nn.Parameter(
            torch.stack([m.output.lin.weight.detach().t() for m in loop_models]).contiguous())
        self.out_bias = nn.Parameter(
            torch.stack([m.output.bias.detach() for m in loop_models]).clone())
        self.num_seeds = len(loop_models)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedDropEdgeBackbone:
        """Stack the parameters (copies) of S loop models of one DropEdge backbone."""
        kind = type(loop_models[0])
        if kind not in (ResGCN, DenseGCN, IncepGCN) or any(
                type(m) is not kind for m in loop_models):
            raise NotBatchable("StackedDropEdgeBackbone stacks ResGCN / DenseGCN / IncepGCN")
        return cls(loop_models)  # type: ignore[arg-type]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The loop backbones have no ``first_layer()`` either."""
        raise NotBatchable("train.weight_decay_first_only: the DropEdge backbones have no "
                           "first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The parameters the loop model names ``*weight*`` (convolutions, BatchNorm scales)."""
        out = []
        for unit in self.modules():
            if isinstance(unit, StackedUnit):
                out.append(unit.weight)
                if hasattr(unit.norm, "weight"):
                    out.append(unit.norm.weight)
        return [*out, self.out_weight]

    def _chain(self, units: nn.ModuleList, h: Tensor, adj: Propagation) -> Tensor:
        for unit in units:
            h = unit(h, adj, self.mask_fn)
        return h

    def forward(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        h = self.input(x_in, adj, self.mask_fn)
        if self.kind is ResGCN:
            for block in self.blocks:
                h = self._chain(block, h, adj) + h
            z = h
        elif self.kind is DenseGCN:
            outs = [h]
            for unit in self.layers:
                outs.append(unit(outs[-1], adj, self.mask_fn))
            z = torch.cat(outs, dim=-1)
        else:
            z = torch.cat([h] + [self._chain(branch, h, adj) for branch in self.branches],
                          dim=-1)
        return stacked_conv(z, self.out_weight, self.out_bias, adj)
