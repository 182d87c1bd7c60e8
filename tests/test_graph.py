"""Graph: distances, diameter and κ-hop neighbourhoods checked against networkx."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from safenet.graph import UNREACHABLE, Graph


def _random_graphs():
    """~24 random graphs: sparse ones (often disconnected), dense ones, trees, and tiny edge cases."""
    out = []
    for seed in range(12):
        n = 2 + seed % 11
        p = (0.15, 0.3, 0.6)[seed % 3]
        out.append(nx.gnp_random_graph(n, p, seed=seed))
    for seed in range(6):
        out.append(nx.random_labeled_tree(3 + 2 * seed, seed=100 + seed))
    out += [nx.empty_graph(1), nx.empty_graph(5), nx.path_graph(7), nx.cycle_graph(6), nx.star_graph(5),
            nx.disjoint_union(nx.path_graph(4), nx.complete_graph(3))]
    return out


GRAPHS = _random_graphs()


def _to_graph(g: nx.Graph) -> Graph:
    return Graph(nx.to_numpy_array(g, nodelist=range(g.number_of_nodes()), dtype=int))


def _nx_distances(g: nx.Graph) -> np.ndarray:
    n = g.number_of_nodes()
    d = np.full((n, n), UNREACHABLE)
    for i, row in nx.all_pairs_shortest_path_length(g):
        for j, v in row.items():
            d[i, j] = v
    return d


def _nx_diameter(g: nx.Graph) -> int:
    return max(nx.diameter(g.subgraph(c)) for c in nx.connected_components(g))


def test_random_graphs_cover_connected_and_disconnected():
    kinds = {nx.is_connected(g) for g in GRAPHS}
    assert kinds == {True, False}
    assert len(GRAPHS) >= 20


@pytest.mark.parametrize("k", range(len(GRAPHS)))
def test_distances_diameter_connected_match_networkx(k):
    g = GRAPHS[k]
    graph = _to_graph(g)
    assert graph.n == len(graph) == g.number_of_nodes()
    np.testing.assert_array_equal(graph.distances, _nx_distances(g))
    assert graph.diameter == _nx_diameter(g)
    assert graph.connected == nx.is_connected(g)
    for i in range(graph.n):
        assert sorted(graph.neighbours(i).tolist()) == sorted(g.neighbors(i))


@pytest.mark.parametrize("k", range(len(GRAPHS)))
def test_neighbourhood_index_matches_networkx(k):
    g = GRAPHS[k]
    graph = _to_graph(g)
    n = graph.n
    for kappa in range(0, _nx_diameter(g) + 2):
        hoods = [set(nx.single_source_shortest_path_length(g, i, cutoff=kappa)) for i in range(n)]
        idx, mask = graph.neighbourhood_index(kappa)
        K = max(len(h) for h in hoods)
        assert idx.shape == mask.shape == (n, K)
        assert graph.max_neighbourhood(kappa) == K
        within = graph.within(kappa)
        for i in range(n):
            real = idx[i][mask[i]]
            assert real[0] == i, "self comes first"
            assert len(real) == len(set(real.tolist())), "no agent listed twice"
            assert set(real.tolist()) == hoods[i]
            assert set(np.flatnonzero(within[i]).tolist()) == hoods[i]
            assert real[1:].tolist() == sorted(real[1:].tolist())
            # real entries form a prefix; padding repeats agent i itself and is masked out
            m = len(hoods[i])
            assert mask[i, :m].all() and not mask[i, m:].any()
            assert (idx[i, m:] == i).all()
            np.testing.assert_array_equal(graph.neighbourhood(i, kappa), real)


def test_kappa_zero_is_self_only_and_large_kappa_is_component():
    g = nx.disjoint_union(nx.path_graph(3), nx.path_graph(2))
    graph = _to_graph(g)
    idx, mask = graph.neighbourhood_index(0)
    np.testing.assert_array_equal(idx, np.arange(5)[:, None])
    assert mask.all()
    idx, mask = graph.neighbourhood_index(10)
    assert idx.shape == (5, 3)
    # agent 3 lives in a component of 2: one padded entry, equal to itself, masked
    assert idx[3].tolist() == [3, 4, 3] and mask[3].tolist() == [True, True, False]
    assert idx[4].tolist() == [4, 3, 4] and mask[4].tolist() == [True, True, False]
    # never crosses components
    assert not graph.within(10)[:3, 3:].any()


def test_masked_gather_equals_loop_over_neighbourhoods():
    graph = Graph.from_edges(6, [(0, 1), (1, 2), (2, 3), (3, 4), (1, 5)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 3))
    for kappa in (0, 1, 2):
        idx, mask = graph.neighbourhood_index(kappa)
        gathered = (x[:, idx] * mask[None, :, :, None]).sum(axis=2)       # [B, n, 3]
        for i in range(6):
            nbrs = [j for j in range(6) if 0 <= graph.distances[i, j] <= kappa]
            np.testing.assert_allclose(gathered[:, i], x[:, nbrs].sum(axis=1))


def test_named_constructors():
    line = Graph.line(5)
    assert line.diameter == 4 and line.connected
    assert line.distances[0, 4] == 4
    comp = Graph.complete(4)
    assert comp.diameter == 1
    assert comp.max_neighbourhood(1) == 4
    assert Graph.line(1).diameter == 0
    assert Graph.from_edges(3, []).diameter == 0
    assert not Graph.from_edges(3, []).connected


def test_self_loops_are_ignored_and_nonzero_weights_count_as_edges():
    adj = np.array([[1, 2, 0], [2, 1, 0], [0, 0, 5]])
    graph = Graph(adj)
    assert not graph.adjacency.diagonal().any()
    assert graph.neighbours(0).tolist() == [1]
    assert graph.distances[0, 2] == UNREACHABLE
    assert graph.neighbourhood(2, 3).tolist() == [2]


@pytest.mark.parametrize("adj, match", [
    (np.zeros((2, 3)), "square"),
    (np.zeros(4), "square"),
    (np.zeros((2, 2, 2)), "square"),
    (np.array([[0, 1], [0, 0]]), "symmetric"),
])
def test_bad_adjacency_errors(adj, match):
    with pytest.raises(ValueError, match=match):
        Graph(adj)


def test_bad_edges_and_kappa_error():
    with pytest.raises(ValueError, match="outside"):
        Graph.from_edges(3, [(0, 3)])
    with pytest.raises(ValueError, match="outside"):
        Graph.from_edges(3, [(-1, 0)])
    g = Graph.line(3)
    for bad in (-1, 1.5, True, "1", None):
        with pytest.raises(ValueError, match="kappa"):
            g.neighbourhood_index(bad)
        with pytest.raises(ValueError, match="kappa"):
            g.within(bad)
    assert g.neighbourhood_index(np.int64(1))[0].shape == (3, 3)


def test_arrays_are_read_only():
    g = Graph.line(4)
    idx, mask = g.neighbourhood_index(1)
    for arr in (g.adjacency, g.distances, idx, mask):
        with pytest.raises(ValueError):
            arr[0, 0] = 1
