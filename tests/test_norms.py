"""gdepth.norms: each normalization against a second computation written out here in numpy
(one seed, through :func:`build_norm`; tests/test_seed_norms.py holds the seed axis and the
PyG modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch_geometric.nn as pyg_nn
from hydra import compose, initialize_config_dir

from gdepth import config
from gdepth.cli import config_dir
from gdepth.nn.kernels import StackedNorm
from gdepth.nn.one_seed import OneSeedNorm
from gdepth.norms import (
    NORMS,
    BatchNorm,
    CombNorm,
    DiffGroupNorm,
    GraphNorm,
    LayerNorm,
    MeanSubtractionNorm,
    NodeNorm,
    PairNorm,
    build_norm,
    build_seeded_norm,
)

N, D = 12, 7


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(N, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def nodenorm_numpy(h: np.ndarray, variant: str, power: float = 2.0, eps: float = 1e-5):
    """NodeNorm as in the official code: biased variance, eps inside the square root."""
    mu = h.mean(axis=1, keepdims=True)
    sigma = np.sqrt(((h - mu) ** 2).mean(axis=1, keepdims=True) + eps)
    return {
        "n": (h - mu) / sigma,
        "v": h / sigma,
        "srv": h / sigma**0.5,
        "pr": h / sigma ** (1.0 / power),
        "m": h - mu,
    }[variant]


def pairnorm_numpy(h: np.ndarray, mode: str, s: float = 1.0, eps: float = 1e-5):
    hc = h - h.mean(axis=0, keepdims=True)
    if mode == "PN":
        return s * hc / np.sqrt(eps + (hc**2).sum(axis=1).mean())
    if mode == "PN-SI":  # PyG adds eps to the norm, outside the square root
        return s * hc / (eps + np.sqrt((hc**2).sum(axis=1, keepdims=True)))
    return s * h / np.sqrt(eps + (h**2).sum(axis=1, keepdims=True)) - h.mean(axis=0, keepdims=True)


@pytest.mark.parametrize(
    "variant, power", [("n", 2), ("v", 2), ("srv", 2), ("pr", 2), ("pr", 3), ("m", 2)]
)
def test_nodenorm_matches_hand_computation(x, variant, power):
    norm = build_norm(config.norm("nodenorm", variant=variant, power=power), D)
    assert isinstance(norm, OneSeedNorm) and isinstance(norm.module, NodeNorm)
    expected = nodenorm_numpy(x.numpy(), variant, power)
    np.testing.assert_allclose(norm(x).numpy(), expected, atol=1e-6, rtol=0)
    assert list(norm.parameters()) == []  # no affine


def test_nodenorm_eps_inside_sqrt_on_constant_row():
    h = torch.full((3, D), 2.0, dtype=torch.float64)
    for variant in NodeNorm.VARIANTS:
        assert torch.isfinite(NodeNorm(1, variant)(h)).all()
    # sigma = sqrt(0 + eps), so h / sigma = 2 / sqrt(1e-5) (not 2 / (0 + eps))
    torch.testing.assert_close(NodeNorm(1, "v")(h), h / 1e-5**0.5)
    torch.testing.assert_close(NodeNorm(1, "n")(h), torch.zeros_like(h))


def test_nodenorm_srv_is_pr_with_power_2(x):
    torch.testing.assert_close(NodeNorm(1, "srv")(x), NodeNorm(1, "pr", power=2)(x))


@pytest.mark.parametrize("mode", ["PN", "PN-SI"])
def test_pairnorm_pn_and_si_are_pyg_and_match_formula(x, mode):
    norm = build_norm(config.norm("pairnorm", mode=mode, scale=1.0, eps=1e-5), D)
    assert isinstance(norm.module, PairNorm) and norm.module.mode == mode
    pyg = pyg_nn.PairNorm(scale=1.0, scale_individually=mode == "PN-SI", eps=1e-5)
    torch.testing.assert_close(norm(x), pyg(x))
    np.testing.assert_allclose(norm(x).numpy(), pairnorm_numpy(x.numpy(), mode), atol=1e-6)


def test_pairnorm_scs_matches_formula(x):
    norm = build_norm(config.norm("pairnorm", mode="PN-SCS", eps=1e-6), D)
    assert isinstance(norm.module, PairNorm) and norm.module.mode == "PN-SCS"
    expected = pairnorm_numpy(x.numpy(), "PN-SCS", eps=1e-6)
    np.testing.assert_allclose(norm(x).numpy(), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["PN", "PN-SI", "PN-SCS"])
def test_pairnorm_scale_multiplies(x, mode):
    one = build_norm(config.norm("pairnorm", mode=mode), D)(x)
    ten = build_norm(config.norm("pairnorm", mode=mode, scale=10.0), D)(x)
    np.testing.assert_allclose(ten.numpy(), pairnorm_numpy(x.numpy(), mode, s=10.0), atol=1e-6)
    # PN-SCS subtracts the unscaled input mean after scaling
    shift = x.mean(dim=0, keepdim=True) if mode == "PN-SCS" else 0.0
    torch.testing.assert_close(ten + shift, 10.0 * (one + shift))


def test_pairnorm_defaults():
    norm = build_norm(config.norm("pairnorm"), D)
    assert isinstance(norm.module, PairNorm)
    assert (norm.module.mode, norm.module.scale, norm.module.eps) == ("PN", 1.0, 1e-5)


def test_batchnorm_matches_formula(x):
    norm = build_norm(config.norm("batchnorm"), D).double()
    assert isinstance(norm.module, BatchNorm)
    assert (norm.module.eps, norm.module.momentum) == (1e-5, 0.1)
    mu, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    torch.testing.assert_close(norm(x), (x - mu) / (var + 1e-5).sqrt())


def test_none_is_identity_and_registry_has_descriptions(x):
    assert torch.equal(build_norm(config.norm("none"), D)(x), x)
    assert torch.equal(build_norm(None, D)(x), x)
    assert type(build_seeded_norm(None, D, 3)) is StackedNorm  # the models' fast-path test
    assert type(build_seeded_norm(config.norm("none"), D, 1)) is StackedNorm
    assert set(NORMS) == {p.stem for p in Path(config_dir(), "norm").glob("*.yaml")}
    assert {"batchnorm", "combnorm", "graphnorm", "groupnorm", "layernorm"} < set(NORMS)
    assert all(spec.description and "\n" not in spec.description for spec in NORMS.values())


def test_the_schema_gives_the_defaults():
    norm = build_norm(config.norm("nodenorm"), D)
    assert (norm.module.variant, norm.module.power, norm.module.eps) == ("n", 2.0, 1e-5)


@pytest.mark.parametrize(
    "cfg, choices",
    [
        ({"name": "instancenorm"}, ", ".join(sorted(NORMS))),
        ({"name": "pairnorm", "mode": "PN-X"}, "PN, PN-SCS, PN-SI"),
        ({"name": "nodenorm", "variant": "q"}, "m, n, pr, srv, v"),
        ({"name": "combnorm", "variant": "q"}, "m, n, pr, srv, v"),
    ],
)
def test_bad_names_raise_with_choices(cfg, choices):
    bad = next(v for k, v in cfg.items() if k != "name" or len(cfg) == 1)
    with pytest.raises(ValueError) as err:
        build_norm(config.group("norm", cfg), D)
    message = str(err.value)
    assert f"'{bad}'" in message and choices in message and "\n" not in message


def randomize(module: torch.nn.Module) -> torch.nn.Module:
    """Cast to float64 and draw every parameter at random, so no init value hides a bug."""
    module = module.double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def standardize_columns(h: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Training-mode BatchNorm without affine: per column over the rows, biased variance."""
    return (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + eps)


def diffgroupnorm_numpy(h: np.ndarray, module: DiffGroupNorm, lamda: float,
                        eps: float = 1e-5) -> np.ndarray:
    """X + lamda * sum_g BN(softmax(XW)[:, g] * X), BN per column with gamma, beta (Zhou 2020);
    ``module`` a one-seed :class:`DiffGroupNorm` (``lin_weight [1, D, G]``)."""
    w = module.lin_weight[0].detach().numpy()  # [D, G]
    groups_ = w.shape[1]
    gamma = module.norm.weight[0].detach().numpy().reshape(groups_, -1)
    beta = module.norm.bias[0].detach().numpy().reshape(groups_, -1)
    logits = h @ w
    s = np.exp(logits - logits.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    groups = [standardize_columns(s[:, [g]] * h, eps) * gamma[g] + beta[g] for g in range(groups_)]
    return h + lamda * sum(groups)


@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_is_node_mode_and_matches_formula(x, affine):
    norm = build_norm(config.norm("layernorm", eps=1e-3, affine=affine), D)
    assert isinstance(norm.module, LayerNorm) and norm.module.eps == 1e-3
    norm = randomize(norm)
    h = x.numpy()
    expected = (h - h.mean(axis=1, keepdims=True)) / np.sqrt(h.var(axis=1, keepdims=True) + 1e-3)
    if affine:
        expected = (expected * norm.module.weight[0].detach().numpy()
                    + norm.module.bias[0].detach().numpy())
    else:
        assert list(norm.parameters()) == []
        np.testing.assert_allclose(expected, nodenorm_numpy(h, "n", eps=1e-3), atol=1e-12)
    np.testing.assert_allclose(norm(x).detach().numpy(), expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("groups, lamda", [(1, 0.01), (3, 0.5), (10, 2.0)])
def test_groupnorm_is_diffgroupnorm_and_matches_formula(x, groups, lamda):
    norm = build_norm(config.norm("groupnorm", groups=groups, lamda=lamda), D)
    assert isinstance(norm.module, DiffGroupNorm)
    assert (norm.module.groups, norm.module.lamda, norm.module.norm.eps) == (groups, lamda, 1e-5)
    assert norm.module.norm.momentum == 0.1
    norm = randomize(norm)
    # one graph: BatchNorm's statistics are over all N nodes
    expected = diffgroupnorm_numpy(x.numpy(), norm.module, lamda)
    np.testing.assert_allclose(norm(x).detach().numpy(), expected, atol=1e-10, rtol=0)


def test_groupnorm_needs_a_group():
    with pytest.raises(ValueError, match="groups must be >= 1, got 0"):
        build_norm(config.norm("groupnorm", groups=0), D)


def test_meannorm_subtracts_the_node_mean(x):
    norm = build_norm(config.norm("meannorm"), D)
    assert isinstance(norm.module, MeanSubtractionNorm) and list(norm.parameters()) == []
    h = x.numpy()
    np.testing.assert_allclose(norm(x).numpy(), h - h.mean(axis=0, keepdims=True), atol=1e-12)
    pyg = pyg_nn.MeanSubtractionNorm()
    torch.testing.assert_close(norm(x), pyg(x))


@pytest.mark.parametrize("at_init", [True, False])
def test_graphnorm_matches_formula(x, at_init):
    norm = build_norm(config.norm("graphnorm", eps=1e-3), D).double()
    assert isinstance(norm.module, GraphNorm) and norm.module.eps == 1e-3
    h = x.numpy()
    if at_init:  # alpha = gamma = 1, beta = 0: per-feature standardization over the nodes
        expected = standardize_columns(h, eps=1e-3)
    else:
        norm = randomize(norm)
        alpha, gamma, beta = (p[0].detach().numpy() for p in (
            norm.module.mean_scale, norm.module.weight, norm.module.bias))
        shifted = h - alpha * h.mean(axis=0)
        expected = gamma * shifted / np.sqrt((shifted**2).mean(axis=0) + 1e-3) + beta
    np.testing.assert_allclose(norm(x).detach().numpy(), expected, atol=1e-10, rtol=0)
    # no running statistics: eval normalizes by the input's own statistics too
    np.testing.assert_allclose(norm.eval()(x).detach().numpy(), expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("variant, power", [("n", 2.0), ("v", 2.0), ("pr", 3.0), ("m", 2.0)])
def test_combnorm_is_diffgroupnorm_then_nodenorm(x, variant, power):
    cfg = config.norm("combnorm", groups=4, lamda=0.1, eps=1e-4, variant=variant, power=power)
    norm = build_norm(cfg, D)
    assert isinstance(norm.module, CombNorm)
    group, node = norm.module
    assert isinstance(group, DiffGroupNorm) and isinstance(node, NodeNorm)
    assert (group.groups, group.lamda, group.norm.eps) == (4, 0.1, 1e-4)
    assert (node.variant, node.power, node.eps) == (variant, power, 1e-4)
    norm = randomize(norm)
    grouped = diffgroupnorm_numpy(x.numpy(), group, lamda=0.1, eps=1e-4)
    expected = nodenorm_numpy(grouped, variant, power, eps=1e-4)
    np.testing.assert_allclose(norm(x).detach().numpy(), expected, atol=1e-9, rtol=0)


@pytest.fixture(scope="module")
def composed_norms() -> dict:
    """Every configs/norm/<name>.yaml composed through Hydra with its typed schema."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return {name: compose("config", overrides=[f"norm={name}"]).norm for name in NORMS}


@pytest.mark.parametrize("name", sorted(NORMS))
def test_every_norm_builds_from_its_yaml_and_keeps_the_shape(composed_norms, name):
    cfg = composed_norms[name]
    assert cfg.name == name
    norm = build_norm(cfg, D)
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = norm(x)
    assert out.shape == (N, D) and torch.isfinite(out).all()
    (out * torch.linspace(-1, 1, D)).sum().backward()  # differentiable as the model uses it
    assert torch.isfinite(x.grad).all()
