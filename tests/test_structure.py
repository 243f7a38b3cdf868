"""gdepth.diagnostics.structure against hand-computed values on tiny graphs and closed forms."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch

from gdepth.diagnostics import structure as st


def edge_index(graph: nx.Graph) -> torch.Tensor:
    graph = nx.convert_node_labels_to_integers(graph, ordering="sorted")
    e = torch.tensor(list(graph.edges()), dtype=torch.long).t()
    return torch.cat([e, e.flip(0)], dim=1)


def describe(graph: nx.Graph, **kwargs) -> st.Structure:
    return st.describe(edge_index(graph), graph.number_of_nodes(), **kwargs)


def curvatures(graph: nx.Graph) -> dict[tuple[int, int], float]:
    """Balanced Forman curvature per edge, keyed by the original node labels."""
    nodes = sorted(graph.nodes())
    index = {v: i for i, v in enumerate(nodes)}
    neighbours = [{index[u] for u in graph[v]} for v in nodes]
    return {(a, b): st.balanced_forman(neighbours, index[a], index[b]) for a, b in graph.edges()}


# (graph, nodes, edges, diameter, mean path, clustering, spectral gap, receptive field k=1..4)
TINY = {
    # 0-1-2-3-4: distances sum to 20 over unordered pairs; balls [2,3,3,3,2], [3,4,5,4,3], …
    "path5": (nx.path_graph(5), 5, 4, 4, 40 / 20, 0.0, 1 - math.cos(math.pi / 4),
              [13 / 25, 19 / 25, 23 / 25, 1.0]),
    # centre + 4 leaves: 4 pairs at 1, 6 at 2; bipartite with eigenvalues ±1, 0 → λ₂ = 0
    "star5": (nx.star_graph(4), 5, 4, 2, 16 / 10, 0.0, 1.0, [13 / 25, 1.0, 1.0, 1.0]),
    # K5: normalized adjacency A/4 has eigenvalues 1 and -1/4
    "k5": (nx.complete_graph(5), 5, 10, 1, 1.0, 1.0, 1.25, [1.0] * 4),
    # 3×3 grid: Manhattan distances sum to 144 over 72 ordered pairs; balls 4×3 + 4×4 + 5 = 33
    "grid3x3": (nx.grid_2d_graph(3, 3), 9, 12, 4, 2.0, 0.0, None,
                [33 / 81, 61 / 81, 77 / 81, 1.0]),
}


@pytest.mark.parametrize("name", TINY)
def test_tiny_graphs_match_hand_computed_values(name):
    graph, nodes, edges, diameter, mean_path, clustering, gap, rf = TINY[name]
    s = describe(graph, hops=4)
    assert (s.nodes, s.edges, s.components, s.lcc_nodes) == (nodes, edges, 1, nodes)
    assert s.mean_degree == pytest.approx(2 * edges / nodes)
    assert (s.diameter, s.diameter_exact, s.path_sources) == (diameter, True, None)
    assert s.mean_path == pytest.approx(mean_path)
    assert s.clustering == pytest.approx(clustering)
    assert s.clustering == pytest.approx(nx.average_clustering(graph))
    if gap is None:  # no closed form: a second computation with numpy on the dense matrix
        a = nx.to_numpy_array(graph)
        d = a.sum(1)
        gap = 1 - np.sort(np.linalg.eigvalsh(a / np.sqrt(np.outer(d, d))))[-2]
    assert s.spectral_gap == pytest.approx(gap, abs=1e-9)
    assert s.receptive_field == pytest.approx(rf)
    assert math.isnan(s.homophily)


def test_clustering_of_a_triangle_with_a_tail_matches_networkx():
    graph = nx.Graph([(0, 1), (1, 2), (2, 0), (2, 3), (3, 4)])  # c = 1, 1, 1/3, 0, 0
    assert st.describe(edge_index(graph), 5).clustering == pytest.approx((1 + 1 + 1 / 3) / 5)


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_curvature_of_complete_graph_is_n_over_n_minus_1(n):
    assert set(np.round(list(curvatures(nx.complete_graph(n)).values()), 12)) == {
        round(n / (n - 1), 12)}


@pytest.mark.parametrize(("n", "expected"), [(4, 1.0), (5, 0.0), (6, 0.0), (7, 0.0), (10, 0.0)])
def test_curvature_of_cycles(n, expected):
    # C4: 2/2 + 2/2 - 2 + (1 + 1) / (γ=1 · 2) = 1; C≥5: no triangles, no 4-cycles, degree 2 → 0
    assert set(curvatures(nx.cycle_graph(n)).values()) == {expected}


def test_curvature_of_grids():
    inner = curvatures(nx.grid_2d_graph(5, 5))
    interior = [v for (a, b), v in inner.items() if all(0 < c < 4 for c in (*a, *b))]
    assert interior and set(interior) == {0.0}  # -1 + 4 squares / (γ=1 · 4) = 0
    # 3×3 by hand: corner(2)–side(3): 2/2+2/3-2 + 2/(1·3) = 1/3; side(3)–centre(4): -5/6 + 1 = 1/6
    values = sorted(curvatures(nx.grid_2d_graph(3, 3)).values())
    assert values == pytest.approx([1 / 6] * 4 + [1 / 3] * 8)


def test_curvature_of_binary_tree_barbell_path_and_star():
    tree = nx.balanced_tree(2, 3)  # root 0 has degree 2, other internal nodes degree 3
    c = curvatures(tree)
    assert c[(0, 1)] == pytest.approx(2 / 2 + 2 / 3 - 2)  # -1/3
    assert c[(1, 3)] == pytest.approx(-2 / 3)  # both ends of degree 3
    assert c[(3, 7)] == 0.0  # a leaf: min degree 1
    bridge = curvatures(nx.barbell_graph(5, 0))[(4, 5)]
    assert bridge == pytest.approx(-1.2)  # 2/5 + 2/5 - 2, no triangles or 4-cycles through it
    assert set(curvatures(nx.path_graph(5)).values()) == {0.0}
    assert set(curvatures(nx.star_graph(4)).values()) == {0.0}


def test_curvature_summary_on_a_tree():
    s = describe(nx.balanced_tree(2, 4))
    assert s.bfc_min == pytest.approx(-2 / 3) and s.bfc_below_minus1 == 0.0
    assert s.bfc_edges == 30 and not s.bfc_sampled
    sampled = describe(nx.balanced_tree(2, 4), curvature_edges=10)
    assert sampled.bfc_edges == 10 and sampled.bfc_sampled


def test_receptive_field_closed_forms_on_ring_torus_and_grid():
    ring = describe(nx.cycle_graph(50), hops=8)
    assert ring.receptive_field == pytest.approx([(2 * k + 1) / 50 for k in range(1, 9)])
    torus = describe(nx.grid_2d_graph(16, 16, periodic=True), hops=7)
    assert torus.receptive_field == pytest.approx(
        [(2 * k * k + 2 * k + 1) / 256 for k in range(1, 8)])
    h, w = 6, 9  # open grid: mean over v of the Manhattan ball clipped to the rectangle
    grid = describe(nx.grid_2d_graph(h, w), hops=8)
    cells = [(x, y) for x in range(h) for y in range(w)]
    expected = [sum(abs(a - c) + abs(b - d) <= k for a, b in cells for c, d in cells) / (h * w) ** 2
                for k in range(1, 9)]
    assert grid.receptive_field == pytest.approx(expected)


def test_sampled_mode_is_exact_on_a_vertex_transitive_graph():
    s = describe(nx.cycle_graph(40), exact_limit=10, samples=8)
    assert (s.diameter, s.diameter_exact, s.path_sources, s.rf_sources) == (20, False, 8, 8)
    assert s.mean_path == pytest.approx((2 * sum(range(1, 20)) + 20) / 39)
    assert s.receptive_field == pytest.approx([(2 * k + 1) / 40 for k in range(1, 9)])


def test_spectral_gap_sparse_solver_on_a_long_ring():
    gap = st.spectral_gap(st.adjacency(edge_index(nx.cycle_graph(1200)), 1200))
    assert gap == pytest.approx(1 - math.cos(2 * math.pi / 1200), rel=1e-6)


def test_disconnected_graph_uses_the_largest_component():
    graph = nx.disjoint_union_all([nx.complete_graph(4), nx.path_graph(3), nx.empty_graph(1)])
    s = describe(graph, hops=2)
    assert (s.nodes, s.edges, s.components, s.lcc_nodes) == (8, 8, 3, 4)
    assert (s.diameter, s.mean_path, s.spectral_gap) == (1, 1.0, pytest.approx(4 / 3))
    # balls over all 8 nodes: K4 nodes 4, path ends 2 then 3, path middle 3, isolated 1
    assert s.receptive_field == pytest.approx([(16 + 2 + 3 + 2 + 1) / 64, (16 + 9 + 1) / 64])


def test_edge_homophily_ignores_unlabelled_nodes():
    ei = edge_index(nx.path_graph(5))
    y = torch.tensor([0, 0, 1, 1, -1])
    assert st.edge_homophily(ei, y) == pytest.approx(2 / 3)
    assert math.isnan(st.edge_homophily(ei, torch.full((5,), -1)))
    assert st.describe(ei, 5, y).homophily == pytest.approx(2 / 3)


def test_as_dict_is_flat():
    flat = describe(nx.path_graph(4), hops=3).as_dict()
    assert "receptive_field" not in flat and flat["receptive_field_k3"] == 1.0


def test_curvature_of_exactly_minus_one_is_not_below_minus_one():
    # two degree-4 centres joined, 3 leaves each: 2/4 + 2/4 - 2 = -1 (float sum: -1 - 2e-16)
    graph = nx.Graph([(0, 1)] + [(0, v) for v in (2, 3, 4)] + [(1, v) for v in (5, 6, 7)])
    assert curvatures(graph)[(0, 1)] == -1.0
    assert describe(graph).bfc_below_minus1 == 0.0
