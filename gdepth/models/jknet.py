r"""JKNet: a stack of GCN layers whose outputs are all combined by a jumping-knowledge layer.

Xu, Li, Tian, Sonobe, Kawarabayashi and Jegelka, "Representation Learning on Graphs with
Jumping Knowledge Networks", ICML 2018, arXiv 1806.03536, https://arxiv.org/abs/1806.03536:

.. math::
    H^{(0)} = X, \qquad
    H^{(l)} = \sigma\big(\mathrm{norm}(\hat{A} H^{(l-1)} W^{(l)} + b^{(l)})\big)
    \quad (l = 1, \dots, L),

.. math::
    H_{JK} = \mathrm{JK}\big(H^{(1)}, \dots, H^{(L)}\big), \qquad
    \text{logits} = H_{JK} W_{out} + b_{out}

with the layer aggregation ``mode``:

* ``cat``: :math:`H_{JK} = [H^{(1)} \,\|\, \dots \,\|\, H^{(L)}]` (width ``hidden·L``);
* ``max``: the element-wise maximum over the layers;
* ``lstm``: :math:`H_{JK,v} = \sum_l s_v^{(l)} H_v^{(l)}` with attention scores
  :math:`s_v = \mathrm{softmax}_l(\mathrm{att}(\mathrm{BiLSTM}(H_v^{(1)}, \dots, H_v^{(L)})))`.

The aggregation is PyG's ``JumpingKnowledge(mode, channels=hidden, num_layers=L)`` written
seed-native (:class:`SeedJumpingKnowledge`; ``tests/test_seed_jk_gcnii.py`` checks it equals
PyG's with the same weights); the layers are PyG's ``GCNConv(normalize=False)`` on the
precomputed :math:`\hat{A}`, as in ``gcn`` (:class:`SeedGCNConv`). PyG's ``lstm`` mode has a
bidirectional LSTM of hidden size :math:`\lfloor L \cdot hidden / 2 \rfloor`, so its cost grows
with :math:`L^2`: ``lstm`` is for small depths.

Depth convention: depth :math:`L` = number of GCN layers (in → hidden, then hidden → hidden), each
followed by norm → activation; the JK aggregation and the output linear layer (JK width → out)
do not count. Dropout with probability ``dropout`` precedes every GCN layer and the output layer
(``dropout_layers=all``) or only the first GCN layer and the output layer (``io``).

Shared dropout mask (``shared_dropout=true``; default off): the dropout before layer
:math:`l + 1` is applied to :math:`H^{(l)}` once, and that dropped tensor is both the next
layer's input and the aggregation's input :math:`H^{(l)}`; the last layer's output gets the
output layer's dropout before the aggregation, and nothing is dropped after it. With
``dropout_layers=hidden`` (no dropout on the input features) this is exactly Bag of Tricks'
JKNet (Chen et al., TPAMI 2022, ``models/JKNet.py`` of
github.com/VITA-Group/Deep_GCN_Benchmarking: ``x = dropout(relu(conv(x)))``, appended to the
concatenated list and fed to the next layer). Off, each layer's input and the aggregation draw
their own masks.

Seed axis (:mod:`gdepth.nn.seeds`): :class:`JKNet` holds S seeds, parameters ``[S, ...]``,
hidden features ``[N, S, d]``; each GCN layer is one ``bmm`` for the seeds' transforms and one
sparse product for all seeds' propagation (:func:`gdepth.nn.kernels.stacked_conv`).

Parameter groups (:meth:`JKNet.named_parameter_groups`, for ``train.weight_decay_groups``):
``graph`` = the GCN layers and their norms, ``output`` = the aggregation (``lstm``'s weights)
and the output linear layer.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import JKNetConfig, NormConfig
from gdepth.models import common
from gdepth.models.gcn_tricks import SeedGCNConv
from gdepth.nn.dropout import MaskFn, stacked_dropout
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import SeedLinear, kaiming_linear_
from gdepth.norms import build_seeded_norm
from gdepth.options import unknown

JK_MODES = ("cat", "max", "lstm")
JKNET_CONVENTION = (
    "depth L = number of GCN layers (in->hidden, hidden->hidden), each followed by norm -> "
    "activation; the jumping-knowledge aggregation of all L outputs (cat | max | lstm) and the "
    "output linear layer do not count (Xu et al. 2018)"
)




class SeedJumpingKnowledge(nn.Module):
    r"""PyG's ``JumpingKnowledge(mode, channels, num_layers)`` for S seeds: ``forward(xs)``
    maps the L layer outputs ``[N, S, C]`` to ``[N, S, C·L]`` (``cat``) or ``[N, S, C]``.

    ``lstm``: per node and seed, a bidirectional one-layer LSTM of hidden size
    :math:`H = \lfloor L C / 2 \rfloor` runs over the sequence :math:`x^{(1)}, \dots, x^{(L)}`;
    the score of layer l is :math:`a^\top [\overrightarrow{h}_l \| \overleftarrow{h}_l] + b`,
    softmax over the layers, and the output is the score-weighted sum of the :math:`x^{(l)}`.
    The LSTM equations are ``torch.nn.LSTM``'s (gates i, f, g, o):
    :math:`c_t = \sigma(f_t) c_{t-1} + \sigma(i_t)\tanh(g_t)`,
    :math:`h_t = \sigma(o_t)\tanh(c_t)`, with
    :math:`[i|f|g|o]_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}`.

    Parameters as ``torch.nn.LSTM``'s with a leading seed axis (``weight_ih_l0 [S, 4H, C]``,
    ``weight_hh_l0 [S, 4H, H]``, ``bias_ih_l0``, ``bias_hh_l0 [S, 4H]``, the same four with
    ``_reverse``), and the score ``att_weight [S, 2H, 1]``, ``att_bias [S, 1]`` (PyG's
    ``att = Linear(2H, 1)``). ``reset_seed`` draws as PyG's module: ``LSTM.__init__`` (every
    tensor :math:`U(-1/\sqrt{H}, 1/\sqrt{H})` in that order), ``Linear.__init__`` (kaiming),
    then ``JumpingKnowledge.reset_parameters`` draws both again (those draws are kept).

    Why by hand: ``torch.nn.LSTM`` holds one set of weights, so S seeds are either S LSTM calls
    or one block-diagonal LSTM of S·H units whose dense :math:`W_{hh}` does S times the work;
    here each time step is one ``bmm`` over the seeds (:math:`[S, N, H] \times [S, H, 4H]`) and
    the input projections of all steps one ``bmm`` per direction. (Not timed against the S
    calls.) Memory: the backward keeps about a dozen ``[S, N, H]`` tensors per step and
    direction (the gate activations, the cell states, the step's share of the input
    projection), :math:`\approx 25\,S N L H \approx 12\,S N L^2 C` floats (counted, not
    measured), which ``engine.memory``'s per-layer estimate does not model: ``lstm`` is for
    small depths.
    """

    def __init__(self, num_seeds: int, mode: str, channels: int, num_layers: int) -> None:
        super().__init__()
        if mode not in JK_MODES:
            raise unknown("jk mode", mode, JK_MODES)
        self.num_seeds, self.mode = num_seeds, mode
        self.channels, self.num_layers = channels, num_layers
        self.hidden = (num_layers * channels) // 2 if mode == "lstm" else 0
        if mode == "lstm":
            s, c, h = num_seeds, channels, self.hidden
            for suffix in ("", "_reverse"):  # torch.nn.LSTM's parameter order
                self.register_parameter(f"weight_ih_l0{suffix}",
                                        nn.Parameter(torch.empty(s, 4 * h, c)))
                self.register_parameter(f"weight_hh_l0{suffix}",
                                        nn.Parameter(torch.empty(s, 4 * h, h)))
                self.register_parameter(f"bias_ih_l0{suffix}", nn.Parameter(torch.empty(s, 4 * h)))
                self.register_parameter(f"bias_hh_l0{suffix}", nn.Parameter(torch.empty(s, 4 * h)))
            self.att_weight = nn.Parameter(torch.empty(s, 2 * h, 1))
            self.att_bias = nn.Parameter(torch.empty(s, 1))
            for seed in range(num_seeds):
                self.reset_seed(seed)

    def lstm_parameters(self) -> list[nn.Parameter]:
        """The LSTM's tensors in ``torch.nn.LSTM``'s order (its ``parameters()``)."""
        return [getattr(self, f"{kind}_l0{suffix}") for suffix in ("", "_reverse")
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def reset_seed(self, s: int) -> None:
        if self.mode != "lstm":
            return
        bound = 1.0 / math.sqrt(self.hidden) if self.hidden > 0 else 0.0
        with torch.no_grad():
            for _ in range(2):  # LSTM / Linear __init__, then JumpingKnowledge.reset_parameters
                for p in self.lstm_parameters():
                    p[s].uniform_(-bound, bound)
                kaiming_linear_(self.att_weight[s], self.att_bias[s], 2 * self.hidden, 1)

    def _direction(self, seq: Tensor, suffix: str, reverse: bool) -> Tensor:
        """The hidden states ``[S, N, L, H]`` of one direction over ``seq [S, N, L, C]``."""
        s, n, steps, c = seq.shape
        w_ih, w_hh = getattr(self, f"weight_ih_l0{suffix}"), getattr(self, f"weight_hh_l0{suffix}")
        bias = getattr(self, f"bias_ih_l0{suffix}") + getattr(self, f"bias_hh_l0{suffix}")
        # every step's input projection at once: [S, N·L, C] @ [S, C, 4H] + b
        gates_in = torch.baddbmm(bias.unsqueeze(1), seq.reshape(s, n * steps, c),
                                 w_ih.transpose(1, 2)).view(s, n, steps, -1)
        w_hh_t = w_hh.transpose(1, 2)
        # the zero initial state goes through W_hh too: W_hh and its bias get a (zero)
        # gradient at depth 1 as torch.nn.LSTM's do, so weight decay still reaches them
        h = c_state = seq.new_zeros(s, n, self.hidden)
        states: list[Tensor] = []
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            gates = torch.baddbmm(gates_in[:, :, t], h, w_hh_t)
            i, f, g, o = gates.chunk(4, dim=-1)
            c_state = torch.sigmoid(f) * c_state + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c_state)
            states.append(h)
        return torch.stack(states[::-1] if reverse else states, dim=2)

    def forward(self, xs: list[Tensor]) -> Tensor:
        if self.mode == "cat":
            return torch.cat(xs, dim=-1)
        if self.mode == "max":  # as PyG: max over the layers (ties: one argmax)
            return torch.stack(xs, dim=-1).max(dim=-1)[0]
        seq = torch.stack(xs, dim=2).transpose(0, 1)  # [S, N, L, C]
        s, n, steps, _ = seq.shape
        states = torch.cat([self._direction(seq, "", False),
                            self._direction(seq, "_reverse", True)], dim=-1)  # [S, N, L, 2H]
        scores = torch.baddbmm(self.att_bias.unsqueeze(1), states.reshape(s, n * steps, -1),
                               self.att_weight).view(s, n, steps)
        alpha = torch.softmax(scores, dim=-1)
        return (seq * alpha.unsqueeze(-1)).sum(dim=2).transpose(0, 1)  # [N, S, C]

    def extra_repr(self) -> str:
        if self.mode == "lstm":
            return (f"lstm, seeds={self.num_seeds}, channels={self.channels}, "
                    f"layers={self.num_layers}, hidden={self.hidden}")
        return self.mode


class JKNet(common.LayerDropout, nn.Module):
    """``depth`` GCN layers, jumping knowledge over their outputs, a linear output, for
    ``num_seeds`` seeds (module doc). ``forward(x_in, adj)`` returns logits ``[N, S, C]``.

    Args:
        in_dim: input features (dense or sparse CSR).
        hidden: width of every GCN layer.
        out_dim: output features (classes).
        depth: number of GCN layers :math:`L`, >= 1.
        mode: ``"cat"``, ``"max"`` or ``"lstm"``. (default: ``"cat"``)
        norm_cfg: ``norm`` config, one norm after each GCN layer; ``None`` for none.
            (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``. (default: ``"relu"``)
        dropout: dropout probability. (default: ``0.5``)
        dropout_layers: ``"all"``, ``"io"`` or ``"hidden"``. (default: ``"all"``)
        shared_dropout: one mask per layer output, shared by the next layer and the
            aggregation (module docstring). (default: ``False``)
        num_seeds: seeds held side by side, S. (default: ``1``)
    """

    layer_outputs = True  # calls common.tap (input, each layer, logits)

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        mode: str = "cat",
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        dropout_layers: str = "all",
        shared_dropout: bool = False,
        num_seeds: int = 1,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if mode not in JK_MODES:
            raise unknown("jk mode", mode, JK_MODES)
        self.num_seeds, self.mode = num_seeds, mode
        dims = [in_dim] + [hidden] * depth
        pairs = zip(dims[:-1], dims[1:], strict=True)
        # module order = the old loop model's draw order: convs, norms, jk, lin_out
        self.convs = nn.ModuleList(SeedGCNConv(num_seeds, a, b) for a, b in pairs)
        self.norms = nn.ModuleList(build_seeded_norm(norm_cfg, hidden, num_seeds)
                                   for _ in range(depth))
        self.act = common.activation(activation)
        self.jk = SeedJumpingKnowledge(num_seeds, mode, hidden, depth)
        self.lin_out = SeedLinear(num_seeds, hidden * depth if mode == "cat" else hidden,
                                  out_dim, init="kaiming")  # torch.nn.Linear's
        self.set_dropout(dropout, dropout_layers, depth + 1)  # depth: lin_out
        self.shared_dropout = bool(shared_dropout)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        self.layer_sink: list | None = None

    def _p(self, position: int) -> float:
        return self.dropout if self.training and position in self.dropout_at else 0.0

    def layers(self, x_in: StackedInput, adj: Propagation) -> list[Tensor]:
        """The outputs :math:`H^{(1)}, \\dots, H^{(L)}` of the GCN layers, each
        ``[N, S, hidden]`` (with ``shared_dropout``, after the dropout the next layer reads
        them with)."""
        outs: list[Tensor] = []
        h: Tensor | None = None
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            if h is None:  # the first layer: drop_s(X) W_s from the shared features
                z = x_in(conv.weight, self._p(0), self.mask_fn)
                n, s, d = z.shape
                out = adj(z.reshape(n, s * d)).view(n, s, d) + conv.bias
            else:
                dropped = h if self.shared_dropout else stacked_dropout(
                    h, self._p(i), True, self.mask_fn)
                out = conv(dropped, adj)
            h = self.act(norm(out))
            if self.shared_dropout:  # one mask for the next layer (or lin_out) and the JK
                h = stacked_dropout(h, self._p(i + 1), True, self.mask_fn)
            outs.append(h)
        return outs

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, out_dim]`` from the shared input features and the propagation."""
        common.tap(self, x_in.x)
        outs = self.layers(x_in, adj)
        for out in outs:
            common.tap(self, out)
        h = self.jk(outs)
        if not self.shared_dropout:
            h = stacked_dropout(h, self._p(len(self.convs)), True, self.mask_fn)
        logits = common.tap(self, self.lin_out(h))
        return logits if rows is None else logits[rows]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """None: the loop model had no ``first_layer()`` (``train.weight_decay_first_only``)."""
        raise NotBatchable("train.weight_decay_first_only=true but model JKNet has no "
                           "first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The tensors the loop model named ``*weight*``: the convs', the norms', the LSTM's
        and its score's, ``lin_out``'s (the L1 penalty's)."""
        return [p for name, p in self.named_parameters() if "weight" in name]

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``graph``: the GCN layers and norms; ``output``: the aggregation and ``lin_out``."""
        return {"graph": [*self.convs.parameters(), *self.norms.parameters()],
                "output": [*self.jk.parameters(), *self.lin_out.parameters()]}

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, mode={self.mode}, {super().extra_repr()}, "
                f"shared_dropout={self.shared_dropout}")


def build_jknet(model_cfg: JKNetConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
                out_dim: int, num_seeds: int) -> JKNet:
    """``jknet`` for ``num_seeds`` seeds from its config (:class:`gdepth.config.JKNetConfig`:
    hidden, mode, dropout, dropout_layers, activation, shared_dropout)."""
    return JKNet(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        mode=str(model_cfg.mode),
        shared_dropout=bool(model_cfg.shared_dropout),
        num_seeds=num_seeds,
        **common.model_options(model_cfg, norm_cfg),
    )

