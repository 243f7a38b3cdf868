r"""SIGN: precomputed multi-hop features, one linear layer per hop, concatenated.

Frasca, Rossi, Eynard, Chamberlain, Bronstein and Monti, "SIGN: Scalable Inception Graph Neural
Networks", ICML 2020 GRL+ workshop, arXiv 2004.11198, https://arxiv.org/abs/2004.11198:

.. math::
    Z = \big[\, \sigma(\mathrm{norm}(X_0 \Theta_0)) \,\|\, \sigma(\mathrm{norm}(X_1 \Theta_1))
        \,\|\, \dots \,\|\, \sigma(\mathrm{norm}(X_K \Theta_K)) \,\big], \qquad
    \text{logits} = Z\, \Omega + b

(each :math:`X_k \Theta_k` with its own bias, dropout after each activation), as PyG's
``examples/sign.py``. The hop features :math:`X_k` come from the ``operator``:

* ``sym`` (the paper's powers of the GCN-normalized adjacency, PyG's ``transforms.SIGN(K)`` after
  ``transforms.AddSelfLoops()``): :math:`X_k = \hat{A}^k X` with
  :math:`\hat{A} = \tilde{D}^{-1/2}(A + I)\tilde{D}^{-1/2}`, the given ``adj``;
* ``ppr``: a personalized-PageRank operator. The paper's PPR operator is
  :math:`\Pi = \alpha(I - (1-\alpha)\hat{A})^{-1}`, a dense :math:`N \times N` matrix; here hop
  :math:`k` is its order-:math:`k` truncation applied to :math:`X`, the APPNP iteration of
  Gasteiger, Bojchevski and Günnemann, "Predict then Propagate: Graph Neural Networks meet
  Personalized PageRank", ICLR 2019, arXiv 1810.05997, https://arxiv.org/abs/1810.05997:

  .. math::
      X_0 = X, \qquad X_k = (1-\alpha)\hat{A} X_{k-1} + \alpha X
      = \sum_{j<k} \alpha(1-\alpha)^j \hat{A}^j X + (1-\alpha)^k \hat{A}^k X,

  i.e. PyG's ``APPNP(K=k, alpha)`` applied to :math:`X`; :math:`X_k \to \Pi X` as
  :math:`k \to \infty`. Hop :math:`k` thus sees :math:`k` hops, as with ``sym``, with the
  teleport ``ppr_alpha`` keeping weight on the nearer ones.

Depth convention: depth :math:`K` = number of propagated hops; the model has :math:`K + 1`
parallel branches (the raw features plus :math:`K` hops), each one linear layer deep, and one
linear output layer; the nonlinear depth stays 2 whatever :math:`K`. ``dropout_layers`` is unused.

Two ways to the same products :math:`X_k\Theta_k` (``hops``):

* ``cached`` (the paper's precomputation): the hops are fixed per dataset, so they are computed
  once, without autograd, and kept on the module (not in its ``state_dict``) with the ``x`` and
  ``adj`` they came from, under the same rules as ``sgc``: the very same tensor objects (and
  ``x``'s in-place version counter) reuse them, a different ``x`` or ``adj`` recomputes them,
  an ``x`` that requires grad is propagated afresh with autograd and not cached. :math:`X_0` is
  ``x`` itself (sparse CSR stays sparse); the other hops are dense, so the cache holds
  :math:`K \cdot N \cdot F` floats and each epoch multiplies them, :math:`K \cdot N \cdot F`
  multiply-adds per output column.
* ``projected``: the operators are linear, so :math:`(\hat{A}^k X)\Theta_k = \hat{A}^k
  (X\Theta_k)` (for ``ppr`` likewise: the APPNP iteration applied to :math:`X\Theta_k`). One
  product :math:`X\Theta_k` per hop and step, then its k propagations (:math:`K(K+1)/2` in
  all), with autograd: :math:`(K+1)\,\mathrm{nnz}(X) + \tfrac{K(K+1)}{2}\,\mathrm{nnz}(\hat{A})` per
  output column and nothing cached. For a sparse, wide :math:`X` (bag-of-words: Coauthor CS,
  18,333 × 6,805 at 0.9 % density) that is far less time and memory: the cache would hold 16 GB
  at :math:`K = 32` (``benchmarks/sign_hops.py`` times both).
* ``auto`` (the default) takes ``projected`` on the CPU when :math:`X` is sparse and its cost
  is the lower, a sparse multiply-add counted as :data:`SPARSE_MAC_COST` dense ones
  (:func:`projected_is_cheaper`), else ``cached``.

The two give the same numbers up to float rounding, so the choice is not part of a cell's
identity (like ``engine``): no config key, the model picks it from the data.

Seed axis (:mod:`gdepth.nn.seeds`): the model holds S seeds, each hop's :math:`\Theta_k` as
``[S, F, d]`` and :math:`\Omega` as ``[S, (K+1)d, C]`` (:class:`gdepth.nn.seeds.SeedLinear`,
drawn as the one-seed model's ``torch.nn.Linear`` layers), features ``[N, S, d]``:

.. math::
    Z_s = \big[\,\mathrm{drop}_s(\sigma(\mathrm{norm}(X_0\Theta_{0,s} + c_{0,s})))\,\|\,\dots
    \,\|\,\mathrm{drop}_s(\sigma(\mathrm{norm}(X_K\Theta_{K,s} + c_{K,s})))\,\big],
    \qquad \text{logits}_s = Z_s\,\Omega_s + b_s.

The hops are the same for every seed and no dropout acts on them, so hop k is one product
:math:`X_k\,[\Theta_{k,1}|\dots|\Theta_{k,S}]` for all seeds (dense hops by
:func:`gdepth.models.sgc.precomputed_product`; a sparse :math:`X_0` stays sparse,
:class:`gdepth.nn.kernels.StackedInput`), instead of S products of the same rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import NormConfig, SIGNConfig
from gdepth.models import common
from gdepth.models.mlp import no_first_layer, norm_weight_parameters
from gdepth.models.sgc import precomputed_product
from gdepth.nn.dropout import MaskFn, stacked_dropout
from gdepth.nn.kernels import StackedInput
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import SeedLinear
from gdepth.norms import build_seeded_norm
from gdepth.options import unknown

OPERATORS = ("sym", "ppr")
HOPS = ("auto", "cached", "projected")
# A sparse multiply-add (a gathered row of embedding_bag / SpMM) costs about this many dense
# ones (a BLAS product) on one CPU core: in benchmarks/sign_hops.py the ratio of the two ways'
# multiply-add counts over the ratio of their measured step times came to 5.1-11.3 (Cora at
# K = 2, 8, 32 and Coauthor CS at K = 2, 8; median 8.5).
SPARSE_MAC_COST = 8.0
SIGN_CONVENTION = (
    "depth K = number of propagated hops: features [X, A X, ..., A^K X] (operator sym) or "
    "truncated-PPR iterates (operator ppr) computed once and cached (from a sparse X where "
    "cheaper: the equal A^k (X W_k) each step), one linear -> norm -> activation per hop, "
    "concatenated, then a linear output (Frasca et al. 2020)"
)


def hop_features(
    x: Tensor, adj: Tensor, steps: int, operator: str = "sym", alpha: float = 0.15
) -> list[Tensor]:
    """``[X_0, …, X_steps]`` for ``operator`` (module docstring); ``X_0`` is ``x`` itself (dense
    or sparse CSR), the others dense ``[N, F]``."""
    if operator not in OPERATORS:
        raise unknown("sign operator", operator, OPERATORS)
    x0 = x.to_dense() if x.layout != torch.strided else x
    hops, h = [x], x0
    for _ in range(steps):
        h = torch.sparse.mm(adj, h)
        if operator == "ppr":
            h = (1.0 - alpha) * h + alpha * x0
        hops.append(h)
    return hops


def _stored(t: Tensor) -> int:
    """Stored entries of ``t``: its non-zeros when sparse (CSR or COO), else every entry."""
    if t.layout == torch.sparse_csr:
        return int(t.values().numel())
    if t.layout == torch.sparse_coo:
        return int(t._nnz())
    return t.numel()


def projected_is_cheaper(x: Tensor, adj: Tensor, steps: int) -> bool:
    r"""Whether ``hops=auto`` projects first: ``x`` sparse and
    :math:`c\,(K\,\mathrm{nnz}(X) + \tfrac{K(K+1)}{2}\mathrm{nnz}(\hat{A})) < K N F`, the
    multiply-adds per output column of the two ways beyond the :math:`X_0` product both pay
    (module docstring), a sparse one weighted by :data:`SPARSE_MAC_COST`. On the CPU only,
    where that weight was measured; a GPU's dense products outrun its sparse ones by far more,
    so there ``auto`` keeps the paper's cached hops."""
    if x.layout == torch.strided or x.device.type != "cpu":
        return False
    n, f = x.shape
    sparse = steps * _stored(x) + steps * (steps + 1) / 2 * _stored(adj)
    return SPARSE_MAC_COST * sparse < steps * n * f


class SIGN(nn.Module):
    """SIGN on ``depth`` hops (cached or projected, ``hops``) for S seeds (module docstring).
    ``forward(x_in, adj)`` returns logits ``[N, S, out_dim]``.

    Args:
        in_dim: input features (dense or sparse CSR).
        hidden: width of each hop's linear layer.
        out_dim: output features (classes).
        depth: number of propagated hops :math:`K`, >= 1.
        operator: ``"sym"`` or ``"ppr"``. (default: ``"sym"``)
        ppr_alpha: teleport probability of ``ppr``. (default: ``0.15``)
        norm_cfg: ``norm`` config, one norm per hop after its linear layer; ``None`` for none.
            (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``. (default: ``"relu"``)
        dropout: dropout probability after each hop's activation. (default: ``0.5``)
        num_seeds: S. (default: ``1``)
        hops: ``"auto"``, ``"cached"`` or ``"projected"`` (module docstring). (default:
            ``"auto"``)
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        operator: str = "sym",
        ppr_alpha: float = 0.15,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        num_seeds: int = 1,
        hops: str = "auto",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if operator not in OPERATORS:
            raise unknown("sign operator", operator, OPERATORS)
        if hops not in HOPS:
            raise unknown("sign hops", hops, HOPS)
        self.hops = hops
        self.num_seeds = num_seeds
        # the one-seed model's draw order: the K + 1 hop layers, their norms, the output
        self.lins = nn.ModuleList(SeedLinear(num_seeds, in_dim, hidden, init="kaiming")
                                  for _ in range(depth + 1))
        self.norms = nn.ModuleList(build_seeded_norm(norm_cfg, hidden, num_seeds)
                                   for _ in range(depth + 1))
        self.act = common.activation(activation)
        self.lin_out = SeedLinear(num_seeds, hidden * (depth + 1), out_dim, init="kaiming")
        self.steps = depth
        self.operator = operator
        self.ppr_alpha = float(ppr_alpha)
        self.dropout = float(dropout)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        # (x, adj, x's version, the hops [X_1, ..., X_K])
        self._cache: tuple[Tensor, Tensor, int, list[Tensor]] | None = None

    def __getstate__(self) -> dict[str, Any]:  # copies (select_seeds, pickling): no cache
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """SIGN has no ``first_layer()`` (K + 1 parallel input layers)."""
        raise no_first_layer("SIGN")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The hop layers', the norms' and the output layer's ``*weight*`` tensors."""
        return [*(lin.weight for lin in self.lins),
                *(p for norm in self.norms for p in norm_weight_parameters(norm)),
                self.lin_out.weight]

    def features(self, x_in: StackedInput, adj: Propagation) -> list[Tensor]:
        """The hops ``[X_0, …, X_K]`` (``X_0`` is ``x`` itself), cached per ``x`` and adjacency:
        the very same tensors (and ``x``'s in-place version counter) reuse them; an ``x`` that
        requires grad (a Jacobian diagnostic) is propagated afresh with autograd and not
        cached."""
        x, a = x_in.x, adj.adj
        if x.requires_grad:
            return hop_features(x, a, self.steps, self.operator, self.ppr_alpha)
        cache = self._cache
        if cache is None or cache[0] is not x or cache[1] is not a or cache[2] != x._version:
            self._cache = None  # free the old hops before computing the new ones
            with torch.no_grad():
                hops = hop_features(x, a, self.steps, self.operator, self.ppr_alpha)
            cache = (x, a, x._version, hops[1:])
            self._cache = cache
        return [x, *cache[3]]

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, out_dim]`` from the shared features ``x_in`` and ``adj``."""
        p = self.dropout if self.training else 0.0
        products = (self.projected(x_in, adj) if self.projects(x_in.x, adj.adj)
                    else self.cached(x_in, adj))
        z = [stacked_dropout(self.act(norm(h + lin.bias)), p, True, self.mask_fn)
             for h, lin, norm in zip(products, self.lins, self.norms, strict=True)]
        out = self.lin_out(torch.cat(z, dim=-1))
        return out if rows is None else out[rows]

    def projects(self, x: Tensor, adj: Tensor) -> bool:
        """Whether this forward takes ``projected`` (``hops``, and for ``auto`` the cost rule
        of :func:`projected_is_cheaper`)."""
        if self.hops == "auto":
            return projected_is_cheaper(x, adj, self.steps)
        return self.hops == "projected"

    def cache_bytes(self, x: Tensor, adj: Tensor) -> int:
        """Bytes the cached hops :math:`X_1, …, X_K` (dense ``[N, F]`` each) will hold for
        ``x`` and ``adj``, shared by every seed of a batch; 0 where the forward projects."""
        if self.projects(x, adj):
            return 0
        return self.steps * x.size(0) * x.size(1) * x.element_size()

    def cached(self, x_in: StackedInput, adj: Propagation) -> list[Tensor]:
        """``[X_0 Θ_0, …, X_K Θ_K]`` (each ``[N, S, d]``, before the bias) from the cached hops."""
        out = []
        for hop, lin in zip(self.features(x_in, adj), self.lins, strict=True):
            if hop.layout == torch.strided:  # dense: the hops, and a dense X
                out.append(precomputed_product(hop, lin.weight))
            else:  # a sparse CSR X_0: one SpMM for all seeds
                out.append(x_in(lin.weight, 0.0, None))
        return out

    def projected(self, x_in: StackedInput, adj: Propagation) -> list[Tensor]:
        r"""``[X_0 Θ_0, …, X_K Θ_K]`` as :math:`\hat{A}^k (X\Theta_k)`: per hop, one product
        :math:`X\Theta_k` for all seeds, then k propagations of it (``ppr``: each mixing in
        :math:`\alpha X\Theta_k`). Hop by hop rather than all hops' blocks in one product per
        step: the same propagations, without slicing a shrinking block tensor every step,
        whose copies (and their gradients' zero fills) cost more than the propagations
        themselves at large K (``benchmarks/sign_hops.py``)."""
        out = []
        for k, lin in enumerate(self.lins):
            h = x_in(lin.weight, 0.0, None)  # [N, S, d]
            n, s, d = h.shape
            start = h = h.reshape(n, s * d)
            for _ in range(k):
                h = adj(h)
                if self.operator == "ppr":
                    h = (1.0 - self.ppr_alpha) * h + self.ppr_alpha * start
            out.append(h.view(n, s, d))
        return out

    def extra_repr(self) -> str:
        return (
            f"seeds={self.num_seeds}, K={self.steps}, operator={self.operator}, hops={self.hops}, "
            f"ppr_alpha={self.ppr_alpha}, dropout={self.dropout}, "
            f"cached={self._cache is not None}"
        )


def build_sign(model_cfg: SIGNConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
               out_dim: int, num_seeds: int = 1) -> SIGN:
    """``sign`` from its config (:class:`gdepth.config.SIGNConfig`: hidden, operator,
    ppr_alpha, dropout, activation)."""
    return SIGN(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        operator=str(model_cfg.operator),
        ppr_alpha=float(model_cfg.ppr_alpha),
        num_seeds=num_seeds,
        **common.model_options(model_cfg, norm_cfg, without=("dropout_layers",)),
    )
