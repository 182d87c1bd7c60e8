"""Tests of the Scalable Actor Critic plugin (``sac``).

Paper: Qu, Wierman & Li, "Scalable Reinforcement Learning of Localized Policies for Multi-Agent
Networked Systems" (L4DC 2020) — Algorithm 1, Eq. (5)-(7). Unit tests build tiny ``Rollout``s by
hand and compare the critic and actor updates with values computed independently (by hand or by
explicit loops); integration tests go through the trainer with an in-process plugin manager.

``pytest plugins/scalable-ac`` runs everything but the ``slow`` learning check (a few seconds);
``pytest plugins/scalable-ac -m slow`` runs that one (3 seeds x 300k steps, about a minute).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import safenet.testing
from safenet import hookimpl
from safenet.errors import IncompatibleError
from safenet.game import GameSpec
from safenet.graph import Graph
from safenet.lagrange import LagrangeConfig
from safenet.plugins import PluginManager
from safenet.rollout import Collector, Rollout
from safenet.specs import EnvSpec
from safenet.testing import ToyConfig, ToyLineGame, check_algorithm
from safenet.trainer import Selection, evaluate, make_algorithm, make_game, start_run

import safenet_scalable_ac.plugin as sac_plugin
from safenet_scalable_ac.algorithm import ScalableActorCritic
from safenet_scalable_ac.config import SACConfig
from safenet_scalable_ac.tables import NeighbourhoodHasher, SparseTable


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch):
    """Plugin variables of the caller's shell do not change which plugins these tests see."""
    for var in ("SAFENET_PLUGINS", "SAFENET_STRICT_PLUGINS", "SAFENET_DISABLE_PLUGIN_AUTOLOAD",
                "SAFENET_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


def plugin_manager(*extra) -> PluginManager:
    """Only ``sac`` and ``toy_line`` (plus ``extra`` (name, plugin) pairs), nothing from entry points."""
    return PluginManager(autoload=False, strict=True,
                         plugins=[("safenet_scalable_ac", sac_plugin), ("toy", safenet.testing), *extra])


def toy_spec(n: int, episode_length: int = 8) -> GameSpec:
    """``toy_line``'s spec: ``n`` agents on a line, 2 local states, 2 actions, cost = action 1."""
    return ToyLineGame(ToyConfig(n_agents=n, episode_length=episode_length)).spec


def rollout(s, a, reward, cost=None, terminated=None, truncated=None, s_next=None) -> Rollout:
    """A hand-made rollout from ``s, a, reward: [T, B, n]`` (``cost``: ``[T, B, n]`` or ``[T, B, n, m]``).

    By default the episode of every copy ends, truncated, at the last step.
    """
    s, a = np.asarray(s, dtype=np.int64), np.asarray(a, dtype=np.int64)
    T, B, n = s.shape
    reward = np.asarray(reward, dtype=np.float64)
    cost = np.zeros((T, B, n, 1)) if cost is None else np.asarray(cost, dtype=np.float64)
    if cost.ndim == 3:
        cost = cost[..., None]
    if terminated is None:
        terminated = np.zeros((T, B), dtype=bool)
    if truncated is None:
        truncated = np.zeros((T, B), dtype=bool)
        truncated[-1] = True
    if s_next is None:
        s_next = np.concatenate([s[1:], s[-1:]], axis=0)
    obs = np.zeros((T, B, n, 2), dtype=np.float32)
    return Rollout(obs=obs, actions=a, reward=reward, cost=cost, terminated=np.asarray(terminated, dtype=bool),
                   truncated=np.asarray(truncated, dtype=bool), next_obs=obs.copy(),
                   infos={"local_state": s, "next_local_state": np.asarray(s_next, dtype=np.int64)})


def q_of(algo: ScalableActorCritic, s, a) -> np.ndarray:
    """``Q̂`` (reward column, then costs) at the neighbourhood pairs of ``s, a: [..., n]`` → ``[..., n, 1+m]``."""
    before = len(algo.q)
    rows = algo.q.rows(algo.hasher.keys(np.asarray(s), np.asarray(a)))
    assert len(algo.q) == before, "looked up a neighbourhood pair the critic never saw"
    return algo.q.values[rows]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def grid_graph(rows: int, cols: int) -> Graph:
    cell = lambda r, c: r * cols + c  # noqa: E731
    edges = [(cell(r, c), cell(r, c + 1)) for r in range(rows) for c in range(cols - 1)]
    edges += [(cell(r, c), cell(r + 1, c)) for r in range(rows - 1) for c in range(cols)]
    return Graph.from_edges(rows * cols, edges)


# ------------------------------------------------------------------------------------------------
# NeighbourhoodHasher
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("graph", [Graph.line(7), grid_graph(3, 4)], ids=["line7", "grid3x4"])
@pytest.mark.parametrize("kappa", [0, 1, 2])
def test_key_depends_exactly_on_the_kappa_hop_neighbourhood(graph, kappa):
    n, S, A = graph.n, 4, 3
    idx, mask = graph.neighbourhood_index(kappa)
    hasher = NeighbourhoodHasher(idx, mask, A, seed=3)
    inside = graph.within(kappa)                                    # [i, j]: d(i, j) <= κ
    rng = np.random.default_rng(0)
    for _ in range(5):
        s, a = rng.integers(0, S, n), rng.integers(0, A, n)
        base = hasher.keys(s, a)
        for j in range(n):
            for which in ("state", "action"):
                s2, a2 = s.copy(), a.copy()
                if which == "state":
                    s2[j] = (s[j] + rng.integers(1, S)) % S
                else:
                    a2[j] = (a[j] + rng.integers(1, A)) % A
                changed = hasher.keys(s2, a2) != base
                np.testing.assert_array_equal(
                    changed, inside[:, j],
                    err_msg=f"κ={kappa}: changing the {which} of agent {j} changed the keys of {np.flatnonzero(changed)}, "
                            f"its κ-hop neighbourhood is {np.flatnonzero(inside[:, j])}")


def test_keys_separate_agents_and_distinct_neighbourhood_contents():
    graph = Graph.line(5)
    idx, mask = graph.neighbourhood_index(0)
    hasher = NeighbourhoodHasher(idx, mask, 2, seed=0)
    keys = hasher.keys(np.zeros(5, dtype=np.int64), np.ones(5, dtype=np.int64))
    assert len(set(keys.tolist())) == 5                      # identical contents, different agents
    # κ = 1 on a line: every distinct (s, a) of a neighbourhood gets its own key (no collisions)
    idx, mask = graph.neighbourhood_index(1)
    hasher = NeighbourhoodHasher(idx, mask, 3, seed=0)
    rng = np.random.default_rng(1)
    s, a = rng.integers(0, 4, (5000, 5)), rng.integers(0, 3, (5000, 5))
    keys = hasher.keys(s, a)
    for i in range(5):
        contents = {tuple(np.r_[s[b, idx[i][mask[i]]], a[b, idx[i][mask[i]]]]) for b in range(len(s))}
        assert len(set(keys[:, i].tolist())) == len(contents)
    assert not set(keys[:, 0].tolist()) & set(keys[:, 4].tolist())


def test_keys_are_deterministic_for_a_seed_and_batched():
    graph = grid_graph(3, 3)
    idx, mask = graph.neighbourhood_index(1)
    rng = np.random.default_rng(0)
    s, a = rng.integers(0, 4, (6, 2, 9)), rng.integers(0, 5, (6, 2, 9))
    k1 = NeighbourhoodHasher(idx, mask, 5, seed=11).keys(s, a)
    k2 = NeighbourhoodHasher(idx, mask, 5, seed=11).keys(s, a)
    k3 = NeighbourhoodHasher(idx, mask, 5, seed=12).keys(s, a)
    assert k1.dtype == np.uint64 and k1.shape == (6, 2, 9)
    np.testing.assert_array_equal(k1, k2)
    assert (k1 != k3).all()
    np.testing.assert_array_equal(k1[4, 1], NeighbourhoodHasher(idx, mask, 5, seed=11).keys(s[4, 1], a[4, 1]))


# ------------------------------------------------------------------------------------------------
# SparseTable
# ------------------------------------------------------------------------------------------------

def test_rows_are_stable_and_new_keys_get_new_rows():
    t = SparseTable(2, capacity=8)
    keys = np.array([[5, 9], [5, 2**64 - 1]], dtype=np.uint64)
    r1 = t.rows(keys)
    assert r1.shape == (2, 2) and r1[0, 0] == r1[1, 0] and len(t) == 3
    assert sorted(set(r1.ravel().tolist())) == [0, 1, 2]
    np.testing.assert_array_equal(t.rows(keys), r1)
    np.testing.assert_array_equal(t.rows(keys[::-1]), r1[::-1])
    r_new = t.rows(np.array([7, 9], dtype=np.uint64))
    assert r_new[0] == 3 and r_new[1] == r1[0, 1] and len(t) == 4


def test_growth_beyond_capacity_keeps_values_and_visits():
    t = SparseTable(3, capacity=4)
    first = t.rows(np.arange(1, 4, dtype=np.uint64))
    t.values[first] = np.arange(9.0).reshape(3, 3)
    t.visits[first] = [1, 2, 3]
    more = t.rows(np.arange(1, 40, dtype=np.uint64))        # 39 keys: grows the arrays past capacity 4
    assert len(t) == 39 and len(t.values) >= 39 and len(t.visits) == len(t.values)
    np.testing.assert_array_equal(more[:3], first)
    np.testing.assert_array_equal(t.values[first], np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(t.visits[first], [1, 2, 3])
    assert not t.values[more[3:]].any() and not t.visits[more[3:]].any()  # unseen keys start at zero
    t.clear()
    assert len(t) == 0 and not t.values.any() and not t.visits.any()


def test_state_dict_round_trip_through_torch_save_weights_only(tmp_path):
    t = SparseTable(2, capacity=4)
    keys = np.array([3, 2**63 + 5, 2**64 - 1, 17, 99, 1], dtype=np.uint64)   # high bits survive the int64 view
    rows = t.rows(keys)
    t.values[rows] = np.random.default_rng(0).normal(size=(6, 2))
    t.visits[rows] = np.arange(6) + 1
    torch.save(t.state_dict(), tmp_path / "table.pt")
    state = torch.load(tmp_path / "table.pt", weights_only=True)
    u = SparseTable(2)
    u.load_state_dict(state)
    assert len(u) == 6
    np.testing.assert_array_equal(u.rows(keys), rows)
    np.testing.assert_array_equal(u.values[rows], t.values[rows])
    np.testing.assert_array_equal(u.visits[rows], np.arange(6) + 1)
    assert u.rows(np.array([12345], dtype=np.uint64))[0] == 6    # new keys continue after the loaded rows


# ------------------------------------------------------------------------------------------------
# Critic: TD(0) on the truncated Q-functions (Algorithm 1, lines 6-8)
# ------------------------------------------------------------------------------------------------
#
# 2 agents on a line (κ = 1: each neighbourhood is both agents), T = 3, B = 1, γ = 0.5. The joint
# (s, a) at t = 2 repeats the one at t = 0, so the t = 1 update bootstraps from an entry the t = 0
# update has just changed, and a terminated last step revisits it.
#   E0 = (s, a) at t = 0 and t = 2, E1 = (s, a) at t = 1
CRITIC_S = [[[0, 1]], [[1, 1]], [[0, 1]]]
CRITIC_A = [[[1, 0]], [[0, 0]], [[1, 0]]]
CRITIC_R = [[[1.0, 0.0]], [[0.0, 1.0]], [[2.0, 4.0]]]
CRITIC_C = [[[1.0, 0.0]], [[0.0, 0.0]], [[1.0, 0.0]]]          # toy_line's cost: 1 for action 1


def critic_algo(**cfg) -> ScalableActorCritic:
    return ScalableActorCritic(toy_spec(2, episode_length=3), SACConfig(kappa=1, gamma=0.5, **cfg), seed=0)


def critic_rollout(last: str) -> Rollout:
    end = np.array([[False], [False], [True]])
    no = np.zeros((3, 1), dtype=bool)
    return rollout(CRITIC_S, CRITIC_A, CRITIC_R, CRITIC_C,
                   terminated=end if last == "terminated" else no, truncated=end if last == "truncated" else no)


def critic_values(algo) -> tuple[np.ndarray, np.ndarray]:
    q = q_of(algo, CRITIC_S, CRITIC_A)[:, 0]                    # [T, n, 1 + m]
    np.testing.assert_array_equal(q[0], q[2])                    # E0 is one entry per agent
    return q[0], q[1]


def test_critic_inner_schedule_matches_hand_computation_truncated_end():
    # α_t = h / (t + t0) with h = 0.5, t0 = 2: α_0 = 1/4, α_1 = 1/6
    algo = critic_algo(critic_schedule="inner", critic_h=0.5, critic_t0=2.0)
    algo.update(critic_rollout("truncated"))
    assert len(algo.q) == 4                                      # 2 entries (E0, E1) x 2 agents
    e0, e1 = critic_values(algo)
    # t = 0: Q_i(E0) = α_0 (r_i(0) + γ Q_i(E1) = 0)
    np.testing.assert_allclose(e0[:, 0], [0.25 * 1.0, 0.25 * 0.0])
    np.testing.assert_allclose(e0[:, 1], [0.25 * 1.0, 0.0])                        # cost Q̂^c
    # t = 1: Q_i(E1) = α_1 (r_i(1) + γ Q_i(E0)); Q_i(E0) from the t = 0 update
    np.testing.assert_allclose(e1[:, 0], [(0.0 + 0.5 * 0.25) / 6, (1.0 + 0.0) / 6])
    np.testing.assert_allclose(e1[:, 1], [(0.0 + 0.5 * 0.25) / 6, 0.0])
    # t = 2 is truncated: not updated (E0 keeps its t = 0 value although r(2) = (2, 4))
    np.testing.assert_array_equal(algo.q.visits[algo.q.rows(algo.hasher.keys(np.array(CRITIC_S), np.array(CRITIC_A)))][:, 0],
                                  [[1, 1], [1, 1], [1, 1]])


def test_critic_inner_schedule_terminated_last_step_is_updated_with_target_r():
    algo = critic_algo(critic_schedule="inner", critic_h=0.5, critic_t0=2.0)
    algo.update(critic_rollout("terminated"))
    e0, e1 = critic_values(algo)
    # t = 2 terminated, α_2 = 0.5 / 4: Q_i(E0) += α_2 (r_i(2) − Q_i(E0)), no bootstrap
    np.testing.assert_allclose(e0[:, 0], [0.25 + 0.125 * (2.0 - 0.25), 0.0 + 0.125 * (4.0 - 0.0)])
    np.testing.assert_allclose(e0[:, 1], [0.25 + 0.125 * (1.0 - 0.25), 0.0])
    np.testing.assert_allclose(e1[:, 0], [0.125 / 6, 1 / 6])


def test_critic_visits_schedule_is_a_running_average_per_entry():
    # α = h / (visits + t0) with h = t0 = 1: 1, 1/2, 1/3, ... per entry
    algo = critic_algo(critic_schedule="visits", critic_h=1.0, critic_t0=1.0)
    algo.update(critic_rollout("truncated"))
    e0, e1 = critic_values(algo)
    np.testing.assert_allclose(e0[:, 0], [1.0, 0.0])                             # r(0)
    np.testing.assert_allclose(e1[:, 0], [0.0 + 0.5 * 1.0, 1.0 + 0.5 * 0.0])     # r(1) + γ Q(E0)
    np.testing.assert_allclose(e1[:, 1], [0.5 * 1.0, 0.0])

    algo = critic_algo(critic_schedule="visits", critic_h=1.0, critic_t0=1.0)
    algo.update(critic_rollout("terminated"))
    e0, e1 = critic_values(algo)
    # second visit of E0 at t = 2 (terminated): α = 1/2, target r(2)
    np.testing.assert_allclose(e0[:, 0], [(1.0 + 2.0) / 2, (0.0 + 4.0) / 2])
    np.testing.assert_allclose(e0[:, 1], [(1.0 + 1.0) / 2, 0.0])
    rows = algo.q.rows(algo.hasher.keys(np.array(CRITIC_S[:2]), np.array(CRITIC_A[:2])))[:, 0]
    np.testing.assert_array_equal(algo.q.visits[rows], [[2, 2], [1, 1]])


def test_critic_visits_schedule_floor_and_warm_start():
    algo = critic_algo(critic_schedule="visits", critic_h=1.0, critic_t0=1.0, critic_min_step=0.75)
    algo.update(critic_rollout("terminated"))
    e0, _ = critic_values(algo)
    np.testing.assert_allclose(e0[:, 0], [1.0 + 0.75 * (2.0 - 1.0), 0.0 + 0.75 * 4.0])  # max(1/2, 0.75)

    # warm start (default): the second iteration continues from the first one's table and counts
    warm = critic_algo(critic_schedule="visits")
    warm.update(critic_rollout("terminated"))
    warm.update(critic_rollout("terminated"))
    e0, e1 = critic_values(warm)
    # iteration 2, t = 0: visits(E0) = 2 → α = 1/3, target r(0) + γ Q(E1) = 1 + 0.5 · 0.5 (agent 0)
    q0 = 1.5 + (1.25 - 1.5) / 3
    # t = 1: visits(E1) = 1 → α = 1/2, target 0 + 0.5 · q0
    q1 = 0.5 + (0.5 * q0 - 0.5) / 2
    # t = 2 (terminated): visits(E0) = 3 → α = 1/4, target r(2) = 2
    np.testing.assert_allclose(e0[0, 0], q0 + (2.0 - q0) / 4)
    np.testing.assert_allclose(e1[0, 0], q1)
    # warm_start=false: every iteration starts from an all-zero table (Algorithm 1, line 3)
    cold = critic_algo(critic_schedule="visits", warm_start=False)
    once = critic_algo(critic_schedule="visits")
    for algo in (cold, cold, once):
        algo.update(critic_rollout("terminated"))
    np.testing.assert_allclose(np.stack(critic_values(cold)), np.stack(critic_values(once)))


@pytest.mark.parametrize("first_end", ["terminated", "truncated"])
def test_critic_episode_boundaries_inside_a_rollout(first_end):
    # two episodes in one rollout (T = 4, B = 1): t = 0, 1 end at t = 1; t = 2, 3 end truncated at t = 3.
    # E0 at t = 0 and t = 2, E1 at t = 1, E2 at t = 3. "inner" schedule h = t0 = 1: α = 1 / (t + 1),
    # with t counted from each episode's start.
    s = [[[0, 1]], [[1, 1]], [[0, 1]], [[1, 0]]]
    a = [[[1, 0]], [[0, 0]], [[1, 0]], [[1, 1]]]
    r = [[[1.0, 0.0]], [[0.0, 1.0]], [[3.0, 2.0]], [[5.0, 5.0]]]
    end = np.array([[False], [True], [False], [False]])
    last = np.array([[False], [False], [False], [True]])
    ro = rollout(s, a, r, terminated=end if first_end == "terminated" else np.zeros((4, 1), bool),
                 truncated=last | (end if first_end == "truncated" else False))
    algo = critic_algo(critic_schedule="inner", critic_h=1.0, critic_t0=1.0)
    algo.update(ro)
    q = q_of(algo, s, a)[:, 0, :, 0]
    # t = 0: α = 1, Q(E0) = r(0) + γ Q(E1) = (1, 0)
    # t = 1: α = 1/2; terminated: Q(E1) = ½ r(1), no bootstrap from the next episode's E0;
    #        truncated: not updated
    np.testing.assert_allclose(q[1], [0.0, 0.5] if first_end == "terminated" else [0.0, 0.0])
    # t = 2: a new episode, α = 1 again: Q(E0) = r(2) + γ Q(E2) = (3, 2); t = 3 truncated: Q(E2) = 0
    np.testing.assert_allclose(q[0], [3.0, 2.0])
    np.testing.assert_allclose(q[3], [0.0, 0.0])


def test_critic_averages_copies_that_hit_the_same_entry_at_the_same_step():
    # B = 2 copies in the same (s, a) at t = 0 with rewards 1 and 3: one update towards their mean
    s = [[[0, 1], [0, 1]], [[1, 1], [0, 0]]]
    a = [[[1, 0], [1, 0]], [[0, 0], [0, 1]]]
    r = [[[1.0, 0.0], [3.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]
    algo = critic_algo(critic_schedule="visits")
    algo.update(rollout(s, a, r))
    q = q_of(algo, s, a)[..., 0]
    np.testing.assert_allclose(q[0, :, 0], [2.0, 2.0])
    assert algo.q.visits[algo.q.rows(algo.hasher.keys(np.array(s[0][0]), np.array(a[0][0])))][0] == 1


def test_critic_does_not_treat_a_rollout_cut_mid_episode_as_terminal():
    algo = critic_algo(critic_schedule="visits")
    no_end = np.zeros((3, 1), dtype=bool)
    algo.update(rollout(CRITIC_S, CRITIC_A, CRITIC_R, CRITIC_C, terminated=no_end, truncated=no_end))
    e0, _ = critic_values(algo)
    # the episode goes on after t = 2: its Q̂ must not move towards r(2) = (2, 4) alone (skip it, as a
    # truncated step, or bootstrap); today E0 becomes (1 + 2)/2, (0 + 4)/2
    np.testing.assert_allclose(e0[:, 0], [1.0, 0.0])


# ------------------------------------------------------------------------------------------------
# Actor: the truncated policy gradient (Eq. 7; Algorithm 1, lines 11-12)
# ------------------------------------------------------------------------------------------------

def actor_algo(n: int, kappa: int, **cfg) -> ScalableActorCritic:
    """The critic is switched off (h = 0: α = 0) so that Q̂ stays what the test sets."""
    cfg.setdefault("lagrange", LagrangeConfig(enabled=False))
    return ScalableActorCritic(toy_spec(n, episode_length=3), SACConfig(kappa=kappa, critic_h=0.0, **cfg), seed=0)


def set_q(algo, s, a, values) -> np.ndarray:
    """Give the reward column of every entry hit by ``s, a`` the value ``values(row)``; returns rows."""
    rows = algo.q.rows(algo.hasher.keys(np.asarray(s), np.asarray(a)))
    for r in np.unique(rows):
        algo.q.values[r, 0] = values(r)
    return rows


def test_actor_step_by_hand_one_sample():
    # n = 2, θ = 0 (π = ½, ½), one step, agent 0 in state 0 takes action 1; Q̂_0 = 2, Q̂_1 = 4 there.
    s, a, r = [[[0, 1]]], [[[1, 0]]], [[[0.0, 0.0]]]
    for kappa, weight in ((1, (2.0 + 4.0) / 2), (0, 2.0 / 2)):   # (1/n) Σ_{j ∈ N_0^κ} Q̂_j
        algo = actor_algo(2, kappa, actor_lr=0.1)
        rows = algo.q.rows(algo.hasher.keys(np.array(s), np.array(a)))
        algo.q.values[rows[0, 0, 0], 0], algo.q.values[rows[0, 0, 1], 0] = 2.0, 4.0
        algo.update(rollout(s, a, r))
        # ∇ log π = onehot(a) − π = (−½, ½); η_0 = 0.1 / sqrt(1)
        np.testing.assert_allclose(algo.theta[0, 0], 0.1 * weight * np.array([-0.5, 0.5]))
        np.testing.assert_array_equal(algo.theta[0, 1], 0.0)      # state 1 of agent 0 was not visited


@pytest.mark.parametrize("episodes_per_copy", [1, 2])
@pytest.mark.parametrize("kappa", [0, 1, 2])
def test_actor_step_matches_eq7_averaged_over_episodes(kappa, episodes_per_copy):
    n, L, B, gamma, lr = 3, 3, 2, 0.7, 0.4                      # L: episode length
    T = L * episodes_per_copy
    rng = np.random.default_rng(kappa)
    s, a = rng.integers(0, 2, (T, B, n)), rng.integers(0, 2, (T, B, n))
    truncated = np.zeros((T, B), dtype=bool)
    truncated[L - 1::L] = True
    algo = actor_algo(n, kappa, gamma=gamma, actor_lr=lr)
    algo.theta[:] = rng.normal(size=algo.theta.shape)
    theta0 = algo.theta.copy()
    q_values = rng.normal(size=10_000)
    rows = set_q(algo, s, a, lambda row: q_values[row])
    ro = rollout(s, a, np.zeros((T, B, n)), truncated=truncated)
    algo.update(ro)

    hood = Graph.line(n).within(kappa)                          # j ∈ N_i^κ
    grad = np.zeros_like(theta0)
    for b in range(B):
        for t in range(T):
            for i in range(n):
                q_sum = sum(q_values[rows[t, b, j]] for j in range(n) if hood[i, j])
                pi = softmax(theta0[i, s[t, b, i]])
                grad[i, s[t, b, i]] += gamma ** (t % L) * q_sum / n * (np.eye(2)[a[t, b, i]] - pi)
    grad /= B * episodes_per_copy                               # the mean over the rollout's episodes
    np.testing.assert_allclose(algo.theta - theta0, lr / math.sqrt(1) * grad, rtol=1e-12, atol=1e-12)

    # the second iteration's step is η / sqrt(2)
    assert math.isclose(algo.update(ro)["train/actor_lr"], lr / math.sqrt(2))


def test_actor_step_size_schedule_restarts():
    algo = actor_algo(2, 1, actor_lr=2.0, actor_decay_restart=3)
    ro = rollout([[[0, 1]]], [[[1, 0]]], [[[0.0, 0.0]]])
    lrs = [algo.update(ro)["train/actor_lr"] for _ in range(7)]
    np.testing.assert_allclose(lrs, [2.0 / math.sqrt(m % 3 + 1) for m in range(7)])
    algo = actor_algo(2, 1, actor_lr=2.0, actor_decay="none")
    assert [algo.update(ro)["train/actor_lr"] for _ in range(3)] == [2.0, 2.0, 2.0]


def test_batch_baseline_cancels_a_weight_shared_by_all_copies():
    s = [[[0, 1], [0, 1], [1, 0], [1, 1]], [[1, 1], [0, 0], [0, 1], [1, 0]]]
    a = [[[1, 0], [0, 0], [1, 1], [0, 1]], [[0, 1], [1, 1], [0, 0], [1, 0]]]
    r = np.zeros((2, 4, 2))
    steps = {}
    for baseline in ("none", "batch"):
        algo = actor_algo(2, 1, baseline=baseline)
        algo.theta[:] = np.random.default_rng(0).normal(size=algo.theta.shape)
        theta0 = algo.theta.copy()
        set_q(algo, s, a, lambda row: 3.0)                      # the same Q̂ for every copy
        algo.update(rollout(s, a, r))
        steps[baseline] = algo.theta - theta0
    assert np.abs(steps["none"]).max() > 0.1
    np.testing.assert_allclose(steps["batch"], 0.0, atol=1e-12)


def test_batch_baseline_keeps_the_expected_gradient_and_reduces_its_variance():
    # One step, 2 agents (κ = 1), fixed states, actions sampled from π; Q̂_j(a) = 5 + f_j(a). The
    # exact expected step is E_a[(1/n) Σ_j Q̂_j(a) (onehot(a_i) − π_i)] (enumerating the 4 joint actions).
    s_fixed = np.array([0, 1])
    theta = np.zeros((2, 2, 2))
    theta[0, 0], theta[1, 1] = [0.3, -0.2], [-0.5, 0.4]
    f = {(0, 0): (1.0, 0.0), (0, 1): (-1.0, 2.0), (1, 0): (0.5, -0.5), (1, 1): (2.0, 1.0)}
    pi = [softmax(theta[0, 0]), softmax(theta[1, 1])]
    exact = np.zeros((2, 2))
    for (a0, a1), (f0, f1) in f.items():
        p = pi[0][a0] * pi[1][a1]
        w = (10.0 + f0 + f1) / 2
        exact[0] += p * w * (np.eye(2)[a0] - pi[0])
        exact[1] += p * w * (np.eye(2)[a1] - pi[1])

    def steps(baseline: str, B: int, repeats: int, seed: int) -> np.ndarray:
        algo = actor_algo(2, 1, baseline=baseline, actor_lr=1.0, actor_decay="none")
        joint = np.array(list(f))
        rows = algo.q.rows(algo.hasher.keys(np.broadcast_to(s_fixed, (4, 2)), joint))
        for k, (f0, f1) in enumerate(f.values()):
            algo.q.values[rows[k], 0] = 5.0 + np.array([f0, f1])
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(repeats):
            algo.theta[:] = theta
            acts = np.stack([(rng.random(B) > pi[i][0]).astype(np.int64) for i in range(2)], axis=-1)
            algo.update(rollout(np.broadcast_to(s_fixed, (1, B, 2)), acts[None], np.zeros((1, B, 2))))
            out.append([algo.theta[0, 0] - theta[0, 0], algo.theta[1, 1] - theta[1, 1]])
        return np.array(out)                                     # [repeats, agent, action]

    big_none, big_batch = steps("none", 40_000, 1, 0)[0], steps("batch", 40_000, 1, 0)[0]
    np.testing.assert_allclose(big_none, exact, atol=0.05)       # MC error of "none" ≈ 0.012
    np.testing.assert_allclose(big_batch, exact, atol=0.015)     # MC error of "batch" ≈ 0.004
    var_none = steps("none", 8, 300, 1).var(axis=0).sum()
    var_batch = steps("batch", 8, 300, 1).var(axis=0).sum()
    print(f"\nbatch baseline: variance of the step {var_batch:.4f} vs {var_none:.4f} without")
    assert var_batch < var_none / 4, (var_none, var_batch)


# ------------------------------------------------------------------------------------------------
# Lagrangian (cost critics + per-agent multipliers)
# ------------------------------------------------------------------------------------------------

def test_lagrangian_raises_lambda_and_pushes_probability_off_costly_actions():
    # toy_line: action 1 costs 1, limit 3 per 8-step episode. A policy that plays action 1 with
    # probability 0.82 spends ~6.5; 4 updates on that fixed rollout.
    game = ToyLineGame(ToyConfig(), num_envs=256, seed=0)
    behaviour = ScalableActorCritic(game.spec, SACConfig(), seed=1)
    behaviour.theta[..., 1] = 1.5
    ro, _ = Collector(game, seed=0).collect(behaviour, 8)
    violation = ro.cost[..., 0].sum(axis=(0, 1)) / 256 - 3.0        # per agent
    assert (violation > 2.5).all()
    both_states = np.array([[0, 0, 0, 0], [1, 1, 1, 1]])
    p_start = behaviour.probs(both_states)[..., 1]

    algo = ScalableActorCritic(game.spec, SACConfig(lagrange=LagrangeConfig(lr=0.5)), seed=1)
    plain = ScalableActorCritic(game.spec, SACConfig(lagrange=LagrangeConfig(enabled=False)), seed=1)
    algo.theta[..., 1] = plain.theta[..., 1] = 1.5
    for k in range(1, 5):
        m = algo.update(ro)
        plain.update(ro)
        np.testing.assert_allclose(algo.lagrange.value[:, 0], k * 0.5 * violation)   # λ rises by lr · (Ĵ_c − c)
        assert m["train/lagrange/uses"] == pytest.approx(k * 0.5 * violation.mean())
        if k == 1:
            assert (algo.probs(both_states)[..., 1] < p_start).mean() >= 0.75
    assert algo.q.values[: len(algo.q), 1].max() > 0                # the cost critic learned something
    assert (algo.probs(both_states)[..., 1] < 0.2).all()             # away from the costly action
    # without the multiplier the reward (1 for a_i == s_i) keeps action 1 in state 1 (on average over
    # agents: single cells of a fixed 256-episode sample without baseline are noisy)
    assert plain.probs(both_states)[1, :, 1].mean() > p_start[1].mean()
    assert plain.probs(both_states)[..., 1].min() > 0.7


def test_lagrange_method_and_disabled_multipliers():
    spec = toy_spec(3)
    assert ScalableActorCritic(spec, SACConfig(lagrange=LagrangeConfig(enabled=False)), seed=0).lagrange is None
    pid = ScalableActorCritic(spec, SACConfig(lagrange=LagrangeConfig(method="pid")), seed=0)
    assert pid.lagrange.method == "pid"


# ------------------------------------------------------------------------------------------------
# config, registration, compatibility
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [dict(kappa=-1), dict(gamma=1.0), dict(actor_decay="cosine"),
                                 dict(critic_schedule="adam"), dict(baseline="critic"),
                                 dict(lagrange=LagrangeConfig(method="newton"))])
def test_bad_config_values_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SACConfig(**bad)


class _ContinuousEnvPlugin:
    @hookimpl
    def safenet_environments(self):
        return [EnvSpec(name="cont_arena", factory="safenet.testing:make_toy", config=ToyConfig,
                        summary="a fake continuous-action env", tags=frozenset({"continuous"}))]


def test_resolve_on_a_continuous_env_is_refused_naming_finite():
    pm = plugin_manager(("fake_continuous", _ContinuousEnvPlugin()))
    with pytest.raises(IncompatibleError, match="finite"):
        Selection.resolve("sac", "cont_arena", pm)
    assert Selection.resolve("sac", "toy_line", pm).algo.name == "sac"


def test_constructor_refuses_games_without_finite_local_states():
    toy = toy_spec(2)
    cont = GameSpec(name="cont", agents=("a", "b"), graph=Graph.line(2), obs_dims=(3, 3), action_kind="continuous",
                    action_dims=(2, 2), episode_length=5)
    no_states = GameSpec(name="nostates", agents=("a", "b"), graph=Graph.line(2), obs_dims=(2, 2),
                         action_kind="discrete", action_dims=(2, 2), episode_length=5)
    for spec in (cont, no_states):
        with pytest.raises(IncompatibleError, match="finite"):
            ScalableActorCritic(spec, SACConfig(), seed=0)
    assert ScalableActorCritic(toy, SACConfig(), seed=0).rollout_steps == 8      # one episode per copy


def test_registration_and_stochastic_evaluation_default():
    pm = plugin_manager()
    spec = pm.algorithm("sac")
    assert spec.requires == {"finite", "discrete"}
    cfg = Selection.resolve("sac", "toy_line", pm).compose()
    assert cfg.trainer.eval_deterministic is False
    assert cfg.algo.kappa == 1 and cfg.algo.critic_schedule == "visits" and cfg.algo.baseline == "none"


# ------------------------------------------------------------------------------------------------
# acting, checkpoints, communication
# ------------------------------------------------------------------------------------------------

def test_sampling_follows_the_policy_and_skips_padded_actions():
    spec = GameSpec(name="hetero", agents=("a", "b"), graph=Graph.line(2), obs_dims=(1, 1), action_kind="discrete",
                    action_dims=(2, 4), episode_length=4, n_local_states=(1, 1), tags=frozenset({"finite"}))
    algo = ScalableActorCritic(spec, SACConfig(), seed=0)
    algo.theta[1, 0] = np.log([1.0, 2.0, 3.0, 4.0])
    algo.theta[0, 0, :2] = np.log([3.0, 1.0])
    algo.theta[0, 0, 2:] = 50.0                                  # padded actions of agent 0: never sampled
    acts, _ = algo.act(np.zeros((20_000, 2, 1)), {"local_state": np.zeros((20_000, 2), dtype=np.int64)})
    np.testing.assert_allclose(np.bincount(acts[:, 0], minlength=4) / 20_000, [0.75, 0.25, 0, 0], atol=0.015)
    np.testing.assert_allclose(np.bincount(acts[:, 1], minlength=4) / 20_000, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    greedy, _ = algo.act(np.zeros((3, 2, 1)), {"local_state": np.zeros((3, 2), dtype=np.int64)}, deterministic=True)
    np.testing.assert_array_equal(greedy, [[0, 3]] * 3)


def test_check_algorithm_on_toy_line(tmp_path):
    final = check_algorithm("sac", "toy_line", tmp_path, pm=plugin_manager())
    assert final["iteration"] == 2 and "train/q_entries" in final and "train/lagrange/uses" in final


def test_state_dict_round_trip_gives_identical_actions_and_updates(tmp_path):
    game = ToyLineGame(ToyConfig(), num_envs=4, seed=0)
    cfg = SACConfig(critic_schedule="visits", lagrange=LagrangeConfig(lr=0.3))
    algo = ScalableActorCritic(game.spec, cfg, seed=5)
    collector = Collector(game, seed=0)
    for _ in range(3):
        algo.update(collector.collect(algo, 8)[0])
    assert algo.lagrange.value.any() and algo.q.visits.max() > 1
    torch.save(algo.state_dict(), tmp_path / "sac.pt")
    copy = ScalableActorCritic(game.spec, cfg, seed=5)
    copy.load_state_dict(torch.load(tmp_path / "sac.pt", weights_only=True))

    obs, info = game.reset(seed=1)
    a1, _ = algo.act(obs, info)
    a2, _ = copy.act(obs, info)
    for _ in range(20):                                          # the same random stream afterwards too
        np.testing.assert_array_equal(algo.act(obs, info)[0], copy.act(obs, info)[0])
    np.testing.assert_array_equal(a1, a2)
    ro = collector.collect(algo, 8)[0]
    algo.update(ro)
    copy.update(ro)
    np.testing.assert_array_equal(algo.theta, copy.theta)
    np.testing.assert_array_equal(algo.q.values[: len(algo.q)], copy.q.values[: len(copy.q)])
    np.testing.assert_array_equal(algo.lagrange.value, copy.lagrange.value)
    assert algo.iteration == copy.iteration == 4


def test_communication_counts_neighbours():
    # line of 4, κ = 1: Σ_i (|N_i^1| − 1) = 1 + 2 + 2 + 1 = 6 neighbours
    algo = ScalableActorCritic(toy_spec(4), SACConfig(kappa=1), seed=0)
    assert algo.communication() == {"floats_per_step": 12.0, "floats_per_update": 6 * 2 * 8}
    # κ = 2: 2 + 3 + 3 + 2 = 10
    algo = ScalableActorCritic(toy_spec(4), SACConfig(kappa=2), seed=0)
    assert algo.communication()["floats_per_step"] == 20.0
    assert ScalableActorCritic(toy_spec(4), SACConfig(kappa=0), seed=0).communication()["floats_per_step"] == 0.0


def test_floats_per_update_counts_every_copy():
    algo = ScalableActorCritic(toy_spec(2, episode_length=3), SACConfig(kappa=1), seed=0)
    B = 4
    s = np.zeros((3, B, 2), dtype=np.int64)
    algo.update(rollout(s, s, np.zeros((3, B, 2))))
    # 2 neighbours (0→1, 1→0) x (Q̂ + Q̂^c) x 3 steps x 4 episodes
    assert algo.communication()["floats_per_update"] == 2 * 2 * 3 * B


def test_action_draws_are_independent_of_a_game_seeded_alike():
    pm = grid_pm()
    sel = Selection.resolve("sac", "grid_wireless_3x3", pm)
    cfg = sel.compose(overrides=["seed=0"])
    game = make_game(sel, cfg, 4096, 0)                          # as Trainer.__init__ does (more copies)
    algo = make_algorithm(sel, game.spec, cfg)
    collector = Collector(game, seed=0)                          # as Trainer.__init__ does
    acts, _ = algo.act(collector.obs, collector.info)
    corner = [0, 2, 6, 8]                                        # 3 actions each; θ = 0: P(do nothing) = 1/3
    has_packet = collector.info["local_state"][:, corner] > 0
    p_idle = (acts[:, corner] == 0)[has_packet].mean()
    # today: a packet arrived iff the shared draw u < 0.5, and action 0 is drawn iff u < 1/3: P = 2/3
    assert abs(p_idle - 1 / 3) < 0.03, f"P(do nothing | packet) = {p_idle:.3f}"


# ------------------------------------------------------------------------------------------------
# learning on the wireless access grid
# ------------------------------------------------------------------------------------------------

def grid_pm() -> PluginManager:
    grid_plugin = pytest.importorskip("safenet_grid.plugin")
    return PluginManager(autoload=False, strict=True,
                         plugins=[("safenet_scalable_ac", sac_plugin), ("safenet_grid", grid_plugin)])


def train_grid(tmp_path: Path, seed: int, steps: int, episodes: int) -> dict[str, float]:
    """Train ``sac`` on ``grid_wireless_3x3`` (default config) and evaluate before and after.

    Both evaluations sample the policy (``deterministic=False``) over ``episodes`` episodes with
    γ = 0.7, on a game seeded apart from the algorithm; "before" is the untrained θ = 0 policy,
    which is uniform over each user's actions.
    """
    pm = grid_pm()
    sel = Selection.resolve("sac", "grid_wireless_3x3", pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false",
                                 f"trainer.total_steps={steps}", f"seed={seed}", "trainer.eval_every_steps=-1"])
    assert cfg.algo.gamma == 0.7
    trainer = start_run(sel, cfg, pm=pm)
    eval_seed = 1_000_003 + seed                                 # the game's streams differ from the policy's
    eval_game = make_game(sel, cfg, 256, eval_seed)
    untrained = make_algorithm(sel, eval_game.spec, cfg)
    assert not untrained.theta.any()
    before = evaluate(untrained, eval_game, episodes, seed=eval_seed, deterministic=False, gamma=0.7)
    trainer.train()
    after = evaluate(trainer.algo, eval_game, episodes, seed=eval_seed, deterministic=False, gamma=0.7)
    rows = list(csv.DictReader(open(trainer.run.dir / "metrics.csv")))
    tail = rows[-max(1, len(rows) // 10):]
    mean = lambda k: float(np.mean([float(r[k]) for r in tail]))  # noqa: E731
    limit = float(rows[-1]["limit/energy"])
    print(f"\nsac grid_wireless_3x3 seed {seed}, {trainer.env_steps} steps: discounted return "
          f"{after['eval/ep_disc_return']:.4f} (uniform {before['eval/ep_disc_return']:.4f}), energy mean "
          f"{after['eval/ep_cost/energy']:.3f} worst {after['eval/ep_cost_max/energy']:.3f} (limit {limit:g}); "
          f"last 10% of training: return {mean('rollout/ep_disc_return'):.4f}, energy {mean('rollout/ep_cost/energy'):.3f}")
    return {"uniform": before["eval/ep_disc_return"], "disc": after["eval/ep_disc_return"],
            "cost": after["eval/ep_cost/energy"], "cost_max": after["eval/ep_cost_max/energy"], "limit": limit,
            "train_disc": mean("rollout/ep_disc_return"), "train_cost": mean("rollout/ep_cost/energy"),
            "steps": trainer.env_steps}


def test_learns_the_3x3_wireless_grid_within_the_energy_budget(tmp_path):
    r = train_grid(tmp_path, seed=0, steps=60_000, episodes=1024)
    assert r["steps"] >= 60_000
    assert 0.10 < r["uniform"] < 0.15                          # uniform random: ≈ 0.12, spending ≈ 8.3 of 3.3
    assert r["disc"] >= 1.5 * r["uniform"], r
    assert r["train_disc"] >= 1.5 * r["uniform"], r
    assert r["cost"] <= 1.05 * r["limit"], r
    assert r["train_cost"] <= 1.05 * r["limit"], r


def _slow_requested(config) -> bool:
    return "slow" in (config.getoption("markexpr") or "")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learns_the_3x3_wireless_grid_300k_steps(tmp_path, request, seed):
    if not _slow_requested(request.config):
        pytest.skip("slow learning check: run with `pytest -m slow`")
    r = train_grid(tmp_path, seed=seed, steps=300_000, episodes=4096)
    # 0.33: the best "send the earliest packet with probability s" policy within the budget (env README)
    assert r["disc"] >= 0.33, r
    assert r["cost"] <= r["limit"], r
