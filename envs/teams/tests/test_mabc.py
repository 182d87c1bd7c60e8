"""Multi-access broadcast against appendix D.1 of the DADC paper, step by step by hand."""
from __future__ import annotations

import numpy as np
import pytest

from safenet.errors import ConfigError, SafenetError
from safenet.testing import check_game

from safenet_teams import plugin
from safenet_teams.mabc import MabcConfig, MabcGame, make, parallel_env


def game(num_envs=1, **kw) -> MabcGame:
    return make(kw, num_envs=num_envs, seed=0)


def step_from(g: MabcGame, channel, buffers, actions):
    g.reset(seed=0)
    g.set_state(channel, buffers)
    return g.step(np.broadcast_to(np.asarray(actions), (g.num_envs, 2)))


# no arrivals and a frozen channel: every outcome below is deterministic
FROZEN = dict(arrival_prob_0=0.0, arrival_prob_1=0.0, alpha0=1.0, alpha1=1.0)


def test_single_transmission_on_idle_channel_succeeds():
    g = game(**FROZEN)
    obs, reward, cost, term, trunc, info = step_from(g, 0, [1, 1], [1, 0])
    assert np.allclose(reward, 1.0 - 0.4)                                   # -κ·1 + r·1
    assert info["transmitted"].tolist() == [[1, 0]]
    assert info["local_state"].tolist() == [[0, 1]]                         # packet left buffer 0
    assert info["common_obs"].tolist() == [[1, 0, 1, 0]]                    # both txs, channel seen idle
    assert obs[0, 0].tolist() == [0, 1, 0, 1, 0] and obs[0, 1].tolist() == [1, 1, 0, 1, 0]
    assert g.state().tolist() == [[0, 0, 1]] and cost.shape == (1, 2, 0)


def test_collision_costs_both_and_keeps_packets():
    g = game(**FROZEN)
    _, reward, _, _, _, info = step_from(g, 0, [1, 1], [1, 1])
    assert np.allclose(reward, -0.8)
    assert info["local_state"].tolist() == [[1, 1]] and info["common_obs"].tolist() == [[1, 1, 1, 0]]


def test_busy_channel_fails_and_is_revealed():
    g = game(**FROZEN)
    _, reward, _, _, _, info = step_from(g, 1, [1, 1], [0, 1])
    assert np.allclose(reward, -0.4)
    assert info["local_state"].tolist() == [[1, 1]] and info["common_obs"].tolist() == [[0, 1, 0, 1]]


def test_silence_reveals_nothing_and_empty_buffers_cannot_transmit():
    g = game(**FROZEN)
    _, reward, _, _, _, info = step_from(g, 0, [0, 0], [1, 1])              # "transmit" with nothing to send
    assert np.allclose(reward, 0.0)
    assert info["transmitted"].tolist() == [[0, 0]] and info["common_obs"].tolist() == [[0, 0, 0, 0]]
    _, reward, _, _, _, info = step_from(g, 1, [1, 1], [0, 0])
    assert np.allclose(reward, 0.0) and info["common_obs"].tolist() == [[0, 0, 0, 0]]


def test_arrivals_fill_buffers_and_are_dropped_when_full():
    g = game(arrival_prob_0=1.0, arrival_prob_1=1.0, alpha0=1.0, alpha1=1.0)
    _, _, _, _, _, info = step_from(g, 0, [1, 0], [1, 0])                  # success, then a new packet
    assert info["local_state"].tolist() == [[1, 1]]
    _, _, _, _, _, info = step_from(g, 0, [1, 1], [0, 0])                  # full buffers drop arrivals
    assert info["local_state"].tolist() == [[1, 1]]


def test_arrival_and_channel_frequencies():
    g = game(num_envs=20000)
    g.reset(seed=1)
    g.set_state(np.arange(20000) % 2, [0, 0])
    _, _, _, _, _, info = g.step(np.zeros((20000, 2), dtype=np.int64))
    assert np.allclose(info["local_state"].mean(0), [0.3, 0.6], atol=0.015)
    chan = g.state()[:, 0]
    stayed = chan == (np.arange(20000) % 2)
    assert abs(stayed.mean() - 0.75) < 0.015


def test_channel_is_markov_with_given_stay_probabilities():
    g = game(**{**FROZEN, "alpha0": 0.0, "alpha1": 1.0})
    step_from(g, 0, [0, 0], [0, 0])
    assert g.state()[0, 0] == 1                                              # idle always leaves
    g.step(np.zeros((1, 2), dtype=np.int64))
    assert g.state()[0, 0] == 1                                              # busy always stays


def test_initial_distribution():
    g = game(num_envs=20000)
    g.reset(seed=3)
    s = g.state()
    assert abs(s[:, 0].mean() - 0.5) < 0.015 and np.allclose(s[:, 1:].mean(0), [0.3, 0.6], atol=0.015)
    _, info = g.reset(seed=3)
    assert np.all(info["common_obs"] == 0) and np.all(info["episode_step"] == 0)


def test_truncation_final_values_and_auto_reset():
    g = game(num_envs=3, episode_length=4)
    g.reset(seed=0)
    for t in range(4):
        obs, _, _, term, trunc, info = g.step(np.ones((3, 2), dtype=np.int64))
        assert info["episode_step"].tolist() == ([t + 1] * 3 if t < 3 else [0] * 3)
    assert trunc.all() and not term.any()
    assert info["final_episode_step"].tolist() == [4, 4, 4] and info["final_obs"].shape == (3, 2, 5)
    assert np.all(info["common_obs"] == 0) and info["final_state"].shape == (3, 3)


def test_seeding_reproducible():
    def run(seed):
        g = game(num_envs=4)
        obs, _ = g.reset(seed=seed)
        out = [obs]
        rng = np.random.default_rng(0)
        for _ in range(30):
            out.append(g.step(rng.integers(0, 2, (4, 2)))[0])
        return np.stack(out)

    assert np.array_equal(run(5), run(5)) and not np.array_equal(run(5), run(6))


# A channel that flips every slot (idle, busy, idle, ...), transmitter 0 always refilled, transmitter 1 never:
# one hand-written trajectory, whose common observations differ only in which slot's channel they show.
FLIPPING = dict(arrival_prob_0=1.0, arrival_prob_1=0.0, alpha0=0.0, alpha1=0.0)
#            actions  reward  buffers after  common obs: after_slot (S_t)   before_acting (S_{t+1})
TRAJECTORY = [((1, 0), 0.6, (1, 1), (1, 0, 1, 0), (1, 0, 0, 1)),     # t=0 idle: sole transmission succeeds
              ((0, 0), 0.0, (1, 1), (0, 0, 0, 0), (0, 0, 0, 0)),     # t=1 busy: silence reveals nothing
              ((1, 1), -0.8, (1, 1), (1, 1, 1, 0), (1, 1, 0, 1)),    # t=2 idle: collision
              ((0, 1), -0.4, (1, 1), (0, 1, 0, 1), (0, 1, 1, 0)),    # t=3 busy: fails
              ((0, 1), 0.6, (1, 0), (0, 1, 1, 0), (0, 1, 0, 1)),     # t=4 idle: succeeds, no refill
              ((0, 1), 0.0, (1, 0), (0, 0, 0, 0), (0, 0, 0, 0))]     # t=5 busy: empty buffer sends nothing


@pytest.mark.parametrize("timing", ["after_slot", "before_acting"])
def test_common_obs_under_each_channel_timing(timing):
    g = game(num_envs=2, channel_timing=timing, **FLIPPING)
    obs, info = g.reset(seed=3)
    assert not info["common_obs"].any() and not obs[..., 1:].any()          # nothing is common at t = 0
    g.set_state(0, [1, 1])
    for t, (actions, reward, buffers, after, before) in enumerate(TRAJECTORY):
        obs, r, _, _, _, info = g.step(np.array([actions, actions]))
        assert info["channel"].tolist() == [t % 2] * 2
        assert r.tolist() == [[pytest.approx(reward)] * 2] * 2
        assert info["local_state"].tolist() == [list(buffers)] * 2
        expected = after if timing == "after_slot" else before
        assert info["common_obs"].tolist() == [list(expected)] * 2, t
        assert obs[:, 0, 1:].tolist() == obs[:, 1, 1:].tolist() == [list(expected)] * 2   # both agents see it
        assert obs[:, :, 0].tolist() == [list(buffers)] * 2                               # each its own buffer


def test_protocol_and_spec():
    check_game(game(num_envs=4, episode_length=7))
    check_game(game(num_envs=4, episode_length=7, channel_timing="before_acting"))
    spec = game().spec
    assert spec.common_obs_dim == 4 and spec.n_local_states == (2, 2) and spec.action_dims == (2, 2)
    assert {"finite", "discrete", "common_obs", "global_state"} <= spec.tags


@pytest.mark.parametrize("kw, key", [({"arrival_prob_0": 1.5}, "arrival_prob_0"), ({"alpha1": -0.1}, "alpha1"),
                                     ({"tx_cost": -1}, "tx_cost"), ({"episode_length": 0}, "episode_length"),
                                     ({"channel_timing": "never"}, "channel_timing")])
def test_bad_config_names_the_key(kw, key):
    with pytest.raises(ConfigError, match=f"env.{key}"):
        make(kw)
    with pytest.raises(ConfigError, match="valid keys"):
        make({"arrival": 0.3})


def test_bad_actions():
    g = game(num_envs=2)
    g.reset()
    with pytest.raises(SafenetError, match="valid actions are 0..1"):
        g.step(np.full((2, 2), 2))
    with pytest.raises(SafenetError, match="shape"):
        g.step(np.zeros((3, 2), dtype=np.int64))


def test_registration_and_parallel_env():
    from pettingzoo.test import parallel_api_test
    from safenet.plugins import PluginManager

    pm = PluginManager(autoload=False, strict=True, plugins=[("safenet_teams", plugin)])
    spec, implied = pm.environment("multi-access-broadcast")
    assert implied == {} and spec.load() is make and spec.config is MabcConfig
    assert spec.tags == make().spec.tags
    parallel_api_test(parallel_env(), num_cycles=50)
    env = parallel_env(episode_length=3)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"transmitter_0", "transmitter_1"} and obs["transmitter_0"].shape == (5,)
