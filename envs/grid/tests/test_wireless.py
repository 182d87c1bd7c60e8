"""Tests of the wireless access grid (safenet_grid.wireless) and its registration (safenet_grid.plugin).

Layout used by the hand-computed tests: the 2x3 grid, one user per cell (users = cells)::

    0 | 1 | 2          AP 0 serves users 0, 1, 3, 4
    --A0--A1--         AP 1 serves users 1, 2, 4, 5
    3 | 4 | 5

With deadline 2, users 0 and 3 (AP 0 only) have actions 0, 1 = (slot 0, AP 0), 2 = (slot 1, AP 0);
users 1 and 4 (APs 0, 1) have 1 = (slot 0, AP 0), 2 = (slot 0, AP 1), 3 = (slot 1, AP 0),
4 = (slot 1, AP 1). Local state index: slot 0 is bit 0, slot 1 is bit 1 (3 = both slots full).
"""
from __future__ import annotations

import numpy as np
import pytest

from safenet.errors import ConfigError, SafenetError
from safenet.exact import FiniteModel
from safenet_grid import plugin
from safenet_grid.wireless import (DEFAULT_ENERGY_BUDGET, WirelessConfig, WirelessGrid, access_matrix, make,
                                   parallel_env)

EMPTY, OLD, NEW, BOTH = 0, 1, 2, 3  # local state indices for d = 2


def grid23(q: float = 1.0, p: float = 0.0, num_envs: int = 1, **kw) -> WirelessGrid:
    g = WirelessGrid(rows=2, cols=3, success_probs=q, arrival_prob=p, num_envs=num_envs, seed=0, **kw)
    g.reset(seed=0)
    return g


def step1(g: WirelessGrid, states: list[int], actions: list[int]):
    """Set the states of a one-copy game, step it, return (next local states, reward, cost) of copy 0."""
    g.set_local_state(states)
    obs, reward, cost, term, trunc, info = g.step(np.array([actions]))
    return info["local_state"][0].tolist(), reward[0].tolist(), cost[0, :, 0].tolist()


# -- geometry ------------------------------------------------------------------------------------

def neighbours(g: WirelessGrid) -> dict[int, set[int]]:
    return {i: set(g.spec.graph.neighbours(i).tolist()) for i in range(g.n)}


def test_graph_2x3():
    g = WirelessGrid(rows=2, cols=3)
    assert g.n_aps == 2
    assert [aps.tolist() for aps in g.user_aps] == [[0], [0, 1], [1], [0], [0, 1], [1]]
    assert neighbours(g) == {0: {1, 3, 4}, 1: {0, 2, 3, 4, 5}, 2: {1, 4, 5},
                             3: {0, 1, 4}, 4: {0, 1, 2, 3, 5}, 5: {1, 2, 4}}
    assert g.spec.action_dims == (3, 5, 3, 3, 5, 3)


def test_graph_3x3_and_action_counts():
    g = WirelessGrid(rows=3, cols=3)
    assert g.n_aps == 4 and g.n == 9
    assert neighbours(g) == {
        0: {1, 3, 4}, 1: {0, 2, 3, 4, 5}, 2: {1, 4, 5},
        3: {0, 1, 4, 6, 7}, 4: {0, 1, 2, 3, 5, 6, 7, 8}, 5: {1, 2, 4, 7, 8},
        6: {3, 4, 7}, 7: {3, 4, 5, 6, 8}, 8: {4, 5, 7}}
    # corners reach 1 AP, edges 2, the centre 4: 1 + d * APs actions with d = 2
    assert g.spec.action_dims == (3, 5, 3, 5, 9, 5, 3, 5, 3)
    assert g.spec.graph.diameter == 2


def test_users_per_cell_and_reference_instance():
    M = access_matrix(2, 2, 2)
    assert M.shape == (8, 1) and M.all()
    g = WirelessGrid(rows=3, cols=4, users_per_cell=2)
    assert g.n == 24 and g.n_aps == 6
    # users 0 and 1 share cell 0: neighbours; AP 0 serves cells 0, 1, 4, 5
    assert g.spec.graph.adjacency[0, 1]
    assert g.user_aps[0].tolist() == [0] and g.user_aps[2 * 5 + 1].tolist() == [0, 1, 3, 4]
    assert np.allclose(g.success_probs, [0.549, 0.715, 0.603, 0.545, 0.424, 0.646], atol=1e-3)
    assert g.served.tolist() == [8] * 6


def test_spec():
    g = WirelessGrid(rows=3, cols=3, episode_length=11)
    s = g.spec
    assert s.name == "grid_wireless_3x3" and s.n == 9
    assert s.obs_dims == (2,) * 9 and s.n_local_states == (4,) * 9 and s.state_dim == 18
    assert s.cost_names == ("energy",) and s.n_costs == (1,) * 9
    assert s.cost_limits[0] == (pytest.approx(DEFAULT_ENERGY_BUDGET * 11),)
    assert {"finite", "discrete", "global_state", "constrained"} <= s.tags


def test_action_encoding_helpers():
    g = WirelessGrid(rows=2, cols=3)
    assert g.action_index(1, slot=1, k=1) == 4
    ap, slot = g.action_ap(), g.action_slot()
    assert ap[1, :5].tolist() == [-1, 0, 1, 0, 1] and slot[1, :5].tolist() == [0, 0, 0, 1, 1]
    assert ap[0, :3].tolist() == [-1, 0, 0] and slot[0, :3].tolist() == [0, 0, 1]
    with pytest.raises(SafenetError, match="reachable APs"):
        g.action_index(0, slot=0, k=1)
    assert g.index(g.bits(np.arange(4))).tolist() == [0, 1, 2, 3]
    assert g.bits(np.array([BOTH, NEW])).tolist() == [[1, 1], [0, 1]]


# -- hand-computed steps -------------------------------------------------------------------------

def test_sole_sender_delivers_then_ages():
    g = grid23(q=1.0, p=0.0)
    # user 0 sends its slot-0 packet to AP 0: delivered; slot 1 then ages into slot 0
    nxt, rew, cost = step1(g, [BOTH, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0])
    assert rew == [1, 0, 0, 0, 0, 0] and cost == [1, 0, 0, 0, 0, 0]
    assert nxt == [OLD, 0, 0, 0, 0, 0]
    # sending the slot-1 packet instead: slot 0 expires, nothing remains
    nxt, rew, _ = step1(g, [BOTH, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0])
    assert rew[0] == 1 and nxt[0] == EMPTY


def test_collision_delivers_nothing():
    g = grid23(q=1.0, p=0.0)
    # users 0 and 1 both choose AP 0: collision; their packets just age
    nxt, rew, cost = step1(g, [BOTH, BOTH, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0])
    assert rew == [0] * 6 and cost == [1, 1, 0, 0, 0, 0] and nxt == [OLD, OLD, 0, 0, 0, 0]
    # different APs: both deliver (user 1 uses AP 1 with action 2)
    nxt, rew, _ = step1(g, [BOTH, BOTH, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0])
    assert rew == [1, 1, 0, 0, 0, 0] and nxt == [OLD, OLD, 0, 0, 0, 0]
    # three senders on AP 1 (users 1, 2, 5) collide, while user 0 alone on AP 0 delivers
    nxt, rew, _ = step1(g, [OLD, OLD, OLD, 0, 0, OLD], [1, 2, 1, 0, 0, 1])
    assert rew == [1, 0, 0, 0, 0, 0]


def test_empty_slot_occupies_the_access_point():
    g = grid23(q=1.0, p=0.0)
    # user 3 sends from an empty slot: no reward for it, but it collides with user 0 on AP 0
    nxt, rew, cost = step1(g, [OLD, 0, 0, EMPTY, 0, 0], [1, 0, 0, 1, 0, 0])
    assert rew == [0] * 6 and cost == [1, 0, 0, 1, 0, 0]
    # alone, an empty-slot sender gets nothing (and pays the cost)
    nxt, rew, cost = step1(g, [NEW, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0])
    assert rew == [0] * 6 and cost[0] == 1 and nxt[0] == OLD


def test_success_probability_zero():
    g = grid23(q=0.0, p=0.0)
    nxt, rew, cost = step1(g, [BOTH, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0])
    assert rew == [0] * 6 and cost[0] == 1 and nxt[0] == OLD


def test_per_ap_success_probs():
    g = WirelessGrid(rows=2, cols=3, success_probs=[1.0, 0.0], arrival_prob=0.0, seed=0)
    g.reset(seed=0)
    nxt, rew, _ = step1(g, [OLD, OLD, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0])   # user 0 on AP 0, user 1 on AP 1
    assert rew[:2] == [1, 0]


def test_aging_and_arrivals():
    g = grid23(q=1.0, p=0.0)
    nxt, rew, cost = step1(g, [BOTH, NEW, OLD, EMPTY, BOTH, NEW], [0] * 6)
    assert nxt == [OLD, OLD, EMPTY, EMPTY, OLD, OLD] and cost == [0] * 6
    g = grid23(q=1.0, p=1.0)
    nxt, _, _ = step1(g, [BOTH, NEW, OLD, EMPTY, BOTH, NEW], [0] * 6)
    assert nxt == [BOTH, BOTH, NEW, NEW, BOTH, BOTH]
    # delivered then refilled: the newest slot always gets a packet with p = 1
    nxt, rew, _ = step1(g, [NEW, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0])
    assert rew[0] == 1 and nxt[0] == NEW


def test_initial_states():
    obs, info = WirelessGrid(rows=2, cols=3, arrival_prob=1.0, num_envs=4).reset(seed=1)
    assert (info["local_state"] == NEW).all() and (obs == np.array([0.0, 1.0])).all()
    obs, info = WirelessGrid(rows=2, cols=3, arrival_prob=0.0, num_envs=4).reset(seed=1)
    assert (info["local_state"] == EMPTY).all() and (obs == 0).all()
    _, info = WirelessGrid(rows=3, cols=3, num_envs=4000).reset(seed=1)
    s = info["local_state"]
    assert set(np.unique(s).tolist()) == {EMPTY, NEW}
    assert abs((s == NEW).mean() - 0.5) < 0.01


def test_deadline_three():
    g = WirelessGrid(rows=2, cols=3, deadline=3, success_probs=1.0, arrival_prob=0.0, seed=0)
    g.reset(seed=0)
    assert g.spec.action_dims == (4, 7, 4, 4, 7, 4) and g.spec.n_local_states == (8,) * 6
    # user 1 holds packets in slots 0 and 2 (index 5); sends slot 2 to AP 1: 1 + 2 * 2 + 1 = 6
    nxt, rew, _ = step1(g, [0, 5, 0, 0, 0, 0], [0, 6, 0, 0, 0, 0])
    assert rew[1] == 1 and nxt[1] == 0  # slot 0 expired, slot 2 delivered


def test_observation_and_state():
    g = grid23(num_envs=2)
    obs = g.set_local_state([[BOTH, NEW, OLD, 0, 0, 0], [0, 0, 0, 0, 0, BOTH]])
    assert obs.shape == (2, 6, 2) and obs.dtype == np.float32
    assert obs[0, :3].tolist() == [[1, 1], [0, 1], [1, 0]]
    st = g.state()
    assert st.shape == (2, 12) and st[0, :6].tolist() == [1, 1, 0, 1, 1, 0] and st[1, -2:].tolist() == [1, 1]


# -- episodes, auto-reset, seeding ---------------------------------------------------------------

def test_truncation_and_auto_reset():
    g = WirelessGrid(rows=2, cols=3, episode_length=4, arrival_prob=1.0, num_envs=3, seed=0)
    obs, info = g.reset(seed=0)
    zeros = np.zeros((3, 6), dtype=np.int64)
    for t in range(3):
        obs, rew, cost, term, trunc, info = g.step(zeros)
        assert not trunc.any() and not term.any() and "final_obs" not in info
        assert (info["local_state"] == BOTH).all()
    obs, rew, cost, term, trunc, info = g.step(zeros)
    assert trunc.all() and not term.any()
    assert (info["final_local_state"] == BOTH).all() and (info["final_obs"] == 1).all()
    assert info["final_state"].shape == (3, 12) and (info["final_state"] == 1).all()
    # the copies restarted: only the newest slot is filled again
    assert (info["local_state"] == NEW).all() and (obs == np.array([0.0, 1.0])).all()
    assert (g.state() == np.tile([0.0, 1.0], 6)).all()
    obs, rew, cost, term, trunc, info = g.step(zeros)
    assert not trunc.any() and (info["local_state"] == BOTH).all()


def test_seeding_reproducible():
    def run(seed: int) -> list[np.ndarray]:
        g = WirelessGrid(rows=3, cols=3, num_envs=8, success_probs=0.7)
        obs, info = g.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(30):
            a = g.earliest_packet_actions(info["local_state"], rng)
            obs, rew, cost, term, trunc, info = g.step(a)
            out += [obs, rew, cost]
        return out

    a, b, c = run(3), run(3), run(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_step_before_reset():
    with pytest.raises(SafenetError, match="reset"):
        WirelessGrid(rows=2, cols=3).step(np.zeros((1, 6), dtype=np.int64))


# -- bad input -----------------------------------------------------------------------------------

def test_bad_actions():
    g = grid23(num_envs=2)
    with pytest.raises(SafenetError, match=r"shape \(2, 6\)"):
        g.step(np.zeros((1, 6), dtype=np.int64))
    bad = np.zeros((2, 6), dtype=np.int64)
    bad[1, 2] = 3   # user 2 has 3 actions
    with pytest.raises(SafenetError, match=r"agent user_2 got action 3; valid actions are 0\.\.2"):
        g.step(bad)
    with pytest.raises(SafenetError, match="user_0"):
        g.step(np.full((2, 6), -1))
    with pytest.raises(SafenetError, match="integers"):
        g.step(np.full((2, 6), 0.5))


@pytest.mark.parametrize("kw, key", [
    ({"rows": 1}, "env.rows"), ({"cols": 0}, "env.cols"), ({"deadline": 0}, "env.deadline"),
    ({"users_per_cell": 0}, "env.users_per_cell"), ({"arrival_prob": 1.5}, "env.arrival_prob"),
    ({"success_probs": [0.5]}, "env.success_probs"), ({"success_probs": 2.0}, "env.success_probs"),
    ({"success_probs": "high"}, "env.success_probs"), ({"episode_length": 0}, "env.episode_length"),
    ({"energy_budget": -1.0}, "env.energy_budget"),
])
def test_bad_config(kw, key):
    with pytest.raises(ConfigError, match=key):
        WirelessGrid(**kw)


def test_make_from_dict_and_dataclass():
    g = make({"rows": 2, "cols": 3, "success_probs": [0.2, 0.9]}, num_envs=5, seed=1)
    assert g.num_envs == 5 and g.success_probs.tolist() == [0.2, 0.9]
    g = make(WirelessConfig(rows=3, cols=4, users_per_cell=2), num_envs=2, seed=1)
    assert g.n == 24
    assert make(None).spec.name == "grid_wireless_3x3"
    with pytest.raises(ConfigError, match="unknown wireless grid config keys.*'row'"):
        make({"row": 3})


# -- exact model ---------------------------------------------------------------------------------

def test_finite_model_matches_monte_carlo():
    B = 40_000
    g = WirelessGrid(rows=2, cols=3, success_probs=[0.3, 0.8], arrival_prob=0.4, num_envs=B, seed=0)
    g.reset(seed=0)
    model = g.finite_model()
    assert isinstance(model, FiniteModel)
    assert model.n_local_states == (4,) * 6 and model.n_local_actions == (3, 5, 3, 3, 5, 3) and model.n_costs == 1
    assert np.allclose(model.initial.sum(axis=1), 1) and np.allclose(model.initial[:, NEW], 0.4)
    cases = [  # (states, actions, expected rewards)
        ([BOTH, NEW, NEW, EMPTY, BOTH, OLD], [2, 4, 0, 0, 0, 0], [0.3, 0.8, 0, 0, 0, 0]),  # two sole senders
        ([NEW, BOTH, OLD, NEW, EMPTY, BOTH], [0, 3, 0, 0, 2, 2], [0, 0.3, 0, 0, 0, 0]),    # 4 (empty) and 5 collide
        ([BOTH, BOTH, OLD, NEW, BOTH, NEW], [2, 3, 1, 0, 4, 2], [0] * 6),                   # collisions on both APs
        ([NEW, BOTH, EMPTY, OLD, BOTH, NEW], [0, 0, 0, 2, 4, 0], [0, 0, 0, 0, 0.8, 0]),    # 3 sends an empty slot
    ]
    S = np.array([c[0] for c in cases])
    A = np.array([c[1] for c in cases])
    P, R, C = model.transition(S, A)
    assert P.shape == (4, 6, 4) and R.shape == (4, 6) and C.shape == (4, 6, 1)
    assert np.allclose(P.sum(axis=-1), 1)
    assert np.array_equal(C[..., 0], (A != 0).astype(float))
    assert np.allclose(R, [c[2] for c in cases])
    # a delivered slot-1 packet: user 0 ends empty or with a new packet; undelivered: slot 0 holds it
    assert P[0, 0].tolist() == pytest.approx([0.3 * 0.6, 0.7 * 0.6, 0.3 * 0.4, 0.7 * 0.4])
    for row in range(len(cases)):
        g.set_local_state(S[row])
        _, reward, cost, _, _, info = g.step(np.broadcast_to(A[row], (B, 6)))
        nxt = info["local_state"]
        freq = (nxt[:, :, None] == np.arange(4)).mean(axis=0)          # [n, 4]
        tol = 5 * np.sqrt(P[row] * (1 - P[row]) / B) + 1e-9
        assert (np.abs(freq - P[row]) <= tol).all(), (row, freq, P[row])
        assert (np.abs(reward.mean(axis=0) - R[row]) <= 5 * np.sqrt(R[row] * (1 - R[row]) / B) + 1e-9).all()
        assert np.array_equal(cost[0, :, 0], C[row, :, 0])


def test_finite_model_rejects_bad_input():
    model = WirelessGrid(rows=2, cols=3).finite_model()
    with pytest.raises(SafenetError, match="shape"):
        model.transition(np.zeros((2, 5), dtype=int), np.zeros((2, 5), dtype=int))
    with pytest.raises(SafenetError, match="actions"):
        model.transition(np.zeros((1, 6), dtype=int), np.full((1, 6), 4))


# -- reference policies and the energy budget ----------------------------------------------------

def test_earliest_packet_policy():
    g = grid23(num_envs=1)
    rng = np.random.default_rng(0)
    a = g.earliest_packet_actions(np.array([[BOTH, NEW, EMPTY, OLD, NEW, BOTH]]), rng)
    assert a[0, 2] == 0
    assert a[0, 0] == 1 and a[0, 3] == 1 and a[0, 5] == 1            # slot 0, the only AP
    assert a[0, 1] in (3, 4) and a[0, 4] in (3, 4)                    # slot 1, AP 0 or 1
    assert (g.earliest_packet_actions(np.full((1, 6), BOTH), rng, send_prob=0.0) == 0).all()
    # weighted AP choice with q = (0, 1): the two-AP users always pick AP 1
    g2 = WirelessGrid(rows=2, cols=3, success_probs=[0.0, 1.0])
    a = g2.earliest_packet_actions(np.full((200, 6), OLD), rng, ap_choice="weighted")
    assert (a[:, 1] == 2).all() and (a[:, 4] == 2).all()


def test_always_transmit_violates_default_budget():
    g = WirelessGrid(rows=3, cols=3, num_envs=256, seed=0)
    _, info = g.reset(seed=0)
    rng = np.random.default_rng(0)
    total = np.zeros((256, 9))
    for _ in range(g.episode_length):
        _, _, cost, _, _, info = g.step(g.earliest_packet_actions(info["local_state"], rng))
        total += cost[..., 0]
    limit = g.spec.cost_limits[0][0]
    assert total.mean() > 1.8 * limit          # about 0.7 attempts per step against a budget of 0.3


# -- plugin and PettingZoo face --------------------------------------------------------------------

def test_plugin_table_and_names():
    names = {e["name"]: e for e in plugin.environments()}
    assert set(names) == {"grid_wireless_3x3", "grid_wireless_5x5", "grid_wireless_3x4"}
    assert names["grid_wireless_3x4"]["defaults"]["users_per_cell"] == 2
    for e in names.values():
        g = make(e["defaults"], num_envs=2, seed=0)
        assert g.spec.name == e["name"] and e["factory"] == "safenet_grid.wireless:make"
    assert plugin.parse_name("grid_wireless_4x6") == {"rows": 4, "cols": 6, "users_per_cell": 1}
    assert plugin.parse_name("grid-wireless-3x4") == {"rows": 3, "cols": 4, "users_per_cell": 2}
    assert plugin.parse_name("grid_wireless_big") is None and plugin.parse_name("mujoco_3x3") is None


def test_hook_registration():
    from safenet.plugins import PluginManager

    pm = PluginManager(autoload=False, plugins=[("safenet_grid", plugin)])
    assert not pm.failed
    spec, implied = pm.environment("grid_wireless_3x4")
    assert spec.name == "grid_wireless_3x4" and implied == {} and spec.defaults["users_per_cell"] == 2
    spec, implied = pm.environment("grid_wireless_4x6")
    assert spec.name == "grid_wireless_<R>x<C>" and implied == {"rows": "4", "cols": "6"}
    assert "finite" in spec.tags and spec.load() is make


def test_parallel_env_api():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env(), num_cycles=50)
    env = parallel_env(rows=2, cols=3, energy_budget=0.5)
    obs, infos = env.reset(seed=0)
    assert set(obs) == {f"user_{i}" for i in range(6)} and "local_state" in infos["user_0"]
    _, _, _, _, infos = env.step({a: 1 for a in env.agents})
    assert infos["user_0"]["cost"].tolist() == [1.0]


def test_graph_from_ap_lists_equals_the_access_product():
    from safenet_grid.wireless import access_matrix, share_an_ap

    for rows, cols, users in ((3, 3, 1), (3, 4, 2), (5, 7, 3)):
        acc = access_matrix(rows, cols, users)
        np.testing.assert_array_equal(share_an_ap(acc), acc.astype(np.int64) @ acc.T.astype(np.int64) > 0)
