"""Exact Q-functions and policy gradients of small finite models, and the κ-truncation of Lemma 4."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from safenet import exact as E
from safenet.graph import Graph

GAMMA = 0.8


def tiny_model() -> E.FiniteModel:
    """Three agents on a line; states and actions {0, 1}; one cost (1 per action 1).

    P(s_i' = 1) = 0.15 + 0.5 a_i + 0.3 m_i − 0.4 a_i m_i with m_i the mean state of i's neighbours
    (a non-additive coupling); r_i = (1 + 0.1 i) s_i − 0.2 a_i.
    """
    graph = Graph.line(3)
    adj = graph.adjacency.astype(float)
    mean_nbr = adj / adj.sum(axis=1, keepdims=True)

    def transition(S, A):
        m = S @ mean_nbr.T
        p1 = 0.15 + 0.5 * A + 0.3 * m - 0.4 * A * m
        P = np.stack([1 - p1, p1], axis=-1)
        R = (1 + 0.1 * np.arange(3)) * S - 0.2 * A
        return P, R, A[..., None].astype(float)

    initial = np.array([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])
    return E.FiniteModel(graph, (2, 2, 2), (2, 2, 2), initial, transition, n_costs=1)


def random_theta(model: E.FiniteModel, seed: int, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [scale * rng.normal(size=(s, a)) for s, a in zip(model.n_local_states, model.n_local_actions)]


def fd_gradient(model, theta, gamma, signal="reward", eps=1e-5):
    grads = []
    for i, t in enumerate(theta):
        g = np.zeros_like(t)
        for idx in np.ndindex(t.shape):
            plus = [x.copy() for x in theta]
            minus = [x.copy() for x in theta]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (E.objective(model, plus, gamma, signal=signal)
                      - E.objective(model, minus, gamma, signal=signal)) / (2 * eps)
        grads.append(g)
    return grads


def brute_force_joint_transition(model: E.FiniteModel) -> np.ndarray:
    """P(s'|s, a) ``[Ns, Na, Ns]`` by explicit loops over Eq. 1 (independent of the solver's code)."""
    states = list(itertools.product(*[range(s) for s in model.n_local_states]))
    actions = list(itertools.product(*[range(a) for a in model.n_local_actions]))
    out = np.zeros((len(states), len(actions), len(states)))
    for si, s in enumerate(states):
        for ai, a in enumerate(actions):
            P, _, _ = model.transition(np.array([s]), np.array([a]))
            for ti, t in enumerate(states):
                out[si, ai, ti] = np.prod([P[0, k, t[k]] for k in range(len(t))])
    return out


# -- 1. exact quantities --------------------------------------------------------------------
def test_exact_gradient_matches_finite_differences():
    model, theta = tiny_model(), random_theta(tiny_model(), 0)
    exact = E.exact_gradient(model, theta, GAMMA)
    fd = fd_gradient(model, theta, GAMMA)
    for g, f, t in zip(exact, fd, theta):
        assert g.shape == t.shape
        np.testing.assert_allclose(g, f, atol=1e-7)
    assert max(np.abs(g).max() for g in exact) > 1e-3  # not trivially zero


def test_q_satisfies_bellman_and_visitation_is_discounted_occupancy():
    model = tiny_model()
    sol = E.solve(model, random_theta(model, 1), GAMMA)
    P = brute_force_joint_transition(model)
    v_next = np.einsum("sa,sai->si", sol.joint_policy, sol.q)  # V_i(s) = Σ_a π(a|s) Q_i(s, a)
    np.testing.assert_allclose(sol.v, v_next, atol=1e-12)
    np.testing.assert_allclose(sol.q, sol.reward + GAMMA * np.einsum("sat,ti->sai", P, v_next), atol=1e-12)
    p_pi = np.einsum("sa,sat->st", sol.joint_policy, P)
    np.testing.assert_allclose(sol.state_transition, p_pi, atol=1e-14)
    # π^θ = (1 − γ) π_0 + γ π^θ P_π, a distribution (Lemma 1)
    np.testing.assert_allclose(sol.visitation, (1 - GAMMA) * sol.initial + GAMMA * sol.visitation @ p_pi,
                               atol=1e-12)
    assert sol.visitation.min() >= 0 and sol.visitation.sum() == pytest.approx(1.0)
    # J = E_{π_0}[V] = E_{π^θ, ζ}[r] / (1 − γ)
    assert sol.value == pytest.approx((sol.pair_weights * sol.reward.mean(axis=2)).sum() / (1 - GAMMA))


def test_cost_and_lagrangian_signals():
    model, theta = tiny_model(), random_theta(tiny_model(), 2)
    g_cost = E.exact_gradient(model, theta, GAMMA, signal=0)
    for g, f in zip(g_cost, fd_gradient(model, theta, GAMMA, signal=0)):
        np.testing.assert_allclose(g, f, atol=1e-7)
    g_rew = E.exact_gradient(model, theta, GAMMA)
    g_lag = E.exact_gradient(model, theta, GAMMA, signal=[1.0, -0.5])
    for r, c, lag in zip(g_rew, g_cost, g_lag):
        np.testing.assert_allclose(lag, r - 0.5 * c, atol=1e-12)


# -- 2. full truncation radius recovers the exact gradient -----------------------------------
@pytest.mark.parametrize("weights", ["visitation", "reference"])
def test_truncation_at_diameter_is_exact(weights):
    for model in (tiny_model(), E.random_model(Graph.line(4), seed=3)):
        theta = random_theta(model, 4)
        sol = E.solve(model, theta, GAMMA)
        exact = E.exact_gradient(model, theta, GAMMA, solution=sol)
        for kappa in (model.graph.diameter, model.graph.diameter + 2):
            h = E.truncated_gradient(model, theta, GAMMA, kappa, weights, solution=sol)
            for a, b in zip(h, exact):
                np.testing.assert_allclose(a, b, atol=1e-10)


def test_truncated_q_weights_satisfy_eq6():
    model = E.random_model(Graph.line(4), seed=5)
    sol = E.solve(model, random_theta(model, 5), GAMMA)
    pw = sol.pair_weights
    qhat = E.truncated_q(sol, 1, "visitation")
    # conditional expectations: the π^θ ζ^θ-average of Q̂_j equals that of Q_j
    np.testing.assert_allclose((pw[..., None] * qhat).sum((0, 1)), (pw[..., None] * sol.q).sum((0, 1)))
    # agent 0's Q̂ depends only on agents 0 and 1 (N_0^1)
    q0 = qhat[..., 0].reshape(2, 2, 2, 2, 2, 2, 2, 2)  # s_0..s_3, a_0..a_3
    assert np.allclose(q0, q0[:, :, :1, :1, :, :, :1, :1])
    ref = E.truncated_q(sol, 1, "reference", reference=(np.array([1, 0, 1, 1]), np.array([0, 1, 1, 0])))
    s_code, a_code = 0b1011, 0b0110
    assert ref[s_code, a_code, 0] == sol.q[s_code, a_code, 0]


# -- 3. Lemma 4 on a line -------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weights", ["visitation", "reference"])
def test_error_decays_with_kappa_within_lemma4_bound(seed, weights):
    model = E.random_model(Graph.line(5), seed=seed)
    theta = random_theta(model, seed)
    table = E.gradient_error_by_kappa(model, theta, 0.9, weights=weights)
    assert list(table) == [0, 1, 2, 3, 4]
    errors = [table[k].error for k in table]
    assert errors[0] > 1e-4
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-10
    for row in table.values():
        assert np.all(row.agent_errors <= row.agent_bounds)  # per agent, as Lemma 4 states
        assert row.error <= row.bound
    assert E.reward_radius(E.solve(model, theta, 0.9)) == 0


# -- 4. the wireless access grid --------------------------------------------------------------
def test_wireless_grid_2x3_truncation():
    wireless = pytest.importorskip("safenet_grid.wireless")
    model = wireless.WirelessGrid(2, 3, users_per_cell=1, deadline=1).finite_model()
    assert model.graph.n == 6 and model.graph.diameter == 2
    theta = random_theta(model, 0)
    sol = E.solve(model, theta, 0.7)
    assert E.reward_radius(sol) == 1  # collisions: a user's reward depends on its neighbours' actions
    for weights in ("visitation", "reference"):
        table = E.gradient_error_by_kappa(model, theta, 0.7, weights=weights, solution=sol)
        err = [table[k].error for k in (0, 1, 2)]
        assert err[0] > 1e-3
        # With deadline 1 a user's next state is a fresh Bernoulli(p) arrival whatever happens, so
        # Q_i depends on (s, a) of N_i^1 only and κ = 1 is already exact; κ = 2 covers everyone.
        assert err[1] < 1e-10 and err[2] < 1e-10
        assert all(row.error <= row.bound for row in table.values())


# -- 5. input validation -------------------------------------------------------------------
def test_rejects_bad_inputs():
    model = tiny_model()
    theta = random_theta(model, 0)
    with pytest.raises(ValueError, match="too large"):
        E.solve(model, theta, GAMMA, max_pairs=63)
    with pytest.raises(ValueError, match="too large"):
        E.solve(E.random_model(Graph.line(10), n_states=3, n_actions=3), [np.zeros((3, 3))] * 10, GAMMA)
    with pytest.raises(ValueError, match="theta\\[1\\]"):
        E.solve(model, [theta[0], np.zeros((3, 2)), theta[2]], GAMMA)
    with pytest.raises(ValueError, match="gamma"):
        E.solve(model, theta, 1.0)
    with pytest.raises(ValueError, match="cost index"):
        E.solve(model, theta, GAMMA, signal=1)
    with pytest.raises(ValueError, match="weights"):
        E.truncated_gradient(model, theta, GAMMA, 1, "uniform")
    with pytest.raises(ValueError, match="kappa"):
        E.truncated_gradient(model, theta, GAMMA, -1)
