"""The sparse κ-hop constructions (BFS cut at κ hops, ``[n, K]`` index rows) against the dense ``n × n``
forms they replace, on small graphs: neighbourhood indices, update plans, and the gathers and sums
the algorithms compute through them."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from safenet.graph import Graph
from safenet.onpolicy import AgentGather, neighbourhood_mean
from safenet.schedule import UpdatePlan, plan_updates


def _graphs() -> list[Graph]:
    out = [Graph.line(9), Graph.complete(5), Graph.from_edges(4, []), Graph.from_edges(7, [(0, 1), (1, 2), (4, 5)])]
    for seed in range(8):
        g = nx.gnp_random_graph(5 + seed, (0.15, 0.3, 0.5)[seed % 3], seed=seed)
        out.append(Graph(nx.to_numpy_array(g, nodelist=range(g.number_of_nodes()), dtype=int)))
    grid = nx.convert_node_labels_to_integers(nx.grid_2d_graph(4, 5), ordering="sorted")
    out.append(Graph(nx.to_numpy_array(grid, nodelist=range(20), dtype=int)))
    return out


GRAPHS = _graphs()
CASES = [pytest.param(k, kappa, id=f"g{k}-k{kappa}") for k in range(len(GRAPHS)) for kappa in (0, 1, 2, 3, 9)]


def dense_index(graph: Graph, kappa: int) -> tuple[np.ndarray, np.ndarray]:
    """The dense construction: rows of the all-pairs ``within`` matrix, self first, then increasing index."""
    within = graph.within(kappa)
    rows = [np.concatenate([[i], np.flatnonzero(within[i] & (np.arange(graph.n) != i))]) for i in range(graph.n)]
    width = max(len(r) for r in rows)
    idx = np.array([np.concatenate([r, np.full(width - len(r), i)]) for i, r in enumerate(rows)], dtype=np.int64)
    mask = np.array([[s < len(r) for s in range(width)] for r in rows])
    return idx, mask


def dense_plan(graph: Graph, kappa: int, perm: np.ndarray) -> UpdatePlan:
    """The dense update plan: greedy colouring over ``within(2κ)``, predecessors from ``within(κ)``."""
    n = graph.n
    conflict = graph.within(2 * kappa)
    colour = np.full(n, -1, dtype=np.int64)
    for i in perm:
        used = set(colour[conflict[i] & (colour >= 0)].tolist())
        c = 0
        while c in used:
            c += 1
        colour[i] = c
    stages = tuple(tuple(int(i) for i in perm if colour[i] == s) for s in range(int(colour.max()) + 1))
    within = graph.within(kappa)
    preds = tuple(tuple(int(j) for j in perm if within[i, j] and colour[j] < colour[i]) for i in range(n))
    return UpdatePlan(order=tuple(i for s in stages for i in s), stages=stages, predecessors=preds,
                      stage_of=tuple(int(c) for c in colour))


@pytest.mark.parametrize("g, kappa", CASES)
def test_sparse_index_equals_dense(g, kappa):
    graph = GRAPHS[g]
    idx, mask = Graph(graph.adjacency).neighbourhood_index(kappa)    # a fresh graph: nothing cached
    d_idx, d_mask = dense_index(graph, kappa)
    np.testing.assert_array_equal(idx, d_idx)
    np.testing.assert_array_equal(mask, d_mask)
    assert graph.max_neighbourhood(kappa) == int(graph.within(kappa).sum(1).max())
    for i in range(graph.n):
        np.testing.assert_array_equal(graph.neighbourhood(i, kappa), d_idx[i][d_mask[i]])


@pytest.mark.parametrize("g, kappa", CASES)
def test_sparse_plan_equals_dense(g, kappa):
    graph = GRAPHS[g]
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(graph.n)
        sparse = plan_updates(graph, kappa, order=perm)
        dense = dense_plan(graph, kappa, perm)
        assert sparse == dense
        assert sparse.predecessor_count() == int(dense.predecessor_mask().sum())


@pytest.mark.parametrize("g, kappa", [c for c in CASES if c.values[1] in (1, 2)])
def test_gathers_and_sums_equal_dense_matmuls(g, kappa):
    """κ-hop gathers, correction-factor sums and neighbourhood means through the index equal their
    dense ``n × n`` forms."""
    graph = GRAPHS[g]
    idx, mask = graph.neighbourhood_index(kappa)
    within = graph.within(kappa).astype(np.float64)
    rng = np.random.default_rng(g)
    n, N, d = graph.n, 6, 3
    x = rng.normal(size=(N, n))
    dense_mean = x @ (within / within.sum(1, keepdims=True)).T
    np.testing.assert_allclose(neighbourhood_mean(x, idx, mask), dense_mean, rtol=1e-12, atol=1e-12)
    gather = AgentGather(idx, mask)
    xa = torch.as_tensor(rng.normal(size=(n, N, d)), dtype=torch.float64)
    got = gather(xa).reshape(n, N, idx.shape[1], d)
    for i in range(n):
        for s in range(idx.shape[1]):
            want = xa[idx[i, s]] if mask[i, s] else torch.zeros(N, d, dtype=torch.float64)
            torch.testing.assert_close(got[i, :, s], want)
    plan = plan_updates(graph, kappa, np.random.default_rng(g))
    select = gather.slots_of(plan.predecessors)
    vals = torch.as_tensor(rng.normal(size=(n, N)))
    pm = torch.as_tensor(plan.predecessor_mask(), dtype=torch.float64)
    torch.testing.assert_close(gather.select_sum(vals, select, torch.arange(n)), pm @ vals)


def test_sparse_index_of_a_large_grid_is_fast_and_right_at_the_corners():
    """n = 4,096 (64 x 64 grid): the cut BFS never builds the n × n distances."""
    r = np.arange(4096).reshape(64, 64)
    edges = list(zip(r[:, :-1].ravel(), r[:, 1:].ravel())) + list(zip(r[:-1].ravel(), r[1:].ravel()))
    graph = Graph.from_edges(4096, edges)
    idx, mask = graph.neighbourhood_index(2)
    assert idx.shape == (4096, 13) and "distances" not in graph.__dict__
    assert mask.sum(1).min() == 6 and mask.sum(1).max() == 13
    np.testing.assert_array_equal(idx[0][mask[0]], [0, 1, 2, 64, 65, 128])
