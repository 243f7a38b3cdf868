"""gdepth.norms on the seed axis: one seed equals the PyG / torch module (or the official code
where PyG has none) with the same tensors, S seeds equal S one-seed runs, and seed s starts
from the tensors the old module drew after ``torch.manual_seed(s)``.

Tolerances (float64, unit roundoff u = 2**-53 ~ 1.1e-16): every output is a few reductions of
at most K = G·D + N = 3·7 + 12 = 33 terms (means, variances, softmax, sums over the groups), each
off by at most ~K·u ~ 4e-15 relative when two implementations sum in different orders; the
normalizations divide by standard deviations of standard-normal data (>= ~0.1 here) and their
backward by their cubes, amplifying that by at most ~1e3. So outputs and gradients of size
O(1) agree to ~4e-12; RTOL = ATOL = 1e-10 leaves a factor 25 above that bound. The state
checks (initial tensors, RNG) are exact: the same draws in the same dtype.
"""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg_nn
from torch import Tensor, nn

from gdepth import config
from gdepth.nn import kernels
from gdepth.nn.one_seed import OneSeedNorm
from gdepth.nn.seeds import concat_seeds, reset_seeds, select_seeds
from gdepth.norms import NORMS, build_norm, build_seeded_norm

N, D, S = 12, 7, 3
TOL = {"rtol": 1e-10, "atol": 1e-10}
SEEDS = [3, 7, 11]


class OfficialNodeNorm(nn.Module):
    """NodeNorm as in the official code (https://github.com/miafei/NodeNorm, ``layers.py``,
    ``unbiased=False``), written out for one seed ``[N, d]``."""

    def __init__(self, variant: str, power: float, eps: float) -> None:
        super().__init__()
        self.variant, self.power, self.eps = variant, power, eps

    def forward(self, x: Tensor) -> Tensor:
        mean = torch.mean(x, dim=1, keepdim=True)
        std = (torch.var(x, unbiased=False, dim=1, keepdim=True) + self.eps).sqrt()
        if self.variant == "n":
            return (x - mean) / std
        if self.variant == "v":
            return x / std
        if self.variant == "m":
            return x - mean
        if self.variant == "srv":
            return x / torch.sqrt(std)
        return x / torch.pow(std, 1 / self.power)  # "pr"


class OfficialPairNormSCS(nn.Module):
    """PairNorm ``PN-SCS`` as in the official code (https://github.com/LingxiaoShawn/PairNorm,
    ``layers.py``; its eps 1e-6 a parameter here), for one seed ``[N, d]``."""

    def __init__(self, scale: float, eps: float) -> None:
        super().__init__()
        self.scale, self.eps = scale, eps

    def forward(self, x: Tensor) -> Tensor:
        col_mean = x.mean(dim=0)
        rownorm_individual = (self.eps + x.pow(2).sum(dim=1, keepdim=True)).sqrt()
        return self.scale * x / rownorm_individual - col_mean


CASES = {
    "none": {"name": "none"},
    "batchnorm": {"name": "batchnorm"},
    "pairnorm-PN": {"name": "pairnorm", "mode": "PN", "scale": 2.0},
    "pairnorm-PN-SI": {"name": "pairnorm", "mode": "PN-SI", "scale": 0.5, "eps": 1e-3},
    "pairnorm-PN-SCS": {"name": "pairnorm", "mode": "PN-SCS", "scale": 3.0, "eps": 1e-6},
    "nodenorm-n": {"name": "nodenorm", "variant": "n"},
    "nodenorm-v": {"name": "nodenorm", "variant": "v", "eps": 1e-3},
    "nodenorm-srv": {"name": "nodenorm", "variant": "srv"},
    "nodenorm-pr": {"name": "nodenorm", "variant": "pr", "power": 3.0},
    "nodenorm-m": {"name": "nodenorm", "variant": "m"},
    "layernorm": {"name": "layernorm", "eps": 1e-3},
    "layernorm-plain": {"name": "layernorm", "affine": False},
    "groupnorm": {"name": "groupnorm", "groups": 3, "lamda": 0.5},
    "meannorm": {"name": "meannorm"},
    "graphnorm": {"name": "graphnorm", "eps": 1e-3},
    "combnorm-n": {"name": "combnorm", "groups": 3, "lamda": 0.3, "eps": 1e-4},
    "combnorm-pr": {"name": "combnorm", "groups": 2, "lamda": 1.0, "variant": "pr",
                    "power": 3.0},
}


def typed(cfg: dict) -> config.NormConfig:
    """A case (plain values, which the references read) as the norm's schema."""
    return config.group("norm", cfg)


def test_the_cases_cover_every_norm_and_mode():
    assert {c["name"] for c in CASES.values()} == set(NORMS)
    assert {c.get("mode", "PN") for c in CASES.values() if c["name"] == "pairnorm"} == {
        "PN", "PN-SI", "PN-SCS"}
    assert {c.get("variant", "n") for c in CASES.values() if c["name"] == "nodenorm"} == {
        "n", "v", "srv", "pr", "m"}


def reference(cfg: dict, dim: int) -> nn.Module:
    """The one-seed module gdepth used before the seed axis: PyG's, or the official code's."""
    name, eps = cfg["name"], cfg.get("eps", 1e-5)
    node = {"variant": cfg.get("variant", "n"), "power": cfg.get("power", 2.0), "eps": eps}
    group = {"lamda": cfg.get("lamda", 0.01), "eps": eps}
    if name == "none":
        return nn.Identity()
    if name == "batchnorm":
        return pyg_nn.BatchNorm(dim)
    if name == "pairnorm" and cfg.get("mode", "PN") == "PN-SCS":
        return OfficialPairNormSCS(cfg.get("scale", 1.0), eps)
    if name == "pairnorm":
        return pyg_nn.PairNorm(cfg.get("scale", 1.0), cfg.get("mode") == "PN-SI", eps)
    if name == "nodenorm":
        return OfficialNodeNorm(**node)
    if name == "layernorm":
        return pyg_nn.LayerNorm(dim, eps=eps, affine=cfg.get("affine", True), mode="node")
    if name == "groupnorm":
        return pyg_nn.DiffGroupNorm(dim, cfg.get("groups", 10), **group)
    if name == "meannorm":
        return pyg_nn.MeanSubtractionNorm()
    if name == "graphnorm":
        return pyg_nn.GraphNorm(dim, eps=eps)
    assert name == "combnorm"
    return nn.Sequential(pyg_nn.DiffGroupNorm(dim, cfg.get("groups", 10), **group),
                         OfficialNodeNorm(**node))


def as_reference(name: str, tensors: dict[str, Tensor], s: int = 0) -> dict[str, Tensor]:
    """Seed ``s`` of a native norm's named tensors (state or gradients) under the reference
    module's names and layout (DiffGroupNorm's ``lin_weight [S, d, G]`` is ``lin.weight
    [G, d]``; PyG's BatchNorm holds its tensors in ``module``)."""
    out = {}
    for key, t in tensors.items():
        if key.endswith("lin_weight"):
            out[key.replace("lin_weight", "lin.weight")] = t[s].t()
        else:
            out[f"module.{key}" if name == "batchnorm" else key] = t[s]
    return out


def reference_state(module: nn.Module) -> dict[str, Tensor]:
    """The reference's state without torch BatchNorm's ``num_batches_tracked`` (not kept:
    it only matters for momentum=None)."""
    return {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


def assert_same(got: dict[str, Tensor], want: dict[str, Tensor], exact: bool = False) -> None:
    assert got.keys() == want.keys()
    for key in want:
        if exact:
            assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key
        else:
            torch.testing.assert_close(got[key], want[key], **TOL, msg=key)


def randomized(norm: nn.Module) -> nn.Module:
    """Float64, every parameter drawn at random and running variances in [0.5, 1.5] (running
    means N(0, 1)), so no initial value hides a bug."""
    norm = norm.double()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in norm.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for key, b in norm.named_buffers():
            fresh = torch.rand(b.shape, generator=gen, dtype=b.dtype) + 0.5
            b.copy_(fresh if key.endswith("running_var") else torch.randn(
                b.shape, generator=gen, dtype=b.dtype))
    return norm


def features(seeds: int) -> Tensor:
    return torch.randn(N, seeds, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def upstream(seeds: int) -> Tensor:
    """A fixed upstream gradient, so every output element weighs differently."""
    return torch.randn(N, seeds, D, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


def grads(module: nn.Module) -> dict[str, Tensor]:
    return {k: p.grad for k, p in module.named_parameters()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_seed_is_the_reference_module_train_and_eval(case):
    """S = 1 equals the PyG / torch / official-code module holding the same tensors: outputs,
    input and parameter gradients, and (BatchNorm) running statistics after two training
    steps, then eval mode with those statistics."""
    cfg = CASES[case]
    name = cfg["name"]
    native = randomized(build_seeded_norm(typed(cfg), D, 1))
    ref = reference(cfg, D).double()
    missing, unexpected = ref.load_state_dict(as_reference(name, native.state_dict()),
                                              strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    x = features(1)
    for mode in ("train", "train", "eval"):
        native.train(mode == "train")
        ref.train(mode == "train")
        for m in (native, ref):
            m.zero_grad()
        x_native = x.clone().requires_grad_()
        x_ref = x[:, 0].clone().requires_grad_()
        out, want = native(x_native), ref(x_ref)
        torch.testing.assert_close(out[:, 0], want, **TOL)
        (out * upstream(1)).sum().backward()
        (want * upstream(1)[:, 0]).sum().backward()
        torch.testing.assert_close(x_native.grad[:, 0], x_ref.grad, **TOL)
        assert_same(as_reference(name, grads(native)), dict(grads(ref)))
        assert_same(as_reference(name, dict(native.named_buffers())),
                    {k: v for k, v in reference_state(ref).items()
                     if k not in dict(ref.named_parameters())})


@pytest.mark.parametrize("case", sorted(CASES))
def test_build_norm_is_the_native_norm_with_one_seed(case):
    """build_norm is OneSeedNorm over the S = 1 native module: [N, d] -> [N, d], its output the
    native output's seed 0, its tensors the native's (no second definition)."""
    cfg = CASES[case]
    one = build_norm(typed(cfg), D).double()
    assert isinstance(one, OneSeedNorm)
    assert type(one.module) is type(build_seeded_norm(typed(cfg), D, 1))
    assert [p for p in one.parameters()] == [p for p in one.module.parameters()]
    x = features(1)
    assert torch.equal(one(x[:, 0]), one.module(x)[:, 0])
    assert one.weight_parameters() == [p for n, p in one.module.named_parameters()
                                       if "weight" in n]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_seeds_are_independent_runs(case, mode):
    """S = 3 equals three S = 1 applications (each seed's slice of the tensors): outputs,
    input and parameter gradients, and the running statistics after the step."""
    cfg = CASES[case]
    stacked = randomized(build_seeded_norm(typed(cfg), D, S)).train(mode == "train")
    singles = [select_seeds(stacked, [s]) for s in range(S)]
    x = features(S).requires_grad_()
    out = stacked(x)
    (out * upstream(S)).sum().backward()
    for s, single in enumerate(singles):
        assert single.training == (mode == "train")
        xs = x.detach()[:, s:s + 1].clone().requires_grad_()
        one = single(xs)
        torch.testing.assert_close(out[:, s:s + 1], one, **TOL)
        (one * upstream(S)[:, s:s + 1]).sum().backward()
        torch.testing.assert_close(x.grad[:, s:s + 1], xs.grad, **TOL)
        assert_same(as_reference(cfg["name"], grads(stacked), s),
                    as_reference(cfg["name"], grads(single)))
        assert_same(as_reference(cfg["name"], dict(stacked.named_buffers()), s),
                    as_reference(cfg["name"], dict(single.named_buffers())))


@pytest.mark.parametrize("case", sorted(CASES))
def test_initial_tensors_are_the_old_modules_after_manual_seed(case):
    """reset_seeds(norm, seeds): seed s's tensors are those of the old one-seed module built
    after torch.manual_seed(seeds[s]) (exactly: the same draws), and the RNG is left where
    building the last one left it; build_norm after torch.manual_seed(seed) is that module."""
    cfg = CASES[case]
    name = cfg["name"]
    references = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        references.append(reference_state(reference(cfg, D)))
        rng_after = torch.get_rng_state()
    stacked = build_seeded_norm(typed(cfg), D, len(SEEDS))
    reset_seeds(stacked, SEEDS)
    assert torch.equal(torch.get_rng_state(), rng_after)
    for s, want in enumerate(references):
        assert_same(as_reference(name, stacked.state_dict(), s), want, exact=True)
        torch.manual_seed(SEEDS[s])
        one = build_norm(typed(cfg), D)
        rng_one = torch.get_rng_state()
        assert_same(as_reference(name, one.module.state_dict()), want, exact=True)
        torch.manual_seed(SEEDS[s])
        reference(cfg, D)
        assert torch.equal(torch.get_rng_state(), rng_one)


def test_groupnorm_draws_twice_as_pyg():
    """PyG's DiffGroupNorm draws its Linear twice (constructor, then reset_parameters): the
    native module consumes the same RNG and keeps the second draw."""
    torch.manual_seed(0)
    pyg = pyg_nn.DiffGroupNorm(D, 4)
    after_pyg = torch.rand(1)
    torch.manual_seed(0)
    native = build_seeded_norm(config.norm("groupnorm", groups=4), D, 1)
    assert torch.equal(torch.rand(1), after_pyg)
    assert torch.equal(native.lin_weight[0].t(), pyg.lin.weight)



def test_select_and_concat_seeds_round_trip():
    norm = randomized(build_seeded_norm(typed(CASES["combnorm-n"]), D, S))
    back = concat_seeds([select_seeds(norm, [s]) for s in range(S)])
    assert back.num_seeds == S and all(m.num_seeds == S for m in back)
    assert_same(dict(back.state_dict()), dict(norm.state_dict()), exact=True)


@pytest.mark.parametrize(("cfg", "names"), [
    ({"name": "batchnorm"}, ["weight"]),
    ({"name": "layernorm"}, ["weight"]),
    ({"name": "graphnorm"}, ["weight"]),
    ({"name": "groupnorm"}, ["lin_weight", "norm.weight"]),
    ({"name": "combnorm"}, ["0.lin_weight", "0.norm.weight"]),
    ({"name": "nodenorm"}, []),
    ({"name": "none"}, []),
])
def test_weight_parameters_are_those_the_old_module_named_weight(cfg, names):
    """The L1 penalty's tensors: the old modules named them *weight* (BatchNorm's and
    LayerNorm's scale, GraphNorm's weight but not mean_scale, DiffGroupNorm's lin.weight and
    its BatchNorm's weight)."""
    norm = build_seeded_norm(typed(cfg), D, S)
    params = dict(norm.named_parameters())
    assert norm.weight_parameters() == [params[n] for n in names]
    old = reference(cfg, D)
    assert len([n for n, _ in old.named_parameters() if "weight" in n]) == len(names)


def test_running_statistics_mark_the_stateful_norms():
    """Models refuse activation checkpointing for a norm with a module whose
    ``track_running_stats`` is set (batchnorm, and the BatchNorm in groupnorm / combnorm)."""
    stateful = {name for name in NORMS
                if any(getattr(m, "track_running_stats", False)
                       for m in build_seeded_norm(config.norm(name), D, 2).modules())}
    assert stateful == {"batchnorm", "groupnorm", "combnorm"}


def test_batchnorm_refuses_a_single_node_in_training_as_torch():
    norm = build_seeded_norm(config.norm("batchnorm"), D, S)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        norm(torch.randn(1, S, D))
    assert norm.eval()(torch.randn(1, S, D)).shape == (1, S, D)


def test_kernels_import_neither_norms_nor_seeds():
    """The dependency is one way (gdepth.norms -> gdepth.nn): kernels reaches the one-seed
    norms' stacking through the modules (one_seed imports kernels, and norms one_seed)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(kernels))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith(
        ("gdepth.norms", "gdepth.nn.seeds", "gdepth.nn.one_seed"))}
