r"""The seed axis: one model definition that holds S independent seeds.

A *seed-native* module holds S copies of a network side by side and computes all of them in
one forward pass. The contract every model and norm of gdepth follows:

* **Parameters and buffers are seed-major**: each has shape ``[S, ...]``, slice ``s`` is seed
  ``s``'s own tensor (a linear weight ``[S, d_in, d_out]``, a bias or a norm's scale
  ``[S, d]``, BatchNorm's running statistics ``[S, d]``). Nothing is shared between seeds, so
  the summed loss :math:`\sum_s \mathcal{L}_s` gives each seed the gradient of its own loss
  and every element-wise optimizer (Adam, AdamW, SGD) steps each seed as its own run.
* **Features are node-major**: a hidden tensor is ``[N, S, d]`` (seed s is ``H[:, s]``);
  ``forward(x_in, adj, rows=None)`` maps the shared input features
  (:class:`gdepth.nn.kernels.StackedInput`) and the propagation
  (:class:`gdepth.nn.propagation.Propagation`) to logits ``[N, S, C]`` (``[R, S, C]`` for the
  ``rows`` of a row-wise model). One run is S = 1.
* **Initialization per seed**: :func:`reset_seeds` draws seed ``s``'s initial weights after
  ``torch.manual_seed(seeds[s])``, by calling ``reset_seed(s)`` on every submodule that has
  one, in module order; a block's ``reset_seed`` draws what the PyTorch / PyG layer it stands
  for draws in its ``reset_parameters`` (same distribution, same order), so seed s's initial
  weights do not depend on which other seeds share its batch.

:func:`select_seeds` cuts any such module down to a subset of its seeds (a new module, the
selected slices copied), which is how a diagnostic looks at one seed's trained model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


def reset_seeds(model: nn.Module, seeds: Sequence[int]) -> nn.Module:
    """Initialize seed slice ``s`` of every seed-native block of ``model`` after
    ``torch.manual_seed(seeds[s])`` (``reset_seed(s)`` on each submodule, in module order).

    Leaves the global RNG in the state the last seed's initialization left it, as building a
    one-seed model after ``torch.manual_seed(seed)`` did before the seed axis existed.
    """
    num = getattr(model, "num_seeds", None)
    if num is not None and num != len(seeds):
        raise ValueError(f"model holds {num} seeds, {len(seeds)} seeds given")
    blocks = [m for m in model.modules() if hasattr(m, "reset_seed")]
    with torch.no_grad():
        for s, seed in enumerate(seeds):
            torch.manual_seed(int(seed))
            for block in blocks:
                block.reset_seed(s)
    return model


def select_seeds(model: nn.Module, index: Sequence[int]) -> nn.Module:
    """A copy of the seed-native ``model`` holding only the seeds ``index`` (in that order):
    every parameter and buffer sliced on its seed axis, ``num_seeds`` set on every submodule
    that has it."""
    keep = torch.as_tensor(list(index), dtype=torch.long)
    out = copy.deepcopy(model)
    with torch.no_grad():
        for module in out.modules():
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, nn.Parameter(p.detach()[keep.to(p.device)].clone(),
                                                   requires_grad=p.requires_grad))
            for name, b in list(module.named_buffers(recurse=False)):
                if b is not None and b.dim() > 0:
                    module._buffers[name] = b[keep.to(b.device)].clone()
            if hasattr(module, "num_seeds"):
                module.num_seeds = len(keep)
    return out


def glorot_(weight: Tensor, fan_in: int, fan_out: int) -> Tensor:
    r"""PyG's ``glorot`` on a ``[d_out, d_in]`` weight, written into ``weight`` laid out
    ``[d_in, d_out]``: :math:`U(-a, a)`, :math:`a = \sqrt{6/(d_{in} + d_{out})}`; the draws are
    those of PyG's ``Linear(..., weight_initializer="glorot")`` (GCNConv's)."""
    a = math.sqrt(6.0 / (fan_in + fan_out))
    drawn = torch.empty(fan_out, fan_in, dtype=weight.dtype).uniform_(-a, a)
    return weight.copy_(drawn.t())


def kaiming_linear_(weight: Tensor, bias: Tensor | None, fan_in: int, fan_out: int) -> None:
    r"""``torch.nn.Linear.reset_parameters`` on a ``[d_in, d_out]`` weight: weight
    :math:`U(-1/\sqrt{d_{in}}, 1/\sqrt{d_{in}})` (kaiming uniform, :math:`a = \sqrt5`), then the
    bias from the same interval; the draws are those of ``nn.Linear(d_in, d_out)``."""
    drawn = torch.empty(fan_out, fan_in, dtype=weight.dtype)
    nn.init.kaiming_uniform_(drawn, a=math.sqrt(5))
    weight.copy_(drawn.t())
    if bias is not None:
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        bias.copy_(torch.empty(fan_out, dtype=bias.dtype).uniform_(-bound, bound))


INITS = ("glorot", "kaiming")


class SeedLinear(nn.Module):
    r""":math:`Y_s = X_s W_s + b_s` for every seed: ``weight [S, d_in, d_out]``, ``bias
    [S, d_out]``; ``forward(h [N, S, d_in]) -> [N, S, d_out]`` (one ``bmm``).

    ``init``: ``glorot`` (PyG ``Linear`` with ``weight_initializer="glorot"``, bias zeros: the
    weight of ``GCNConv`` and friends) or ``kaiming`` (``torch.nn.Linear``'s default).
    """

    def __init__(self, num_seeds: int, d_in: int, d_out: int, bias: bool = True,
                 init: str = "glorot") -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown init '{init}'; valid: {', '.join(INITS)}")
        self.num_seeds, self.d_in, self.d_out, self.init = num_seeds, d_in, d_out, init
        self.weight = nn.Parameter(torch.empty(num_seeds, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(num_seeds, d_out)) if bias else None
        for s in range(num_seeds):
            self.reset_seed(s)

    def reset_seed(self, s: int) -> None:
        """Draw seed ``s``'s initial weight (and bias) as the one-seed layer would."""
        with torch.no_grad():
            if self.init == "glorot":
                glorot_(self.weight[s], self.d_in, self.d_out)
                if self.bias is not None:
                    self.bias[s].zero_()
            else:
                kaiming_linear_(self.weight[s], None if self.bias is None else self.bias[s],
                                self.d_in, self.d_out)

    def forward(self, h: Tensor) -> Tensor:
        out = torch.bmm(h.transpose(0, 1), self.weight).transpose(0, 1)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, {self.d_in} -> {self.d_out}, init={self.init}, "
                f"bias={self.bias is not None}")


class SeedStack(nn.Module):
    """S seeds of a one-seed module (``forward(x [N, F], adj) -> [N, C]``) behind the seed-native
    contract, for the models whose layers are not seed-native yet.

    The S modules' parameters and buffers are stacked seed-major (``torch.func``'s
    ``stack_module_state``); ``forward`` runs the one-seed module once per seed on its slices
    (``torch.func.functional_call``) and stacks the logits ``[N, S, C]``. Mathematically S
    separate runs; in time S forward and backward passes (one optimizer step and one
    evaluation per epoch for all). Why not ``torch.vmap`` over the seeds: on CPU it is slower
    than this loop for PyG's layers (GATConv, GatedGraphConv, GCNConv).

    ``make()`` builds one seed's module from the global RNG (its ``reset_seed(s)`` draws a
    fresh module and copies its tensors into slice s, so seed s starts where its own run did).
    """

    def __init__(self, make: Callable[[], nn.Module], num_seeds: int) -> None:
        super().__init__()
        self.make, self.num_seeds = make, num_seeds
        first = make()
        self.base = [first]  # a list: not a submodule, its own tensors are never used
        self.names = [n for n, _ in first.named_parameters()]
        self.buffer_names = [n for n, _ in first.named_buffers()]
        self.flat = nn.ParameterList(
            nn.Parameter(p.detach().unsqueeze(0).repeat(num_seeds, *[1] * p.dim()).clone(),
                         requires_grad=p.requires_grad) for _, p in first.named_parameters())
        for i, (_, b) in enumerate(first.named_buffers()):
            self.register_buffer(f"buffer_{i}",
                                 b.detach().unsqueeze(0).repeat(num_seeds, *[1] * b.dim()).clone())
        for attr in ("rowwise", "layer_outputs"):
            if hasattr(first, attr):
                setattr(self, attr, getattr(first, attr))

    def reset_seed(self, s: int) -> None:
        fresh = self.make().to(self.flat[0].device) if len(self.flat) else self.make()
        with torch.no_grad():
            for p, (_, q) in zip(self.flat, fresh.named_parameters(), strict=True):
                p[s].copy_(q)
            for i, (_, b) in enumerate(fresh.named_buffers()):
                getattr(self, f"buffer_{i}")[s].copy_(b)

    def module(self) -> nn.Module:
        """The one-seed module (its own tensors unused), in this stack's train / eval mode."""
        return self.base[0].train(self.training)

    def seed_state(self, s: int) -> dict[str, Tensor]:
        """Seed ``s``'s tensors by the one-seed module's names (views into the stack)."""
        state = {n: p[s] for n, p in zip(self.names, self.flat, strict=True)}
        state.update({n: getattr(self, f"buffer_{i}")[s]
                      for i, n in enumerate(self.buffer_names)})
        return state

    def _apply(self, fn, recurse=True):  # keep the unused one-seed module on the same device
        out = super()._apply(fn, recurse)
        self.base[0] = self.base[0]._apply(fn, recurse)
        return out

    def _stacked(self, params: Sequence[nn.Parameter]) -> list[nn.Parameter]:
        ids = {id(p) for p in params}
        return [q for (_, p), q in zip(self.module().named_parameters(), self.flat, strict=True)
                if id(p) in ids]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The stacked parameters the one-seed module names ``*weight*`` (the L1 penalty's)."""
        return [p for n, p in zip(self.names, self.flat, strict=True) if "weight" in n]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The stacked parameters of the one-seed module's ``first_layer()``."""
        return self._stacked(list(self.module().first_layer().parameters()))

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The one-seed module's parameter groups (``named_parameter_groups()``, or the legacy
        ``graph`` / ``dense`` of ``parameter_groups``), as stacked parameters."""
        base = self.module()
        if hasattr(base, "named_parameter_groups"):
            return {g: self._stacked(ps) for g, ps in base.named_parameter_groups().items()}
        if hasattr(base, "parameter_groups"):  # decay 0: graph, 1: dense
            groups = base.parameter_groups(0.0, 1.0)
            return {name: self._stacked([p for g in groups if g["weight_decay"] == decay
                                         for p in g["params"]])
                    for name, decay in (("graph", 0.0), ("dense", 1.0))}
        return {}

    def forward(self, x_in, adj, rows: Tensor | None = None) -> Tensor:
        x = getattr(x_in, "x", x_in)
        a = getattr(adj, "adj", adj)
        base = self.module()
        outs = [torch.func.functional_call(base, self.seed_state(s), (x, a))
                for s in range(self.num_seeds)]
        out = torch.stack(outs, dim=1)
        return out if rows is None else out[rows]


def concat_seeds(models: Sequence[nn.Module]) -> nn.Module:
    """One seed-native module holding the seeds of ``models`` (seed-native modules of one
    architecture) in that order: every parameter and buffer concatenated on its seed axis.
    The inverse of :func:`select_seeds`."""
    first = models[0]
    if any(type(m) is not type(first) for m in models):
        raise ValueError("concat_seeds: the modules differ in type")
    out = copy.deepcopy(first)
    sources = [dict(m.named_modules()) for m in models]
    with torch.no_grad():
        for name, module in out.named_modules():
            parts = [src[name] for src in sources]
            for pname, p in list(module.named_parameters(recurse=False)):
                setattr(module, pname, nn.Parameter(
                    torch.cat([getattr(q, pname).detach() for q in parts]).clone(),
                    requires_grad=p.requires_grad))
            for bname, b in list(module.named_buffers(recurse=False)):
                if b is not None and b.dim() > 0:
                    module._buffers[bname] = torch.cat([getattr(q, bname) for q in parts]).clone()
            if hasattr(module, "num_seeds"):
                module.num_seeds = sum(getattr(q, "num_seeds", 1) for q in parts)
    return out


__all__ = ["INITS", "SeedLinear", "SeedStack", "concat_seeds", "glorot_", "kaiming_linear_",
           "reset_seeds", "select_seeds"]
