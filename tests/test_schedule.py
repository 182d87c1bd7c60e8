"""The sequential κ-hop update plan: a partition into conflict-free stages with the right predecessors."""
from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from safenet.graph import Graph
from safenet.schedule import UpdatePlan, plan_updates


def _graphs():
    out = [Graph.line(7), Graph.complete(4), Graph.from_edges(5, []),
           Graph.from_edges(6, [(0, 1), (1, 2), (3, 4)])]   # two components and an isolated agent
    for seed in range(6):
        g = nx.gnp_random_graph(6 + seed, 0.3, seed=seed)
        out.append(Graph(nx.to_numpy_array(g, nodelist=range(g.number_of_nodes()), dtype=int)))
    grid = nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 4), ordering="sorted")
    out.append(Graph(nx.to_numpy_array(grid, nodelist=range(12), dtype=int)))
    return out


CASES = [pytest.param(g, kappa, seed, id=f"g{k}-k{kappa}-s{seed}")
         for k, g in enumerate(_graphs()) for kappa in (0, 1, 2, 3) for seed in (0, 1)]


def _dist_le(graph: Graph, i: int, j: int, k: int) -> bool:
    d = graph.distances[i, j]
    return 0 <= d <= k


@pytest.mark.parametrize("graph, kappa, seed", CASES)
def test_plan_invariants(graph, kappa, seed):
    n = graph.n
    plan = plan_updates(graph, kappa, np.random.default_rng(seed))
    assert isinstance(plan, UpdatePlan)
    # every agent exactly once
    assert sorted(plan.order) == list(range(n))
    flat = [i for stage in plan.stages for i in stage]
    assert flat == list(plan.order)
    assert all(len(s) > 0 for s in plan.stages)
    for s, stage in enumerate(plan.stages):
        for i in stage:
            assert plan.stage_of[i] == s
    # stages are independent sets of the distance-2κ graph (κ-hop neighbourhoods do not interact)
    for stage in plan.stages:
        for i, j in itertools.combinations(stage, 2):
            assert not _dist_le(graph, i, j, 2 * kappa), (i, j, graph.distances[i, j])
    # predecessors: exactly the agents of earlier stages inside N_i^κ
    for i in range(n):
        expected = {j for j in range(n) if j != i and _dist_le(graph, i, j, kappa)
                    and plan.stage_of[j] < plan.stage_of[i]}
        assert set(plan.predecessors[i]) == expected
        assert len(plan.predecessors[i]) == len(expected)
    m = plan.predecessor_mask()
    assert m.shape == (n, n) and m.dtype == bool
    for i in range(n):
        assert set(np.flatnonzero(m[i]).tolist()) == set(plan.predecessors[i])


@pytest.mark.parametrize("graph, kappa, seed", CASES)
def test_greedy_colouring_is_tight(graph, kappa, seed):
    """Greedy colouring: an agent in stage c conflicts with some agent of every earlier stage."""
    plan = plan_updates(graph, kappa, np.random.default_rng(seed))
    for i in range(graph.n):
        for s in range(plan.stage_of[i]):
            assert any(_dist_le(graph, i, j, 2 * kappa) for j in plan.stages[s]), (i, s)


def test_kappa_zero_is_one_parallel_stage_without_predecessors():
    g = Graph.line(6)
    plan = plan_updates(g, 0, np.random.default_rng(3))
    assert len(plan.stages) == 1
    assert all(p == () for p in plan.predecessors)


@pytest.mark.parametrize("graph", [Graph.line(6), Graph.complete(5),
                                   Graph.from_edges(6, [(0, 1), (1, 2), (2, 3), (1, 4), (4, 5)])])
@pytest.mark.parametrize("extra", [0, 1, 5])
def test_kappa_at_least_diameter_is_centralized_sequential(graph, extra):
    kappa = graph.diameter + extra
    for seed in range(4):
        plan = plan_updates(graph, kappa, np.random.default_rng(seed))
        assert all(len(s) == 1 for s in plan.stages)
        assert len(plan.stages) == graph.n
        for pos, i in enumerate(plan.order):
            assert set(plan.predecessors[i]) == set(plan.order[:pos])
            assert list(plan.predecessors[i]) == list(plan.order[:pos])


def test_small_kappa_on_a_long_line_allows_parallel_stages():
    plan = plan_updates(Graph.line(12), 1, np.random.default_rng(0))
    # greedy colouring uses at most (max degree + 1) colours; the distance-2 graph of a line has degree ≤ 4
    assert len(plan.stages) <= 5
    assert max(len(s) for s in plan.stages) >= 3


def test_order_is_random_across_rngs():
    g = Graph.line(8)
    orders = {plan_updates(g, 1, np.random.default_rng(seed)).order for seed in range(10)}
    assert len(orders) >= 5
    firsts = {plan_updates(g, 10, np.random.default_rng(seed)).order[0] for seed in range(20)}
    assert len(firsts) >= 3
    # and the same rng state gives the same plan
    assert plan_updates(g, 1, np.random.default_rng(4)) == plan_updates(g, 1, np.random.default_rng(4))


def test_given_order_is_deterministic_and_followed():
    g = Graph.line(6)
    order = np.array([3, 0, 5, 1, 4, 2])
    a = plan_updates(g, 1, np.random.default_rng(0), order=order)
    b = plan_updates(g, 1, np.random.default_rng(99), order=order)
    c = plan_updates(g, 1, None, order=order.tolist())
    assert a == b == c
    # the first agent of the given order starts stage 0; centralized: the order itself
    assert a.stages[0][0] == 3
    full = plan_updates(g, g.diameter, order=order)
    assert full.order == tuple(order.tolist())
    # hand-checked plan for κ=1 on the line 0-1-2-3-4-5 (conflicts at distance ≤ 2), greedy in order:
    # 3→s0; 0→s0 (d(0,3)=3); 5→s1 (d(5,3)=2); 1→s1 (0,3 in s0); 4→s2 (3 in s0, 5 in s1); 2→s3
    assert a.stages == ((3, 0), (5, 1), (4,), (2,))
    assert a.stage_of == (0, 1, 3, 0, 2, 1)
    # predecessors = already-updated agents within 1 hop
    assert [set(p) for p in a.predecessors] == [set(), {0}, {1, 3}, set(), {3, 5}, set()]


@pytest.mark.parametrize("bad", [[0, 1, 2], [0, 1, 2, 2, 3, 4], [0, 1, 2, 3, 4, 6], [5, 4, 3, 2, 1, 0, 0]])
def test_order_must_be_a_permutation(bad):
    with pytest.raises(ValueError, match="permutation"):
        plan_updates(Graph.line(6), 1, order=np.array(bad))
