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

The aggregation is PyG's ``JumpingKnowledge(mode, channels=hidden, num_layers=L)``; the layers are
PyG's ``GCNConv(normalize=False)`` on the precomputed :math:`\hat{A}`, as in ``gcn``. PyG's
``lstm`` mode has a bidirectional LSTM of hidden size :math:`\lfloor L \cdot hidden / 2 \rfloor`,
so its cost grows with :math:`L^2`: ``lstm`` is for small depths.

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

Parameter groups (:meth:`JKNet.named_parameter_groups`, for ``train.weight_decay_groups``):
``graph`` = the GCN layers and their norms, ``output`` = the aggregation (``lstm``'s weights)
and the output linear layer.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch_geometric.nn import GCNConv, JumpingKnowledge

from gdepth.models import common
from gdepth.norms import build_norm
from gdepth.options import option, unknown

JK_MODES = ("cat", "max", "lstm")
JKNET_CONVENTION = (
    "depth L = number of GCN layers (in->hidden, hidden->hidden), each followed by norm -> "
    "activation; the jumping-knowledge aggregation of all L outputs (cat | max | lstm) and the "
    "output linear layer do not count (Xu et al. 2018)"
)


class JKNet(common.LayerDropout, nn.Module):
    """``depth`` GCN layers, jumping knowledge over their outputs, a linear output (module doc).

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
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if mode not in JK_MODES:
            raise unknown("jk mode", mode, JK_MODES)
        dims = [in_dim] + [hidden] * depth
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.convs = nn.ModuleList(GCNConv(a, b, normalize=False) for a, b in pairs)
        self.norms = nn.ModuleList(build_norm(norm_cfg, hidden) for _ in range(depth))
        self.act = common.activation(activation)
        self.jk = JumpingKnowledge(mode, channels=hidden, num_layers=depth)
        self.lin_out = nn.Linear(hidden * depth if mode == "cat" else hidden, out_dim)
        self.set_dropout(dropout, dropout_layers, depth + 1)  # depth: lin_out
        self.shared_dropout = bool(shared_dropout)

    def layers(self, x: Tensor, adj: Tensor) -> list[Tensor]:
        """The outputs :math:`H^{(1)}, \\dots, H^{(L)}` of the GCN layers, each ``[N, hidden]``
        (with ``shared_dropout``, after the dropout the next layer reads them with)."""
        outs = []
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = x if self.shared_dropout and i > 0 else self._drop(x, i)  # shared: dropped
            x = self.act(norm(conv(h, adj)))
            if self.shared_dropout:
                x = self._drop(x, i + 1)  # the mask of layer i + 1 (or of lin_out) and JK
            outs.append(x)
        return outs

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        outs = self.layers(common.tap(self, x), adj)
        for out in outs:
            common.tap(self, out)
        h = self.jk(outs)
        if not self.shared_dropout:
            h = self._drop(h, len(self.convs))
        return common.tap(self, self.lin_out(h))

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``graph``: the GCN layers and norms; ``output``: the aggregation and ``lin_out``."""
        return {"graph": [*self.convs.parameters(), *self.norms.parameters()],
                "output": [*self.jk.parameters(), *self.lin_out.parameters()]}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, shared_dropout={self.shared_dropout}"


def build_jknet(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> JKNet:
    """``jknet`` from a ``model`` config: keys hidden (64), mode ("cat"), dropout (0.5),
    dropout_layers ("all"), activation ("relu"), shared_dropout (false)."""
    return JKNet(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        mode=option(model_cfg, "mode", "cat"),
        shared_dropout=bool(option(model_cfg, "shared_dropout", False)),
        **common.model_options(model_cfg, norm_cfg),
    )
