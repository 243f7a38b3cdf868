"""Over-smoothing measures against hand-computed values on a path, a star, K5 and a 3×3 grid."""

from __future__ import annotations

import math

import pytest
import torch

from gdepth.diagnostics import graph_info as gi
from gdepth.diagnostics import oversmoothing as osm
from gdepth.models.adjacency import normalized_adjacency


def undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    e = torch.tensor(pairs).t()
    return torch.cat([e, e.flip(0)], 1)


PATH3 = undirected([(0, 1), (1, 2)])
STAR4 = undirected([(0, 1), (0, 2), (0, 3)])  # centre 0
K5 = undirected([(i, j) for i in range(5) for j in range(i + 1, 5)])
GRID3 = undirected([(3 * r + c, 3 * r + c + 1) for r in range(3) for c in range(2)]
                   + [(3 * r + c, 3 * r + c + 3) for r in range(2) for c in range(3)])
GRAPHS = {"path3": (PATH3, 3), "star4": (STAR4, 4), "k5": (K5, 5), "grid3x3": (GRID3, 9)}


def info(edge_index: torch.Tensor, n: int, **kw) -> gi.GraphInfo:
    return gi.graph_info(edge_index, n, **kw)


def test_dirichlet_on_a_path_by_hand() -> None:
    x = torch.tensor([[0.0], [1.0], [2.0]])
    # 4 ordered neighbour pairs, each with squared difference 1, over N = 3 nodes
    assert osm.dirichlet_energy(x, PATH3) == pytest.approx(4 / 3)
    # Cai & Wang with self loops, degrees 2, 3, 2: (0 - 1/√3)² + (1/√3 - 2/√2)²
    expected = 1 / 3 + (1 / math.sqrt(3) - math.sqrt(2)) ** 2
    g = info(PATH3, 3)
    assert osm.dirichlet_energy_sym(x, PATH3, g.degree) == pytest.approx(expected)
    adj = normalized_adjacency(PATH3, 3)  # the trace form with the models' operator agrees
    trace = float((x * (x - torch.sparse.mm(adj, x))).sum())
    assert trace == pytest.approx(expected, rel=1e-6)
    assert osm.energy_ratio(x, PATH3) == pytest.approx((4 / 3) / 5)
    assert osm.feature_norm(x) == pytest.approx(math.sqrt(5))
    profile = osm.smoothing_profile([x], info(PATH3, 3))
    assert profile["dirichlet"] == pytest.approx([2 / math.sqrt(3)])


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_constant_features_have_zero_energy(name: str) -> None:
    edge_index, n = GRAPHS[name]
    x = torch.full((n, 4), 2.5)
    assert osm.dirichlet_energy(x, edge_index) == 0.0
    assert osm.mad(osm.cosine_distances(x)) == pytest.approx(0.0, abs=1e-12)
    assert osm.numerical_rank(x) == pytest.approx(1.0)
    assert osm.effective_rank(x) == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_features_in_the_oono_suzuki_subspace(name: str) -> None:
    edge_index, n = GRAPHS[name]
    g = info(edge_index, n)
    deg = torch.bincount(edge_index[1], minlength=n).double() + 1  # D~ = D + I
    x = deg.sqrt()[:, None] * torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    assert osm.subspace_distance(x, g.basis, g.component) == pytest.approx(0.0, abs=1e-12)
    assert osm.dirichlet_energy_sym(x, edge_index, g.degree) == pytest.approx(0.0, abs=1e-12)
    if name == "star4":  # D~^{1/2} 1 = (2, √2, √2, √2) is not constant: survey energy > 0
        assert osm.dirichlet_energy(x, edge_index) > 0.1


def test_subspace_distance_by_hand_on_k5_and_per_component() -> None:
    g = info(K5, 5)
    x = torch.eye(5)[:, :1]  # e_0; K5 is regular, so U = span(1): ‖e_0 − 1/5‖ = √(4/5)
    assert osm.subspace_distance(x, g.basis, g.component) == pytest.approx(math.sqrt(0.8))
    two = torch.cat([PATH3, PATH3 + 3], 1)  # two components: a vector per component
    g2 = info(two, 6)
    assert g2.num_components == 2
    x = torch.tensor([[math.sqrt(2)], [math.sqrt(3)], [math.sqrt(2)]] * 2, dtype=torch.float64)
    x = x * torch.tensor([[1.0]] * 3 + [[-4.0]] * 3, dtype=torch.float64)
    assert osm.subspace_distance(x, g2.basis, g2.component) == pytest.approx(0.0, abs=1e-12)
    row = info(PATH3, 3, normalization="row")  # D~^-1 A~ keeps constants instead
    assert osm.subspace_distance(torch.ones(3, 2), row.basis, row.component) == pytest.approx(0.0)


def test_ranks_of_known_matrices() -> None:
    assert osm.numerical_rank(torch.eye(4)) == pytest.approx(4.0)
    assert osm.effective_rank(torch.eye(4)) == pytest.approx(4.0)
    outer = torch.arange(1.0, 6.0)[:, None] * torch.tensor([[1.0, -1.0, 2.0]])
    assert osm.numerical_rank(outer) == pytest.approx(1.0)
    assert osm.effective_rank(outer) == pytest.approx(1.0)
    x = torch.tensor([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])  # singular values 4, 3
    assert osm.numerical_rank(x) == pytest.approx(25 / 16)
    p = torch.tensor([4 / 7, 3 / 7])
    assert osm.effective_rank(x) == pytest.approx(float(torch.exp(-(p * p.log()).sum())))
    assert osm.numerical_rank(torch.zeros(3, 2)) == 0.0
    assert osm.effective_rank(torch.zeros(3, 2)) == 0.0


def test_mad_by_hand() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    a = 1 - 1 / math.sqrt(2)  # cosine distance between an axis and the diagonal
    # row means over non-zero entries: (1 + a)/2, (1 + a)/2, a
    assert osm.mad(osm.cosine_distances(x)) == pytest.approx((1 + 2 * a) / 3)
    x = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # a zero row is at distance 1 from all
    assert osm.cosine_distances(x)[0, 1] == pytest.approx(1.0)


def test_mad_gap_by_hand_on_a_path_of_nine() -> None:
    path9 = undirected([(i, i + 1) for i in range(8)])
    g = info(path9, 9)
    assert g.remote_mask.sum() == 2 and bool(g.remote_mask[0, 8])  # the only pair at hop 8
    assert bool(g.neighbour_mask[0, 3]) and not bool(g.neighbour_mask[0, 4])
    x = torch.tensor([[1.0, 0.0]] + [[1.0, 1.0]] * 7 + [[0.0, 1.0]])
    a = 1 - 1 / math.sqrt(2)
    # remote: rows 0 and 8 see distance 1; neighbours: rows 0-3 and 5-8 see a, row 4 nothing
    prof = osm.smoothing_profile([x], g)
    assert prof["mad_rmt"] == pytest.approx([1.0])
    assert prof["mad_neb"] == pytest.approx([a])
    assert prof["mad_gap"] == pytest.approx([1 - a])


def test_group_distance_ratio_by_hand_and_unlabelled_nodes() -> None:
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0], [99.0]])
    y = torch.tensor([0, 0, 3, 3, -1])  # class 3 without 1 and 2; node 4 unlabelled
    # inter: class-0 to class-3 mean distance 10, counted once per class; intra: 0.5 each
    assert osm.group_distance_ratio(x, y) == pytest.approx(20 / (0.5 + 1e-5))
    assert math.isnan(osm.group_distance_ratio(x, torch.tensor([0, 0, -1, -1, -1])))
    g = info(undirected([(i, i + 1) for i in range(4)]), 5, y=y)
    assert osm.smoothing_profile([x], g)["group_distance_ratio"] == pytest.approx([20 / 0.50001])


@pytest.mark.parametrize("name", ["path3", "star4", "grid3x3", "k5"])
def test_propagation_drives_sym_energy_and_subspace_distance_down(name: str) -> None:
    edge_index, n = GRAPHS[name]
    g = info(edge_index, n)
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    outputs = [x]
    adj = normalized_adjacency(edge_index, n).to(torch.float64)
    for _ in range(30):
        outputs.append(torch.sparse.mm(adj, outputs[-1]))
    prof = osm.smoothing_profile(outputs, g)
    for key in ("dirichlet_sym", "subspace_distance"):
        seq = prof[key]
        assert all(b <= a + 1e-12 for a, b in zip(seq, seq[1:], strict=False)), (key, seq)
        assert seq[-1] < 0.05 * seq[0], (key, seq)
    if name == "k5":  # regular graph: the survey energy's kernel is the same subspace
        seq = prof["dirichlet"]
        assert all(b <= a + 1e-12 for a, b in zip(seq, seq[1:], strict=False))
        assert seq[-1] < 1e-6


def test_profile_shapes_sparse_input_nan_layers_and_cache() -> None:
    g = info(GRID3, 9, y=torch.arange(9) % 2)
    assert gi.graph_info(GRID3, 9, y=torch.arange(9) % 2) is g  # cached per process
    x = torch.eye(9)[:, :4].to_sparse_csr()
    prof = osm.smoothing_profile([x, torch.full((9, 3), math.nan), torch.randn(9, 2)], g)
    assert set(prof) == set(osm.MEASURES)
    assert all(len(v) == 3 for v in prof.values())
    assert all(math.isnan(v[1]) for v in prof.values())
    assert not any(math.isnan(v[0]) for v in prof.values())
    cheap = osm.smoothing_profile([x], g, measures=("dirichlet", "effective_rank"))
    assert set(cheap) == {"dirichlet", "effective_rank"}
    with pytest.raises(ValueError, match="unknown measure 'madgap'; valid: dirichlet, "):
        osm.smoothing_profile([x], g, measures=("madgap",))
    with pytest.raises(ValueError, match="layer output has 4 rows; the graph has 9"):
        osm.smoothing_profile([torch.ones(4, 2)], g)


def test_large_graph_uses_a_seeded_sample() -> None:
    n = 60
    ring = undirected([(i, (i + 1) % n) for i in range(n)])
    a = gi.graph_info(ring, n, max_nodes=16, seed=3)
    b = gi.graph_info(ring, n, max_nodes=16, seed=4)
    assert len(a.sample) == 16 and a.neighbour_mask.shape == (16, 16)
    assert not torch.equal(a.sample, b.sample)
    assert torch.equal(a.sample, gi._build_info(  # same seed, same sample
        a.edge_index, n, None, True, "sym", 16, 3, 3, 8).sample)
