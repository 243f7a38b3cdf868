"""gdepth.norms: each normalization against a second computation written out here in numpy."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch_geometric.nn as pyg_nn
from omegaconf import OmegaConf

from gdepth.norms import NORMS, NodeNorm, PairNormSCS, build_norm

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
    norm = build_norm(OmegaConf.create({"name": "nodenorm", "variant": variant, "power": power}), D)
    assert isinstance(norm, NodeNorm)
    expected = nodenorm_numpy(x.numpy(), variant, power)
    np.testing.assert_allclose(norm(x).numpy(), expected, atol=1e-6, rtol=0)
    assert list(norm.parameters()) == []  # no affine


def test_nodenorm_eps_inside_sqrt_on_constant_row():
    h = torch.full((3, D), 2.0, dtype=torch.float64)
    for variant in NodeNorm.VARIANTS:
        assert torch.isfinite(NodeNorm(variant)(h)).all()
    # sigma = sqrt(0 + eps), so h / sigma = 2 / sqrt(1e-5) (not 2 / (0 + eps))
    torch.testing.assert_close(NodeNorm("v")(h), h / 1e-5**0.5)
    torch.testing.assert_close(NodeNorm("n")(h), torch.zeros_like(h))


def test_nodenorm_srv_is_pr_with_power_2(x):
    torch.testing.assert_close(NodeNorm("srv")(x), NodeNorm("pr", power=2)(x))


@pytest.mark.parametrize("mode", ["PN", "PN-SI"])
def test_pairnorm_pn_and_si_are_pyg_and_match_formula(x, mode):
    norm = build_norm(SimpleNamespace(name="pairnorm", mode=mode, scale=1.0, eps=1e-5), D)
    assert isinstance(norm, pyg_nn.PairNorm)
    pyg = pyg_nn.PairNorm(scale=1.0, scale_individually=mode == "PN-SI", eps=1e-5)
    torch.testing.assert_close(norm(x), pyg(x))
    np.testing.assert_allclose(norm(x).numpy(), pairnorm_numpy(x.numpy(), mode), atol=1e-6)


def test_pairnorm_scs_matches_formula(x):
    norm = build_norm({"name": "pairnorm", "mode": "PN-SCS", "eps": 1e-6}, D)
    assert isinstance(norm, PairNormSCS)
    expected = pairnorm_numpy(x.numpy(), "PN-SCS", eps=1e-6)
    np.testing.assert_allclose(norm(x).numpy(), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["PN", "PN-SI", "PN-SCS"])
def test_pairnorm_scale_multiplies(x, mode):
    one = build_norm({"name": "pairnorm", "mode": mode}, D)(x)
    ten = build_norm({"name": "pairnorm", "mode": mode, "scale": 10.0}, D)(x)
    np.testing.assert_allclose(ten.numpy(), pairnorm_numpy(x.numpy(), mode, s=10.0), atol=1e-6)
    # PN-SCS subtracts the unscaled input mean after scaling
    shift = x.mean(dim=0, keepdim=True) if mode == "PN-SCS" else 0.0
    torch.testing.assert_close(ten + shift, 10.0 * (one + shift))


def test_pairnorm_defaults():
    norm = build_norm({"name": "pairnorm"}, D)
    assert isinstance(norm, pyg_nn.PairNorm)
    assert (norm.scale, norm.scale_individually, norm.eps) == (1.0, False, 1e-5)


def test_batchnorm_is_pygs(x):
    norm = build_norm({"name": "batchnorm"}, D).double()
    assert isinstance(norm, pyg_nn.BatchNorm)
    mu, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    torch.testing.assert_close(norm(x), (x - mu) / (var + 1e-5).sqrt())


def test_none_is_identity_and_registry_has_descriptions(x):
    assert torch.equal(build_norm({"name": "none"}, D)(x), x)
    assert torch.equal(build_norm(None, D)(x), x)
    assert sorted(NORMS) == ["batchnorm", "nodenorm", "none", "pairnorm"]
    assert all(spec.description and "\n" not in spec.description for spec in NORMS.values())


def test_struct_config_reads_defaults():
    cfg = OmegaConf.create({"name": "nodenorm"})
    OmegaConf.set_struct(cfg, True)
    norm = build_norm(cfg, D)
    assert (norm.variant, norm.power, norm.eps) == ("n", 2.0, 1e-5)


@pytest.mark.parametrize(
    "cfg, choices",
    [
        ({"name": "layernorm"}, "batchnorm, nodenorm, none, pairnorm"),
        ({"name": "pairnorm", "mode": "PN-X"}, "PN, PN-SCS, PN-SI"),
        ({"name": "nodenorm", "variant": "q"}, "m, n, pr, srv, v"),
    ],
)
def test_bad_names_raise_with_choices(cfg, choices):
    bad = next(v for k, v in cfg.items() if k != "name" or len(cfg) == 1)
    with pytest.raises(ValueError) as err:
        build_norm(cfg, D)
    message = str(err.value)
    assert f"'{bad}'" in message and choices in message and "\n" not in message
