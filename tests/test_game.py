"""GameSpec validation and masks, action checks, and the PettingZoo adapters in both directions."""
from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from safenet.errors import SafenetError
from safenet.game import BatchedGame, GameSpec, from_parallel_env, to_parallel_env
from safenet.graph import Graph
from safenet.testing import ToyConfig, check_game, make_toy


def spec(**kw) -> GameSpec:
    base = dict(name="g", agents=("a", "b", "c"), graph=Graph.line(3), obs_dims=(2, 3, 1),
                action_kind="continuous", action_dims=(2, 1, 3), episode_length=5,
                n_costs=(0, 1, 2), cost_limits=((), (1.5,), (2.0, 4.0)))
    base.update(kw)
    return GameSpec(**base)


# ------------------------------------------------------------------------------------------------
# GameSpec
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(graph=Graph.line(4)), "graph has 4 agents"),
    (dict(obs_dims=(2, 3)), "obs_dims"),
    (dict(action_dims=(2, 1, 3, 4)), "action_dims"),
    (dict(n_costs=(0, 1)), "n_costs"),
    (dict(cost_limits=((), (1.5,))), "cost_limits"),
    (dict(cost_limits=((), (1.5,), (2.0,))), "agent 2 has 2 costs but 1 limits"),
    (dict(cost_limits=((1.0,), (1.5,), (2.0, 4.0))), "agent 0 has 0 costs but 1 limits"),
    (dict(n_costs=None), "agent 1 has 0 costs but 1 limits"),
    (dict(action_kind="box"), "action_kind"),
    (dict(episode_length=0), "episode_length"),
])
def test_spec_validation_errors(kw, match):
    with pytest.raises(SafenetError, match=match):
        spec(**kw)


@pytest.mark.parametrize("names", [("only_one",), ("x", "y", "z")])
def test_cost_names_must_match_the_number_of_costs(names):
    with pytest.raises(SafenetError, match="cost_names"):
        spec(cost_names=names)


def test_spec_sizes_and_masks():
    s = spec()
    assert s.n == 3 and s.obs_dim == 3 and s.action_dim == 3 and s.max_costs == 2
    np.testing.assert_array_equal(s.obs_mask(), [[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(s.action_mask(), [[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(s.cost_mask(), [[0, 0], [1, 0], [1, 1]])
    np.testing.assert_array_equal(s.cost_limit_array(), [[np.inf, np.inf], [1.5, np.inf], [2.0, 4.0]])
    assert s.cost_names == ("cost0", "cost1")
    assert s.tags == {"continuous", "constrained"}
    assert "3 agents" in s.summary() and "3 cost signals" in s.summary()


def test_spec_normalises_and_derives_tags():
    s = spec(obs_dims=[2, 3, 1], agents=["a", "b", "c"], state_dim=7, common_obs_dim=2,
             tags={"finite"}, action_kind="discrete")
    assert isinstance(s.agents, tuple) and isinstance(s.obs_dims, tuple)
    assert s.tags == {"finite", "discrete", "global_state", "common_obs", "constrained"}
    free = spec(n_costs=None, cost_limits=None)
    assert free.n_costs == (0, 0, 0) and free.cost_limits == ((), (), ())
    assert free.max_costs == 0 and "constrained" not in free.tags
    assert free.cost_mask().shape == (3, 0) and free.cost_limit_array().shape == (3, 0)
    assert "no costs" in free.summary()


# ------------------------------------------------------------------------------------------------
# check_actions
# ------------------------------------------------------------------------------------------------

class HeteroGame(BatchedGame):
    """A continuous game with heterogeneous agents (the spec above).

    obs are random; reward_i = sum of agent i's real action components; cost_ij = |a_i0| * (j + 1);
    episodes last ``episode_length`` steps (truncated), copies auto-reset.
    """

    def __init__(self, num_envs: int = 1, seed: int | None = None) -> None:
        self.spec, self.num_envs = spec(), num_envs
        self.rng = np.random.default_rng(seed)
        self.t = np.zeros(num_envs, dtype=np.int64)

    def _obs(self):
        return (self.rng.normal(size=(self.num_envs, 3, 3)) * self.spec.obs_mask()).astype(np.float32)

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t[:] = 0
        return self._obs(), {}

    def step(self, actions):
        a = self.check_actions(actions) * self.spec.action_mask()
        reward = a.sum(-1).astype(np.float32)
        cost = (np.abs(a[:, :, :1]) * np.arange(1, 3)).astype(np.float32) * self.spec.cost_mask()
        self.t += 1
        trunc = self.t >= self.spec.episode_length
        final = self._obs()
        obs = np.where(trunc[:, None, None], self._obs(), final)
        self.t[trunc] = 0
        return obs, reward, cost, np.zeros_like(trunc), trunc, {"final_obs": final}


def test_check_actions_discrete():
    game = make_toy(ToyConfig(n_agents=3), num_envs=2, seed=0)
    ok = game.check_actions(np.array([[0, 1, 1], [1, 0, 0]]))
    assert ok.dtype.kind == "i"
    as_float = game.check_actions(np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))
    assert as_float.dtype == np.int64 and as_float.tolist() == [[0, 1, 1], [1, 0, 0]]
    with pytest.raises(SafenetError, match=r"shape \(2, 3\), got \(3, 2\)"):
        game.check_actions(np.zeros((3, 2), dtype=int))
    with pytest.raises(SafenetError, match="integers"):
        game.check_actions(np.full((2, 3), 0.5))
    with pytest.raises(SafenetError, match="integers"):
        game.check_actions(np.array([[0, 1, np.nan], [0, 0, 0]]))
    with pytest.raises(SafenetError, match=r"agent_2 got action 2; valid actions are 0\.\.1"):
        game.check_actions(np.array([[0, 1, 1], [0, 0, 2]]))
    with pytest.raises(SafenetError, match="agent_0 got action -1"):
        game.check_actions(np.array([[-1, 1, 1], [0, 0, 0]]))


def test_check_actions_continuous():
    game = HeteroGame(num_envs=2)
    a = game.check_actions(np.zeros((2, 3, 3), dtype=np.float32))
    assert a.shape == (2, 3, 3)
    with pytest.raises(SafenetError, match=r"shape \(2, 3, 3\)"):
        game.check_actions(np.zeros((2, 3, 2)))
    bad = np.zeros((2, 3, 3))
    bad[1, 2, 0] = np.inf
    with pytest.raises(SafenetError, match="NaN or inf"):
        game.check_actions(bad)


def test_default_state_is_an_error():
    with pytest.raises(SafenetError, match="no global state"):
        HeteroGame().state()


def test_games_pass_check_game():
    check_game(make_toy(ToyConfig(), num_envs=3, seed=0))
    check_game(HeteroGame(num_envs=2, seed=0))


# ------------------------------------------------------------------------------------------------
# PettingZoo: batched game -> ParallelEnv
# ------------------------------------------------------------------------------------------------

def _toy_factory(cfg=None, seed=0):
    return lambda num_envs: make_toy(cfg or ToyConfig(), num_envs=num_envs, seed=seed)


def test_toy_as_parallel_env_passes_pettingzoo_api_test():
    env = to_parallel_env(_toy_factory())
    parallel_api_test(env, num_cycles=40)


def test_heterogeneous_continuous_game_passes_pettingzoo_api_test():
    env = to_parallel_env(lambda num_envs: HeteroGame(num_envs, seed=0))
    parallel_api_test(env, num_cycles=20)
    assert env.observation_space("c").shape == (1,)
    assert env.action_space("c").shape == (3,)
    obs, infos = env.reset(seed=0)
    assert {a: o.shape for a, o in obs.items()} == {"a": (2,), "b": (3,), "c": (1,)}
    _, rew, _, _, infos = env.step({"a": np.array([0.5, 0.25]), "b": np.array([-1.0]), "c": np.array([1.0, 1.0, 1.0])})
    assert rew == {"a": 0.75, "b": -1.0, "c": 3.0}
    assert {a: i["cost"].tolist() for a, i in infos.items()} == {"a": [], "b": [1.0], "c": [1.0, 2.0]}


def test_parallel_env_face_of_toy():
    cfg = ToyConfig(n_agents=3, episode_length=3)
    env = to_parallel_env(_toy_factory(cfg))
    assert env.possible_agents == ["agent_0", "agent_1", "agent_2"]
    obs, infos = env.reset(seed=3)
    assert env.agents == env.possible_agents
    assert all(infos[a]["local_state"] == int(np.argmax(obs[a])) for a in env.agents)
    np.testing.assert_array_equal(env.state(), [infos[a]["local_state"] for a in env.possible_agents])
    for t in range(3):
        before = {a: int(np.argmax(o)) for a, o in obs.items()}
        acts = {a: 1 for a in env.agents}
        obs, rew, term, trunc, infos = env.step(acts)
        assert all(infos[a]["cost"].tolist() == [1.0] for a in env.possible_agents)
        assert rew == {a: float(before[a] == 1) for a in env.possible_agents}   # reward 1[a_i == s_i]
        assert not any(term.values())
        assert all(trunc.values()) == (t == 2)
    assert env.agents == []                         # episode over
    env.reset(seed=0)
    with pytest.raises(SafenetError, match=r"no action for agents \['agent_1', 'agent_2'\]"):
        env.step({"agent_0": 0})


# ------------------------------------------------------------------------------------------------
# PettingZoo: ParallelEnv -> batched game (round trip through the toy)
# ------------------------------------------------------------------------------------------------

def test_round_trip_toy_to_parallel_env_to_batched_game():
    n, L, B = 3, 4, 2
    cfg = ToyConfig(n_agents=n, episode_length=L)
    batched = from_parallel_env([lambda: to_parallel_env(_toy_factory(cfg))] * B, name="rt", graph=Graph.line(n),
                                episode_length=L, cost_limits=[(3.0,)] * n)
    s = batched.spec
    assert batched.num_envs == B
    assert s.agents == tuple(f"agent_{i}" for i in range(n))
    assert s.obs_dims == (2,) * n and s.action_kind == "discrete" and s.action_dims == (2,) * n
    assert s.n_costs == (1,) * n and s.cost_limits == ((3.0,),) * n and s.graph.diameter == n - 1
    # reference: the batched toy itself, copy b seeded like the adapter seeds it (seed + b)
    refs = [make_toy(cfg, num_envs=1) for _ in range(B)]
    obs, _ = batched.reset(seed=10)
    ref_obs = np.concatenate([r.reset(seed=10 + b)[0] for b, r in enumerate(refs)])
    assert obs.shape == (B, n, 2) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, ref_obs)
    rng = np.random.default_rng(0)
    for t in range(L):
        a = rng.integers(0, 2, size=(B, n))
        obs, rew, cost, term, trunc, info = batched.step(a)
        outs = [r.step(a[b:b + 1]) for b, r in enumerate(refs)]
        assert rew.shape == (B, n) and cost.shape == (B, n, 1) and term.shape == trunc.shape == (B,)
        np.testing.assert_array_equal(rew, np.concatenate([o[1] for o in outs]))
        np.testing.assert_array_equal(cost, np.concatenate([o[2] for o in outs]))
        np.testing.assert_array_equal(cost[..., 0], a == 1)
        assert not term.any()
        assert trunc.all() == (t == L - 1) and trunc.any() == (t == L - 1)
        if t < L - 1:
            np.testing.assert_array_equal(obs, np.concatenate([o[0] for o in outs]))
            np.testing.assert_array_equal(info["final_obs"], obs)
        else:
            np.testing.assert_array_equal(info["final_obs"], np.concatenate([o[5]["final_obs"] for o in outs]))
    # the copies went on with a new episode
    obs, *_ = batched.step(np.zeros((B, n), dtype=int))
    assert obs.shape == (B, n, 2)


def test_round_trip_continuous_heterogeneous_game():
    B = 2
    batched = from_parallel_env([lambda: to_parallel_env(lambda k: HeteroGame(k, seed=1))] * B,
                                cost_limits=[(), (1.5,), (2.0, 4.0)], episode_length=5)
    s = batched.spec
    assert s.obs_dims == (2, 3, 1) and s.action_dims == (2, 1, 3) and s.action_kind == "continuous"
    assert s.graph.diameter == 1                             # complete graph by default
    assert (s.action_low, s.action_high) == (-1.0, 1.0)
    batched.reset(seed=0)
    a = np.zeros((B, 3, 3))
    a[:, :, 0] = [0.5, -0.25, 1.0]
    a[:, 2, 1:] = 0.5
    for t in range(5):
        obs, rew, cost, term, trunc, info = batched.step(a)
        np.testing.assert_allclose(rew, [[0.5, -0.25, 2.0]] * B)
        np.testing.assert_allclose(cost, [[[0, 0], [0.25, 0], [1.0, 2.0]]] * B)
        assert trunc.all() == (t == 4)
        np.testing.assert_array_equal(obs * ~s.obs_mask(), 0)     # padding stays zero


def test_from_parallel_env_needs_factories():
    with pytest.raises(SafenetError, match="at least one"):
        from_parallel_env([])
