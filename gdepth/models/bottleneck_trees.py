r""":class:`~gdepth.models.bottleneck.Bottleneck` on a batch of complete binary trees, by levels.

Tree-NeighborsMatch (Alon & Yahav, ICLR 2021, arXiv 2006.05205) trains on batches of complete binary
trees of depth :math:`r` whose edges point child → parent (plus a self loop at every node) and
scores the roots only. :meth:`Bottleneck.forward` runs PyG's message passing over the batch's edge
list; this module computes the same root logits one *level* (depth) at a time: a level of the batch
(:class:`gdepth.models.heap_level.Level`) is a ``[B, 2^ℓ, d]`` tensor in heap order (children of
position :math:`i` at :math:`2i, 2i+1` of the next level), so that a node's children are one
contiguous pair and every aggregation is a reshape and a sum: no gather, no scatter, no edge list.
PyG has no such layout (its layers take any edge list), hence the layer formulas below are written
out with the parameters of the PyG layers themselves (same ``state_dict``);
``tests/test_bottleneck_trees.py`` checks them against those layers. For a node :math:`i` with
children :math:`C(i)` (none at a leaf) and the layer's input ``h`` (the self loop counted as
Bottleneck's edges carry it):

* ``gcn`` (PyG ``gcn_norm``: in-degree :math:`d` with the self loop, 3 inside, 1 at a leaf):
  :math:`\Theta\big(s_i (s_i h_i + \sum_{c} s_c h_c)\big) + b`, :math:`s = d^{-1/2}` (the
  sum taken before the linear map, which PyG applies first: equal up to rounding);
* ``gin``: :math:`\mathrm{MLP}\big((1+\epsilon) h_i + h_i + \sum_c h_c\big)`;
* ``gat``: :math:`\sum_{j \in \{i\} \cup C(i)} \alpha_{ij} \Theta h_j + b` per head, with
  :math:`\alpha_{ij} = \mathrm{softmax}_j\,\mathrm{LeakyReLU}(a_s^\top \Theta h_j +
  a_d^\top \Theta h_i)`;
* ``ggnn``: :math:`\mathrm{GRU}\big((h_i + \sum_c h_c) W, h_i\big)`.

Three exact savings (every operation but BatchNorm's statistics is per node):

* **Pruning.** A node at depth :math:`\delta` reaches the root in :math:`\delta` layers, so
  layer :math:`k` of :math:`L` is computed at depths :math:`\le L - k` only — except with
  BatchNorm in training mode (GIN's MLP: statistics over every node of the batch, as in the
  authors' code), which keeps every level.
* **Shared levels.** Where every inner node's features are zero (Tree-NeighborsMatch), the
  input of all inner nodes is the bias, and a node whose subtree below it within :math:`k` levels
  holds no leaf has, after :math:`k` layers, one value shared by every such node of every tree:
  such a level is stored as one row ``[1, 1, d]``.
* **Tables.** A leaf only sees itself, so its value after any layer is a function of its
  feature row; the leaves' distinct rows (Tree-NeighborsMatch: :math:`L^2`, the (position, value)
  pairs) are computed once per batch and read by index. The same holds for any level while its
  children are shared (the roots: their :math:`L` keys, until the leaves' information reaches
  the level below them).

BatchNorm in training mode counts a shared row and a table row as often as the batch holds its
nodes (:mod:`gdepth.models.pooled_batch_norm`), which gives the statistics over every node of
the batch. The numbers differ from :meth:`Bottleneck.forward`'s by the order of floating-point
sums only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.models.bottleneck import Bottleneck
from gdepth.models.heap_level import SHARED, TABLE, TREE, Level, table_nodes
from gdepth.models.pooled_batch_norm import pooled_batch_norm


def _kind(s: Level, c: Level | None) -> str:
    """The kind of a level computed from ``s`` and its children ``c``: ``s``'s where the
    children are the same everywhere (or none), else tree."""
    return s.kind if c is None or c.kind == SHARED else TREE


def _own(s: Level, c: Level | None) -> Tensor:
    """``s``'s rows in the layout of the level computed from ``s`` and ``c``."""
    return s.value if _kind(s, c) != TREE else s.nodes()


def _made(s: Level, c: Level | None, value: Tensor) -> Level:
    if _kind(s, c) == TABLE:
        return replace(s, value=value)
    return Level(value, _kind(s, c), s.width)


def _rows(level: Level) -> Tensor:
    return level.value.reshape(-1, level.value.size(-1))


def _gcn(conv: nn.Module, s: Level, c: Level | None, inner_children: bool) -> Level:
    if c is None:  # a leaf: its self loop only, degree 1
        return s.map(lambda v: F.linear(v, conv.lin.weight, conv.bias))
    # s_i (s_i h_i + s_c sum h_c) = (h_i + 3 s_c / sqrt(3) sum h_c) / 3, the 1/3 on the weight
    scale_c = 3.0 ** -0.5 if inner_children else 1.0
    agg = torch.add(_own(s, c), c.pairs(), alpha=scale_c * 3.0 ** 0.5)
    return _made(s, c, F.linear(agg, conv.lin.weight / 3.0, conv.bias))


def _gin_sum(conv: nn.Module, s: Level, c: Level | None) -> Level:
    """GIN's sum before its MLP (the self loop and ``(1 + eps) h``)."""
    eps = conv.eps if conv.eps.requires_grad else float(conv.eps)  # train_eps: a parameter
    if c is None:
        return s.map(lambda v: (2 + eps) * v)
    if isinstance(eps, float):
        return _made(s, c, torch.add(c.pairs(), _own(s, c), alpha=2 + eps))
    return _made(s, c, (2 + eps) * _own(s, c) + c.pairs())


def _gat_weight(conv: nn.Module) -> Tensor:
    """``[d, H·C + 2H]``: ``conv.lin`` and the attention vectors in one matrix, so that
    ``h @ it = [Θh | a_s·Θh per head | a_d·Θh per head]``."""
    heads, out = conv.heads, conv.out_channels
    eye = torch.eye(heads, dtype=conv.att_src.dtype, device=conv.att_src.device)
    att = [(a[0][:, :, None] * eye[:, None, :]).reshape(heads * out, heads)
           for a in (conv.att_src, conv.att_dst)]  # block diagonal: head h's vector in column h
    theta = conv.lin.weight.t()
    return torch.cat([theta, theta @ att[0], theta @ att[1]], 1)


def _gat(conv: nn.Module, s: Level, c: Level | None, lin: Callable[[Tensor], Tensor]
         ) -> Level:
    """``lin``: a level's value times :func:`_gat_weight`, computed once per value."""
    heads, out = conv.heads, conv.out_channels
    width = heads * out
    if c is None:  # a leaf: one attention weight, 1, on itself
        return s.map(lambda v: lin(v)[..., :width] + conv.bias)
    own = lin(s.value)
    if _kind(s, c) == TREE and s.kind == TABLE:
        own = table_nodes(own, s.ids)
    xs, a_self, a_dst = own[..., :width], own[..., width:width + heads], own[..., width + heads:]
    both = lin(c.value)[..., :width + heads]
    if c.kind == TABLE:
        both = table_nodes(both, c.ids)
    if c.kind == SHARED:  # both children: the one row
        both = both.unsqueeze(2).expand(-1, -1, 2, -1)
    else:
        both = both.unflatten(1, (-1, 2))  # [B, w, 2, H·C + H]
    xc, ac = both[..., :width], both[..., width:]
    shape = torch.broadcast_shapes(a_self.shape[:2], ac.shape[:2])
    cand_a = torch.cat([a_self.unsqueeze(2).expand(*shape, 1, heads),
                        ac.expand(*shape, 2, heads)], 2)
    alpha = torch.softmax(F.leaky_relu(cand_a + a_dst.unsqueeze(2), conv.negative_slope), 2)
    cand_x = torch.cat([xs.unsqueeze(2).expand(*shape, 1, width),
                        xc.expand(*shape, 2, width)], 2).unflatten(-1, (heads, out))
    return _made(s, c, (alpha.unsqueeze(-1) * cand_x).sum(2).flatten(-2) + conv.bias)


def _gru(cell: nn.GRUCell, gi: Tensor, h: Tensor) -> Tensor:
    r"""``torch.nn.GRUCell`` from the input's gate pre-activations ``gi = x W_ih^T`` (``[..., 3d]``,
    bias not added) and the state ``h``, which may broadcast (one row for a shared level):
    :math:`r, z = \sigma(\cdot)`, :math:`n = \tanh(g_n + r \odot (W_{hn} h + b_{hn}))`,
    :math:`h' = (1 - z) n + z h`."""
    gh = F.linear(h, cell.weight_hh, cell.bias_hh)
    gi = gi + cell.bias_ih if cell.bias_ih is not None else gi
    i_r, i_z, i_n = gi.chunk(3, -1)
    h_r, h_z, h_n = gh.chunk(3, -1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(torch.addcmul(i_n, r, h_n))
    return n + z * (h - n)


def _ggnn(conv: nn.Module, s: Level, c: Level | None) -> Level:
    """One GatedGraphConv step: ``GRU((h_i + sum_c h_c) W, h_i)``, ``W W_ih^T`` as one matrix."""
    weight = conv.weight[0] @ conv.rnn.weight_ih.t()  # [d, 3d]
    if c is None:
        return s.map(lambda v: _gru(conv.rnn, v @ weight, v))
    own = _own(s, c)
    return _made(s, c, _gru(conv.rnn, torch.add(own, c.pairs()) @ weight, own))


def _mlp(seq: nn.Sequential, levels: list[Level], trees: int) -> list[Level]:
    """GIN's MLP on the rows of every level at once: one matrix for the tree levels' rows, one
    for the shared and table rows; BatchNorm in training mode over both, a row of the latter
    weighted by the nodes it stands for (:meth:`Level.weights`)."""
    order = sorted(range(len(levels)), key=lambda i: levels[i].kind != TREE)  # tree rows first
    rows = [_rows(levels[i]) for i in order]
    split = sum(levels[i].kind == TREE for i in order)
    head, tail = (part[0] if len(part) == 1 else torch.cat(part) if part else
                  rows[0].new_zeros(0, rows[0].size(1)) for part in (rows[:split], rows[split:]))
    w = None
    for module in seq:
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            if w is None:
                w = torch.cat([levels[i].weights(trees) for i in order[split:]] or
                              [head.new_zeros(0)])
            head, tail = pooled_batch_norm(module, head, tail, w)
        else:
            head, tail = module(head), module(tail)
    parts = [*head.split([len(r) for r in rows[:split]]),
             *tail.split([len(r) for r in rows[split:]])]
    out = list(levels)
    for i, part in zip(order, parts, strict=True):
        out[i] = replace(levels[i], value=part.view(*levels[i].value.shape[:-1], -1))
    return out


def check(model: nn.Module) -> str | None:
    """Why ``model`` cannot run by levels (``None``: it can)."""
    if not isinstance(model, Bottleneck):
        return f"{type(model).__name__} is not the bottleneck model"
    if model.fully_adjacent_last:
        return "fully_adjacent_last"
    if model.dropout:
        return "dropout (a mask per node, not per shared row)"
    conv = model.convs[0]
    if model.conv_name == "gat" and (conv.res is not None or not conv.concat or conv.dropout
                                     or not conv.add_self_loops or conv.edge_dim is not None):
        return "its GATConv is not the authors' (heads concatenated, self loops, no dropout)"
    if model.conv_name == "ggnn" and (conv.num_layers != 1 or conv.aggr != "add"):
        return "its GatedGraphConv is not one summing step"
    if model.conv_name == "gin" and not all(
            isinstance(m, nn.Linear | nn.ReLU | nn.modules.batchnorm._BatchNorm)
            for m in conv.nn):
        return "its GIN MLP has other layers than Linear, BatchNorm and ReLU"
    return None


def keeps_every_level(model: Bottleneck) -> bool:
    """Whether a layer mixes nodes (BatchNorm in training mode): then no pruning."""
    return model.training and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.convs.modules())


def top_level(model: Bottleneck, depth_r: int, layer: int) -> int:
    """The deepest level whose output of layer ``layer`` (0: the input layer) is needed."""
    if keeps_every_level(model):
        return depth_r
    return min(depth_r, len(model.convs) - layer)


def tree_rows(depth_r: int, layers: int, every_level: bool) -> tuple[int, int]:
    """Per Tree-NeighborsMatch tree, the node rows the graph layers compute one by one:
    ``(by levels, by message passing)``. By levels, layer :math:`k` computes a row per node at
    the levels within :math:`k` of the leaves (the leaves' information has reached them; above
    them a level is shared) that it needs (:func:`top_level`; ``every_level``: BatchNorm in
    training mode, :func:`keeps_every_level`); the shared rows and the tables' rows (at most
    :math:`L^2` per batch, not per tree) are left out. Message passing computes every one of
    the :math:`2^{r+1} - 1` nodes at every layer. Their ratio bounds what computing by levels
    can gain where a row costs the same on both paths (``benchmarks/tree_speed.py``)."""
    levels = 0
    for k in range(1, layers + 1):
        top = depth_r if every_level else min(depth_r, layers - k)
        levels += sum(2 ** level for level in range(max(depth_r - k, 0), min(top, depth_r - 1) + 1))
    return levels, layers * (2 ** (depth_r + 1) - 1)


def _level(model: Bottleneck, conv: nn.Module, s: Level, c: Level | None, inner_children: bool,
           lin: Callable[[Tensor], Tensor]) -> Level:
    if model.conv_name == "gcn":
        return _gcn(conv, s, c, inner_children)
    if model.conv_name == "gat":
        return _gat(conv, s, c, lin)
    if model.conv_name == "ggnn":
        return _ggnn(conv, s, c)
    return _gin_sum(conv, s, c)


def _finish(model: Bottleneck, norm: nn.Module, s: Level, new: Level) -> Level:
    """``norm(s + act(new))`` (``norm(act(new))`` without the residual); a ReLU after GIN's MLP,
    which ends in one, is the identity (values and gradients) and is skipped."""
    conv = model.convs[0]
    if not (isinstance(model.act, nn.ReLU) and model.conv_name == "gin"
            and isinstance(conv.nn[-1], nn.ReLU)):
        new = new.map(model.act)
    if model.residual:
        new = new.map(lambda v: (s.value if new.kind == s.kind else s.nodes()) + v)
    return new.map(norm)


def layer(model: Bottleneck, index: int, levels: list[Level], depth_r: int, trees: int
          ) -> list[Level]:
    """Layer ``index`` on ``levels`` (level ``ℓ`` of the batch of ``trees`` trees at ``ℓ``),
    the levels it needs (:func:`top_level`). Equal inputs give one computation: the shared
    levels of a layer are one row."""
    conv, norm = model.convs[index], model.norms[index]
    out: list[Level] = []
    memo: dict[tuple[int, int, bool], Level] = {}
    linear: dict[int, Tensor] = {}  # GAT: each input value times _gat_weight, once
    gat_weight = _gat_weight(conv) if model.conv_name == "gat" else None

    def lin(value: Tensor) -> Tensor:
        if id(value) not in linear:
            linear[id(value)] = value @ gat_weight
        return linear[id(value)]

    for depth in range(top_level(model, depth_r, index + 1) + 1):
        s, c = levels[depth], levels[depth + 1] if depth < depth_r else None
        key = (id(s.value), id(c.value) if c is not None else 0, depth + 1 < depth_r)
        if _kind(s, c) == TREE or key not in memo:
            memo[key] = _level(model, conv, s, c, depth + 1 < depth_r, lin)
        out.append(replace(memo[key], width=s.width))
    if model.conv_name == "gin":  # the MLP; BatchNorm in training mode over every level at once
        out = _mlp(conv.nn, out, trees)
    done: dict[tuple[int, int], Level] = {}
    for depth, new in enumerate(out):
        s = levels[depth]
        key = (id(s.value), id(new.value))
        if new.kind == TREE or key not in done:
            done[key] = _finish(model, norm, s, new)
        out[depth] = replace(done[key], width=new.width)
    return out
