"""Tests of the CACC platoon (safenet_cacc.cacc) and its registration (safenet_cacc.plugin).

Reference parameters unless a test says otherwise: dt = 0.1, h_st = 5, h_go = 35, v_max = 30,
u_max = 2.5, a = 1, b = 0.1, G = 1000, h* = 20, v* = 15. Actions: 0 = (0, 0), 1 = (0.5, 0),
2 = (0, 0.5), 3 = (0.5, 0.5) as (alpha, beta).
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from safenet.errors import ConfigError, SafenetError
from safenet.testing import check_game
from safenet_cacc import plugin
from safenet_cacc.cacc import (ACTION_GAINS, DEFAULT_COST_LIMIT, CaccConfig, CaccGame, make, optimal_velocity,
                               parallel_env)


def game(n: int = 3, num_envs: int = 1, seed: int = 0, **kw) -> CaccGame:
    g = make({"n_vehicles": n, **kw}, num_envs=num_envs, seed=seed)
    g.reset(seed=seed)
    return g


def V(h: float) -> float:
    """The OVM target speed written out by hand for the reference parameters."""
    if h <= 5:
        return 0.0
    if h >= 35:
        return 30.0
    return 15.0 * (1.0 - math.cos(math.pi * (h - 5.0) / 30.0))


# -- the model, by hand ---------------------------------------------------------------------------

def test_optimal_velocity_values():
    assert optimal_velocity([0.0, 3.0, 5.0]).tolist() == [0.0, 0.0, 0.0]
    assert optimal_velocity([35.0, 50.0, 1e6]).tolist() == [30.0, 30.0, 30.0]
    assert optimal_velocity(20.0) == pytest.approx(15.0, abs=1e-12)              # V(h*) = v*
    assert optimal_velocity(12.5) == pytest.approx(15.0 * (1 - math.sqrt(0.5)))  # quarter way: 4.3934
    assert optimal_velocity(12.5) == pytest.approx(4.393398, abs=1e-6)
    assert ACTION_GAINS.tolist() == [[0, 0], [0.5, 0], [0, 0.5], [0.5, 0.5]]


def test_one_step_by_hand():
    g = game(3)
    h, v = [12.5, 20.0, 40.0], [10.0, 16.0, 20.0]
    g.set_state(h, v)
    obs, reward, cost, term, trunc, info = g.step(np.array([[3, 1, 2]]))
    # vehicle 0: alpha = beta = 0.5, lead = leader at 15
    u0 = 0.5 * (V(12.5) - 10.0) + 0.5 * (15.0 - 10.0)
    # vehicle 1: alpha = 0.5 only
    u1 = 0.5 * (V(20.0) - 16.0)
    # vehicle 2: beta = 0.5 only, lead = vehicle 1 (16)
    u2 = 0.5 * (16.0 - 20.0)
    assert (u0, u1, u2) == pytest.approx((-0.3033009, -0.5, -2.0), abs=1e-6)
    v_new = [10.0 + 0.1 * u0, 16.0 + 0.1 * u1, 20.0 + 0.1 * u2]
    h_new = [12.5 + 0.05 * (15.0 + 15.0 - 10.0 - v_new[0]),
             20.0 + 0.05 * (10.0 + v_new[0] - 16.0 - v_new[1]),
             40.0 + 0.05 * (16.0 + v_new[1] - 20.0 - v_new[2])]
    np.testing.assert_allclose(info["velocity"][0], v_new, rtol=0, atol=1e-12)
    np.testing.assert_allclose(info["accel"][0], [u0, u1, u2], rtol=0, atol=1e-9)
    np.testing.assert_allclose(info["headway"][0], h_new, rtol=0, atol=1e-12)
    # observation, by hand, from the new values
    lead = [15.0, v_new[0], v_new[1]]
    u = [u0, u1, u2]
    for i in range(3):
        want = [(v_new[i] - 15.0) / 15.0,
                min(max((lead[i] - v_new[i]) / 5.0, -2.0), 2.0),
                min(max((V(h_new[i]) - v_new[i]) / 5.0, -2.0), 2.0),
                (h_new[i] + (lead[i] - v_new[i]) * 0.1 - 20.0) / 20.0,
                u[i] / 2.5]
        np.testing.assert_allclose(obs[0, i], want, rtol=1e-6, atol=1e-6)
    # reward, by hand: -(h - h*)^2 - a (v - v*)^2 - b u^2
    want_r = [-(h_new[i] - 20.0) ** 2 - (v_new[i] - 15.0) ** 2 - 0.1 * u[i] ** 2 for i in range(3)]
    np.testing.assert_allclose(reward[0], want_r, rtol=1e-12)
    assert cost[0, :, 0].tolist() == [0.0, 0.0, 0.0]            # all headways >= 10
    assert not term[0] and not trunc[0]


def test_command_and_speed_clips():
    # the command is clipped to +-2.5: far behind (V = 30) and standing still
    g = game(1)
    g.set_state([50.0], [0.0])
    _, _, _, _, _, info = g.step(np.array([[1]]))        # u = 0.5 * 30 = 15 -> 2.5
    assert info["velocity"][0, 0] == pytest.approx(0.25) and info["accel"][0, 0] == pytest.approx(2.5)
    # speeds above v_max are clipped at the first step; the realised u is (v' - v) / dt
    g.set_state([20.0], [36.0], leader_start=36.0)
    _, _, _, _, _, info = g.step(np.array([[0]]))
    assert info["velocity"][0, 0] == 30.0 and info["accel"][0, 0] == pytest.approx(-60.0)
    # speeds are clipped at 0 (needs a long step: dt = 3)
    g = game(1, dt=3.0)
    g.set_state([3.0], [2.0])                            # V(3) = 0: u = -1, v' = 2 - 3 -> 0
    _, _, _, _, _, info = g.step(np.array([[1]]))
    assert info["velocity"][0, 0] == 0.0 and info["accel"][0, 0] == pytest.approx(-2.0 / 3.0)


def test_equilibrium_is_a_fixed_point_under_any_action():
    g = game(6, num_envs=4)
    g.set_state(np.full(6, 20.0), np.full(6, 15.0))
    rng = np.random.default_rng(0)
    for _ in range(100):
        obs, reward, cost, term, trunc, info = g.step(rng.integers(0, 4, (4, 6)))
        np.testing.assert_allclose(info["headway"], 20.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(info["velocity"], 15.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(reward, 0.0, atol=1e-12)
        np.testing.assert_allclose(obs, 0.0, atol=1e-6)
        assert not cost.any() and not term.any()


def test_soft_safety_term():
    kw = dict(h_star=8.0, v_star=15.0)
    plain, soft = game(1, **kw), game(1, soft_safety_term=True, **kw)
    for g in (plain, soft):
        g.set_state([8.0], [15.0])
    r0 = plain.step(np.array([[0]]))[1][0, 0]
    r1 = soft.step(np.array([[0]]))[1][0, 0]
    assert r0 == pytest.approx(0.0) and r1 == pytest.approx(-5.0 * (8.0 - 10.0) ** 2)


# -- collision ------------------------------------------------------------------------------------

def crash_setup(t: int, episode_steps: int = 600) -> CaccGame:
    """Vehicle 0 at 25 m/s, 1.2 m behind a 15 m/s leader: with action 0 its headway is 0.2 m next step."""
    g = game(2, episode_steps=episode_steps)
    g.set_state([1.2, 20.0], [25.0, 25.0], t=t)
    return g


def test_collision_is_absorbing_until_the_next_multiple_of_60():
    g = crash_setup(t=55)
    acts = np.array([[0, 3]])
    obs, reward, cost, term, trunc, info = g.step(acts)                 # step 56: collision
    assert info["headway"][0, 0] == pytest.approx(0.2) and info["collided"][0]
    assert reward[0].tolist() == [-1000.0, -1000.0] and cost[0, :, 0].tolist() == [1.0, 1.0]
    assert not term[0] and not trunc[0]
    frozen_h, frozen_v, frozen_obs = info["headway"].copy(), info["velocity"].copy(), obs.copy()
    for step in (57, 58, 59):
        obs, reward, cost, term, trunc, info = g.step(np.array([[1, 2]]))
        assert reward[0].tolist() == [-1000.0, -1000.0] and cost[0, :, 0].tolist() == [1.0, 1.0]
        assert not term[0] and not trunc[0], step
        np.testing.assert_array_equal(info["headway"], frozen_h)            # no more simulation
        np.testing.assert_array_equal(info["velocity"], frozen_v)
        np.testing.assert_array_equal(obs, frozen_obs)
    obs, reward, cost, term, trunc, info = g.step(np.array([[3, 3]]))      # step 60: the episode ends
    assert term[0] and not trunc[0] and reward[0].tolist() == [-1000.0, -1000.0]
    np.testing.assert_array_equal(info["final_headway"], frozen_h)
    np.testing.assert_array_equal(info["final_obs"], frozen_obs)
    assert info["final_collided"][0] and not info["collided"][0]
    # auto-reset: a fresh catch-up start
    assert 30.0 <= info["headway"][0, 0] < 50.0 and info["headway"][0, 1] == 20.0
    assert g.state()[0, -1] == 0.0


def test_collision_on_a_multiple_of_60_ends_at_once_and_short_episodes_end_at_T():
    g = crash_setup(t=119)
    _, reward, _, term, trunc, _ = g.step(np.array([[0, 0]]))             # step 120: collision and end
    assert term[0] and not trunc[0] and reward[0, 0] == -1000.0
    g = crash_setup(t=70, episode_steps=100)                               # next multiple 120 > T = 100
    ends = []
    for _ in range(30):
        _, _, _, term, trunc, _ = g.step(np.array([[0, 0]]))
        ends.append((bool(term[0]), bool(trunc[0])))
    assert ends[:-1] == [(False, False)] * 29 and ends[-1] == (True, False)  # at step 100, terminated


def test_collision_freezes_the_slowdown_leader_too():
    g = game(2, scenario="slowdown")
    g.set_state([1.2, 20.0], [30.0, 30.0], leader_start=20.0, t=10)       # leader at 19.83 m/s, braking
    obs, reward, _, _, _, info = g.step(np.zeros((1, 2), dtype=np.int64))
    assert info["collided"][0] and info["headway"][0, 0] < 1.0
    frozen_obs, frozen_v0 = obs.copy(), info["leader_speed"].copy()
    for _ in range(5):
        obs, reward, _, term, _, info = g.step(np.full((1, 2), 3))
        np.testing.assert_array_equal(obs, frozen_obs)
        np.testing.assert_array_equal(info["leader_speed"], frozen_v0)
        assert reward[0].tolist() == [-1000.0, -1000.0] and not term[0]


def test_collision_affects_only_its_copy():
    g = game(2, num_envs=2)
    g.set_state([[1.2, 20.0], [20.0, 20.0]], [[25.0, 25.0], [15.0, 15.0]])
    _, reward, cost, _, _, info = g.step(np.zeros((2, 2), dtype=np.int64))
    assert info["collided"].tolist() == [True, False]
    assert reward[0].tolist() == [-1000.0, -1000.0] and np.allclose(reward[1], 0.0)
    assert cost[1].sum() == 0.0


# -- scenarios, episodes, costs -----------------------------------------------------------------

def test_catchup_initial_conditions():
    g = make({}, num_envs=500, seed=3)
    _, info = g.reset(seed=3)
    h, v = info["headway"], info["velocity"]
    assert g.spec.name == "cacc_catchup" and g.n == 8
    assert np.all((h[:, 0] >= 30.0) & (h[:, 0] < 50.0)) and np.all(h[:, 1:] == 20.0)
    assert h[:, 0].min() < 31.0 and h[:, 0].max() > 49.0
    assert np.all(v == 15.0) and np.all(info["leader_speed"] == 15.0)
    # the leader holds v* throughout
    for _ in range(400):
        _, _, _, _, _, info = g.step(np.full((500, 8), 3))
    assert np.all(info["leader_speed"] == 15.0)


def test_slowdown_initial_conditions_and_leader_profile():
    g = make({"scenario": "slowdown"}, num_envs=500, seed=4)
    _, info = g.reset(seed=4)
    h, v, v0 = info["headway"], info["velocity"], info["leader_speed"]
    assert g.spec.name == "cacc_slowdown"
    assert np.all(h == 20.0)
    assert np.all((v >= 22.5) & (v < 37.5)) and np.all(v == v[:, :1])     # one draw per copy
    assert v.min() < 23.0 and v.max() > 37.0
    np.testing.assert_array_equal(v0, v[:, 0])                              # the leader starts at that speed
    speeds = [v0]
    for _ in range(400):
        _, _, _, _, _, info = g.step(np.full((500, 8), 3))
        speeds.append(info["leader_speed"])
    speeds = np.array(speeds)                                              # [401, B]
    t = np.arange(401)[:, None]
    # the reference's profile: np.linspace(v0, v*, 300) over the first 300 steps, then v*
    reference = np.concatenate([np.linspace(v0, 15.0, 300), np.full((101, v0.size), 15.0)])
    np.testing.assert_allclose(speeds, reference, rtol=0, atol=1e-12)
    assert np.all(speeds[299] == 15.0) and np.all(speeds[298] != 15.0)
    # speeds above v_max (30) are clipped at the first step
    g.reset(seed=4)
    fast = g._v[:, 0] > 30.0
    assert fast.any()
    _, _, _, _, _, info = g.step(np.zeros((500, 8), dtype=np.int64))
    assert np.all(info["velocity"][fast] == 30.0)


def test_cost_counting():
    g = game(3, safe_headway=10.0)
    g.set_state([9.9, 10.0, 25.0], [15.0, 15.0, 15.0])                      # steady: nothing moves
    total = np.zeros(3)
    for _ in range(7):
        _, _, cost, _, _, _ = g.step(np.zeros((1, 3), dtype=np.int64))
        total += cost[0, :, 0]
    assert total.tolist() == [7.0, 0.0, 0.0]
    s = g.spec
    assert s.cost_names == ("unsafe_headway",) and s.n_costs == (1, 1, 1)
    assert s.cost_limits == ((DEFAULT_COST_LIMIT,),) * 3
    assert make({"cost_limit": 3.0}).spec.cost_limits[0] == (3.0,)


def test_default_cost_limit_separates_random_from_gain_05_05():
    """Uniform-random gains break the default limit; always (0.5, 0.5) stays within it (in expectation)."""
    B = 64
    for scenario in ("catchup", "slowdown"):
        costs = {}
        for rule in ("random", 3):
            g = make({"scenario": scenario}, num_envs=B, seed=0)
            g.reset(seed=0)
            rng = np.random.default_rng(1)
            total, done = np.zeros((B, 8)), np.zeros(B, dtype=bool)
            for _ in range(600):
                a = rng.integers(0, 4, (B, 8)) if rule == "random" else np.full((B, 8), 3)
                _, _, c, term, trunc, _ = g.step(a)
                total[~done] += c[~done, :, 0]
                done |= term | trunc
            costs[rule] = total.mean(axis=0)                               # per-vehicle expected cost
        assert costs["random"].min() > DEFAULT_COST_LIMIT, (scenario, costs)
        assert costs[3].max() < DEFAULT_COST_LIMIT, (scenario, costs)


def test_truncation_and_auto_reset():
    g = game(4, num_envs=3, episode_steps=50)
    g.step(np.full((3, 4), 3))
    g.set_state(np.full(4, 20.0), np.full(4, 15.0), t=[10, 48, 49])
    _, _, _, term, trunc, info = g.step(np.full((3, 4), 3))
    assert trunc.tolist() == [False, False, True] and not term.any()
    assert info["final_obs"].shape == (3, 4, 5) and info["final_state"].shape == (3, 10)
    np.testing.assert_allclose(info["final_headway"][2], 20.0)             # the ended copy's last values
    assert 30.0 <= info["headway"][2, 0] < 50.0                              # its new episode
    np.testing.assert_allclose(info["final_state"][2, -1], 1.0)              # clock at the end
    assert g.state()[:, -1].tolist() == pytest.approx([11 / 50, 49 / 50, 0.0])
    _, _, _, term, trunc, info = g.step(np.full((3, 4), 3))
    assert trunc.tolist() == [False, True, False] and "final_obs" in info
    _, _, _, term, trunc, info = g.step(np.full((3, 4), 3))
    assert not trunc.any() and "final_obs" not in info


def test_state_layout():
    g = game(3)
    g.set_state([10.0, 20.0, 30.0], [15.0, 30.0, 0.0], leader_start=15.0)
    s = g.state()
    assert s.shape == (1, 8) and g.spec.state_dim == 8
    np.testing.assert_allclose(s[0], [-0.5, 0.0, 0.5, 0.0, 1.0, -1.0, 0.0, 0.0])


def test_seeding_reproducible():
    def run(seed: int, scenario: str):
        g = make({"scenario": scenario}, num_envs=4, seed=123)
        out = [g.reset(seed=seed)[0]]
        rng = np.random.default_rng(0)
        for _ in range(650):
            out.append(g.step(rng.integers(0, 4, (4, 8)))[0])
        return out
    for scenario in ("catchup", "slowdown"):
        a, b, c = run(1, scenario), run(1, scenario), run(2, scenario)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not np.array_equal(a[0], c[0])


def test_global_numpy_seed_is_not_used():
    np.random.seed(0)
    a = make({}, num_envs=2, seed=5).reset()[0]
    np.random.seed(1)
    b = make({}, num_envs=2, seed=5).reset()[0]
    np.testing.assert_array_equal(a, b)


# -- bad input ------------------------------------------------------------------------------------

def test_step_before_reset():
    with pytest.raises(SafenetError, match="reset"):
        make({}).step(np.zeros((1, 8), dtype=np.int64))


def test_bad_actions():
    g = game(3, num_envs=2)
    with pytest.raises(SafenetError, match=r"shape \(2, 3\)"):
        g.step(np.zeros((1, 3), dtype=np.int64))
    bad = np.zeros((2, 3), dtype=np.int64)
    bad[1, 1] = 4
    with pytest.raises(SafenetError, match="vehicle_1 got action 4.*0..3"):
        g.step(bad)
    with pytest.raises(SafenetError, match="integers"):
        g.step(np.full((2, 3), 0.5))


@pytest.mark.parametrize("kw, key", [
    ({"n_vehicles": 0}, "env.n_vehicles"), ({"n_vehicles": 2.5}, "env.n_vehicles"),
    ({"scenario": "stop_and_go"}, "env.scenario"), ({"dt": 0.0}, "env.dt"), ({"episode_steps": 0}, "env.episode_steps"),
    ({"h_go": 4.0}, "env.h_go"), ({"v_max": -1.0}, "env.v_max"), ({"u_max": float("nan")}, "env.u_max"),
    ({"collision_penalty": -1.0}, "env.collision_penalty"), ({"cost_limit": -1.0}, "env.cost_limit"),
    ({"safe_headway": "ten"}, "env.safe_headway"), ({"v_star": 40.0}, "env.v_star"),
    ({"soft_safety_term": "yes"}, "env.soft_safety_term"), ({"collision_end_interval": 0}, "env.collision_end_interval"),
])
def test_bad_config(kw, key):
    with pytest.raises(ConfigError, match=key):
        make(kw)


def test_make_from_dict_and_dataclass():
    assert make(CaccConfig(n_vehicles=5)).n == 5
    assert make({"scenario": "slowdown", "n_vehicles": 4}).spec.name == "cacc_slowdown"
    with pytest.raises(ConfigError, match="unknown CACC config keys.*'n_vehicle'"):
        make({"n_vehicle": 4})
    with pytest.raises(SafenetError, match="num_envs"):
        make({}, num_envs=0)


# -- protocol, scale, plugin, PettingZoo ------------------------------------------------------------

def test_spec():
    s = make({}).spec
    assert s.n == 8 and s.agents[0] == "vehicle_0" and s.obs_dims == (5,) * 8 and s.action_dims == (4,) * 8
    assert s.episode_length == 600 and s.state_dim == 18
    assert {"discrete", "global_state", "constrained"} <= s.tags and "finite" not in s.tags
    assert s.graph.diameter == 7 and s.graph.neighbours(3).tolist() == [2, 4]
    assert s.tags >= plugin.TAGS


@pytest.mark.parametrize("scenario", ["catchup", "slowdown"])
def test_check_game(scenario):
    check_game(make({"scenario": scenario, "n_vehicles": 5}, num_envs=3, seed=0))
    check_game(make({"scenario": scenario, "episode_steps": 70}, num_envs=2, seed=0), steps=200)


def test_two_hundred_vehicles():
    g = make({"n_vehicles": 200, "scenario": "slowdown"}, num_envs=16, seed=0)
    obs, _ = g.reset(seed=0)
    assert obs.shape == (16, 200, 5)
    t0 = time.perf_counter()
    for _ in range(200):
        obs, reward, cost, term, trunc, info = g.step(np.full((16, 200), 3))
    assert time.perf_counter() - t0 < 5.0
    assert obs.shape == (16, 200, 5) and reward.shape == (16, 200) and cost.shape == (16, 200, 1)
    assert g.state().shape == (16, 402) and np.all(np.isfinite(reward))


def test_hook_registration():
    from safenet.plugins import PluginManager

    pm = PluginManager(autoload=False, plugins=[("safenet_cacc", plugin)])
    assert not pm.failed
    for name, scenario in (("cacc_catchup", "catchup"), ("cacc_slowdown", "slowdown")):
        spec, implied = pm.environment(name)
        assert spec.name == name and implied == {} and spec.defaults == {"scenario": scenario}
        assert spec.load() is make and spec.config is CaccConfig
        assert make(spec.defaults).spec.name == name


def test_config_is_an_omegaconf_schema():
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.structured(CaccConfig), {"scenario": "slowdown", "n_vehicles": 12})
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, CaccConfig) and make(obj).n == 12


def test_parallel_env_api():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env(), num_cycles=50)
    env = parallel_env(scenario="slowdown", n_vehicles=3)
    obs, infos = env.reset(seed=0)
    assert set(obs) == {"vehicle_0", "vehicle_1", "vehicle_2"} and obs["vehicle_0"].shape == (5,)
    _, rewards, terms, truncs, infos = env.step({a: 3 for a in env.agents})
    assert infos["vehicle_0"]["cost"].shape == (1,) and isinstance(rewards["vehicle_2"], float)


def test_sized_platoon_names():
    from safenet.trainer import Selection, make_game

    from safenet.plugins import get_plugin_manager

    spec, implied = get_plugin_manager().environment("cacc_slowdown_32")
    assert spec.pattern and implied == {"scenario": "slowdown", "n_vehicles": "32"}
    sel = Selection.resolve("dppo", "cacc_catchup_64")
    game = make_game(sel, sel.compose(overrides=[]), 2, seed=0)
    assert game.spec.n == 64 and game.spec.graph.n == 64
    spec, implied = get_plugin_manager().environment("cacc_catchup")
    assert implied == {} and spec.name == "cacc_catchup"
