"""Demand response against appendix D.2 of the DADC paper, by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from safenet.errors import ConfigError
from safenet.testing import check_game

from safenet_teams import plugin
from safenet_teams.demand_response import DemandResponseConfig, kl_to_target, make, on_probability, parallel_env


def test_forced_rows_match_the_spec():
    p = on_probability(DemandResponseConfig())
    # P(ON next | s, a) for a = natural, force OFF, force ON; force OFF rows are [0.85, 0.15], [0.875, 0.125]
    assert np.allclose(p, [[0.75, 0.15, 0.8 + 0.2 * 0.75], [0.625, 0.125, 0.8 + 0.2 * 0.625]])


def test_reward_by_hand():
    g = make({"n_devices": 4}, num_envs=1, seed=0)
    g.reset()
    obs = g.set_state([0, 1, 1, 1])
    assert obs[0, 0].tolist() == [1, 0, 0.25, 0.75] and obs[0, 1].tolist() == [0, 1, 0.25, 0.75]
    _, reward, cost, _, _, info = g.step(np.array([[0, 1, 2, 0]]))
    kl = 0.25 * math.log(0.25 / 0.7) + 0.75 * math.log(0.75 / 0.3)
    assert np.allclose(reward, -((0.0 + 0.1 + 0.2 + 0.0) / 4 + kl))
    assert cost.shape == (1, 4, 0)


def test_kl_with_empty_states_is_finite():
    assert np.isclose(kl_to_target(0.0, 0.3), math.log(1 / 0.7))
    assert np.isclose(kl_to_target(1.0, 0.3), math.log(1 / 0.3))
    assert np.isclose(kl_to_target(0.3, 0.3), 0.0)


def test_forcing_without_failures_is_deterministic():
    g = make({"n_devices": 6, "eps_off": 0.0, "eps_on": 0.0}, num_envs=2, seed=0)
    g.reset()
    g.set_state([0, 1, 0, 1, 0, 1])
    _, _, _, _, _, info = g.step(np.array([[1, 1, 2, 2, 1, 2]] * 2))
    assert info["local_state"].tolist() == [[0, 0, 1, 1, 0, 1]] * 2
    assert np.allclose(info["common_obs"], [[0.5, 0.5]] * 2)


@pytest.mark.parametrize("action", [0, 1, 2])
def test_transition_frequencies(action):
    g = make({"n_devices": 1000}, num_envs=20, seed=1)
    g.reset()
    start = np.arange(1000) % 2
    g.set_state(start)
    _, _, _, _, _, info = g.step(np.full((20, 1000), action))
    p = on_probability(DemandResponseConfig())
    s2 = info["local_state"]
    for s in (0, 1):
        assert abs(s2[:, start == s].mean() - p[s, action]) < 0.015


def test_initial_distribution_and_common_obs():
    g = make(None, num_envs=50, seed=2)
    _, info = g.reset()
    assert abs(info["local_state"].mean() - 2 / 3) < 0.015
    assert np.allclose(info["common_obs"][:, 1], info["local_state"].mean(1))


def test_protocol_spec_and_truncation():
    g = make({"n_devices": 5, "episode_length": 6}, num_envs=3, seed=0)
    check_game(g)
    spec = g.spec
    assert spec.common_obs_dim == 2 and spec.action_dims == (3,) * 5 and "exchangeable" in spec.tags
    g.reset(seed=0)
    for _ in range(6):
        _, _, _, term, trunc, info = g.step(np.zeros((3, 5), dtype=np.int64))
    assert trunc.all() and not term.any() and info["final_local_state"].shape == (3, 5)


@pytest.mark.parametrize("kw, key", [({"n_devices": 0}, "n_devices"), ({"target_on": 0.0}, "target_on"),
                                     ({"eps_on": 2.0}, "eps_on"), ({"cost_off": -0.1}, "cost_off")])
def test_bad_config_names_the_key(kw, key):
    with pytest.raises(ConfigError, match=f"env.{key}"):
        make(kw)


def test_registration_pattern_and_parallel_env():
    from pettingzoo.test import parallel_api_test
    from safenet.plugins import PluginManager

    pm = PluginManager(autoload=False, strict=True, plugins=[("safenet_teams", plugin)])
    spec, implied = pm.environment("demand_response_50")
    assert implied == {"n_devices": "50"} and spec.config is DemandResponseConfig
    assert spec.tags == make({"n_devices": 3}).spec.tags
    parallel_api_test(parallel_env(n_devices=5), num_cycles=30)
