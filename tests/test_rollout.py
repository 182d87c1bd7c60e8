"""Returns/advantages against hand-computed values, and the Collector on small games."""
from __future__ import annotations

import numpy as np
import pytest

from safenet.game import BatchedGame, GameSpec
from safenet.graph import Graph
from safenet.rollout import Collector, Rollout, discounted_returns, gae
from safenet.testing import ToyConfig, ToyLineGame


# ------------------------------------------------------------------------------------------------
# discounted_returns
# ------------------------------------------------------------------------------------------------

def test_discounted_returns_hand_computed():
    r = np.array([1.0, 2.0, 3.0, 4.0])
    done = np.array([0, 1, 0, 0], dtype=bool)
    # t=3: 4; t=2: 3 + .5*4 = 5; t=1: 2 (episode ends); t=0: 1 + .5*2 = 2
    np.testing.assert_allclose(discounted_returns(r, done, 0.5), [2.0, 2.0, 5.0, 4.0])
    # bootstrap enters the last open episode only: t=3: 4+.5*10=9; t=2: 3+4.5=7.5
    np.testing.assert_allclose(discounted_returns(r, done, 0.5, bootstrap=np.array(10.0)), [2.0, 2.0, 7.5, 9.0])
    # no dones: plain discounted sums
    np.testing.assert_allclose(discounted_returns(r, np.zeros(4, bool), 0.5), [3.25, 4.5, 5.0, 4.0])


def test_discounted_returns_done_broadcasts_over_agents_and_copies():
    T, B, n = 3, 2, 2
    r = np.ones((T, B, n))
    r[:, :, 1] = 2.0
    done = np.zeros((T, B), dtype=bool)
    done[0, 1] = True       # copy 1's first episode ends after t=0
    g = discounted_returns(r, done, 0.9)
    assert g.shape == (T, B, n)
    np.testing.assert_allclose(g[:, 0, 0], [1 + 0.9 + 0.81, 1 + 0.9, 1])
    np.testing.assert_allclose(g[:, 1, 0], [1, 1.9, 1])
    np.testing.assert_allclose(g[:, :, 1], 2 * g[:, :, 0])
    np.testing.assert_allclose(discounted_returns(r, done, 0.9, bootstrap=np.full((B, n), 5.0))[0, 1, 0], 1.0)


# ------------------------------------------------------------------------------------------------
# GAE
# ------------------------------------------------------------------------------------------------

def _gae_case():
    # two copies: copy 0 is *truncated* after t=1, copy 1 *terminated* after t=1
    r = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    v = np.array([[0.5, 0.5], [1.0, 1.0], [1.5, 1.5]])
    nv = np.array([[1.0, 1.0], [4.0, 4.0], [2.0, 2.0]])       # nv[1]: value of the final state (pre-reset)
    term = np.array([[0, 0], [0, 1], [0, 0]], dtype=bool)
    done = np.array([[0, 0], [1, 1], [0, 0]], dtype=bool)
    return r, v, nv, term, done


def test_gae_hand_computed_terminated_vs_truncated():
    r, v, nv, term, done = _gae_case()
    adv, ret = gae(r, v, nv, term, done, gamma=0.9, lam=0.5)
    # copy 0 (truncated): δ2 = 3+.9*2-1.5 = 3.3; δ1 = 2+.9*4-1 = 4.6 (bootstraps); δ0 = 1+.9*1-.5 = 1.4
    #   A2 = 3.3; A1 = 4.6 (trace cut); A0 = 1.4 + .45*4.6 = 3.47
    # copy 1 (terminated): δ1 = 2-1 = 1 (no bootstrap); A1 = 1; A0 = 1.4 + .45*1 = 1.85
    np.testing.assert_allclose(adv[:, 0], [3.47, 4.6, 3.3])
    np.testing.assert_allclose(adv[:, 1], [1.85, 1.0, 3.3])
    np.testing.assert_allclose(ret, adv + v)
    np.testing.assert_allclose(ret[:, 0], [3.97, 5.6, 4.8])


def test_gae_broadcasts_flags_over_agents():
    r, v, nv, term, done = _gae_case()
    stack = lambda x: np.stack([x, 2 * x], axis=-1)  # noqa: E731   [T, B, n=2]
    adv, _ = gae(stack(r), stack(v), stack(nv), term, done, gamma=0.9, lam=0.5)
    assert adv.shape == (3, 2, 2)
    np.testing.assert_allclose(adv[..., 1], 2 * adv[..., 0])
    np.testing.assert_allclose(adv[:, 1, 0], [1.85, 1.0, 3.3])


def test_gae_lambda_limits():
    rng = np.random.default_rng(0)
    T, B = 6, 3
    r, v = rng.normal(size=(T, B)), rng.normal(size=(T, B))
    boot = rng.normal(size=B)
    nv = np.concatenate([v[1:], boot[None]])
    no = np.zeros((T, B), dtype=bool)
    # λ = 0: one-step TD errors
    adv0, _ = gae(r, v, nv, no, no, gamma=0.8, lam=0.0)
    np.testing.assert_allclose(adv0, r + 0.8 * nv - v)
    # λ = 1 without episode ends: Monte-Carlo returns bootstrapped with the last value
    _, ret1 = gae(r, v, nv, no, no, gamma=0.8, lam=1.0)
    np.testing.assert_allclose(ret1, discounted_returns(r, no[:, :], 0.8, bootstrap=boot))


# ------------------------------------------------------------------------------------------------
# Collector
# ------------------------------------------------------------------------------------------------

class RandomAgent:
    """Uniform random actions; records the flags it was called with."""

    def __init__(self, spec: GameSpec, seed: int = 0) -> None:
        self.spec, self.rng, self.calls = spec, np.random.default_rng(seed), []

    def act(self, obs, info, deterministic=False):
        self.calls.append(deterministic)
        B = obs.shape[0]
        a = self.rng.integers(0, 2, size=(B, self.spec.n))
        return a, {"tag": np.full((B, self.spec.n), len(self.calls), dtype=np.float32)}


class RecordingToy(ToyLineGame):
    """The toy game, keeping a copy of every step's outputs."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.log: list = []

    def step(self, actions):
        out = super().step(actions)
        self.log.append(tuple(np.copy(x) if isinstance(x, np.ndarray) else
                              {k: np.copy(v) for k, v in x.items()} for x in out))
        return out


def test_collector_shapes_and_final_obs_on_toy():
    cfg = ToyConfig(n_agents=3, episode_length=4)
    game = RecordingToy(cfg, num_envs=2, seed=0)
    col = Collector(game, seed=1, gamma=0.5)
    first_obs = col.obs.copy()
    agent = RandomAgent(game.spec)
    T, B, n = 10, 2, 3
    ro, stats = col.collect(agent, T)
    assert isinstance(ro, Rollout)
    assert ro.obs.shape == ro.next_obs.shape == (T, B, n, 2)
    assert ro.actions.shape == ro.reward.shape == (T, B, n)
    assert ro.cost.shape == (T, B, n, 1)
    assert ro.terminated.shape == ro.truncated.shape == ro.done.shape == (T, B)
    assert ro.steps == T * B
    assert ro.extras["tag"].shape == (T, B, n)
    np.testing.assert_array_equal(ro.extras["tag"][:, 0, 0], np.arange(1, T + 1))
    assert agent.calls == [False] * T
    for key in ("local_state", "next_local_state"):
        assert ro.infos[key].shape == (T, B, n)
    assert ro.infos["state"].shape == ro.infos["next_state"].shape == (T, B, n)

    np.testing.assert_array_equal(ro.obs[0], first_obs)
    done_steps = [t for t in range(T) if ro.done[t].any()]
    assert done_steps == [3, 7]
    assert not ro.terminated.any() and ro.truncated[[3, 7]].all()
    for t, (obs2, rew, cost, term, trunc, info) in enumerate(game.log):
        np.testing.assert_array_equal(ro.reward[t], rew)
        np.testing.assert_array_equal(ro.cost[t], cost)
        if t + 1 < T:
            np.testing.assert_array_equal(ro.obs[t + 1], obs2)            # obs continues with the reset obs
        if t in done_steps:
            np.testing.assert_array_equal(ro.next_obs[t], info["final_obs"])
            np.testing.assert_array_equal(ro.infos["next_local_state"][t], info["final_local_state"])
            np.testing.assert_array_equal(ro.infos["next_state"][t], info["final_state"])
        else:
            np.testing.assert_array_equal(ro.next_obs[t], obs2)
            np.testing.assert_array_equal(ro.infos["next_local_state"][t], info["local_state"])
    # the toy's observation is the one-hot local state: next_obs agrees with next_local_state everywhere
    np.testing.assert_array_equal(ro.next_obs.argmax(-1), ro.infos["next_local_state"])
    np.testing.assert_array_equal(ro.obs.argmax(-1), ro.infos["local_state"])

    # episode statistics: two complete episodes per copy, in order of ending
    assert len(stats) == 4 and stats.lengths == [4, 4, 4, 4]
    for k, (t0, b) in enumerate([(0, 0), (0, 1), (4, 0), (4, 1)]):
        np.testing.assert_allclose(stats.returns[k], ro.reward[t0:t0 + 4, b].sum(0))
        np.testing.assert_allclose(stats.costs[k], ro.cost[t0:t0 + 4, b].sum(0))
        disc = (0.5 ** np.arange(4))[:, None] * ro.reward[t0:t0 + 4, b]
        np.testing.assert_allclose(stats.disc_returns[k], disc.sum(0))


def test_collector_keeps_episode_totals_across_collects_and_restart_clears_them():
    game = ToyLineGame(ToyConfig(n_agents=2, episode_length=6), num_envs=3, seed=0)
    col = Collector(game, seed=0)
    agent = RandomAgent(game.spec)
    ro1, s1 = col.collect(agent, 4)
    ro2, s2 = col.collect(agent, 4, deterministic=True)
    assert agent.calls[-1] is True
    assert len(s1) == 0 and len(s2) == 3
    assert s2.lengths == [6, 6, 6]
    assert s2.disc_returns == []          # no gamma, no discounted returns
    for b in range(3):
        np.testing.assert_allclose(s2.returns[b], ro1.reward[:, b].sum(0) + ro2.reward[:2, b].sum(0))
        np.testing.assert_allclose(s2.costs[b], ro1.cost[:, b].sum(0) + ro2.cost[:2, b].sum(0))
    # restart: fresh episodes, totals start from zero
    col.collect(agent, 3)
    col.restart(seed=5)
    ro3, s3 = col.collect(agent, 6)
    assert s3.lengths == [6, 6, 6]
    for b in range(3):
        np.testing.assert_allclose(s3.returns[b], ro3.reward[:, b].sum(0))


class CountGame(BatchedGame):
    """Copy b's episodes last ``b + 2`` steps: even copies terminate, odd copies are truncated.

    obs = steps since the episode started; reward 1 for every agent; cost 1 for agent 0 only.
    """

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.spec = GameSpec(name="count", agents=("a", "b"), graph=Graph.line(2), obs_dims=(1, 1),
                             action_kind="discrete", action_dims=(2, 2), episode_length=10,
                             n_costs=(1, 0), cost_limits=((1.0,), ()))
        self.length = np.arange(num_envs) + 2
        self.t = np.zeros(num_envs, dtype=np.int64)

    def _obs(self, t):
        return np.repeat(t.astype(np.float32)[:, None, None], 2, axis=1)

    def reset(self, seed=None):
        self.t[:] = 0
        return self._obs(self.t), {}

    def step(self, actions):
        self.check_actions(actions)
        self.t += 1
        end = self.t >= self.length
        term = end & (np.arange(self.num_envs) % 2 == 0)
        trunc = end & ~term
        final = self._obs(self.t)
        self.t[end] = 0
        reward = np.ones((self.num_envs, 2), dtype=np.float32)
        cost = np.zeros((self.num_envs, 2, 1), dtype=np.float32)
        cost[:, 0, 0] = 1.0
        return self._obs(self.t), reward, cost, term, trunc, {"final_obs": final}


def test_collector_with_copies_ending_at_different_times():
    game = CountGame(num_envs=3)
    col = Collector(game, seed=0)
    ro, stats = col.collect(RandomAgent(game.spec), 12)
    for b, L in enumerate([2, 3, 4]):
        t = np.arange(12)
        np.testing.assert_array_equal(ro.obs[:, b, 0, 0], t % L)
        np.testing.assert_array_equal(ro.next_obs[:, b, 0, 0], t % L + 1)       # never the reset obs
        ends = (t % L) == L - 1
        np.testing.assert_array_equal(ro.done[:, b], ends)
        np.testing.assert_array_equal(ro.terminated[:, b], ends & (b % 2 == 0))
        np.testing.assert_array_equal(ro.truncated[:, b], ends & (b % 2 == 1))
    # 12 steps: copy 0 ends 6 episodes, copy 1 four, copy 2 three
    assert len(stats) == 13
    assert sorted(stats.lengths) == [2] * 6 + [3] * 4 + [4] * 3
    for length, ret, cost in zip(stats.lengths, stats.returns, stats.costs):
        np.testing.assert_allclose(ret, [length, length])
        np.testing.assert_allclose(cost, [[length], [0.0]])


def test_collector_rejects_bad_actions_from_the_algorithm():
    from safenet.errors import SafenetError

    class Bad(RandomAgent):
        def act(self, obs, info, deterministic=False):
            return np.full((obs.shape[0], self.spec.n), 2), {}

    game = ToyLineGame(ToyConfig(n_agents=2), num_envs=2, seed=0)
    with pytest.raises(SafenetError, match="valid actions are 0..1"):
        Collector(game).collect(Bad(game.spec), 1)


class MetricGame(CountGame):
    """CountGame that reports its episode length (times 10) as an episode metric ``len10``."""

    def step(self, actions):
        ended = self.t + 1 >= self.length
        out = super().step(actions)
        if ended.any():
            out[5]["episode_metrics"] = {"len10": np.where(ended, 10.0 * self.length, np.nan)}
        return out


def test_collector_and_trainer_pick_up_episode_metrics():
    from safenet.trainer import episode_metrics

    game = MetricGame(num_envs=3)
    _, stats = Collector(game, seed=0).collect(RandomAgent(game.spec), 12)
    assert sorted(stats.metrics["len10"]) == [20.0] * 6 + [30.0] * 4 + [40.0] * 3   # one value per ended episode
    row = episode_metrics(stats, game.spec, "rollout")
    assert row["rollout/env/len10"] == pytest.approx((6 * 20 + 4 * 30 + 3 * 40) / 13)
    _, quiet = Collector(CountGame(num_envs=2), seed=0).collect(RandomAgent(game.spec), 5)
    assert not any(k.startswith("rollout/env/") for k in episode_metrics(quiet, game.spec, "rollout"))
